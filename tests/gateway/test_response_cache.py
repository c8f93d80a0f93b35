"""The response cache: what shares an entry, what is never cached, and read-your-writes.

Every test runs on SQLite and PostgreSQL; those taking `cache` also run on the in-process and
the Redis cache. The last test starts two real `gateway serve` processes on PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import GraphQLObjectType, parse
from sqlalchemy import update

from adapters.cache import Cache
from adapters.ledger.data_versions import bump_data_version
from adapters.ledger.tables import customers
from gateway.app import create_app
from gateway.auth import mint_token
from gateway.lifespan import Services
from gateway.persisted_documents import ApqStore
from gateway.rate_limits import DEFAULT_RATE_LIMITS, RateLimiter, RateLimitSettings
from gateway.response_cache import (
    UNVERSIONED_FIELDS,
    BatchedVersions,
    DataVersions,
    selects_uncached_fields,
)
from gateway.settings import Settings, load_settings
from resolvers.node import encode_global_id
from resolvers.principal import SCOPES
from resolvers.schema import build_schema
from tests.factories import make_account, make_customer, make_tenant
from tests.fixtures.cache import REDIS_URL
from tests.fixtures.database import Database
from tests.fixtures.gateway import TEST_PEPPER, TEST_SECRET

BALANCE = """query Balance($id: ID!) { ledgerAccount(id: $id) {
  version balance { posted { amount } pending { amount } } } }"""
CUSTOMERS = """query Customers($first: Int!) {
  customers(first: $first) { edges { node { displayName email } } } }"""
POST = """mutation Post($input: PostLedgerTransactionInput!) {
  postLedgerTransaction(input: $input) { transaction { id status } } }"""
CONFIRM = "mutation($id: ID!) { postPendingTransaction(id: $id) { transaction { status } } }"
VOID = "mutation($id: ID!) { voidPendingTransaction(id: $id) { transaction { status } } }"
REVERSE = """mutation($id: ID!, $key: String!) {
  reverseLedgerTransaction(id: $id, idempotencyKey: $key) { transaction { status } } }"""
NO_PII = [scope for scope in SCOPES if scope != "pii:read"]


class Gateway:
    """One gateway (an ASGI app or a real process) seen through an HTTP client."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings

    async def send(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        tenant_id: int,
        scopes: Iterable[str] = SCOPES,
        operation_name: str | None = None,
    ) -> httpx.Response:
        token = mint_token(self.settings, tenant_id=tenant_id, scopes=scopes)
        body: dict[str, Any] = {"query": query, "variables": variables or {}}
        if operation_name is not None:
            body["operationName"] = operation_name
        response = await self.http.post(
            "/graphql", json=body, headers={"authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        return response

    async def data(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        body = (await self.send(query, variables, **kw)).json()
        assert "errors" not in body, body
        return body["data"]


@asynccontextmanager
async def _gateway(
    settings: Settings, services: Services, cache: Cache | None = None
) -> AsyncIterator[Gateway]:
    """An app over the test database; with `cache`, on that cache (a process of its own)."""
    if cache is not None:
        services = dataclasses.replace(services, cache=cache, apq=ApqStore(cache, ttl_seconds=60))
    transport = httpx.ASGITransport(app=create_app(settings, services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield Gateway(http, settings)


@pytest.fixture
async def gateway(settings: Settings, services: Services, cache: Cache) -> AsyncIterator[Gateway]:
    async with _gateway(settings, services, cache) as opened:
        yield opened


async def _two_accounts(database: Database, tenant_id: int) -> tuple[str, str]:
    cash = await make_account(database.engine, tenant_id, name="Cash")
    revenue = await make_account(
        database.engine, tenant_id, name="Revenue", normal_balance="credit"
    )
    return encode_global_id("LedgerAccount", cash), encode_global_id("LedgerAccount", revenue)


def _sample(metrics: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text."""
    found = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


def _posting(key: str, debit: str, credit: str, amount: str, status: str = "POSTED") -> Any:
    entries = [
        {"accountId": debit, "direction": "DEBIT", "amount": amount, "currency": "USD"},
        {"accountId": credit, "direction": "CREDIT", "amount": amount, "currency": "USD"},
    ]
    return {"input": {"idempotencyKey": key, "entries": entries, "status": status}}


async def test_a_repeated_read_is_served_without_executing(
    database: Database, gateway: Gateway, services: Services, tenant_id: int
) -> None:
    cash, _ = await _two_accounts(database, tenant_id)
    first = await gateway.send(BALANCE, {"id": cash}, tenant_id=tenant_id)
    assert first.headers["x-cache"] == "miss"
    hits = services.metrics.response_cache_hits

    with database.metrics.measure_statements() as tally:
        second = await gateway.send(BALANCE, {"id": cash}, tenant_id=tenant_id)
    assert second.headers["x-cache"] == "hit"
    assert second.content == first.content
    assert tally.count == 1  # the data version, nothing of the operation
    assert services.metrics.response_cache_hits == hits + 1
    # The same operation spelled differently (whitespace, commas, comments) shares the entry.
    respelled = "# a comment\n" + BALANCE.replace("\n", " ,  ")
    assert (await gateway.send(respelled, {"id": cash}, tenant_id=tenant_id)).headers[
        "x-cache"
    ] == "hit"
    metrics = await gateway.http.get("/metrics")
    assert _sample(metrics.text, "gateway_response_cache_hits_total") == hits + 2


async def test_version_reads_asked_in_one_turn_share_one_statement(
    database: Database, services: Services, tenant_id: int
) -> None:
    other = await make_tenant(database.engine)
    await bump_data_version_of(database, other, times=3)
    written = await services.reader.data_version(other)  # the first version is random
    versions = BatchedVersions(services.reader)
    with database.metrics.measure_statements() as tally:
        read = await asyncio.gather(
            *(versions.data_version(t) for t in (tenant_id, other, tenant_id, other, 0))
        )
    assert read == [0, written, 0, written, 0]  # a tenant without writes (or none) reads 0
    assert tally.count == 1
    with database.metrics.measure_statements() as tally:
        assert await versions.data_version(other) == written
        assert await versions.data_version(other) == written
    assert tally.count == 2  # one after the other: a statement each


class _Held:
    """The real reader, with each answer held until the test lets it go."""

    def __init__(self, reader: DataVersions) -> None:
        self.reader = reader
        self.sent = 0
        self.release = asyncio.Event()

    async def data_versions(self, tenant_ids: Any) -> Any:
        self.sent += 1
        versions = await self.reader.data_versions(tenant_ids)
        await self.release.wait()
        return versions


async def _until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_a_version_read_asked_after_a_batch_was_sent_never_joins_it(
    database: Database, services: Services, tenant_id: int
) -> None:
    held = _Held(services.reader)
    versions = BatchedVersions(held)
    early = asyncio.create_task(versions.data_version(tenant_id))
    await _until(lambda: held.sent == 1)  # its statement is out (and answered 0, held)
    await bump_data_version_of(database, tenant_id, times=1)  # a write commits
    late = asyncio.create_task(versions.data_version(tenant_id))  # asked after the commit
    await _until(lambda: held.sent == 2)
    held.release.set()
    assert await early == 0
    assert await late != 0  # joining the earlier batch would have read 0: stale


async def test_a_cancelled_version_read_cancels_no_other(
    database: Database, services: Services, tenant_id: int
) -> None:
    await bump_data_version_of(database, tenant_id, times=2)
    written = await services.reader.data_version(tenant_id)
    held = _Held(services.reader)
    versions = BatchedVersions(held)
    gone = asyncio.create_task(versions.data_version(tenant_id))
    staying = asyncio.create_task(versions.data_version(tenant_id))
    await _until(lambda: held.sent == 1)
    gone.cancel()
    held.release.set()
    assert await staying == written
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert held.sent == 1


async def bump_data_version_of(database: Database, tenant_id: int, *, times: int) -> None:
    async with database.engine.begin() as connection:
        for _ in range(times):
            await bump_data_version(connection, tenant_id)


async def test_entries_are_never_shared_across_tenants_scopes_variables_names_or_documents(
    database: Database, gateway: Gateway, tenant_id: int
) -> None:
    other_tenant = await make_tenant(database.engine)
    engine = database.engine
    for tenant, people in ((tenant_id, ("Ada", "Bob")), (other_tenant, ("Cy",))):
        for name in people:
            customer = await make_customer(engine, tenant, display_name=name)
            async with engine.begin() as connection:
                await connection.execute(
                    update(customers)
                    .where(customers.c.id == customer)
                    .values(email=f"{name.lower()}@example.com")
                )
                await bump_data_version(connection, tenant)

    def names(data: Any) -> list[tuple[str, str]]:
        return [(e["node"]["displayName"], e["node"]["email"]) for e in data["customers"]["edges"]]

    async def read(**kw: Any) -> tuple[str | None, list[tuple[str, str]]]:
        variables = kw.pop("variables", {"first": 10})
        kw.setdefault("scopes", NO_PII)
        response = await gateway.send(kw.pop("query", CUSTOMERS), variables, **kw)
        body = response.json()
        assert "errors" not in body, body
        return response.headers.get("x-cache"), names(body["data"])

    masked = [("Ada", "a***@example.com"), ("Bob", "b***@example.com")]
    assert await read(tenant_id=tenant_id) == ("miss", masked)
    assert await read(tenant_id=tenant_id) == ("hit", masked)
    # another tenant
    assert await read(tenant_id=other_tenant) == ("miss", [("Cy", "c***@example.com")])
    # with pii:read: unmasked, never the masked entry; and never cached at all, so that every
    # unmasked read executes and is recorded in the audit trail (gateway.audit)
    full = [("Ada", "ada@example.com"), ("Bob", "bob@example.com")]
    assert await read(tenant_id=tenant_id, scopes=SCOPES) == (None, full)
    assert await read(tenant_id=tenant_id, scopes=SCOPES) == (None, full)
    assert await read(tenant_id=tenant_id) == ("hit", masked)
    # other variables
    assert await read(tenant_id=tenant_id, variables={"first": 1}) == ("miss", masked[:1])
    # another document with the same fields in another order
    reordered = CUSTOMERS.replace("displayName email", "email displayName")
    assert await read(tenant_id=tenant_id, query=reordered) == ("miss", masked)
    # operation names: one document, two operations
    both = CUSTOMERS + "\nquery One { customers(first: 1) { edges { node { displayName } } } }"
    assert await read(tenant_id=tenant_id, query=both, operation_name="Customers") == (
        "miss",
        masked,
    )
    one = await gateway.send(both, {}, tenant_id=tenant_id, scopes=NO_PII, operation_name="One")
    assert one.headers["x-cache"] == "miss"
    assert one.json() == {"data": {"customers": {"edges": [{"node": {"displayName": "Ada"}}]}}}


async def test_a_hit_still_authenticates_and_checks_scopes(
    database: Database, gateway: Gateway, tenant_id: int
) -> None:
    cash, _ = await _two_accounts(database, tenant_id)
    await gateway.send(BALANCE, {"id": cash}, tenant_id=tenant_id)
    assert (await gateway.send(BALANCE, {"id": cash}, tenant_id=tenant_id)).headers[
        "x-cache"
    ] == "hit"
    unauthenticated = await gateway.http.post(
        "/graphql", json={"query": BALANCE, "variables": {"id": cash}}
    )
    assert unauthenticated.status_code == 401
    # Without ledger:read the answer is an error, from execution, never the cached entry.
    forbidden = await gateway.send(
        BALANCE, {"id": cash}, tenant_id=tenant_id, scopes=["providers:read"]
    )
    assert forbidden.headers["x-cache"] == "miss"
    assert forbidden.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_hits_are_charged_to_the_rate_limit_and_rate_limit_reads_are_not_cached(
    database: Database, settings: Settings, services: Services, cache: Cache, tenant_id: int
) -> None:
    cash, _ = await _two_accounts(database, tenant_id)
    limits = RateLimitSettings(limits=dict.fromkeys(DEFAULT_RATE_LIMITS, 4), period_seconds=3600)
    limited = dataclasses.replace(settings, rate_limits=limits)
    charged = dataclasses.replace(services, settings=limited, rate_limiter=RateLimiter(limits))
    async with _gateway(limited, charged, cache) as gateway:
        token = mint_token(settings, tenant_id=tenant_id, scopes=SCOPES)
        answers = []
        for _ in range(5):
            response = await gateway.http.post(
                "/graphql", json={"query": BALANCE, "variables": {"id": cash}},
                headers={"authorization": f"Bearer {token}"},
            )  # fmt: skip
            answers.append((response.status_code, response.headers.get("x-cache")))
            if response.status_code == 200:
                assert "ratelimit" in response.headers
        # one execution, then hits, each charged, until the budget is spent
        assert answers[:2] == [(200, "miss"), (200, "hit")]
        assert answers[-1] == (429, None)
    # The caller's rate limit changes with every request: never cached.
    limits = dataclasses.replace(limits, limits=dict.fromkeys(DEFAULT_RATE_LIMITS, 1000))
    limited = dataclasses.replace(settings, rate_limits=limits)
    charged = dataclasses.replace(services, settings=limited, rate_limiter=RateLimiter(limits))
    async with _gateway(limited, charged, cache) as gateway:
        remaining = []
        for _ in range(2):
            response = await gateway.send(
                "query($id: ID!) { rateLimit { remaining } ledgerAccount(id: $id) { name } }",
                {"id": cash}, tenant_id=tenant_id,
            )  # fmt: skip
            assert "x-cache" not in response.headers
            remaining.append(response.json()["data"]["rateLimit"]["remaining"])
        assert remaining[1] < remaining[0]


async def test_every_kind_of_write_through_the_api_is_read_at_once(
    database: Database, gateway: Gateway, tenant_id: int
) -> None:
    cash, revenue = await _two_accounts(database, tenant_id)

    async def balance() -> tuple[str, str]:
        # read twice: the second read is the cached one, and must already be right
        await gateway.send(BALANCE, {"id": revenue}, tenant_id=tenant_id)
        response = await gateway.send(BALANCE, {"id": revenue}, tenant_id=tenant_id)
        assert response.headers["x-cache"] == "hit"
        account = response.json()["data"]["ledgerAccount"]["balance"]
        return account["posted"]["amount"], account["pending"]["amount"]

    async def write(query: str, variables: dict[str, Any]) -> Any:
        return await gateway.data(query, variables, tenant_id=tenant_id)

    assert await balance() == ("0.00", "0.00")
    posted = await write(POST, _posting("p1", cash, revenue, "5.00"))
    assert await balance() == ("5.00", "5.00")
    pending = await write(POST, _posting("p2", cash, revenue, "2.00", "PENDING"))
    assert await balance() == ("5.00", "7.00")
    await write(CONFIRM, {"id": pending["postLedgerTransaction"]["transaction"]["id"]})
    assert await balance() == ("7.00", "7.00")
    voided = await write(POST, _posting("p3", cash, revenue, "1.00", "PENDING"))
    assert await balance() == ("7.00", "8.00")
    await write(VOID, {"id": voided["postLedgerTransaction"]["transaction"]["id"]})
    assert await balance() == ("7.00", "7.00")
    reversed_id = posted["postLedgerTransaction"]["transaction"]["id"]
    await write(REVERSE, {"id": reversed_id, "key": "r1"})
    assert await balance() == ("2.00", "2.00")


async def test_mutations_errors_and_provider_fields_are_not_cached(
    database: Database, gateway: Gateway, services: Services, tenant_id: int
) -> None:
    cash, revenue = await _two_accounts(database, tenant_id)
    stores = services.metrics.response_cache_stores
    mutation = await gateway.send(POST, _posting("m1", cash, revenue, "1.00"), tenant_id=tenant_id)
    assert "x-cache" not in mutation.headers
    # an answer with an error: a page larger than the cap
    too_big = "query($id: ID!) { ledgerAccount(id: $id) { entries(first: 1000) { totalCount } } }"
    for _ in range(2):
        bad = await gateway.send(too_big, {"id": cash}, tenant_id=tenant_id)
        assert bad.headers["x-cache"] == "miss"
        assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # provider-backed fields: not even looked up
    customer = encode_global_id("Customer", await make_customer(database.engine, tenant_id))
    providers = f'{{ customer(id: "{customer}") {{ displayName bankAccounts {{ name }} }} }}'
    for _ in range(2):
        response = await gateway.send(providers, tenant_id=tenant_id)
        assert "x-cache" not in response.headers
    assert services.metrics.response_cache_stores == stores


def test_uncached_fields_are_found_through_fragments_and_aliases() -> None:
    schema = build_schema(max_depth=12, max_aliases=30)._schema
    cases = {
        "{ customers { edges { node { displayName } } } }": False,
        "{ customers { edges { node { b: bankAccounts { name } } } } }": True,
        "{ node(id: 1) { ... on Customer { cardPayments { totalCount } } } }": True,
        "query { customer(id: 1) { ...F } }"
        " fragment F on Customer { x: cardPayments { __typename } }": True,
        # a field of the same name on another type is not a provider field
        "{ ledgerAccount(id: 1) { name } }": False,
    }
    for text, expected in cases.items():
        assert selects_uncached_fields(schema, parse(text)) is expected, text
    for type_name, field in UNVERSIONED_FIELDS:  # each names a field of the schema
        type_ = schema.get_type(type_name)
        assert isinstance(type_, GraphQLObjectType), type_name
        assert field in type_.fields, (type_name, field)
    assert selects_uncached_fields(schema, parse("{ rateLimit { remaining } }"))


async def test_response_cache_off_bypasses_it_entirely(
    database: Database, settings: Settings, services: Services, tenant_id: int
) -> None:
    cash, _ = await _two_accounts(database, tenant_id)
    off = dataclasses.replace(settings, response_cache=False)
    async with _gateway(off, dataclasses.replace(services, settings=off)) as gateway:
        counts = []
        for _ in range(2):
            with database.metrics.measure_statements() as tally:
                response = await gateway.send(BALANCE, {"id": cash}, tenant_id=tenant_id)
            assert "x-cache" not in response.headers
            counts.append(tally.count)
    assert counts == [1, 1]  # the operation's one statement each time; no data version read


async def test_concurrent_writers_and_readers_read_their_writes(
    database: Database, settings: Settings, services: Services, cache: Cache, tenant_id: int
) -> None:
    """20 postings, one after another, while readers read the balance through two apps on
    the same cache: every read issued after a posting's response arrived reflects it."""
    cash, revenue = await _two_accounts(database, tenant_id)
    postings = 20
    acknowledged = 0
    checked = 0
    async with (
        _gateway(settings, services, cache) as first,
        _gateway(settings, services, cache) as second,
    ):

        async def writer() -> None:
            nonlocal acknowledged
            for number in range(1, postings + 1):
                await first.data(POST, _posting(f"w{number}", cash, revenue, "1.00"),
                                 tenant_id=tenant_id)  # fmt: skip
                acknowledged = number

        async def reader(gateway: Gateway) -> None:
            nonlocal checked
            while True:
                floor = acknowledged
                data = await gateway.data(BALANCE, {"id": revenue}, tenant_id=tenant_id)
                posted = int(data["ledgerAccount"]["balance"]["posted"]["amount"].split(".")[0])
                assert posted >= floor, f"read {posted} after {floor} postings were acknowledged"
                checked += 1
                if floor == postings:
                    return

        await asyncio.gather(writer(), *(reader(g) for g in (first, second, first, second)))
    assert checked >= 4


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def _serve(environment: dict[str, str], log: Path) -> AsyncIterator[Gateway]:
    """A real `gateway serve` process on a free port, stopped (by its id) afterwards."""
    port = _free_port()
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve",
            env={**environment, "GATEWAY_PORT": str(port)}, stdout=output, stderr=output,
        )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for _ in range(600):
                if process.returncode is not None:
                    pytest.fail(f"gateway exited: {await asyncio.to_thread(log.read_text)}")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("gateway did not become ready")
            yield Gateway(http, load_settings(environment))
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def test_two_gateway_processes_on_redis_read_each_others_writes(
    postgres: Database, cache: Cache, tenant_id: int, tmp_path: Path
) -> None:
    if "redis" not in type(cache).__name__.lower():
        pytest.skip("two processes share answers through Redis only")
    cash, revenue = await _two_accounts(postgres, tenant_id)
    environment = {
        **os.environ,
        "GATEWAY_ENV": "test",
        "DATABASE_URL": postgres.url,
        "DATABASE_POOL_SIZE": "2",
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"fg-test-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        "JWT_SECRET": TEST_SECRET,
        "API_KEY_PEPPER": TEST_PEPPER,
        "JWT_ISSUER": "finance-gateway-test",
        "LOG_LEVEL": "warning",
    }
    async with (
        _serve(environment, tmp_path / "one.log") as one,
        _serve(environment, tmp_path / "two.log") as two,
    ):
        # An answer cached by one process is served by the other.
        assert (await one.send(BALANCE, {"id": revenue}, tenant_id=tenant_id)).headers[
            "x-cache"
        ] == "miss"
        assert (await two.send(BALANCE, {"id": revenue}, tenant_id=tenant_id)).headers[
            "x-cache"
        ] == "hit"
        for number in range(1, 6):
            await one.data(POST, _posting(f"x{number}", cash, revenue, "1.00"),
                           tenant_id=tenant_id)  # fmt: skip
            for reader in (two, one, two):
                data = await reader.data(BALANCE, {"id": revenue}, tenant_id=tenant_id)
                assert data["ledgerAccount"]["balance"]["posted"]["amount"] == f"{number}.00"
        metrics = (await two.http.get("/metrics")).text
        assert _sample(metrics, "gateway_response_cache_hits_total") >= 1
