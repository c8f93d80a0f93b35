"""Records to bytes and back: orjson of their fields, rebuilt from their type hints.

Records are frozen dataclasses of plain values (int, str, bool, None), aware datetimes,
dates, StrEnums, tuples and nested records, possibly generic (`CardPage[CardPayment]`).
`encode` is orjson's native dataclass serialization (datetimes as RFC 3339, enums as their
values, tuples as arrays); `decoder(type)` compiles once per type a function that rebuilds the
record from the decoded JSON. The cache stores these bytes; nothing here is secret (records
never hold secrets).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

__all__ = ["decode", "decoder", "encode"]

T = TypeVar("T")
_Decode = Callable[[Any], Any]


def encode(value: Any) -> bytes:
    """orjson bytes of a record, a tuple/list of records, or None."""
    return orjson.dumps(value)


def decode(data: bytes, type_: Any) -> Any:
    """Rebuild a value of `type_` (a record class, `tuple[Record, ...]`, `X | None` ...)."""
    return decoder(type_)(orjson.loads(data))


def _identity(value: Any) -> Any:
    return value


@functools.cache
def decoder(type_: Any) -> _Decode:
    """A function from orjson-decoded data to a value of `type_`; compiled once per type."""
    return _compile(type_, {})


def _compile(type_: Any, typevars: dict[Any, Any]) -> _Decode:
    if isinstance(type_, TypeVar):
        return _compile(typevars[type_], typevars)
    if type_ is Any or type_ in (int, str, bool, type(None)):
        return _identity
    if type_ is float:
        return float
    if type_ is dt.datetime:
        return dt.datetime.fromisoformat
    if type_ is dt.date:
        return dt.date.fromisoformat
    origin = typing.get_origin(type_)
    args = typing.get_args(type_)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in args if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f"only optional unions (X | None) are decodable: {type_!r}")
        inner = _compile(members[0], typevars)
        return lambda value: None if value is None else inner(value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _compile(args[0], typevars)
            return lambda value: tuple(item(element) for element in value)
        items = [_compile(arg, typevars) for arg in args]
        return lambda value: tuple(fn(element) for fn, element in zip(items, value, strict=True))
    if origin is list:
        item = _compile(args[0], typevars)
        return lambda value: [item(element) for element in value]
    if origin is dict:
        item = _compile(args[1], typevars)
        return lambda value: {key: item(element) for key, element in value.items()}
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return type_
    cls = origin or type_
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        parameters = getattr(cls, "__parameters__", ())
        bound = {**typevars, **dict(zip(parameters, args, strict=False))}
        return _compile_record(cls, bound)
    raise TypeError(f"no decoder for {type_!r}")


def _compile_record(cls: type[Any], typevars: dict[Any, Any]) -> _Decode:
    hints = typing.get_type_hints(cls)
    fields = [
        (field.name, _compile(hints[field.name], typevars))
        for field in dataclasses.fields(cls)
        if field.init
    ]

    def build(value: Any) -> Any:
        return cls(**{name: fn(value[name]) for name, fn in fields if name in value})

    return build
