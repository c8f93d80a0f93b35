"""Banking loaders: bank accounts and transactions, read from our synced tables.

Bank data is synced into our own tables (by cursor, on webhook and on demand) and served from
there, never fetched per request: a batch of customers is one SQL statement. A customer whose
bank links were never synced gets a first sync during that batch (one statement to find such
links, then the provider's sync, then one statement to re-read); if that sync fails, the
customer's result is the ProviderError, so only their `bankAccounts` is null; a first sync that
finds the customer must log in or renew their consent again (and so brought no accounts) is
ProviderReauthRequired (PROVIDER_REAUTH_REQUIRED), not an empty list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from functools import partial

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.protocol import BankingProvider
from adapters.banking.queries import BankReader, BankTransactionCursor
from adapters.banking.records import BankAccount, BankTransaction, ConnectionStatus, SyncResult
from adapters.banking.spend import BankSpend, BankSpendReader
from adapters.banking.sync import BankSyncFailure, sync_bank_links
from adapters.crypto import SecretBox
from adapters.errors import ProviderError, ProviderReauthRequired
from adapters.providers.queries import ProviderLinkReader
from adapters.records import Page
from resolvers.loaders.batching import KeyedLoaders, batch_loader

__all__ = ["BankingLoaders"]


class BankingLoaders:
    """The banking loaders of one request, scoped to `tenant_id`."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        reader: BankReader,
        links: ProviderLinkReader,
        providers: Mapping[str, BankingProvider],
        box: SecretBox | None,
        tenant_id: int,
        deadline: float | None = None,
    ) -> None:
        self._engine = engine
        self._reader = reader
        self._links = links
        self._providers = providers
        self._box = box
        self._tenant_id = tenant_id
        # ProviderError results raise per key
        self.bank_accounts_by_customer_id: DataLoader[int, list[BankAccount]] = batch_loader(
            self._accounts, deadline
        )
        self.bank_account_by_id: DataLoader[int, BankAccount | None] = batch_loader(
            partial(reader.accounts_by_ids, tenant_id), deadline
        )
        self._paged = KeyedLoaders(deadline)
        self._spend = KeyedLoaders()

    def bank_transactions_by_account_id(
        self,
        first: int,
        after: BankTransactionCursor | None,
        since: dt.date | None,
        until: dt.date | None,
    ) -> DataLoader[int, Page[BankTransaction]]:
        """Loads a Page of each account's transactions (newest first) within [since, until]."""
        batch = partial(
            self._reader.transactions_by_account_ids,
            self._tenant_id,
            first=first,
            after=after,
            since=since,
            until=until,
        )
        return self._paged.get((first, after, since, until), batch)

    def bank_spend_by_customer_id(
        self, first: dt.date, last: dt.date
    ) -> DataLoader[int, list[BankSpend]]:
        """Loads each customer's spend on days first..last, by month and category."""
        batch = partial(
            BankSpendReader(self._engine).spend_by_customer_ids,
            self._tenant_id,
            first=first,
            last=last,
        )
        return self._spend.get((first, last), batch)

    async def _accounts(
        self, customer_ids: Sequence[int]
    ) -> list[list[BankAccount] | ProviderError]:
        accounts: list[list[BankAccount] | ProviderError] = list(
            await self._reader.accounts_by_customer_ids(self._tenant_id, customer_ids)
        )
        without = [cid for cid, found in zip(customer_ids, accounts, strict=True) if not found]
        if not without or not self._providers or self._box is None:
            return accounts
        links = await self._links.links_by_customer_ids(self._tenant_id, without, kind="banking")
        never_synced = {
            link.id: (link.customer_id, link.provider)
            for customer_links in links
            for link in customer_links
            if link.last_synced_at is None and link.provider in self._providers
        }
        if not never_synced:
            return accounts
        failed: dict[int, ProviderError] = {}
        results: list[SyncResult] = []
        try:
            results = await sync_bank_links(
                self._engine,
                self._providers,
                self._box,
                tenant_id=self._tenant_id,
                customer_ids=sorted({customer_id for customer_id, _ in never_synced.values()}),
                never_synced_only=True,
            )
        except BankSyncFailure as failure:
            results = failure.results
            for link_id, error in failure.failures.items():
                if link_id in never_synced:
                    failed[never_synced[link_id][0]] = error
        for result in results:
            if (
                result.connection_status is ConnectionStatus.LOGIN_REQUIRED
                and result.provider_link_id in never_synced
            ):
                customer_id, provider = never_synced[result.provider_link_id]
                failed.setdefault(
                    customer_id,
                    ProviderReauthRequired(
                        "the customer must reconnect their bank", provider=provider
                    ),
                )
        synced = sorted({customer_id for customer_id, _ in never_synced.values()})
        reread = await self._reader.accounts_by_customer_ids(self._tenant_id, synced)
        fresh = dict(zip(synced, reread, strict=True))
        for index, customer_id in enumerate(customer_ids):
            if fresh.get(customer_id):
                accounts[index] = fresh[customer_id]
            elif customer_id in failed:
                accounts[index] = failed[customer_id]
        return accounts
