"""Custom scalars: exact decimals and 64-bit integers as strings, RFC 3339 UTC datetimes, dates.

A value a scalar refuses raises `GraphQLError` (as graphql-core's own Int or String do), never
a bare ValueError: graphql-core then reports it as a request error naming the variable (the
gateway answers `BAD_USER_INPUT`) or, for a literal in the document, as a validation error at
the literal's location. Lengths are bounded before any conversion, so no input can make a
parser do unbounded work or overflow.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, NewType, TypeVar

import strawberry
from graphql import GraphQLError, IntValueNode, StringValueNode, ValueNode, print_ast
from strawberry.types.scalar import ScalarDefinition

__all__ = [
    "MAX_DECIMAL_FRACTION_DIGITS",
    "MAX_DECIMAL_LENGTH",
    "SCALARS",
    "BigInt",
    "Decimal",
    "serialize_datetime",
]

# 2**63 - 1 minor units has 19 digits; with up to 4 decimals (CLF) and trailing zeros an
# amount never needs more than this. Longer strings are refused before they are converted.
MAX_DECIMAL_LENGTH = 40
MAX_DECIMAL_FRACTION_DIGITS = 18
_MAX_DATETIME_LENGTH = 64

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]{1,%d})?" % MAX_DECIMAL_FRACTION_DIGITS)  # noqa: UP031
_BIGINT = re.compile(r"-?[0-9]{1,19}")
_MIN_BIGINT, _MAX_BIGINT = -(2**63), 2**63 - 1

T = TypeVar("T")


def _parse_decimal(value: object) -> str:
    if (
        not isinstance(value, str)
        or len(value) > MAX_DECIMAL_LENGTH
        or not _DECIMAL.fullmatch(value)
    ):
        raise GraphQLError(
            f"Decimal must be a string of digits with an optional '.' and at most "
            f"{MAX_DECIMAL_FRACTION_DIGITS} decimals, at most {MAX_DECIMAL_LENGTH} characters "
            '(for example "12.50")'
        )
    return value


def _parse_bigint(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value) if -(10**20) < value < 10**20 else ""
    if (
        not isinstance(value, str)
        or not _BIGINT.fullmatch(value)
        or not _MIN_BIGINT <= int(value) <= _MAX_BIGINT
    ):
        raise GraphQLError("BigInt must be a 64-bit integer, as a string of at most 19 digits")
    return value


def serialize_datetime(value: dt.datetime) -> str:
    """Aware datetime -> RFC 3339 in UTC with a 'Z' suffix."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _parse_datetime(value: object) -> dt.datetime:
    if not isinstance(value, str) or len(value) > _MAX_DATETIME_LENGTH:
        raise GraphQLError("DateTime must be an RFC 3339 string like 2026-01-31T12:00:00Z")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise GraphQLError(
            "DateTime must be an RFC 3339 string like 2026-01-31T12:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise GraphQLError("DateTime must carry a time zone offset (for example 'Z')")
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable time
        raise GraphQLError("DateTime is out of range in UTC") from None


def _parse_date(value: object) -> dt.date:
    if not isinstance(value, str) or len(value) > _MAX_DATETIME_LENGTH:
        raise GraphQLError("Date must be an ISO 8601 date string like 2026-01-31")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise GraphQLError("Date must be an ISO 8601 date string like 2026-01-31") from None


def _literal_parser(
    name: str, parse_value: Callable[[object], T], *, ints: bool = False
) -> Callable[..., T]:
    """parse_literal for a string scalar: the literal's value through `parse_value`; any other
    literal is refused. Errors carry the literal's node, so they point at it."""

    def parse_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> T:
        try:
            if isinstance(node, StringValueNode):
                return parse_value(node.value)
            if ints and isinstance(node, IntValueNode):
                return parse_value(node.value)
        except GraphQLError as error:
            raise GraphQLError(error.message, node) from None
        raise GraphQLError(f"{name} cannot represent {print_ast(node)[:100]}", node)

    return parse_literal


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
        parse_literal=_literal_parser("Decimal", _parse_decimal),
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        description=(
            "A 64-bit integer as a string (GraphQL Int is 32-bit; $21.4M in cents overflows it)."
        ),
        serialize=str,
        parse_value=_parse_bigint,
        parse_literal=_literal_parser("BigInt", _parse_bigint, ints=True),
    ),
    dt.datetime: strawberry.scalar(
        name="DateTime",
        description='A point in time, RFC 3339 in UTC ("2026-01-31T12:00:00Z").',
        serialize=serialize_datetime,
        parse_value=_parse_datetime,
        parse_literal=_literal_parser("DateTime", _parse_datetime),
    ),
    dt.date: strawberry.scalar(
        name="Date",
        description="Date (isoformat)",
        serialize=dt.date.isoformat,
        parse_value=_parse_date,
        parse_literal=_literal_parser("Date", _parse_date),
    ),
}
