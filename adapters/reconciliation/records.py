"""Processor-neutral records of reconciliation: settlements in, results out.

A `Settlement` is one processor payout (or settlement batch) with the balance movements it
settles; any processor adapter that can produce these plugs into the same booking and matching
(`adapters.reconciliation.sources`). Amounts are signed integer minor units of `currency` with
the processor's `exponent` (which may differ from ISO 4217's, as Stripe's ISK does); times are
aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from adapters.cards.records import BalanceTransactionType

__all__ = [
    "BankCredit",
    "MissingOn",
    "Reason",
    "ReasonCode",
    "ReconciliationItem",
    "ReconciliationStatus",
    "Settlement",
    "SettlementItem",
    "SettlementItemType",
]

SettlementItemType = BalanceTransactionType


@dataclass(frozen=True, slots=True)
class SettlementItem:
    """One balance movement a settlement pays out: `net` = `amount` - `fee`, signed."""

    id: str
    type: SettlementItemType
    amount: int
    fee: int
    net: int
    currency: str
    exponent: int
    created: dt.datetime
    source_id: str | None


@dataclass(frozen=True, slots=True)
class Settlement:
    """A payout to the bank with the movements it settles (its own movement excluded).

    `reference` is what the bank statement should show (a statement descriptor) when the
    processor sets one; the payout id is always looked for as well.
    """

    provider: str
    id: str
    amount: int
    currency: str
    exponent: int
    status: str
    created: dt.datetime
    arrival_date: dt.datetime
    reference: str | None
    items: tuple[SettlementItem, ...]


@dataclass(frozen=True, slots=True)
class BankCredit:
    """Money into one of the tenant's bank accounts, as synced (`bank_transactions`)."""

    id: int
    amount: int
    currency: str
    exponent: int
    date: dt.date
    name: str


class ReconciliationStatus(StrEnum):
    MATCHED = "matched"
    UNMATCHED = "unmatched"
    MISMATCHED = "mismatched"
    # The bank window of the payout is still open: no credit yet is not a break (yet).
    PENDING = "pending"


class MissingOn(StrEnum):
    """Which side lacks the counterpart of an UNMATCHED item."""

    BANK = "bank"
    LEDGER = "ledger"
    PROCESSOR = "processor"


class ReasonCode(StrEnum):
    ITEMS_DO_NOT_SUM_TO_PAYOUT = "items_do_not_sum_to_payout"
    DUPLICATE_ITEM = "duplicate_item"
    ITEM_IN_SEVERAL_PAYOUTS = "item_in_several_payouts"
    CURRENCY_DIFFERS = "currency_differs"
    NOT_BOOKED = "not_booked"
    BOOKING_CONFLICT = "booking_conflict"
    NO_BANK_CREDIT = "no_bank_credit"
    AWAITING_BANK_CREDIT = "awaiting_bank_credit"
    LATE_BANK_CREDIT = "late_bank_credit"
    BANK_AMOUNT_DIFFERS = "bank_amount_differs"
    BANK_CURRENCY_DIFFERS = "bank_currency_differs"
    DUPLICATE_BANK_CREDIT = "duplicate_bank_credit"
    NO_PAYOUT_FOR_BANK_CREDIT = "no_payout_for_bank_credit"


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    message: str


@dataclass(frozen=True, slots=True)
class ReconciliationItem:
    """The outcome for one payout, or for one bank credit that no payout explains.

    Amounts are minor units with their own exponents: the payout's (processor) and the bank
    credit's (bank). `occurred_at` is the payout's arrival date or the bank credit's date.
    """

    provider: str
    payout_id: str | None
    status: ReconciliationStatus
    missing_on: MissingOn | None
    reasons: tuple[Reason, ...]
    occurred_at: dt.datetime
    currency: str | None
    exponent: int | None
    payout_amount: int | None
    items_net: int | None
    item_count: int | None
    bank_transaction_id: int | None
    bank_amount: int | None
    bank_currency: str | None
    bank_exponent: int | None
    bank_date: dt.date | None
    checked_at: dt.datetime
    id: int | None = None

    @property
    def is_break(self) -> bool:
        return self.status in (ReconciliationStatus.UNMATCHED, ReconciliationStatus.MISMATCHED)
