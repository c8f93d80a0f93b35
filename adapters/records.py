"""Frozen domain records returned by adapters and mapped to GraphQL types by resolvers.

Money is always integer minor units plus currency and exponent; times are aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

__all__ = [
    "Customer",
    "CustomerKind",
    "Direction",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "Page",
    "TransactionStatus",
]


class CustomerKind(StrEnum):
    INDIVIDUAL = "individual"
    BUSINESS = "business"


class Direction(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


class TransactionStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    tenant_id: int
    kind: CustomerKind
    display_name: str
    email: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class LedgerAccount:
    """An account with its balance counters (minor units, each >= 0)."""

    id: int
    tenant_id: int
    customer_id: int | None
    name: str
    currency: str
    currency_exponent: int
    normal_balance: Direction
    posted_debits: int
    posted_credits: int
    pending_debits: int
    pending_credits: int
    lock_version: int
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    created_at: dt.datetime

    def _signed(self, debits: int, credits: int) -> int:
        if self.normal_balance is Direction.DEBIT:
            return debits - credits
        return credits - debits

    @property
    def posted_balance(self) -> int:
        """Posted entries only, signed by the normal balance."""
        return self._signed(self.posted_debits, self.posted_credits)

    @property
    def pending_balance(self) -> int:
        """Posted plus pending entries, signed by the normal balance."""
        return self._signed(
            self.posted_debits + self.pending_debits, self.posted_credits + self.pending_credits
        )

    @property
    def available_balance(self) -> int:
        """Posted balance less pending outflows (pending inflows are not yet spendable)."""
        if self.normal_balance is Direction.DEBIT:
            return self.posted_debits - self.posted_credits - self.pending_credits
        return self.posted_credits - self.posted_debits - self.pending_debits


@dataclass(frozen=True, slots=True)
class LedgerTransaction:
    id: int
    tenant_id: int
    idempotency_key: str
    description: str | None
    status: TransactionStatus
    effective_at: dt.datetime
    posted_at: dt.datetime | None
    reverses_transaction_id: int | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    tenant_id: int
    transaction_id: int
    account_id: int
    direction: Direction
    amount: int
    currency: str
    currency_exponent: int
    status: TransactionStatus
    effective_at: dt.datetime
    created_at: dt.datetime


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list: the items and whether more follow."""

    items: list[T]
    has_next_page: bool
