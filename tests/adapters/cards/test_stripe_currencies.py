"""Stripe's exponent table: where it follows ISO 4217 and where it deviates."""

from __future__ import annotations

import pytest

from adapters.cards.stripe_currencies import stripe_currency_exponent
from adapters.money import currency_exponent


@pytest.mark.parametrize(
    ("code", "stripe", "iso"),
    [
        ("ISK", 2, 0),  # two-decimal in Stripe's API for backwards compatibility
        ("MGA", 0, 2),  # zero-decimal in Stripe
    ],
    ids=["isk_case", "mga_case"],
)
def test_overrides_differ_from_iso(code: str, stripe: int, iso: int) -> None:
    assert currency_exponent(code) == iso
    assert stripe_currency_exponent(code) == stripe


@pytest.mark.parametrize(
    ("code", "exponent"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("UGX", 0), ("HUF", 2), ("TWD", 2),
     ("BHD", 3), ("KWD", 3)],
)  # fmt: skip
def test_other_currencies_follow_iso(code: str, exponent: int) -> None:
    assert stripe_currency_exponent(code) == exponent == currency_exponent(code)


def test_a_currency_iso_does_not_know_is_two_decimal_as_in_stripe() -> None:
    assert stripe_currency_exponent("ZZZ") == 2
