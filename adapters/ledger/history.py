"""Balances back in time, balance history and statements, read from the version log.

`ledger_account_versions` holds one row per balance change of an account: the four counters
after the change, in commit order (`lock_version`), and the change's effective time (its
transaction's). A posting may be back-dated, so rows are NOT in effective-time order, and "the
latest row effective at or before T" is not the balance at T. What is exact is the change each
row made: its counters less the previous row's. So the balance effective at T is the sum of the
changes of the rows effective at or before T (DESIGN.md invariant 9): the entries effective at
or before T, each with its status as the ledger stands now (a pending entry later posted counts
as posted from its effective time, since its settlement row carries the same effective time; a
voided one nets to zero).

Every read is one statement per batch of accounts: the changes (`lag` over each account's rows
in `lock_version` order, on the primary key), grouped by period in the database; Python only
adds up the few grouped rows. Every read filters by tenant: another tenant's account reads as
missing (None).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.ledger.periods import (
    Interval,
    Period,
    bucket_date,
    bucket_expression,
    day_start,
    periods,
)
from adapters.ledger.tables import ledger_account_versions, ledger_accounts, ledger_entries
from adapters.records import Direction, LedgerEntry, Page, TransactionStatus

__all__ = ["COUNTERS", "Counters", "LedgerHistory", "StatementTotals"]

COUNTERS = ("posted_debits", "posted_credits", "pending_debits", "pending_credits")
_ONE_MICROSECOND = dt.timedelta(microseconds=1)
# Entries of a statement are listed oldest first; a cursor is the (effective_at, id) of the
# last one seen.
StatementCursor = tuple[dt.datetime, int]


@dataclass(frozen=True, slots=True)
class Counters:
    """The four balance counters of an account (minor units)."""

    posted_debits: int = 0
    posted_credits: int = 0
    pending_debits: int = 0
    pending_credits: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            self.posted_debits + other.posted_debits,
            self.posted_credits + other.posted_credits,
            self.pending_debits + other.pending_debits,
            self.pending_credits + other.pending_credits,
        )

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}


@dataclass(frozen=True, slots=True)
class StatementTotals:
    """An account's counters before a period, the period's changes, and after it."""

    opening: Counters
    movements: Counters

    @property
    def closing(self) -> Counters:
        return self.opening + self.movements


class LedgerHistory:
    """Reads of the past from the version log and entries; safe to share across requests."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    async def _rows(self, statement: Any, connection: AsyncConnection | None = None) -> list[Any]:
        if connection is not None:  # a caller's transaction (an export's snapshot)
            return list((await connection.execute(statement)).all())
        async with self._engine.connect() as connection:
            return list((await connection.execute(statement)).all())

    async def _grouped(
        self,
        tenant_id: int,
        account_ids: Sequence[int],
        start: dt.datetime,
        end: dt.datetime,
        interval: Interval | None,
        connection: AsyncConnection | None = None,
    ) -> dict[int, dict[dt.date | str | None, Counters]]:
        """Per account found: the changes effective before `start` (key None) and those in
        [start, end) by period start (or under "all" when `interval` is None)."""
        v = ledger_account_versions.c
        mine = (
            select(ledger_accounts.c.id)
            .where(ledger_accounts.c.tenant_id == tenant_id)
            .where(ledger_accounts.c.id.in_(list(account_ids)))
            .subquery("mine")
        )
        changes = (
            select(
                v.account_id,
                v.effective_at,
                *(
                    (
                        v[name]
                        - func.coalesce(
                            func.lag(v[name]).over(
                                partition_by=v.account_id, order_by=v.lock_version
                            ),
                            0,
                        )
                    ).label(name)
                    for name in COUNTERS
                ),
            )
            .where(v.account_id.in_(select(mine.c.id)))
            .subquery("changes")
        )
        bucket = case(
            (changes.c.effective_at < start, literal(None)),
            else_=bucket_expression(changes.c.effective_at, interval, self._dialect),
        ).label("bucket")
        bucketed = (
            select(mine.c.id.label("account_id"), bucket, *(changes.c[n] for n in COUNTERS))
            .select_from(
                mine.outerjoin(
                    changes,
                    and_(changes.c.account_id == mine.c.id, changes.c.effective_at < end),
                )
            )
            .subquery("bucketed")
        )
        statement = select(
            bucketed.c.account_id,
            bucketed.c.bucket,
            *(func.coalesce(func.sum(bucketed.c[n]), 0) for n in COUNTERS),
        ).group_by(bucketed.c.account_id, bucketed.c.bucket)
        found: dict[int, dict[dt.date | str | None, Counters]] = {}
        for row in await self._rows(statement, connection):
            key = row[1]
            if key is not None and interval is not None:
                key = bucket_date(key)
            per_account = found.setdefault(int(row[0]), {})
            per_account[key] = per_account.get(key, Counters()) + Counters(
                *(int(value) for value in row[2:])
            )
        return found

    async def counters_as_of(
        self, tenant_id: int, account_ids: Sequence[int], at: dt.datetime
    ) -> list[Counters | None]:
        """Each account's counters from the changes effective at or before `at`."""
        if not account_ids:
            return []
        after = at + _ONE_MICROSECOND
        found = await self._grouped(tenant_id, account_ids, after, after, None)
        return [found[i].get(None, Counters()) if i in found else None for i in account_ids]

    async def balance_history(
        self,
        tenant_id: int,
        account_ids: Sequence[int],
        first: dt.date,
        last: dt.date,
        interval: Interval,
    ) -> list[list[tuple[Period, Counters]] | None]:
        """Each account's counters at the close of every period covering days first..last."""
        if not account_ids:
            return []
        spans = periods(first, last, interval)
        end = day_start(last) + dt.timedelta(days=1)
        found = await self._grouped(tenant_id, account_ids, day_start(first), end, interval)
        results: list[list[tuple[Period, Counters]] | None] = []
        for account_id in account_ids:
            if account_id not in found:
                results.append(None)
                continue
            changes = found[account_id]
            running = changes.get(None, Counters())
            points = []
            for span in spans:
                change = changes.get(span.natural_start)
                if change is not None:  # most periods change nothing: share the last value
                    running = running + change
                points.append((span, running))
            results.append(points)
        return results

    async def statement_totals(
        self,
        tenant_id: int,
        account_ids: Sequence[int],
        first: dt.date,
        last: dt.date,
        *,
        connection: AsyncConnection | None = None,
    ) -> list[StatementTotals | None]:
        """Each account's counters before day `first` and the changes of days first..last
        (read in `connection`'s transaction when given)."""
        if not account_ids:
            return []
        end = day_start(last) + dt.timedelta(days=1)
        found = await self._grouped(tenant_id, account_ids, day_start(first), end, None, connection)
        return [
            StatementTotals(found[i].get(None, Counters()), found[i].get("all", Counters()))
            if i in found
            else None
            for i in account_ids
        ]

    async def statement_entries(
        self,
        tenant_id: int,
        account_ids: Sequence[int],
        first_day: dt.date,
        last_day: dt.date,
        *,
        first: int,
        after: StatementCursor | None,
    ) -> list[Page[LedgerEntry]]:
        """A page of each account's entries effective on days first_day..last_day, oldest first
        (effective time, then id), after the cursor. Voided entries are left out."""
        if not account_ids:
            return []
        e = ledger_entries.c
        conditions = [
            e.tenant_id == tenant_id,
            e.account_id.in_(list(account_ids)),
            e.effective_at >= day_start(first_day),
            e.effective_at < day_start(last_day) + dt.timedelta(days=1),
            e.status != str(TransactionStatus.VOIDED),
        ]
        if after is not None:
            after_at, after_id = after
            conditions.append(
                or_(e.effective_at > after_at, and_(e.effective_at == after_at, e.id > after_id))
            )
        position = func.row_number().over(
            partition_by=e.account_id, order_by=(e.effective_at, e.id)
        )
        # The exponent the amounts were written with: the account's stored one.
        account = ledger_accounts.c
        ranked = (
            select(ledger_entries, account.currency_exponent, position.label("position"))
            .join(
                ledger_accounts,
                and_(account.tenant_id == e.tenant_id, account.id == e.account_id),
            )
            .where(*conditions)
            .subquery()
        )
        rows = await self._rows(
            select(ranked)
            .where(ranked.c.position <= first + 1)
            .order_by(ranked.c.account_id, ranked.c.position)
        )
        grouped: dict[int, list[LedgerEntry]] = {i: [] for i in account_ids}
        for row in rows:
            grouped[int(row.account_id)].append(_entry(row))
        return [Page(grouped[i][:first], len(grouped[i]) > first) for i in account_ids]


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(
        id=int(row.id),
        tenant_id=int(row.tenant_id),
        transaction_id=int(row.transaction_id),
        account_id=int(row.account_id),
        direction=Direction(row.direction),
        amount=int(row.amount),
        currency=row.currency,
        currency_exponent=int(row.currency_exponent),
        status=TransactionStatus(row.status),
        effective_at=row.effective_at,
        created_at=row.created_at,
    )
