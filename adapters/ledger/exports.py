"""Ledger exports: every entry of a range of days, or one account's statement, streamed in
batches (adapters.streaming) with memory bounded by the batch size whatever the row count.

Days are UTC calendar days, both ends included, as in the GraphQL analyst fields. Every
statement filters by tenant: an account of another tenant reads like a missing one. Rows come
in key order, (effective time, entry id), from the ledger's indexes: `(tenant_id,
effective_at)` for a tenant's entries, `(account_id, effective_at, id)` for one account's.
Amounts keep the exponent their account stores.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.history import Counters, LedgerHistory, StatementTotals
from adapters.ledger.periods import day_start
from adapters.ledger.tables import ledger_accounts, ledger_entries, ledger_transactions
from adapters.records import Direction, TransactionStatus
from adapters.streaming import DEFAULT_BATCH_ROWS, export_snapshot, stream_batches

__all__ = ["EntryLine", "LedgerExports", "StatementRead"]

_DIRECTIONS = {direction.value: direction for direction in Direction}
_STATUSES = {status.value: status for status in TransactionStatus}
# The position of an entry in an export: (effective time, id).
_Key = tuple[dt.datetime, int]


@dataclass(frozen=True, slots=True)
class EntryLine:
    """One entry as exported: with its account's name and exponent and its transaction's
    description."""

    id: int
    transaction_id: int
    account_id: int
    account_name: str
    direction: Direction
    amount: int
    currency: str
    currency_exponent: int
    status: TransactionStatus
    effective_at: dt.datetime
    description: str | None


@dataclass(slots=True)
class StatementRead:
    """An account's statement read in one snapshot: the totals (as `LedgerStatement` has them)
    and the period's entries, oldest first, voided ones left out."""

    totals: StatementTotals
    batches: AsyncIterator[list[EntryLine]]


def _line(row: Sequence[Any]) -> EntryLine:
    # Positional: this runs once per exported row.
    return EntryLine(
        row[0], row[1], row[2], row[3], _DIRECTIONS[row[4]], row[5], row[6], row[7],
        _STATUSES[row[8]], row[9], row[10],
    )  # fmt: skip


def _key(row: Sequence[Any]) -> _Key:
    return row[9], row[0]


def _entries_query(conditions: Sequence[Any]) -> Select[Any]:
    e, a, t = ledger_entries.c, ledger_accounts.c, ledger_transactions.c
    return (
        select(
            *(e.id, e.transaction_id, e.account_id, a.name, e.direction, e.amount),
            *(e.currency, a.currency_exponent, e.status, e.effective_at, t.description),
        )
        .join(ledger_accounts, and_(a.tenant_id == e.tenant_id, a.id == e.account_id))
        .join(ledger_transactions, and_(t.tenant_id == e.tenant_id, t.id == e.transaction_id))
        .where(*conditions)
        .order_by(e.effective_at, e.id)
    )


def _after(key: _Key | None) -> list[Any]:
    if key is None:
        return []
    at, entry_id = key
    e = ledger_entries.c
    return [or_(e.effective_at > at, and_(e.effective_at == at, e.id > entry_id))]


class LedgerExports:
    """Streamed reads of the ledger for exports; safe to share across requests."""

    def __init__(self, engine: AsyncEngine, *, batch_size: int = DEFAULT_BATCH_ROWS) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._history = LedgerHistory(engine)

    async def entries(
        self, tenant_id: int, first: dt.date, last: dt.date, *, account_id: int | None = None
    ) -> AsyncGenerator[list[EntryLine]]:
        """The tenant's entries (every status) effective on days first..last, in batches,
        oldest first; only those of `account_id` when given."""
        e = ledger_entries.c
        conditions = [
            e.tenant_id == tenant_id,
            e.effective_at >= day_start(first),
            e.effective_at < day_start(last) + dt.timedelta(days=1),
        ]
        if account_id is not None:
            conditions.append(e.account_id == account_id)
        async with (
            export_snapshot(self._engine) as connection,
            aclosing(
                stream_batches(
                    connection,
                    lambda key: _entries_query([*conditions, *_after(key)]),
                    _key,
                    batch_size=self._batch_size,
                )
            ) as batches,
        ):
            async for rows in batches:
                yield [_line(row) for row in rows]

    @asynccontextmanager
    async def statement(
        self, tenant_id: int, account_id: int, first: dt.date, last: dt.date
    ) -> AsyncIterator[StatementRead]:
        """The statement of days first..last of an account (the caller checked that it is the
        tenant's): totals from the version log and the entries, read in one snapshot, so the
        entries always add up to the totals' movements."""
        e = ledger_entries.c
        conditions = [
            e.tenant_id == tenant_id,
            e.account_id == account_id,
            e.effective_at >= day_start(first),
            e.effective_at < day_start(last) + dt.timedelta(days=1),
            e.status != TransactionStatus.VOIDED.value,
        ]
        async with export_snapshot(self._engine) as connection:
            (totals,) = await self._history.statement_totals(
                tenant_id, [account_id], first, last, connection=connection
            )

            async def lines() -> AsyncGenerator[list[EntryLine]]:
                async with aclosing(
                    stream_batches(
                        connection,
                        lambda key: _entries_query([*conditions, *_after(key)]),
                        _key,
                        batch_size=self._batch_size,
                    )
                ) as batches:
                    async for rows in batches:
                        yield [_line(row) for row in rows]

            # Closed here even when the caller stops early: the snapshot ends after it.
            async with aclosing(lines()) as batches:
                yield StatementRead(totals or StatementTotals(Counters(), Counters()), batches)
