"""Ledger loaders: every relation of the ledger types resolves through one of these.

A loader batches the keys requested while one level of the query resolves into one call of
the LedgerReader (one SQL statement). Paged relations get one loader per (first, cursor)
pair, since those are part of the statement.
"""

from __future__ import annotations

from functools import cached_property, partial
from typing import Any

from aiodataloader import DataLoader

from adapters.ledger.queries import EntryCursor, LedgerReader
from adapters.records import Customer, Page
from resolvers.loaders.analytics import AnalyticsLoaders
from resolvers.loaders.batching import KeyedLoaders, batch_loader
from resolvers.loaders.risk import RiskLoaders

__all__ = ["LedgerLoaders"]


class LedgerLoaders:
    """The ledger loaders of one request, all scoped to `tenant_id`."""

    def __init__(self, reader: LedgerReader, tenant_id: int) -> None:
        self._reader = reader
        self._tenant_id = tenant_id
        self._paged = KeyedLoaders()

    # Each loader is built on first use: most requests need one or two of them.

    @cached_property
    def customer_by_id(self) -> DataLoader[Any, Any]:
        return batch_loader(partial(self._reader.customers_by_ids, self._tenant_id))

    @cached_property
    def ledger_account_by_id(self) -> DataLoader[Any, Any]:
        return batch_loader(partial(self._reader.accounts_by_ids, self._tenant_id))

    @cached_property
    def ledger_transaction_by_id(self) -> DataLoader[Any, Any]:
        return batch_loader(partial(self._reader.transactions_by_ids, self._tenant_id))

    @cached_property
    def ledger_entry_by_id(self) -> DataLoader[Any, Any]:
        return batch_loader(partial(self._reader.entries_by_ids, self._tenant_id))

    @cached_property
    def ledger_entries_by_transaction_id(self) -> DataLoader[Any, Any]:
        return batch_loader(partial(self._reader.entries_by_transaction_ids, self._tenant_id))

    @cached_property
    def ledger_account_count_by_customer_id(self) -> DataLoader[Any, Any]:
        return batch_loader(partial(self._reader.count_accounts_by_customer_ids, self._tenant_id))

    def ledger_accounts_by_customer_id(self, first: int, after_id: int) -> DataLoader[Any, Any]:
        """Loads Page[LedgerAccount] per customer id (ascending id, after `after_id`)."""
        return self._paged.get(
            ("accounts", first, after_id),
            partial(
                self._reader.accounts_by_customer_ids,
                self._tenant_id,
                first=first,
                after_id=after_id,
            ),
        )

    def ledger_entries_by_account_id(
        self, first: int, before: EntryCursor | None
    ) -> DataLoader[Any, Any]:
        """Loads Page[LedgerEntry] per account id (newest first, after the cursor)."""
        return self._paged.get(
            ("entries", first, before),
            partial(
                self._reader.entries_by_account_ids, self._tenant_id, first=first, before=before
            ),
        )

    @cached_property
    def risk(self) -> RiskLoaders:
        """Loaders of card payment risk signals and customer risk summaries."""
        return RiskLoaders(self._reader.engine, self._tenant_id)

    @cached_property
    def analytics(self) -> AnalyticsLoaders:
        """Loaders of balances back in time, statements and aggregates."""
        return AnalyticsLoaders(self._reader.engine, self._tenant_id)

    async def customers_page(self, first: int, after_id: int) -> Page[Customer]:
        return await self._reader.customers_page(self._tenant_id, first=first, after_id=after_id)

    async def customer_count(self) -> int:
        return await self._reader.count_customers(self._tenant_id)
