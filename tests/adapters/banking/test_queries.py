"""Batched bank reads: one statement per batch, tenant-scoped, date filters and keyset pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking import ProviderCredentials
from adapters.banking.links import bank_links, create_bank_link
from adapters.banking.plaid import PlaidProvider
from adapters.banking.queries import BankReader
from adapters.banking.sync import sync_link
from adapters.crypto import DEV_SECRET_KEYRING, SecretBox, SecretText
from adapters.sandbox.banking_app import SANDBOX_CLIENT_ID, SANDBOX_SECRET, BankingSandbox
from tests.factories import make_customer, make_tenant
from tests.fixtures.database import Database

BOX = SecretBox.from_keyring(DEV_SECRET_KEYRING)


@pytest.fixture
async def sandbox_plaid() -> AsyncIterator[PlaidProvider]:
    """The adapter on an in-process sandbox: these tests are about our reads, not transport."""
    sandbox = BankingSandbox()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), base_url="http://plaid-sandbox"
    ) as client:
        yield PlaidProvider(
            client, ProviderCredentials(SANDBOX_CLIENT_ID, SecretText(SANDBOX_SECRET))
        )


async def _synced_customer(
    engine: AsyncEngine, plaid: PlaidProvider, tenant_id: int, transactions: int = 12
) -> int:
    customer_id = await make_customer(engine, tenant_id)
    item_id = f"item-q-{tenant_id}-{customer_id}"
    await create_bank_link(
        engine, BOX, tenant_id=tenant_id, customer_id=customer_id, provider="plaid",
        item_id=item_id, access_token=SecretText(f"access-sandbox-{item_id}"),
    )  # fmt: skip
    (link,) = await bank_links(engine, tenant_id=tenant_id, customer_ids=[customer_id])
    await sync_link(engine, plaid, BOX, link)
    return customer_id


async def test_accounts_by_customer_ids_is_one_statement_in_key_order(
    database: Database, tenant_id: int, sandbox_plaid: PlaidProvider
) -> None:
    engine = database.engine
    customers = [await _synced_customer(engine, sandbox_plaid, tenant_id) for _ in range(3)]
    unlinked = await make_customer(engine, tenant_id)
    reader = BankReader(engine)

    with database.metrics.measure_statements() as tally:
        result = await reader.accounts_by_customer_ids(
            tenant_id, [customers[2], unlinked, *customers[:2]]
        )

    assert tally.count == 1
    assert [[a.customer_id for a in accounts] for accounts in result] == [
        [customers[2]] * 2, [], [customers[0]] * 2, [customers[1]] * 2,
    ]  # fmt: skip
    assert all(a.provider == "plaid" for accounts in result for a in accounts)


async def test_transactions_by_account_ids_is_one_statement_whatever_the_batch(
    database: Database, tenant_id: int, sandbox_plaid: PlaidProvider
) -> None:
    engine = database.engine
    customers = [await _synced_customer(engine, sandbox_plaid, tenant_id) for _ in range(3)]
    reader = BankReader(engine)
    accounts = await reader.accounts_by_customer_ids(tenant_id, customers)
    account_ids = [a.id or 0 for batch in accounts for a in batch]

    counts = []
    for size in (1, len(account_ids)):
        with database.metrics.measure_statements() as tally:
            pages = await reader.transactions_by_account_ids(tenant_id, account_ids[:size], first=3)
        counts.append(tally.count)
        assert len(pages) == size

    assert counts == [1, 1]


async def test_transaction_pages_are_newest_first_filtered_by_date_and_keyset_paged(
    database: Database, tenant_id: int, sandbox_plaid: PlaidProvider
) -> None:
    engine = database.engine
    customer_id = await _synced_customer(engine, sandbox_plaid, tenant_id, transactions=12)
    reader = BankReader(engine)
    (accounts,) = await reader.accounts_by_customer_ids(tenant_id, [customer_id])
    checking = accounts[0].id or 0
    (everything,) = await reader.transactions_by_account_ids(tenant_id, [checking], first=100)
    keys = [(t.date, t.id) for t in everything.items]
    assert keys == sorted(keys, reverse=True)

    walked = []
    after = None
    while True:
        (page,) = await reader.transactions_by_account_ids(
            tenant_id, [checking], first=2, after=after
        )
        walked.extend(page.items)
        if not page.has_next_page:
            break
        last = page.items[-1]
        after = (last.date, last.id or 0)
    since, until = dt.date(2026, 1, 3), dt.date(2026, 1, 8)
    (window,) = await reader.transactions_by_account_ids(
        tenant_id, [checking], first=100, since=since, until=until
    )

    assert walked == everything.items
    assert everything.has_next_page is False
    assert [t.id for t in window.items] == [
        t.id for t in everything.items if since <= t.date <= until
    ]
    assert all(t.currency == "USD" and t.exponent == 2 for t in everything.items)


async def test_reads_never_cross_tenants(
    database: Database, tenant_id: int, sandbox_plaid: PlaidProvider
) -> None:
    engine = database.engine
    mine = await _synced_customer(engine, sandbox_plaid, tenant_id)
    other_tenant = await make_tenant(engine)
    theirs = await _synced_customer(engine, sandbox_plaid, other_tenant)
    reader = BankReader(engine)
    (their_accounts,) = await reader.accounts_by_customer_ids(other_tenant, [theirs])
    their_ids = [a.id or 0 for a in their_accounts]

    assert await reader.accounts_by_customer_ids(tenant_id, [theirs, mine]) == [
        [],
        (await reader.accounts_by_customer_ids(tenant_id, [mine]))[0],
    ]
    assert await reader.accounts_by_ids(tenant_id, their_ids) == [None, None]
    pages = await reader.transactions_by_account_ids(tenant_id, their_ids, first=10)
    assert [page.items for page in pages] == [[], []]
    assert await bank_links(engine, tenant_id=tenant_id, customer_ids=[theirs]) == []
