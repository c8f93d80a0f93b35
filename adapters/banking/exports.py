"""Bank transaction exports: the synced transactions of a range of days, streamed in batches
(adapters.streaming) with memory bounded by the batch size whatever the row count.

Reads our tables only (what the last sync stored; an export never calls a provider). Every
statement filters by tenant; removed transactions are left out, as in every bank read. Rows
come in key order, (date, id), oldest first; amounts are signed minor units (positive = money
in) with the exponent stored beside them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.tables import bank_transactions
from adapters.streaming import DEFAULT_BATCH_ROWS, export_snapshot, stream_batches

__all__ = ["BankExports", "BankTransactionLine"]

_Key = tuple[dt.date, int]


@dataclass(frozen=True, slots=True)
class BankTransactionLine:
    id: int
    bank_account_id: int
    customer_id: int
    provider_transaction_id: str
    date: dt.date
    authorized_date: dt.date | None
    name: str
    merchant_name: str | None
    category_primary: str | None
    category_detailed: str | None
    amount: int
    currency: str
    currency_exponent: int
    is_pending: bool


_COLUMNS = tuple(
    bank_transactions.c[name]
    for name in (
        "id", "bank_account_id", "customer_id", "provider_transaction_id", "date",
        "authorized_date", "name", "merchant_name", "category_primary", "category_detailed",
        "amount", "currency", "currency_exponent", "is_pending",
    )
)  # fmt: skip


def _line(row: Sequence[Any]) -> BankTransactionLine:
    return BankTransactionLine(
        id=row[0],
        bank_account_id=row[1],
        customer_id=row[2],
        provider_transaction_id=row[3],
        date=row[4],
        authorized_date=row[5],
        name=row[6],
        merchant_name=row[7],
        category_primary=row[8],
        category_detailed=row[9],
        amount=row[10],
        currency=row[11],
        currency_exponent=row[12],
        is_pending=bool(row[13]),
    )


def _key(row: Sequence[Any]) -> _Key:
    return row[4], row[0]


class BankExports:
    """Streamed reads of synced bank data for exports; safe to share across requests."""

    def __init__(self, engine: AsyncEngine, *, batch_size: int = DEFAULT_BATCH_ROWS) -> None:
        self._engine = engine
        self._batch_size = batch_size

    async def transactions(
        self,
        tenant_id: int,
        first: dt.date,
        last: dt.date,
        *,
        bank_account_id: int | None = None,
        customer_id: int | None = None,
    ) -> AsyncGenerator[list[BankTransactionLine]]:
        """The tenant's transactions dated first..last (both included), oldest first, in
        batches; only those of a bank account or of a customer when given."""
        t = bank_transactions.c
        conditions = [
            t.tenant_id == tenant_id,
            t.date >= first,
            t.date <= last,
            t.removed_at.is_(None),
        ]
        if bank_account_id is not None:
            conditions.append(t.bank_account_id == bank_account_id)
        if customer_id is not None:
            conditions.append(t.customer_id == customer_id)

        def statement(after: _Key | None) -> Select[Any]:
            keyset = []
            if after is not None:
                day, row_id = after
                keyset.append(or_(t.date > day, and_(t.date == day, t.id > row_id)))
            return select(*_COLUMNS).where(*conditions, *keyset).order_by(t.date, t.id)

        async with (
            export_snapshot(self._engine) as connection,
            aclosing(
                stream_batches(connection, statement, _key, batch_size=self._batch_size)
            ) as batches,
        ):
            async for rows in batches:
                yield [_line(row) for row in rows]
