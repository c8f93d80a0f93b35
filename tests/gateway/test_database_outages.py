"""The database going away mid-request is retryable, never INTERNAL_SERVER_ERROR.

On PostgreSQL the request's own backend is terminated (pg_terminate_backend from an admin
connection) while its statement waits on a lock the test holds, so the moment is certain:
during a read, the field answers SERVICE_UNAVAILABLE with `retryable: true`; during a posting
the gateway retries once (the idempotency key makes it safe), and when that fails too answers
SERVICE_UNAVAILABLE with nothing written. Outside execution (the API-key lookup with the
database unreachable) the answer is HTTP 503 JSON with the request id, not a plain-text 500.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.access.clients import ClientStore
from adapters.database_errors import DatabaseUnavailable, is_transient_database_error
from adapters.ledger.engine import create_ledger_engine
from adapters.ledger.tables import ledger_entries, ledger_transactions
from adapters.read_pool import ReadPool
from gateway.app import create_app
from gateway.auth import Authenticator
from gateway.catch_all import CatchAllMiddleware
from gateway.lifespan import Services
from gateway.settings import Settings
from resolvers.node import encode_global_id
from tests.factories import make_account
from tests.fixtures.database import Database, _asyncpg_dsn
from tests.fixtures.gateway import GraphQLClient

ACCOUNT = "query($id: ID!) { ledgerAccount(id: $id) { name } }"
POST = """mutation($input: PostLedgerTransactionInput!) {
  postLedgerTransaction(input: $input) { replayed transaction { status } }
}"""
# A well-formed key (fgw_live_ + 43 characters): it reaches the database lookup.
WELL_FORMED_KEY = "fgw_live_" + "k" * 43


class Admin:
    """An admin connection to the test database: holds locks, finds and ends backends."""

    def __init__(self, connection: asyncpg.Connection, database: str) -> None:
        self.connection = connection
        self.database = database
        self.pid: int = connection.get_server_pid()

    async def blocked_backend(
        self, not_in: set[int], request: asyncio.Future[Any] | None = None
    ) -> int | None:
        """The pid of a backend of the test database waiting on a lock (waits for one);
        None once `request` has answered instead."""
        for _ in range(2000):
            if request is not None and request.done():
                return None
            # Activity is read once per transaction unless the snapshot is cleared.
            await self.connection.execute("select pg_stat_clear_snapshot()")
            pid = await self.connection.fetchval(
                "select pid from pg_stat_activity where datname = $1 and pid <> $2 "
                "and wait_event_type = 'Lock' and not (pid = any($3::int[])) limit 1",
                self.database, self.pid, list(not_in),
            )  # fmt: skip
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.005)
        raise AssertionError("no request blocked on the lock")

    async def terminate(self, pid: int) -> None:
        assert await self.connection.fetchval("select pg_terminate_backend($1)", pid)


@pytest.fixture
async def admin(postgres: Database) -> AsyncIterator[Admin]:
    connection = await asyncpg.connect(_asyncpg_dsn(postgres.url))
    try:
        yield Admin(connection, postgres.engine.url.database or "")
    finally:
        await connection.close()


async def _while_locked(
    admin: Admin, table: str, request: Awaitable[dict[str, Any]], terminations: int | None
) -> dict[str, Any]:
    """Run `request` while `table` is locked; end the backend of each of its first
    `terminations` attempts (None: of every attempt, until it answers) as it waits, then
    release the lock."""
    async with admin.connection.transaction():
        await admin.connection.execute(f"lock table {table} in access exclusive mode")
        task = asyncio.ensure_future(request)
        ended: set[int] = set()
        while terminations is None or len(ended) < terminations:
            pid = await admin.blocked_backend(ended, task if terminations is None else None)
            if pid is None:
                break
            await admin.terminate(pid)
            ended.add(pid)
        assert ended
    return await task


async def _transactions(database: Database, tenant_id: int, key: str) -> tuple[int, int]:
    async with database.engine.connect() as connection:
        transactions = await connection.scalar(
            select(func.count()).select_from(ledger_transactions).where(
                ledger_transactions.c.tenant_id == tenant_id,
                ledger_transactions.c.idempotency_key == key,
            )
        )  # fmt: skip
        entries = await connection.scalar(
            select(func.count()).select_from(ledger_entries)
            .where(ledger_entries.c.tenant_id == tenant_id)
        )  # fmt: skip
    return int(transactions or 0), int(entries or 0)


async def _posting(postgres: Database, tenant_id: int, key: str) -> dict[str, Any]:
    cash = await make_account(postgres.engine, tenant_id)
    revenue = await make_account(postgres.engine, tenant_id, normal_balance="credit")
    return {"input": {"idempotencyKey": key, "entries": [
        {"accountId": encode_global_id("LedgerAccount", cash), "direction": "DEBIT",
         "amount": "5.00", "currency": "USD"},
        {"accountId": encode_global_id("LedgerAccount", revenue), "direction": "CREDIT",
         "amount": "5.00", "currency": "USD"},
    ]}}  # fmt: skip


async def test_a_read_whose_connection_is_lost_is_retryable(
    postgres: Database, admin: Admin, gql: GraphQLClient, tenant_id: int
) -> None:
    account = encode_global_id("LedgerAccount", await make_account(postgres.engine, tenant_id))
    request = gql.post(ACCOUNT, {"id": account}, tenant_id=tenant_id)
    # Every attempt: a compiled statement that fails falls back to the resolvers, which read
    # again; it is their failure that answers.
    body = await _while_locked(admin, "ledger_accounts", request, terminations=None)
    assert body["data"] == {"ledgerAccount": None}
    [error] = body["errors"]
    assert error["path"] == ["ledgerAccount"]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert error["extensions"]["retryable"] is True
    assert error["extensions"]["requestId"] in error["message"]
    # The pool recovers: the same request answers at once.
    again = await gql.post(ACCOUNT, {"id": account}, tenant_id=tenant_id)
    assert "errors" not in again
    assert again["data"]["ledgerAccount"]["name"]


async def test_a_posting_whose_connection_is_lost_is_retried_once_and_written_once(
    postgres: Database, admin: Admin, gql: GraphQLClient, tenant_id: int
) -> None:
    variables = await _posting(postgres, tenant_id, "lost-once")
    request = gql.post(POST, variables, tenant_id=tenant_id)
    body = await _while_locked(admin, "ledger_transactions", request, terminations=1)
    assert "errors" not in body, body
    assert body["data"]["postLedgerTransaction"] == {
        "replayed": False, "transaction": {"status": "POSTED"}
    }  # fmt: skip
    assert await _transactions(postgres, tenant_id, "lost-once") == (1, 2)


async def test_a_posting_that_loses_its_connection_twice_is_retryable_and_not_written(
    postgres: Database, admin: Admin, gql: GraphQLClient, tenant_id: int
) -> None:
    variables = await _posting(postgres, tenant_id, "lost-twice")
    request = gql.post(POST, variables, tenant_id=tenant_id)
    body = await _while_locked(admin, "ledger_transactions", request, terminations=2)
    [error] = body["errors"]
    assert error["path"] == ["postLedgerTransaction"]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert error["extensions"]["retryable"] is True
    assert await _transactions(postgres, tenant_id, "lost-twice") == (0, 0)
    # The client's retry with the same key posts it, once.
    retried = await gql.post(POST, variables, tenant_id=tenant_id)
    assert retried["data"]["postLedgerTransaction"]["replayed"] is False
    assert await _transactions(postgres, tenant_id, "lost-twice") == (1, 2)


@pytest.fixture
async def unreachable_services(
    database: Database, services: Services, tmp_path: Any
) -> AsyncIterator[Services]:
    """The test services, with API keys looked up in a database nobody serves."""
    if database.backend == "postgresql":
        url = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
        reads: ReadPool | None = ReadPool(url, size=1)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path}/missing-directory/ledger.db"
        reads = None
    engine = create_ledger_engine(url)
    clients = ClientStore(engine, pepper="", reads=reads)
    try:
        yield dataclasses.replace(
            services, clients=clients, authenticator=Authenticator(services.verifier, clients)
        )
    finally:
        await engine.dispose()


async def test_the_database_down_during_the_api_key_lookup_is_503_json(
    settings: Settings, unreachable_services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, unreachable_services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        with caplog.at_level(logging.WARNING):
            response = await http.post(
                "/graphql",
                json={"query": "{ __typename }"},
                headers={"x-api-key": WELL_FORMED_KEY, "x-request-id": "req-outage-1"},
            )
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "req-outage-1"
    assert response.headers["retry-after"] == "1"
    [error] = response.json()["errors"]
    assert error["extensions"] == {
        "code": "SERVICE_UNAVAILABLE", "retryable": True, "requestId": "req-outage-1"
    }  # fmt: skip
    assert "req-outage-1" in error["message"]
    assert "req-outage-1" in caplog.text


async def _boom(_request: Request) -> Response:
    raise RuntimeError("not a database problem")


async def test_any_other_failure_outside_execution_is_a_masked_500_json() -> None:
    app = Starlette(routes=[Route("/", _boom)], middleware=[Middleware(CatchAllMiddleware)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        response = await http.get("/")
    assert response.status_code == 500
    [error] = response.json()["errors"]
    request_id = response.headers["x-request-id"]
    assert error == {
        "message": f"Internal server error (request id {request_id}).",
        "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    }


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        pytest.param(asyncpg.exceptions.ConnectionDoesNotExistError("gone"), True, id="lost"),
        pytest.param(asyncpg.exceptions.SerializationError("40001"), True, id="serialization"),
        pytest.param(asyncpg.exceptions.DeadlockDetectedError("40P01"), True, id="deadlock"),
        pytest.param(asyncpg.exceptions.AdminShutdownError("57P01"), True, id="terminated"),
        pytest.param(ConnectionRefusedError(111, "refused"), True, id="refused"),
        pytest.param(TimeoutError(), True, id="timeout"),
        pytest.param(sa_exc.TimeoutError("QueuePool limit"), True, id="pool_timeout"),
        pytest.param(DatabaseUnavailable("down"), True, id="ours"),
        pytest.param(asyncpg.exceptions.UniqueViolationError("23505"), False, id="unique"),
        pytest.param(asyncpg.exceptions.UndefinedTableError("42P01"), False, id="bad_sql"),
        pytest.param(FileNotFoundError("x"), False, id="file"),
        pytest.param(ValueError("x"), False, id="bug"),
    ],
)
def test_which_database_errors_are_transient(error: BaseException, transient: bool) -> None:
    assert is_transient_database_error(error) is transient
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = error
    assert is_transient_database_error(wrapped) is transient
