"""Custom scalars: exact decimals and 64-bit integers as strings, RFC 3339 UTC datetimes."""

from __future__ import annotations

import datetime as dt
import re
from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

__all__ = ["SCALARS", "BigInt", "Decimal", "serialize_datetime"]

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_BIGINT = re.compile(r"-?[0-9]{1,19}")


def _parse_decimal(value: object) -> str:
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise ValueError("Decimal must be a string of digits with an optional '.' and fraction")
    return value


def _parse_bigint(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _BIGINT.fullmatch(value):
        raise ValueError("BigInt must be a string of at most 19 digits")
    return value


def serialize_datetime(value: dt.datetime) -> str:
    """Aware datetime -> RFC 3339 in UTC with a 'Z' suffix."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _parse_datetime(value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an RFC 3339 string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("DateTime must be an RFC 3339 string like 2026-01-31T12:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError("DateTime must carry a time zone offset (for example 'Z')")
    return parsed.astimezone(dt.UTC)


Decimal = NewType("Decimal", str)
BigInt = NewType("BigInt", str)

# Given to the schema as StrawberryConfig(scalar_map=SCALARS).
SCALARS: dict[object, ScalarDefinition] = {
    Decimal: strawberry.scalar(
        name="Decimal",
        description=(
            'An exact decimal number in major currency units, as a string ("1234.50"). '
            "Never a float."
        ),
        serialize=str,
        parse_value=_parse_decimal,
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        description=(
            "A 64-bit integer as a string (GraphQL Int is 32-bit; $21.4M in cents overflows it)."
        ),
        serialize=str,
        parse_value=_parse_bigint,
    ),
    dt.datetime: strawberry.scalar(
        name="DateTime",
        description='A point in time, RFC 3339 in UTC ("2026-01-31T12:00:00Z").',
        serialize=serialize_datetime,
        parse_value=_parse_datetime,
    ),
}
