"""Reconciliation results of one tenant, for one request: one statement per page, one for the
counts (asked once per window however many fields need them)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Collection

from adapters.reconciliation.records import ReconciliationItem, ReconciliationStatus
from adapters.reconciliation.store import ReconciliationStore
from adapters.records import Page

__all__ = ["ReconciliationLoaders"]


class ReconciliationLoaders:
    def __init__(self, store: ReconciliationStore, tenant_id: int) -> None:
        self._store = store
        self._tenant_id = tenant_id
        self._counts: dict[
            tuple[dt.datetime, dt.datetime], asyncio.Task[dict[ReconciliationStatus, int]]
        ] = {}

    async def page(
        self,
        start: dt.datetime,
        end: dt.datetime,
        *,
        statuses: Collection[ReconciliationStatus] | None,
        first: int,
        offset: int,
    ) -> Page[ReconciliationItem]:
        return await self._store.page(
            self._tenant_id, start, end, statuses=statuses, first=first, offset=offset
        )

    async def counts(self, start: dt.datetime, end: dt.datetime) -> dict[ReconciliationStatus, int]:
        key = (start, end)
        if key not in self._counts:
            self._counts[key] = asyncio.ensure_future(
                self._store.counts(self._tenant_id, start, end)
            )
        return await self._counts[key]
