"""Stripe's minor-unit exponents, which deviate from ISO 4217 for a few currencies.

Stripe amounts are integers in "the currency's smallest unit", but Stripe's idea of that
unit is not always ISO's:
- ISK: ISO says 0 decimals; Stripe keeps it two-decimal for backwards compatibility
  (amounts are multiples of 100, `100` is one krona).
- MGA: ISO says 2 decimals; Stripe treats it as zero-decimal.
- HUF, TWD: two-decimal in the API as in ISO (only payouts must be whole units), so no override.
- UGX: zero-decimal in Stripe, as in ISO.
A currency the ISO table does not know is two-decimal, Stripe's default.
"""

from __future__ import annotations

from adapters.errors import InvalidInput
from adapters.money import currency_exponent

__all__ = ["STRIPE_EXPONENT_OVERRIDES", "STRIPE_ZERO_DECIMAL", "stripe_currency_exponent"]

STRIPE_ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip

STRIPE_EXPONENT_OVERRIDES: dict[str, int] = {"ISK": 2, "MGA": 0}

_STRIPE_DEFAULT_EXPONENT = 2


def stripe_currency_exponent(code: str) -> int:
    """The exponent Stripe amounts in `code` (upper-case) are expressed with."""
    if code in STRIPE_EXPONENT_OVERRIDES:
        return STRIPE_EXPONENT_OVERRIDES[code]
    if code in STRIPE_ZERO_DECIMAL:
        return 0
    try:
        return currency_exponent(code)
    except InvalidInput:
        return _STRIPE_DEFAULT_EXPONENT
