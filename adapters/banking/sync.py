"""Sync bank data from a provider into bank_accounts and bank_transactions.

One sync of one link: unseal the access token, fetch the complete delta since the stored cursor
(the provider pages until it has no more), then apply it in **one database transaction**:
upsert accounts, upsert added and modified transactions, mark removed ones, and only then
move the link's cursor. The cursor moves by compare-and-set from the value we started with, so
two syncs racing on one link (a webhook and the CLI) cannot move it backwards: the second to
commit rolls back and reports `is_superseded`. Re-applying a delta changes nothing (upserts on
the provider ids), so a sync is idempotent.

Each account row also carries the link's institution (id and name). Transaction feeds do not
name it, so it is learned once from /accounts/get (or taken from that call when the sync makes
it anyway; an item without an institution asks again on every sync) and named by the
provider's institution lookup only when the id is new or the stored name is missing. Those
lookups are a nicety: when they fail the sync still applies, with the id alone or with what was
stored before, and a later sync tries again.

Run on webhook (SYNC_UPDATES_AVAILABLE), on demand (`gateway sync-bank`) and on first read of a
link never synced (`sync_bank_links(..., never_synced_only=True)`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Executable, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.banking.links import BankLink, access_token_for, bank_links, set_link_status
from adapters.banking.protocol import BankingProvider
from adapters.banking.records import (
    AccountSet,
    BankAccount,
    BankTransaction,
    ConnectionStatus,
    SyncResult,
    TransactionUpdates,
)
from adapters.banking.tables import bank_accounts, bank_transactions
from adapters.crypto import SecretBox, SecretText
from adapters.errors import ProviderError, ProviderReauthRequired
from adapters.ledger.data_versions import bump_data_version
from adapters.providers.tables import provider_links

__all__ = ["BankSyncFailure", "sync_bank_links", "sync_link"]

logger = logging.getLogger("adapters.banking.sync")

_CHUNK = 500
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _LinkInstitution:
    """The institution stored on a link's account rows (see the module docstring)."""

    id: str | None = None
    name: str | None = None


class _Superseded(Exception):
    """Another sync moved the cursor first; roll this one back."""


class BankSyncFailure(Exception):
    """Raised by sync_bank_links when some links failed; the others were synced."""

    def __init__(self, results: list[SyncResult], failures: dict[int, ProviderError]) -> None:
        super().__init__(f"{len(failures)} bank link(s) failed to sync")
        self.results = results
        self.failures = failures


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _upsert(
    connection: AsyncConnection, table: Table, rows: list[dict[str, Any]], keys: list[str]
) -> Executable:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, in the connection's dialect."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(rows)
    updated = {
        name: statement.excluded[name]
        for name in rows[0]
        if name not in keys and name not in ("tenant_id", "customer_id")
    }
    updated["updated_at"] = func.now()
    upsert: Executable = statement.on_conflict_do_update(index_elements=keys, set_=updated)
    return upsert


def _account_row(
    link: BankLink, institution: _LinkInstitution, account: BankAccount
) -> dict[str, Any]:
    return {
        "tenant_id": link.tenant_id,
        "provider_link_id": link.id,
        "customer_id": link.customer_id,
        "provider_account_id": account.provider_account_id,
        "institution_id": institution.id[:255] if institution.id else None,
        "institution_name": institution.name[:255] if institution.name else None,
        "name": account.name[:255],
        "official_name": account.official_name[:255] if account.official_name else None,
        "mask": account.mask,
        "type": account.type[:32],
        "subtype": account.subtype[:64] if account.subtype else None,
        "currency": account.balances.currency,
        "currency_exponent": account.balances.exponent,
        "current_balance": account.balances.current,
        "available_balance": account.balances.available,
        "credit_limit": account.balances.limit,
        "balances_as_of": account.as_of,
    }


