"""Reconciliation's reads and writes of our own tables: bank credits in, results out.

`replace` writes a run's results for one provider and window in one transaction: it bumps the
tenant's data version first (which also queues concurrent runs of the tenant behind it; a run
takes no other lock), deletes the window's earlier rows and inserts the new ones. Reads filter
by tenant like every other read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, not_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.tables import bank_transactions
from adapters.ledger.data_versions import bump_data_version
from adapters.reconciliation.records import (
    BankCredit,
    MissingOn,
    Reason,
    ReasonCode,
    ReconciliationItem,
    ReconciliationStatus,
)
from adapters.reconciliation.tables import reconciliation_items
from adapters.records import Page

__all__ = ["ReconciliationStore"]


def _row(item: ReconciliationItem, tenant_id: int) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "provider": item.provider,
        "payout_id": item.payout_id,
        "status": str(item.status),
        "missing_on": None if item.missing_on is None else str(item.missing_on),
        "reasons": [{"code": str(r.code), "message": r.message} for r in item.reasons],
        "occurred_at": item.occurred_at,
        "currency": item.currency,
        "currency_exponent": item.exponent,
        "payout_amount": item.payout_amount,
        "items_net": item.items_net,
        "item_count": item.item_count,
        "bank_transaction_id": item.bank_transaction_id,
        "bank_amount": item.bank_amount,
        "bank_currency": item.bank_currency,
        "bank_currency_exponent": item.bank_exponent,
        "bank_date": item.bank_date,
        "checked_at": item.checked_at,
    }


def _item(row: Any) -> ReconciliationItem:
    def optional_int(value: Any) -> int | None:
        return None if value is None else int(value)

    return ReconciliationItem(
        id=int(row.id),
        provider=row.provider,
        payout_id=row.payout_id,
        status=ReconciliationStatus(row.status),
        missing_on=None if row.missing_on is None else MissingOn(row.missing_on),
        reasons=tuple(Reason(ReasonCode(r["code"]), r["message"]) for r in row.reasons),
        occurred_at=row.occurred_at,
        currency=row.currency,
        exponent=optional_int(row.currency_exponent),
        payout_amount=optional_int(row.payout_amount),
        items_net=optional_int(row.items_net),
        item_count=optional_int(row.item_count),
        bank_transaction_id=optional_int(row.bank_transaction_id),
        bank_amount=optional_int(row.bank_amount),
        bank_currency=row.bank_currency,
        bank_exponent=optional_int(row.bank_currency_exponent),
        bank_date=row.bank_date,
        checked_at=row.checked_at,
    )


class ReconciliationStore:
    """Bank credits to match and stored results, for one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def bank_credits(
        self,
        tenant_id: int,
        *,
        first_day: dt.date,
        last_day: dt.date,
        provider: str,
        replacing: tuple[dt.datetime, dt.datetime],
    ) -> list[BankCredit]:
        """Posted money in, dated first_day..last_day, not already matched by a stored result
        other than the ones the run `replacing` [start, end) of `provider` will replace."""
        start, end = replacing
        r = reconciliation_items
        t = bank_transactions
        claimed_elsewhere = exists().where(
            r.c.tenant_id == tenant_id,
            r.c.bank_transaction_id == t.c.id,
            not_(and_(r.c.provider == provider, r.c.occurred_at >= start, r.c.occurred_at < end)),
        )
        query = (
            select(t.c.id, t.c.amount, t.c.currency, t.c.currency_exponent, t.c.date, t.c.name)
            .where(
                t.c.tenant_id == tenant_id,
                t.c.amount > 0,
                t.c.removed_at.is_(None),
                t.c.is_pending.is_(False),
                t.c.date >= first_day,
                t.c.date <= last_day,
                ~claimed_elsewhere,
            )
            .order_by(t.c.date, t.c.id)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [
            BankCredit(
                id=int(row.id),
                amount=int(row.amount),
                currency=row.currency,
                exponent=int(row.currency_exponent),
                date=row.date,
                name=row.name,
            )
            for row in rows
        ]

    async def replace(
        self,
        tenant_id: int,
        provider: str,
        start: dt.datetime,
        end: dt.datetime,
        items: Sequence[ReconciliationItem],
    ) -> None:
        """Store `items` as the results of `provider` for [start, end), in one transaction."""
        r = reconciliation_items
        async with self._engine.begin() as connection:
            await bump_data_version(connection, tenant_id)
            await connection.execute(
                delete(r).where(
                    r.c.tenant_id == tenant_id,
                    r.c.provider == provider,
                    r.c.occurred_at >= start,
                    r.c.occurred_at < end,
                )
            )
            if items:
                await connection.execute(insert(r), [_row(item, tenant_id) for item in items])

    async def page(
        self,
        tenant_id: int,
        start: dt.datetime,
        end: dt.datetime,
        *,
        statuses: Collection[ReconciliationStatus] | None,
        first: int,
        offset: int,
    ) -> Page[ReconciliationItem]:
        """Stored results in [start, end), by date then id, from position `offset` on."""
        r = reconciliation_items
        query = select(r).where(
            r.c.tenant_id == tenant_id, r.c.occurred_at >= start, r.c.occurred_at < end
        )
        if statuses is not None:
            query = query.where(r.c.status.in_([str(status) for status in statuses]))
        query = query.order_by(r.c.occurred_at, r.c.id).offset(offset).limit(first + 1)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        items = [_item(row) for row in rows]
        return Page(items[:first], len(items) > first)

    async def counts(
        self, tenant_id: int, start: dt.datetime, end: dt.datetime
    ) -> dict[ReconciliationStatus, int]:
        """How many stored results of each status lie in [start, end), and the latest run."""
        r = reconciliation_items
        query = (
            select(r.c.status, func.count())
            .where(r.c.tenant_id == tenant_id, r.c.occurred_at >= start, r.c.occurred_at < end)
            .group_by(r.c.status)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        found = {ReconciliationStatus(row[0]): int(row[1]) for row in rows}
        return {status: found.get(status, 0) for status in ReconciliationStatus}
