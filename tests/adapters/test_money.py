from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.errors import InvalidInput
from adapters.money import currency_exponent, format_minor_units, parse_decimal_amount


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("BHD", 3), ("KWD", 3), ("CLF", 4)],
)
def test_exponents_come_from_iso_4217(currency: str, exponent: int) -> None:
    assert currency_exponent(currency) == exponent


@pytest.mark.parametrize("currency", ["XAU", "XXX", "ABC", "usd", "US", ""])
def test_unknown_or_non_monetary_currencies_are_refused(currency: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        currency_exponent(currency)
    assert raised.value.field == "currency"


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "USD", 1250),
        ("12.5", "USD", 1250),
        ("12", "USD", 1200),
        ("0.01", "USD", 1),
        ("12.500", "USD", 1250),
        ("1000", "JPY", 1000),
        ("1.234", "BHD", 1234),
    ],
)
def test_decimal_strings_become_minor_units(text: str, currency: str, minor: int) -> None:
    assert parse_decimal_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "reason"),
    [
        ("12.345", "USD", "at most 2 decimal places"),
        ("1.5", "JPY", "at most 0 decimal places"),
        ("0", "USD", "greater than zero"),
        ("0.00", "USD", "greater than zero"),
        ("-1.00", "USD", "positive"),
        ("1e3", "USD", "not a decimal"),
        ("1,00", "USD", "not a decimal"),
        (" 1", "USD", "not a decimal"),
        ("NaN", "USD", "not a decimal"),
        ("99999999999999999999", "USD", "too large"),
    ],
)
def test_bad_amounts_name_the_field(text: str, currency: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_decimal_amount(text, currency, field="entries.0.amount")
    assert raised.value.field == "entries.0.amount"
    assert reason in raised.value.message


@pytest.mark.parametrize(
    ("minor", "exponent", "text"),
    [
        (1250, 2, "12.50"),
        (-1250, 2, "-12.50"),
        (5, 2, "0.05"),
        (-5, 3, "-0.005"),
        (7, 0, "7"),
        (0, 2, "0.00"),
    ],
)
def test_minor_units_format_as_decimal_strings(minor: int, exponent: int, text: str) -> None:
    assert format_minor_units(minor, exponent) == text


@given(
    minor=st.integers(min_value=1, max_value=2**63 - 1),
    currency=st.sampled_from(["USD", "JPY", "BHD", "CLF", "EUR", "KWD", "ISK"]),
)
def test_decimal_round_trip_for_every_exponent(minor: int, currency: str) -> None:
    text = format_minor_units(minor, currency_exponent(currency))
    assert parse_decimal_amount(text, currency) == minor
