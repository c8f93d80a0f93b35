"""Bank credits for card-sandbox payouts, so that reconciliation has something to match.

`credit_payouts` adds to a banking sandbox, for each payout (Stripe-shaped JSON), the credit
the bank would show: `STRIPE PAYOUT <payout id>`, the payout's amount, dated its arrival date
plus `delay_days`, on the item that holds the payout's currency. The fault knobs skip a
payout's credit (`missing`), move it by that many days (`late`), change its amount (`amounts`,
minor units) or add it twice (`duplicated`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal
from typing import Any

from adapters.cards.stripe_currencies import stripe_currency_exponent
from adapters.sandbox.banking_app import BankingSandbox

__all__ = ["credit_payouts", "payout_credit_name"]


def payout_credit_name(payout_id: str) -> str:
    return f"STRIPE PAYOUT {payout_id}"


def credit_payouts(
    banking: BankingSandbox,
    items_by_currency: Mapping[str, str],
    payouts: Iterable[Mapping[str, Any]],
    *,
    delay_days: int = 1,
    missing: Collection[str] = (),
    late: Mapping[str, int] | None = None,
    amounts: Mapping[str, int] | None = None,
    duplicated: Collection[str] = (),
) -> dict[str, list[str]]:
    """Add the credits; returns the bank transaction ids per payout id. Payouts in a currency
    without an item in `items_by_currency` (upper-case codes) get none."""
    late, amounts = late or {}, amounts or {}
    added: dict[str, list[str]] = {}
    for payout in payouts:
        payout_id, currency = payout["id"], str(payout["currency"]).upper()
        item_id = items_by_currency.get(currency)
        if item_id is None or payout_id in missing:
            continue
        minor = amounts.get(payout_id, payout["amount"])
        exponent = stripe_currency_exponent(currency)
        # Plaid's sign: negative is money in.
        value = -Decimal(minor).scaleb(-exponent)
        arrival = dt.datetime.fromtimestamp(payout["arrival_date"], dt.UTC).date()
        date = arrival + dt.timedelta(days=delay_days + late.get(payout_id, 0))
        for _ in range(2 if payout_id in duplicated else 1):
            added.setdefault(payout_id, []).append(
                banking.add_transaction(
                    item_id, amount=str(value), name=payout_credit_name(payout_id), date=date
                )
            )
    return added