def _transaction_row(
    link: BankLink, account_ids: Mapping[str, int], transaction: BankTransaction
) -> dict[str, Any]:
    category = transaction.category
    return {
        "tenant_id": link.tenant_id,
        "provider_link_id": link.id,
        "customer_id": link.customer_id,
        "bank_account_id": account_ids[transaction.provider_account_id],
        "provider_transaction_id": transaction.provider_transaction_id,
        "amount": transaction.amount,
        "currency": transaction.currency,
        "currency_exponent": transaction.exponent,
        "date": transaction.date,
        "authorized_date": transaction.authorized_date,
        "name": transaction.name[:512],
        "merchant_name": transaction.merchant_name[:255] if transaction.merchant_name else None,
        "category_primary": category[0][:128] if category else None,
        "category_detailed": category[1][:128] if len(category) > 1 else None,
        "is_pending": transaction.is_pending,
        "pending_transaction_id": transaction.pending_transaction_id,
        "reference": transaction.reference[:255] if transaction.reference else None,
        "removed_at": None,
    }


async def _stored_institution(engine: AsyncEngine, link: BankLink) -> _LinkInstitution:
    """The institution on the link's most recently written account row (empty before any)."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(bank_accounts.c.institution_id, bank_accounts.c.institution_name)
                .where(
                    bank_accounts.c.provider_link_id == link.id,
                    bank_accounts.c.tenant_id == link.tenant_id,
                )
                .order_by(bank_accounts.c.updated_at.desc(), bank_accounts.c.id.desc())
                .limit(1)
            )
        ).first()
    return _LinkInstitution() if row is None else _LinkInstitution(row[0], row[1])


async def _institution_for(
    engine: AsyncEngine,
    provider: BankingProvider,
    token: SecretText,
    link: BankLink,
    account_set: AccountSet | None,
) -> _LinkInstitution:
    """The institution to store with this sync's accounts; provider errors are logged and
    answered with what is known (the sync never fails for them)."""
    stored = await _stored_institution(engine, link)
    if account_set is None and stored.id is None:
        try:
            account_set = await provider.get_accounts(token)
        except ProviderError as error:
            logger.warning(
                "bank link %s: accounts lookup for its institution failed: %s", link.id, error.code
            )
            return stored
    institution_id = account_set.institution_id if account_set is not None else stored.id
    if institution_id is None:
        return _LinkInstitution()
    if institution_id == stored.id and stored.name is not None:
        return stored
    try:
        institution = await provider.get_institution(institution_id)
    except ProviderError as error:
        logger.warning(
            "bank link %s: institution %s lookup failed: %s; stored without a name",
            link.id,
            institution_id,
            error.code,
        )
        return _LinkInstitution(institution_id)
    return _LinkInstitution(institution_id, institution.name)


async def _apply(
    connection: AsyncConnection,
    link: BankLink,
    institution: _LinkInstitution,
    updates: TransactionUpdates,
    accounts: Iterable[BankAccount],
    now: dt.datetime,
) -> int:
    account_rows = [_account_row(link, institution, account) for account in accounts]
    for chunk in _chunks(account_rows):
        await connection.execute(
            _upsert(
                connection, bank_accounts, list(chunk), ["provider_link_id", "provider_account_id"]
            )
        )
    account_ids = {
        provider_id: int(row_id)
        for row_id, provider_id in await connection.execute(
            select(bank_accounts.c.id, bank_accounts.c.provider_account_id).where(
                bank_accounts.c.provider_link_id == link.id,
                bank_accounts.c.tenant_id == link.tenant_id,
            )
        )
    }
    transaction_rows = [
        _transaction_row(link, account_ids, transaction)
        for transaction in (*updates.added, *updates.modified)
    ]
    for chunk in _chunks(transaction_rows):
        await connection.execute(
            _upsert(
                connection,
                bank_transactions,
                list(chunk),
                ["provider_link_id", "provider_transaction_id"],
            )
        )
    for removed in _chunks(updates.removed):
        await connection.execute(
            update(bank_transactions)
            .where(
                bank_transactions.c.provider_link_id == link.id,
                bank_transactions.c.tenant_id == link.tenant_id,
                bank_transactions.c.provider_transaction_id.in_(list(removed)),
                bank_transactions.c.removed_at.is_(None),
            )
            .values(removed_at=now, updated_at=func.now())
        )
    moved = await connection.execute(
        update(provider_links)
        .where(
            provider_links.c.id == link.id,
            provider_links.c.tenant_id == link.tenant_id,
            provider_links.c.sync_cursor.is_not_distinct_from(link.sync_cursor),
            # A link revoked meanwhile (a data-subject erasure) is not written back to.
            provider_links.c.status != ConnectionStatus.REVOKED.value,
        )
        .values(
            sync_cursor=updates.next_cursor,
            last_synced_at=now,
            status=ConnectionStatus.ACTIVE.value,
        )
    )
    if moved.rowcount != 1:
        raise _Superseded
    await bump_data_version(connection, link.tenant_id)  # cached responses see the sync
    return len(account_rows)


async def sync_link(
    engine: AsyncEngine,
    provider: BankingProvider,
    box: SecretBox,
    link: BankLink,
    *,
    now: dt.datetime | None = None,
) -> SyncResult:
    """Sync one link (see the module docstring). A link whose user must log in again is marked
    LOGIN_REQUIRED and reported so; other provider failures raise, leaving tables unchanged."""
    token = access_token_for(box, link)
    try:
        updates = await provider.sync_transactions(token, link.sync_cursor)
        known = {account.provider_account_id for account in updates.accounts}
        accounts: list[BankAccount] = list(updates.accounts)
        account_set: AccountSet | None = None
        referenced = {
            transaction.provider_account_id for transaction in (*updates.added, *updates.modified)
        }
        if not referenced <= known:
            account_set = await provider.get_accounts(token)
            accounts = list(account_set.accounts)
    except ProviderReauthRequired:
        await set_link_status(
            engine,
            tenant_id=link.tenant_id,
            link_id=link.id,
            status=ConnectionStatus.LOGIN_REQUIRED,
        )
        logger.info("bank link %s needs the customer to log in again", link.id)
        return SyncResult(
            provider_link_id=link.id,
            accounts_upserted=0,
            added=0,
            modified=0,
            removed=0,
            cursor=link.sync_cursor,
            pages=0,
            restarts=0,
            connection_status=ConnectionStatus.LOGIN_REQUIRED,
        )
    institution = await _institution_for(engine, provider, token, link, account_set)
    applied_at = now or dt.datetime.now(dt.UTC)
    try:
        async with engine.begin() as connection:
            accounts_upserted = await _apply(
                connection, link, institution, updates, accounts, applied_at
            )
    except _Superseded:
        logger.info("bank link %s was synced concurrently; this sync rolled back", link.id)
        return SyncResult(
            provider_link_id=link.id,
            accounts_upserted=0,
            added=0,
            modified=0,
            removed=0,
            cursor=None,
            pages=updates.pages,
            restarts=updates.restarts,
            connection_status=ConnectionStatus.ACTIVE,
            is_superseded=True,
        )
    return SyncResult(
        provider_link_id=link.id,
        accounts_upserted=accounts_upserted,
        added=len(updates.added),
        modified=len(updates.modified),
        removed=len(updates.removed),
        cursor=updates.next_cursor,
        pages=updates.pages,
        restarts=updates.restarts,
        connection_status=ConnectionStatus.ACTIVE,
    )


async def sync_bank_links(
    engine: AsyncEngine,
    providers: Mapping[str, BankingProvider],
    box: SecretBox,
    *,
    tenant_id: int | None = None,
    customer_ids: Sequence[int] | None = None,
    never_synced_only: bool = False,
) -> list[SyncResult]:
    """Sync every matching banking link, one after another (providers rate-limit per item).

    Links of a provider not in `providers` are skipped. When some links fail with a provider
    error, the rest are still synced and BankSyncFailure carries both results and failures.
    """
    results: list[SyncResult] = []
    failures: dict[int, ProviderError] = {}
    links = await bank_links(
        engine, tenant_id=tenant_id, customer_ids=customer_ids, never_synced_only=never_synced_only
    )
    for link in links:
        provider = providers.get(link.provider)
        if provider is None or link.status is ConnectionStatus.REVOKED:
            continue
        try:
            results.append(await sync_link(engine, provider, box, link))
        except ProviderError as error:
            logger.warning("bank link %s failed to sync: %s", link.id, error.code)
            failures[link.id] = error
    if failures:
        raise BankSyncFailure(results, failures)
    return results
