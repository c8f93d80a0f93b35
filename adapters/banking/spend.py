"""Spending from synced bank transactions, by month, category and currency.

Spend is money out of the customer's bank accounts: the negated sum of the negative amounts of
posted (not pending), not removed transactions, dated within a range of days. Pending ones are
left out because the provider replaces each with a posted one (counting both would count the
spend twice). One statement per batch of customers, filtered by tenant; sums are exact integer
minor units, per currency.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.tables import bank_transactions
from adapters.ledger.periods import Interval, bucket_date, bucket_expression

__all__ = ["BankSpend", "BankSpendReader"]


@dataclass(frozen=True, slots=True)
class BankSpend:
    """Money out in one month and category (None: uncategorized), in minor units (>= 0)."""

    month: dt.date
    category: str | None
    currency: str
    currency_exponent: int
    amount: int
    count: int


class BankSpendReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    async def spend_by_customer_ids(
        self, tenant_id: int, customer_ids: Sequence[int], first: dt.date, last: dt.date
    ) -> list[list[BankSpend]]:
        """Each customer's spend on days first..last, by month then category then currency."""
        if not customer_ids:
            return []
        t = bank_transactions.c
        month = bucket_expression(t.date, Interval.MONTH, self._dialect).label("month")
        inner = (
            select(
                t.customer_id,
                month,
                t.category_primary.label("category"),
                t.currency,
                t.currency_exponent,
                t.amount,
            )
            .where(
                t.tenant_id == tenant_id,
                t.customer_id.in_(list(customer_ids)),
                t.date >= first,
                t.date <= last,
                t.amount < 0,
                t.is_pending.is_(False),
                t.removed_at.is_(None),
            )
            .subquery("spent")
        )
        s = inner.c
        statement = (
            select(
                s.customer_id, s.month, s.category, s.currency, s.currency_exponent,
                (-func.sum(s.amount)).label("amount"), func.count().label("count"),
            )
            .group_by(s.customer_id, s.month, s.category, s.currency, s.currency_exponent)
            .order_by(s.customer_id, s.month, s.category, s.currency)
        )  # fmt: skip
        async with self._engine.connect() as connection:
            rows: list[Any] = list((await connection.execute(statement)).all())
        grouped: dict[int, list[BankSpend]] = {i: [] for i in customer_ids}
        for row in rows:
            grouped[int(row.customer_id)].append(
                BankSpend(
                    month=bucket_date(row.month),
                    category=row.category,
                    currency=row.currency,
                    currency_exponent=int(row.currency_exponent),
                    amount=int(row.amount),
                    count=int(row.count),
                )
            )
        return [grouped[i] for i in customer_ids]
