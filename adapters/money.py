"""Exact money: ISO 4217 exponents, decimal strings <-> integer minor units.

Amounts are integers in the currency's minor units everywhere inside the gateway; decimal
strings exist only on the wire. Floats never appear.
"""

from __future__ import annotations

import re
from functools import lru_cache

from iso4217 import Currency

from adapters.errors import InvalidInput

__all__ = ["currency_exponent", "format_minor_units", "parse_decimal_amount"]

_DECIMAL = re.compile(r"(?P<sign>-?)(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]+))?")
_CODE = re.compile(r"[A-Z]{3}")
# A BIGINT column holds at most 2**63 - 1 minor units.
MAX_MINOR_UNITS = 2**63 - 1


@lru_cache(maxsize=512)
def _exponent_or_none(code: str) -> int | None:
    if not _CODE.fullmatch(code):
        return None
    try:
        exponent = Currency(code).exponent
    except ValueError:
        return None
    return exponent if isinstance(exponent, int) else None


def currency_exponent(code: str, *, field: str = "currency") -> int:
    """Return the ISO 4217 minor-unit exponent of `code` (USD 2, JPY 0, BHD 3).

    Raises InvalidInput for unknown codes and for codes without minor units (XAU, XXX).
    """
    exponent = _exponent_or_none(code)
    if exponent is None:
        raise InvalidInput(f"unknown or non-monetary ISO 4217 currency {code!r}", field=field)
    return exponent


def parse_decimal_amount(text: str, currency: str, *, field: str = "amount") -> int:
    """Turn a positive decimal string in major units into integer minor units.

    "12.5" USD -> 1250. More decimals than the currency allows, zero, a negative amount,
    exponents or anything but plain digits are refused with InvalidInput naming `field`.
    """
    exponent = currency_exponent(currency)
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise InvalidInput(f"{text!r} is not a decimal number like '12.34'", field=field)
    if match["sign"]:
        raise InvalidInput("amount must be positive", field=field)
    fraction = match["fraction"] or ""
    if len(fraction.rstrip("0")) > exponent:
        raise InvalidInput(
            f"{currency} allows at most {exponent} decimal places, got {text!r}", field=field
        )
    fraction = fraction[:exponent].ljust(exponent, "0")
    minor = int(match["whole"] + fraction)
    if minor <= 0:
        raise InvalidInput("amount must be greater than zero", field=field)
    if minor > MAX_MINOR_UNITS:
        raise InvalidInput("amount is too large", field=field)
    return minor


def format_minor_units(minor: int, exponent: int) -> str:
    """Integer minor units -> decimal string in major units: (-1250, 2) -> "-12.50"."""
    if exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor)).rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"
