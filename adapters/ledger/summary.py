"""Aggregates of ledger entries: sums and counts grouped by the dimensions a caller picks.

One statement per aggregate (per batch of customers for the per-customer form), filtered by
tenant, by a range of effective days, by statuses and optionally by accounts. Amounts are
summed in the database as integers (BIGINT sums are exact: numeric on PostgreSQL, 64-bit on
SQLite). Currency is always a grouping key, so no sum ever mixes currencies. Groups come back
in a stable order (the chosen dimensions, then currency), paged by position.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, func, literal_column, null, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.periods import Interval, bucket_date, bucket_expression, day_start
from adapters.ledger.tables import customers, ledger_accounts, ledger_entries
from adapters.money import currency_exponent
from adapters.records import CustomerKind, Direction, Page, TransactionStatus

__all__ = ["Dimension", "LedgerSummaryReader", "SummaryFilter", "SummaryGroup"]


class Dimension(StrEnum):
    PERIOD = "period"
    ACCOUNT_NAME = "account_name"
    CUSTOMER_KIND = "customer_kind"
    DIRECTION = "direction"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class SummaryFilter:
    """What to aggregate: effective days first..last (inclusive, UTC), these statuses, only
    these accounts when given; grouped by `group_by` (and always by currency)."""

    first: dt.date
    last: dt.date
    group_by: frozenset[Dimension]
    interval: Interval = Interval.MONTH
    statuses: frozenset[TransactionStatus] = frozenset(
        {TransactionStatus.PENDING, TransactionStatus.POSTED}
    )
    account_ids: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class SummaryGroup:
    """One group: its keys (None for a dimension not grouped by) and its sums (minor units)."""

    currency: str
    currency_exponent: int
    period_start: dt.date | None
    account_name: str | None
    customer_kind: CustomerKind | None
    direction: Direction | None
    status: TransactionStatus | None
    debits: int
    credits: int
    debit_count: int
    credit_count: int


class LedgerSummaryReader:
    """Aggregates for one engine; safe to share across requests."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    async def summary(
        self, tenant_id: int, which: SummaryFilter, *, first: int, offset: int
    ) -> Page[SummaryGroup]:
        """The tenant's groups, from position `offset` on."""
        pages = await self._summaries(tenant_id, None, which, first=first, offset=offset)
        return pages[0]

    async def summaries_by_customer_ids(
        self,
        tenant_id: int,
        customer_ids: Sequence[int],
        which: SummaryFilter,
        *,
        first: int,
        offset: int,
    ) -> list[Page[SummaryGroup]]:
        """Each customer's groups (entries of their accounts), from position `offset` on."""
        if not customer_ids:
            return []
        return await self._summaries(tenant_id, customer_ids, which, first=first, offset=offset)

    async def _summaries(
        self,
        tenant_id: int,
        customer_ids: Sequence[int] | None,
        which: SummaryFilter,
        *,
        first: int,
        offset: int,
    ) -> list[Page[SummaryGroup]]:
        e, a, c = ledger_entries.c, ledger_accounts.c, customers.c
        chosen = which.group_by
        keys: dict[str, Any] = {
            "period_start": bucket_expression(e.effective_at, which.interval, self._dialect)
            if Dimension.PERIOD in chosen
            else None,
            "account_name": a.name if Dimension.ACCOUNT_NAME in chosen else None,
            "customer_kind": c.kind if Dimension.CUSTOMER_KIND in chosen else None,
            "direction": e.direction if Dimension.DIRECTION in chosen else None,
            "status": e.status if Dimension.STATUS in chosen else None,
        }
        grouped = [e.currency, *(key for key in keys.values() if key is not None)]
        owner = a.customer_id if customer_ids is not None else literal_column("0")
        conditions = [
            e.tenant_id == tenant_id,
            e.effective_at >= day_start(which.first),
            e.effective_at < day_start(which.last) + dt.timedelta(days=1),
            e.status.in_(sorted(str(s) for s in which.statuses)),
        ]
        if which.account_ids is not None:
            conditions.append(e.account_id.in_(list(which.account_ids)))
        if customer_ids is not None:
            conditions.append(a.customer_id.in_(list(customer_ids)))
        source: Any = ledger_entries
        if (
            customer_ids is not None
            or keys["account_name"] is not None
            or keys["customer_kind"] is not None
        ):
            source = source.join(
                ledger_accounts, and_(a.id == e.account_id, a.tenant_id == tenant_id)
            )
        if keys["customer_kind"] is not None:
            source = source.outerjoin(customers, c.id == a.customer_id)
        is_debit = e.direction == str(Direction.DEBIT)
        # Nulls last in both dialects (SQLite sorts them first, PostgreSQL last).
        ordering = [
            part
            for key in keys.values()
            if key is not None
            for part in (case((key.is_(None), 1), else_=0), key)
        ] + [e.currency]
        groups = (
            select(
                owner.label("owner"),
                e.currency.label("currency"),
                *((key if key is not None else null()).label(name) for name, key in keys.items()),
                func.sum(func.coalesce(_when(is_debit, e.amount), 0)).label("debits"),
                func.sum(func.coalesce(_when(~is_debit, e.amount), 0)).label("credits"),
                func.count(_when(is_debit, e.id)).label("debit_count"),
                func.count(_when(~is_debit, e.id)).label("credit_count"),
                func.row_number().over(partition_by=owner, order_by=ordering).label("position"),
            )
            .select_from(source)
            .where(*conditions)
            .group_by(*([owner] if customer_ids is not None else []), *grouped)
            .subquery("groups")
        )
        rows = await self._rows(
            select(groups)
            .where(groups.c.position > offset, groups.c.position <= offset + first + 1)
            .order_by(groups.c.owner, groups.c.position)
        )
        by_owner: dict[int, list[SummaryGroup]] = {}
        for row in rows:
            by_owner.setdefault(int(row.owner), []).append(_group(row))
        owners = list(customer_ids) if customer_ids is not None else [0]
        return [Page(by_owner.get(o, [])[:first], len(by_owner.get(o, [])) > first) for o in owners]

    async def _rows(self, statement: Any) -> list[Any]:
        async with self._engine.connect() as connection:
            return list((await connection.execute(statement)).all())


def _when(condition: Any, value: Any) -> Any:
    return case((condition, value), else_=None)


def _group(row: Any) -> SummaryGroup:
    return SummaryGroup(
        currency=row.currency,
        currency_exponent=currency_exponent(row.currency),
        period_start=None if row.period_start is None else bucket_date(row.period_start),
        account_name=row.account_name,
        customer_kind=None if row.customer_kind is None else CustomerKind(row.customer_kind),
        direction=None if row.direction is None else Direction(row.direction),
        status=None if row.status is None else TransactionStatus(row.status),
        debits=int(row.debits),
        credits=int(row.credits),
        debit_count=int(row.debit_count),
        credit_count=int(row.credit_count),
    )
