"""Booking processor activity into the ledger, once, through the posting service.

The chart (per tenant, provider and currency; created on first use, see `settlement_accounts`):

| account                            | normal | holds                                   |
| ---------------------------------- | ------ | --------------------------------------- |
| processor:<p>:clearing             | debit  | what the processor owes us              |
| processor:<p>:sales                | credit | gross charges                           |
| processor:<p>:refunds              | debit  | refunds given                           |
| processor:<p>:disputes             | debit  | amounts withdrawn (or reinstated) by disputes |
| processor:<p>:fees                 | debit  | processing fees                         |
| processor:<p>:adjustments          | debit  | any other movement                      |
| processor:<p>:payouts_in_transit   | debit  | paid out, not yet seen at the bank      |
| bank:operating                     | debit  | payouts that reached the bank           |

A movement of gross `amount`, `fee` and `net` (= amount - fee) posts +net on clearing, +fee on
fees and -amount on its type's account (+ is a debit), so it always balances. A payout posts
clearing -> payouts_in_transit; a payout matched to its bank credit posts payouts_in_transit ->
bank:operating. Idempotency keys are the provider's ids (`stripe:txn_...`, `stripe:po_...`,
`stripe:po_...:arrival`): re-running never books twice, and a key already used with another
body is reported as a conflict instead of being booked again. Amounts are converted from the
processor's exponent to ISO 4217's, exactly or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.cards.records import BalanceTransactionType
from adapters.errors import IdempotencyMismatch, InvalidInput
from adapters.ledger.data_versions import bump_data_version
from adapters.ledger.posting_batch import post_batch
from adapters.ledger.posting_requests import (
    DEFAULT_EFFECTIVE_WINDOW,
    EffectiveWindow,
    NewEntry,
    NewTransaction,
)
from adapters.ledger.tables import ledger_accounts
from adapters.money import currency_exponent
from adapters.reconciliation.records import Reason, ReasonCode, Settlement, SettlementItem
from adapters.reconciliation.tables import settlement_accounts
from adapters.records import Direction

__all__ = [
    "BANK_OWNER",
    "AccountKey",
    "BookingResult",
    "SettlementBooker",
    "arrival_key",
    "arrival_transaction",
    "chart_for",
    "item_key",
    "item_transaction",
    "payout_key",
    "payout_transaction",
    "to_ledger_units",
]

BANK_OWNER = "bank"
AccountKey = tuple[str, str, str]  # (owner, role, currency)

_NORMAL = {
    "clearing": "debit", "sales": "credit", "refunds": "debit", "disputes": "debit",
    "fees": "debit", "adjustments": "debit", "payouts_in_transit": "debit", "operating": "debit",
}  # fmt: skip
_ROLE_OF_TYPE = {
    BalanceTransactionType.CHARGE: "sales",
    BalanceTransactionType.PAYMENT: "sales",
    BalanceTransactionType.REFUND: "refunds",
    BalanceTransactionType.DISPUTE: "disputes",
    BalanceTransactionType.FEE: "fees",
    BalanceTransactionType.PAYOUT: "payouts_in_transit",
}
_BATCH = 500


def _owner(provider: str) -> str:
    return f"processor:{provider}"


def item_key(provider: str, item_id: str) -> str:
    return f"{provider}:{item_id}"


def payout_key(provider: str, payout_id: str) -> str:
    return f"{provider}:{payout_id}"


def arrival_key(provider: str, payout_id: str) -> str:
    return f"{provider}:{payout_id}:arrival"


def to_ledger_units(amount: int, exponent: int, currency: str) -> int:
    """`amount` (minor units with `exponent`) in ISO 4217 minor units; InvalidInput when the
    conversion would round or the currency is unknown."""
    iso = currency_exponent(currency)
    if exponent <= iso:
        return int(amount * 10 ** (iso - exponent))
    whole, rest = divmod(amount, int(10 ** (exponent - iso)))
    if rest:
        raise InvalidInput(
            f"{amount} in {exponent}-decimal {currency} is not a whole number of ISO minor units"
        )
    return int(whole)


def _transaction(
    key: str,
    legs: Iterable[tuple[AccountKey, int]],
    accounts: dict[AccountKey, int],
    currency: str,
    description: str,
    effective_at: dt.datetime,
) -> NewTransaction | None:
    """Signed legs (+ debit, - credit) merged per account; None when every leg is zero."""
    merged: dict[AccountKey, int] = {}
    for account, signed in legs:
        merged[account] = merged.get(account, 0) + signed
    entries = tuple(
        NewEntry(
            accounts[account],
            Direction.DEBIT if signed > 0 else Direction.CREDIT,
            abs(signed),
            currency,
        )
        for account, signed in merged.items()
        if signed
    )
    if not entries:
        return None
    return NewTransaction(
        idempotency_key=key, entries=entries, description=description, effective_at=effective_at
    )


def item_transaction(
    provider: str, item: SettlementItem, accounts: dict[AccountKey, int]
) -> NewTransaction | None:
    owner, currency = _owner(provider), item.currency
    amount = to_ledger_units(item.amount, item.exponent, currency)
    fee = to_ledger_units(item.fee, item.exponent, currency)
    role = _ROLE_OF_TYPE.get(item.type, "adjustments")
    legs = [
        ((owner, "clearing", currency), amount - fee),
        ((owner, "fees", currency), fee),
        ((owner, role, currency), -amount),
    ]
    return _transaction(
        item_key(provider, item.id), legs, accounts, currency,
        f"{provider} {item.type} {item.id}", item.created,
    )  # fmt: skip


def payout_transaction(
    settlement: Settlement, accounts: dict[AccountKey, int]
) -> NewTransaction | None:
    owner, currency = _owner(settlement.provider), settlement.currency
    amount = to_ledger_units(settlement.amount, settlement.exponent, currency)
    legs = [
        ((owner, "payouts_in_transit", currency), amount),
        ((owner, "clearing", currency), -amount),
    ]
    return _transaction(
        payout_key(settlement.provider, settlement.id), legs, accounts, currency,
        f"{settlement.provider} payout {settlement.id}", settlement.created,
    )  # fmt: skip


def arrival_transaction(
    settlement: Settlement, accounts: dict[AccountKey, int]
) -> NewTransaction | None:
    """The payout reached the bank (effective on its arrival date, whichever credit matched)."""
    owner, currency = _owner(settlement.provider), settlement.currency
    amount = to_ledger_units(settlement.amount, settlement.exponent, currency)
    legs = [
        ((BANK_OWNER, "operating", currency), amount),
        ((owner, "payouts_in_transit", currency), -amount),
    ]
    return _transaction(
        arrival_key(settlement.provider, settlement.id), legs, accounts, currency,
        f"{settlement.provider} payout {settlement.id} arrived", settlement.arrival_date,
    )  # fmt: skip


def chart_for(settlements: Sequence[Settlement]) -> set[AccountKey]:
    """Every account the settlements may book into (ISO currencies only)."""
    wanted: set[AccountKey] = set()
    for settlement in settlements:
        owner = _owner(settlement.provider)
        for currency in {settlement.currency, *(item.currency for item in settlement.items)}:
            try:
                currency_exponent(currency)
            except InvalidInput:
                continue
            wanted.update((owner, role, currency) for role in _NORMAL if role != "operating")
            wanted.add((BANK_OWNER, "operating", currency))
    return wanted


@dataclass(frozen=True, slots=True)
class BookingResult:
    """Keys that the ledger now holds as asked, and the problem of each key it does not."""

    booked: frozenset[str]
    problems: dict[str, Reason]


class SettlementBooker:
    """Creates the chart and posts bookings for one engine: one read of the chart (plus one
    transaction creating what is missing), then one batch posting (adapters.ledger
    .posting_batch) per 500 bookings, whose keys already in the ledger replay."""

    def __init__(
        self, engine: AsyncEngine, effective_window: EffectiveWindow = DEFAULT_EFFECTIVE_WINDOW
    ) -> None:
        self._engine = engine
        self._effective_window = effective_window

    async def ensure_accounts(
        self, tenant_id: int, wanted: set[AccountKey]
    ) -> dict[AccountKey, int]:
        found = await self._chart(tenant_id)
        missing = sorted(wanted - found.keys())
        if missing:
            try:
                async with self._engine.begin() as connection:
                    for owner, role, currency in missing:
                        account_id = (
                            await connection.execute(
                                ledger_accounts.insert()
                                .values(
                                    tenant_id=tenant_id,
                                    customer_id=None,
                                    name=f"{owner}:{role}",
                                    currency=currency,
                                    currency_exponent=currency_exponent(currency),
                                    normal_balance=_NORMAL[role],
                                )
                                .returning(ledger_accounts.c.id)
                            )
                        ).scalar_one()
                        await connection.execute(
                            settlement_accounts.insert().values(
                                tenant_id=tenant_id,
                                owner=owner,
                                role=role,
                                currency=currency,
                                ledger_account_id=account_id,
                            )
                        )
                    await bump_data_version(connection, tenant_id)
            except IntegrityError:
                pass  # a concurrent run created (some of) them first: read theirs
            found = await self._chart(tenant_id)
        return found

    async def _chart(self, tenant_id: int) -> dict[AccountKey, int]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(settlement_accounts).where(settlement_accounts.c.tenant_id == tenant_id)
            )
            return {(row.owner, row.role, row.currency): int(row.ledger_account_id) for row in rows}

    async def book(self, tenant_id: int, transactions: Sequence[NewTransaction]) -> BookingResult:
        """Post each transaction not yet in the ledger (batches of 500, one database
        transaction each); report the ones that cannot be."""
        booked: set[str] = set()
        problems: dict[str, Reason] = {}
        for start in range(0, len(transactions), _BATCH):
            outcomes = await post_batch(
                self._engine,
                tenant_id,
                transactions[start : start + _BATCH],
                effective_window=self._effective_window,
            )
            for outcome in outcomes:
                key = outcome.idempotency_key
                if outcome.error is None:
                    booked.add(key)
                elif isinstance(outcome.error, IdempotencyMismatch):
                    problems[key] = _conflict(key)
                else:
                    problems[key] = Reason(
                        ReasonCode.NOT_BOOKED, f"{key} was not booked: {outcome.error}"
                    )
        return BookingResult(frozenset(booked), problems)


def _conflict(key: str) -> Reason:
    return Reason(
        ReasonCode.BOOKING_CONFLICT,
        f"the ledger holds another booking under {key} than the processor's figures give",
    )
