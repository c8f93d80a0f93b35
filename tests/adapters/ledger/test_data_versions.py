"""The per-tenant data version: bumped by every write that changes answers, and only by those."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.sync import sync_bank_links
from adapters.errors import InsufficientFunds
from adapters.ledger.posting import PostingService
from adapters.ledger.queries import LedgerReader
from adapters.ledger.seed import seed_ledger
from adapters.records import TransactionStatus
from tests.factories import make_account, make_customer, make_tenant, post_transfer
from tests.fixtures.database import Database
from tests.fixtures.providers import ProviderWorld


@pytest.fixture
async def reader(database: Database) -> AsyncIterator[LedgerReader]:
    reader = LedgerReader(database.engine)
    yield reader
    await reader.aclose()


async def test_each_ledger_write_adds_one_and_refusals_and_replays_add_nothing(
    engine: AsyncEngine, reader: LedgerReader
) -> None:
    tenant = await make_tenant(engine)
    other = await make_tenant(engine)
    assert await reader.data_version(tenant) == 0
    cash = await make_account(engine, tenant)
    guarded = await make_account(engine, tenant, debits_must_not_exceed_credits=True)
    start = await reader.data_version(tenant)
    assert start != 0

    posted = await post_transfer(engine, tenant, debit=cash, credit=guarded, amount=5, key="a")
    assert await reader.data_version(tenant) == start + 1
    await post_transfer(engine, tenant, debit=cash, credit=guarded, amount=5, key="a")  # replay
    assert await reader.data_version(tenant) == start + 1
    with pytest.raises(InsufficientFunds):
        await post_transfer(engine, tenant, debit=guarded, credit=cash, amount=500, key="b")
    assert await reader.data_version(tenant) == start + 1

    service = PostingService(engine)
    pending = [
        await post_transfer(
            engine, tenant, debit=cash, credit=guarded, amount=1, key=f"p{n}",
            status=TransactionStatus.PENDING,
        )
        for n in range(2)
    ]  # fmt: skip
    await service.post_pending(tenant, pending[0].transaction.id)
    await service.void_pending(tenant, pending[1].transaction.id)
    await service.reverse_transaction(tenant, posted.transaction.id, "r")
    assert await reader.data_version(tenant) == start + 6
    assert await reader.data_version(other) == 0


async def test_concurrent_postings_each_count_once(
    engine: AsyncEngine, reader: LedgerReader
) -> None:
    tenant = await make_tenant(engine)
    accounts = [await make_account(engine, tenant) for _ in range(8)]
    start = await reader.data_version(tenant)
    await asyncio.gather(
        *(
            post_transfer(
                engine, tenant, debit=accounts[n % 8], credit=accounts[(n * 3 + 1) % 8],
                amount=1 + n, key=f"c{n}",
            )
            for n in range(20)
            if n % 8 != (n * 3 + 1) % 8
        )
    )  # fmt: skip
    posted = sum(1 for n in range(20) if n % 8 != (n * 3 + 1) % 8)
    assert await reader.data_version(tenant) == start + posted


async def test_a_seed_sets_its_tenants_version(engine: AsyncEngine, reader: LedgerReader) -> None:
    summary = await seed_ledger(
        engine, customers=2, seed=3, as_of=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    assert await reader.data_version(summary.tenant_id) != 0


async def test_a_bank_sync_that_applies_bumps_the_version(
    providers: ProviderWorld, engine: AsyncEngine, reader: LedgerReader
) -> None:
    tenant = await make_tenant(engine)
    customer = await make_customer(engine, tenant)
    await providers.link_bank(tenant, customer, transactions=3)
    before = await reader.data_version(tenant)
    runtime = providers.runtime
    await sync_bank_links(engine, runtime.banking_providers, runtime.secret_box,  # type: ignore[arg-type]
                          tenant_id=tenant)  # fmt: skip
    assert await reader.data_version(tenant) == before + 1
