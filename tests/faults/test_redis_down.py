"""Redis stopped mid-run: reads and postings keep succeeding.

A private `redis-server` on a free port (no persistence) serves a gateway wired as production
wires it (`open_services` with REDIS_URL: the shared cache behind the response cache, APQ and
the provider cache, and the rate limiter's budgets). Rounds of reads (response-cache hits, APQ
by hash) and postings run before, while and after the server is killed (SIGKILL, its pid only):
every request answers 200 without errors, every posting is written once, rate limits fall back
to the process's own budget, and the caches degrade to misses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from adapters.ledger.tables import ledger_transactions
from gateway.app import create_app
from gateway.auth import mint_token
from gateway.lifespan import open_services
from gateway.rate_limits import DEFAULT_RATE_LIMITS, RateLimitSettings
from gateway.settings import Settings
from resolvers.node import encode_global_id
from resolvers.principal import SCOPES
from tests.factories import make_account, make_tenant
from tests.faults.redis_server import RedisServer
from tests.fixtures.database import Database

pytestmark = pytest.mark.fault

READ = """query Read($id: ID!) {
  ledgerAccount(id: $id) { name balance { posted { amount currency } } }
}"""
APQ = "query Apq($id: ID!) { ledgerAccount(id: $id) { name } }"
APQ_HASH = hashlib.sha256(APQ.encode()).hexdigest()
POST = """mutation Post($input: PostLedgerTransactionInput!) {
  postLedgerTransaction(input: $input) { replayed transaction { status } }
}"""


async def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


async def test_reads_and_postings_survive_redis_going_away(
    postgres: Database, settings: Settings, redis_server: RedisServer
) -> None:
    tenant = await make_tenant(postgres.engine)
    cash = encode_global_id("LedgerAccount", await make_account(postgres.engine, tenant))
    revenue = encode_global_id(
        "LedgerAccount",
        await make_account(postgres.engine, tenant, normal_balance="credit"),
    )
    configured = dataclasses.replace(
        settings,
        redis_url=redis_server.url,
        redis_key_prefix=f"fgw-fault-{uuid.uuid4().hex[:8]}",
        # A budget that is charged (and so needs Redis) but that the test never reaches.
        # Leases of 10,000 points that expire after 50 ms: after the kill, charges need Redis.
        rate_limits=RateLimitSettings(
            limits=dict.fromkeys(DEFAULT_RATE_LIMITS, 1_000_000),
            redis_backoff_seconds=0.2,
            lease_seconds=0.05,
        ),
    )
    token = mint_token(configured, tenant_id=tenant, scopes=SCOPES)
    headers = {"authorization": f"Bearer {token}"}
    posted: list[str] = []

    async with open_services(configured) as services:
        assert await services.cache.ping()
        app = create_app(configured, services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:

            async def read() -> None:
                body = await _ok(
                    await http.post(
                        "/graphql", json={"query": READ, "variables": {"id": cash}},
                        headers=headers,
                    )
                )  # fmt: skip
                assert body["data"]["ledgerAccount"]["balance"]["posted"]["currency"] == "USD"

            async def apq() -> None:
                """The APQ protocol: the hash alone, then the text when it is not found."""
                extensions = {"persistedQuery": {"version": 1, "sha256Hash": APQ_HASH}}
                response = await http.post(
                    "/graphql",
                    json={"variables": {"id": cash}, "extensions": extensions},
                    headers=headers,
                )
                assert response.status_code == 200, response.text
                errors = response.json().get("errors") or []
                if errors:
                    assert [e["extensions"]["code"] for e in errors] == [
                        "PERSISTED_QUERY_NOT_FOUND"
                    ], errors
                    response = await http.post(
                        "/graphql",
                        json={"query": APQ, "variables": {"id": cash}, "extensions": extensions},
                        headers=headers,
                    )
                await _ok(response)

            async def post() -> None:
                key = f"redis-down-{len(posted)}-{uuid.uuid4().hex[:6]}"
                posted.append(key)
                body = await _ok(
                    await http.post(
                        "/graphql",
                        json={"query": POST, "variables": {"input": {
                            "idempotencyKey": key,
                            "entries": [
                                {"accountId": cash, "direction": "DEBIT", "amount": "1.00",
                                 "currency": "USD"},
                                {"accountId": revenue, "direction": "CREDIT", "amount": "1.00",
                                 "currency": "USD"},
                            ],
                        }}},
                        headers=headers,
                    )
                )  # fmt: skip
                assert body["data"]["postLedgerTransaction"]["transaction"]["status"] == "POSTED"

            async def round_() -> None:
                await asyncio.gather(read(), read(), apq(), apq(), post(), read())

            for _ in range(3):
                await round_()
            assert services.rate_limiter is not None
            assert services.rate_limiter.metrics.fallbacks == 0

            # Killed while a round is in flight, then rounds with Redis gone.
            in_flight = asyncio.gather(*(round_() for _ in range(3)))
            await asyncio.sleep(0)
            redis_server.kill()
            await in_flight
            await asyncio.sleep(0.06)  # the rate limit's lease has expired
            for _ in range(5):
                await round_()
            assert not await services.cache.ping()
            assert services.rate_limiter.metrics.fallbacks > 0
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200

    async with postgres.engine.connect() as connection:
        written = await connection.scalar(
            select(func.count(func.distinct(ledger_transactions.c.idempotency_key))).where(
                ledger_transactions.c.tenant_id == tenant
            )
        )
        rows = await connection.scalar(
            select(func.count()).select_from(ledger_transactions).where(
                ledger_transactions.c.tenant_id == tenant
            )
        )  # fmt: skip
    assert written == rows == len(posted) == 3 + 3 + 5


@pytest.fixture
def redis_server() -> Any:
    server = RedisServer.start()
    try:
        yield server
    finally:
        server.kill()
