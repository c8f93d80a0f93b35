"""One setting value read from the environment, with the same rules for every variable.

Each helper takes the environment, the variable's name and its default (returned when the
variable is absent), strips surrounding whitespace, and raises ValueError naming the variable
and what it accepts when the value is malformed or out of range: the gateway refuses to start
rather than guess (`gateway` commands print "configuration error: ..." and exit 2).

- Integers: ASCII digits with an optional sign (`7`, ` 7 `, `+7`). A fraction, an exponent
  or an underscore (`0.5`, `1e3`, `1_000`) is refused, never truncated or rounded.
- Numbers: decimal digits with an optional sign, point and exponent (`0.25`, `+5`, `1e-3`);
  `nan`, `inf` and anything that overflows to infinity are refused.
- Booleans: `1`, `true`, `yes`, `on` and `0`, `false`, `no`, `off`, in any case; anything
  else is refused.
- An empty (or blank) value is refused like any other malformed one, unless the call says
  `empty_is_default=True`: a few variables have always read empty as "use the default".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

__all__ = [
    "flag",
    "integer",
    "non_negative_float",
    "on_unless_off",
    "optional_integer",
    "positive_float",
]

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_BOOLEAN = "a boolean (1, true, yes, on or 0, false, no, off)"


def _text(env: Mapping[str, str], name: str, *, empty_is_default: bool) -> str | None:
    """The stripped value of `name`; None when it is absent, or blank and that means default."""
    raw = env.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if not text and empty_is_default:
        return None
    return text


def _refuse(name: str, accepted: str, text: str) -> ValueError:
    return ValueError(f"{name} must be {accepted}, got {text!r}")


def _whole(name: str, text: str, minimum: int, maximum: int | None) -> int:
    accepted = (
        f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"
    )
    if _INTEGER.fullmatch(text) is None:
        raise _refuse(name, accepted, text)
    number = int(text)
    if number < minimum or (maximum is not None and number > maximum):
        raise _refuse(name, accepted, text)
    return number


def integer(
    env: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int,
    maximum: int | None = None,
    empty_is_default: bool = False,
) -> int:
    """The whole number in `name`, from `minimum` to `maximum` (inclusive); `default` when
    absent. ValueError for anything else, including `0.5` and `1e3`."""
    text = _text(env, name, empty_is_default=empty_is_default)
    return default if text is None else _whole(name, text, minimum, maximum)


def optional_integer(
    env: Mapping[str, str], name: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    """Like `integer`, but None when `name` is absent or empty (an optional setting)."""
    text = _text(env, name, empty_is_default=True)
    return None if text is None else _whole(name, text, minimum, maximum)


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    accepted: str,
    within: Callable[[float], bool],
    empty_is_default: bool,
) -> float:
    text = _text(env, name, empty_is_default=empty_is_default)
    if text is None:
        return default
    if _NUMBER.fullmatch(text) is None:
        raise _refuse(name, accepted, text)
    number = float(text)
    if not math.isfinite(number) or not within(number):
        raise _refuse(name, accepted, text)
    return number


def positive_float(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    maximum: float | None = None,
    empty_is_default: bool = False,
) -> float:
    """The finite number in `name`, above 0 and at most `maximum`; `default` when absent."""
    top = math.inf if maximum is None else maximum
    accepted = "a number > 0" if maximum is None else f"a number > 0 and <= {maximum:g}"
    return _number(
        env,
        name,
        default,
        accepted=accepted,
        within=lambda number: 0 < number <= top,
        empty_is_default=empty_is_default,
    )


def non_negative_float(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    maximum: float | None = None,
    empty_is_default: bool = False,
) -> float:
    """The finite number in `name`, 0 or more and at most `maximum`; `default` when absent."""
    top = math.inf if maximum is None else maximum
    accepted = "a number >= 0" if maximum is None else f"a number >= 0 and <= {maximum:g}"
    return _number(
        env,
        name,
        default,
        accepted=accepted,
        within=lambda number: 0 <= number <= top,
        empty_is_default=empty_is_default,
    )


def flag(
    env: Mapping[str, str], name: str, default: bool, *, empty_is_default: bool = False
) -> bool:
    """The boolean in `name` (case-insensitive); `default` when absent."""
    text = _text(env, name, empty_is_default=empty_is_default)
    if text is None:
        return default
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _refuse(name, _BOOLEAN, text)


def on_unless_off(env: Mapping[str, str], name: str) -> bool:
    """A protective switch, on by default: only an off spelling (`0`, `false`, `no`, `off`)
    turns it off. Absent or empty, it is on; a value that is no boolean is refused rather
    than read either way."""
    return flag(env, name, True, empty_is_default=True)
