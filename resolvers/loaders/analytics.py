"""Loaders of balances back in time, balance history, statements and aggregates.

Each loader is keyed by account (or customer) id and built once per set of arguments, so the
accounts of one query level that ask the same question share one SQL statement.
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.history import LedgerHistory, StatementCursor
from adapters.ledger.periods import Interval
from adapters.ledger.summary import LedgerSummaryReader, SummaryFilter, SummaryGroup
from adapters.records import Page
from resolvers.loaders.batching import KeyedLoaders

__all__ = ["AnalyticsLoaders"]


class AnalyticsLoaders:
    """The analytics loaders of one request, all scoped to `tenant_id`."""

    def __init__(self, engine: AsyncEngine, tenant_id: int) -> None:
        self._history = LedgerHistory(engine)
        self._summary = LedgerSummaryReader(engine)
        self._tenant_id = tenant_id
        self._loaders = KeyedLoaders()

    def counters_as_of(self, at: dt.datetime) -> DataLoader[Any, Any]:
        """Loads Counters | None per account id: the changes effective at or before `at`."""
        return self._loaders.get(
            ("as_of", at), partial(self._history.counters_as_of, self._tenant_id, at=at)
        )

    def balance_history(
        self, first: dt.date, last: dt.date, interval: Interval
    ) -> DataLoader[Any, Any]:
        """Loads [(Period, Counters)] | None per account id."""
        return self._loaders.get(
            ("history", first, last, interval),
            partial(
                self._history.balance_history,
                self._tenant_id,
                first=first,
                last=last,
                interval=interval,
            ),
        )

    def statement_totals(self, first: dt.date, last: dt.date) -> DataLoader[Any, Any]:
        """Loads StatementTotals | None per account id."""
        return self._loaders.get(
            ("totals", first, last),
            partial(self._history.statement_totals, self._tenant_id, first=first, last=last),
        )

    def statement_entries(
        self, first_day: dt.date, last_day: dt.date, first: int, after: StatementCursor | None
    ) -> DataLoader[Any, Any]:
        """Loads Page[LedgerEntry] per account id (oldest first, after the cursor)."""
        return self._loaders.get(
            ("entries", first_day, last_day, first, after),
            partial(
                self._history.statement_entries,
                self._tenant_id,
                first_day=first_day,
                last_day=last_day,
                first=first,
                after=after,
            ),
        )

    def summary_by_customer_id(
        self, which: SummaryFilter, first: int, offset: int
    ) -> DataLoader[Any, Any]:
        """Loads Page[SummaryGroup] per customer id."""
        return self._loaders.get(
            ("summary", which, first, offset),
            partial(
                self._summary.summaries_by_customer_ids,
                self._tenant_id,
                which=which,
                first=first,
                offset=offset,
            ),
        )

    async def summary(self, which: SummaryFilter, first: int, offset: int) -> Page[SummaryGroup]:
        return await self._summary.summary(self._tenant_id, which, first=first, offset=offset)
