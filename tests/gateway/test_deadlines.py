"""Deadlines: fields past the operation's deadline answer TIMEOUT while the rest arrives;
statements are cancelled on the server; postings wait for locks only so long."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.cache import Cache, MemoryCache
from adapters.errors import DeadlineExceeded, LockTimeout
from adapters.ledger.posting import NewEntry, NewTransaction, PostingService
from adapters.ledger.queries import LedgerReader
from adapters.ledger.tables import ledger_transactions
from adapters.read_pool import ReadPool
from adapters.records import Direction
from adapters.sandbox.cards_app import CardsSandboxFaults
from gateway.app import create_app
from gateway.deadlines import DeadlineSettings, load_deadline_settings
from gateway.lifespan import Services
from gateway.settings import Settings
from resolvers.node import encode_global_id
from tests.factories import make_account, make_customer
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient
from tests.fixtures.providers import ProviderWorld
from tests.resolvers.conftest import open_provider_gateway

MIXED = """query Mixed($id: ID!) { customer(id: $id) { displayName
  ledgerAccounts(first: 5) { edges { node { name } } }
  cardPayments(first: 5) { edges { node { processorId } } } } }"""
LOOKUP = "query Lookup($id: ID!) { customer(id: $id) { id displayName } }"


@pytest.fixture
def cache() -> Cache:
    return MemoryCache()


def _with_deadline(settings: Settings, seconds: float) -> Settings:
    deadlines = DeadlineSettings(
        first_party_seconds=seconds, partner_seconds=seconds, analyst_seconds=seconds
    )
    return dataclasses.replace(settings, deadlines=deadlines)


async def test_a_hanging_provider_answers_timeout_while_ledger_fields_arrive(
    settings: Settings, services: Services, providers: ProviderWorld, engine: AsyncEngine,
    tenant_id: int,
) -> None:  # fmt: skip
    customer = await make_customer(engine, tenant_id, display_name="Ada")
    await make_account(engine, tenant_id, customer_id=customer, name="Wallet")
    await providers.link_card_customer(tenant_id, customer, "cus_1")
    providers.cards.faults = CardsSandboxFaults(hang_seconds=5)

    hurried = _with_deadline(settings, 1.5)  # below the providers' own 2 s timeout
    wired = dataclasses.replace(services, settings=hurried)
    async with open_provider_gateway(hurried, wired, providers, MemoryCache()) as gateway:
        token = GraphQLClient(gateway.http, gateway.settings).token(tenant_id)
        response = await gateway.http.post(
            "/graphql",
            json={"query": MIXED, "variables": {"id": encode_global_id("Customer", customer)}},
            headers={"authorization": f"Bearer {token}"},
        )

    assert response.status_code == 200
    body = response.json()
    assert body["data"] is not None, body
    node = body["data"]["customer"]
    assert node["displayName"] == "Ada"
    assert node["ledgerAccounts"]["edges"] == [{"node": {"name": "Wallet"}}]
    assert node["cardPayments"] is None
    [error] = body["errors"]
    assert error["path"] == ["customer", "cardPayments"]
    assert error["extensions"] == {"code": "TIMEOUT", "retryable": True}, error


async def test_past_the_deadline_a_read_answers_timeout(
    settings: Settings, services: Services, database: Database, engine: AsyncEngine,
    tenant_id: int,
) -> None:  # fmt: skip
    """A compiled operation is one statement: request-level TIMEOUT (504); on the resolvers,
    the field that could not be read is null with TIMEOUT."""
    customer = encode_global_id("Customer", await make_customer(engine, tenant_id))
    hurried = _with_deadline(settings, 1e-9)
    app = create_app(hurried, dataclasses.replace(services, settings=hurried))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        client = GraphQLClient(http, hurried)
        response = await http.post(
            "/graphql",
            json={"query": LOOKUP, "variables": {"id": customer}},
            headers={"authorization": f"Bearer {client.token(tenant_id)}"},
        )

    body = response.json()
    if database.backend == "postgresql" and hurried.compiled_operations:
        assert response.status_code == 504
        assert body["errors"][0]["extensions"]["code"] == "TIMEOUT"
    else:
        assert response.status_code == 200
        assert body["data"] == {"customer": None}
        assert body["errors"][0]["path"] == ["customer"]
        assert body["errors"][0]["extensions"]["code"] == "TIMEOUT"


async def test_past_the_deadline_a_posting_writes_nothing(
    engine: AsyncEngine, tenant_id: int
) -> None:
    debit = await make_account(engine, tenant_id)
    credit = await make_account(engine, tenant_id, normal_balance="credit")
    late = PostingService(engine).for_request(
        deadline=asyncio.get_running_loop().time() - 1, actor=None
    )
    new = NewTransaction(
        idempotency_key="late",
        entries=(
            NewEntry(debit, Direction.DEBIT, 100, "USD"),
            NewEntry(credit, Direction.CREDIT, 100, "USD"),
        ),
    )

    with pytest.raises(DeadlineExceeded):
        await late.post_transaction(tenant_id, new)

    async with engine.connect() as connection:
        found = await connection.scalar(
            select(ledger_transactions.c.id).where(ledger_transactions.c.tenant_id == tenant_id)
        )
    assert found is None


async def test_a_bounded_reader_refuses_after_its_deadline_without_a_statement(
    database: Database, tenant_id: int
) -> None:
    reader = LedgerReader(database.engine, on_statement=database.metrics.count_statement)
    try:
        late = reader.bounded(asyncio.get_running_loop().time() - 1)
        with database.metrics.measure_statements() as tally, pytest.raises(DeadlineExceeded):
            await late.customers_by_ids(tenant_id, [1])
        assert tally.count == 0
        assert await reader.customers_by_ids(tenant_id, [1]) == [None]  # the reader itself
    finally:
        await reader.aclose()


async def test_the_read_pool_timeout_cancels_the_statement_on_the_server(
    postgres: Database,
) -> None:
    pool = ReadPool(postgres.url, size=1)
    try:
        with pytest.raises(TimeoutError):
            await pool.fetch("select pg_sleep(30) -- deadline test", timeout=0.2)
        # The same connection (size 1) answers at once: the sleep was cancelled server-side.
        assert await pool.fetchval("select 1", timeout=5) == 1
    finally:
        await pool.close()
    admin = await asyncpg.connect(postgres.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        running = await admin.fetchval(
            "select count(*) from pg_stat_activity where state = 'active'"
            " and query like 'select pg_sleep(30) -- deadline test%'"
        )
    finally:
        await admin.close()
    assert running == 0


async def test_a_posting_that_waits_for_a_lock_too_long_answers_lock_timeout(
    postgres: Database, tenant_id: int
) -> None:
    engine = postgres.engine
    debit = await make_account(engine, tenant_id)
    credit = await make_account(engine, tenant_id, normal_balance="credit")
    service = PostingService(engine, lock_timeout_ms=50)
    new = NewTransaction(
        idempotency_key="locked",
        entries=(
            NewEntry(debit, Direction.DEBIT, 100, "USD"),
            NewEntry(credit, Direction.CREDIT, 100, "USD"),
        ),
    )
    async with engine.begin() as holder:
        await holder.execute(
            text("select id from ledger_accounts where id = :id for update"), {"id": debit}
        )
        with pytest.raises(LockTimeout) as raised:
            await service.post_transaction(tenant_id, new)
    assert raised.value.code == "LOCK_TIMEOUT"
    assert raised.value.retryable

    result = await service.post_transaction(tenant_id, new)  # once the lock is gone
    assert result.transaction.idempotency_key == "locked"


def test_deadlines_are_read_from_the_environment() -> None:
    assert load_deadline_settings({}) == DeadlineSettings()
    loaded = load_deadline_settings(
        {"OPERATION_TIMEOUT_SECONDS": "4", "OPERATION_TIMEOUT_SECONDS_ANALYST": "60",
         "LOCK_TIMEOUT_MS": "250"}
    )  # fmt: skip
    assert (loaded.seconds_for("first_party"), loaded.seconds_for("partner")) == (4.0, 4.0)
    assert loaded.seconds_for("analyst") == 60.0
    assert loaded.lock_timeout_ms == 250
    with pytest.raises(ValueError, match="OPERATION_TIMEOUT_SECONDS"):
        load_deadline_settings({"OPERATION_TIMEOUT_SECONDS": "0"})
