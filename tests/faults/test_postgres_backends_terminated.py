"""PostgreSQL backends terminated while 50 postings are in flight.

tests/gateway/test_database_outages.py ends one request's backend at a chosen moment; this
suite ends many at once under load. 50 postings with distinct idempotency keys go to the same
two accounts (so they queue on row locks and stay in flight); an admin connection first holds
`ledger_transactions` locked and terminates every gateway backend that waits on it, then lets
go and keeps terminating the gateway's backends, busy or idle, while postings remain. Every
answer is a success or SERVICE_UNAVAILABLE with `retryable: true`; a client that retries the
failed ones with the same keys ends with each key written exactly once and balances that hold
exactly 50 postings; and the pool recovers (later reads and postings answer at once).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select

from adapters.ledger.tables import ledger_entries, ledger_transactions
from resolvers.node import encode_global_id
from tests.factories import make_account
from tests.fixtures.database import Database, _asyncpg_dsn
from tests.fixtures.gateway import GraphQLClient
from tests.gateway.test_database_outages import Admin

pytestmark = pytest.mark.fault

POSTINGS = 50
POST = """mutation($input: PostLedgerTransactionInput!) {
  postLedgerTransaction(input: $input) { replayed transaction { status } }
}"""
BALANCE = "query($id: ID!) { ledgerAccount(id: $id) { balance { posted { amount } } } }"


@pytest.fixture
async def admin(postgres: Database) -> AsyncIterator[Admin]:
    connection = await asyncpg.connect(_asyncpg_dsn(postgres.url))
    try:
        yield Admin(connection, postgres.engine.url.database or "")
    finally:
        await connection.close()


async def _gateway_backends(admin: Admin) -> list[int]:
    await admin.connection.execute("select pg_stat_clear_snapshot()")
    rows = await admin.connection.fetch(
        "select pid from pg_stat_activity where datname = $1 and pid <> $2 "
        "and backend_type = 'client backend'",
        admin.database, admin.pid,
    )  # fmt: skip
    return [int(row["pid"]) for row in rows]


def _outcome(response: httpx.Response) -> str:
    """'posted', or 'retryable' (asserting that nothing else came back)."""
    if response.status_code == 503:
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", response.text
        assert error["extensions"]["retryable"] is True, response.text
        return "retryable"
    assert response.status_code == 200, response.text
    body = response.json()
    if body.get("errors"):
        for error in body["errors"]:
            assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", body
            assert error["extensions"]["retryable"] is True, body
            assert error["extensions"]["requestId"] in error["message"], body
        assert body["data"] is None or body["data"]["postLedgerTransaction"] is None, body
        return "retryable"
    assert body["data"]["postLedgerTransaction"]["transaction"]["status"] == "POSTED", body
    return "posted"


async def test_terminated_backends_lose_and_double_no_posting(
    postgres: Database, admin: Admin, gql: GraphQLClient, tenant_id: int
) -> None:
    cash = encode_global_id("LedgerAccount", await make_account(postgres.engine, tenant_id))
    revenue = encode_global_id(
        "LedgerAccount", await make_account(postgres.engine, tenant_id, normal_balance="credit")
    )
    headers = {"authorization": f"Bearer {gql.token(tenant_id)}"}

    def variables(key: str) -> dict[str, Any]:
        return {"input": {"idempotencyKey": key, "entries": [
            {"accountId": cash, "direction": "DEBIT", "amount": "2.50", "currency": "USD"},
            {"accountId": revenue, "direction": "CREDIT", "amount": "2.50", "currency": "USD"},
        ]}}  # fmt: skip

    async def post(key: str) -> httpx.Response:
        return await gql.http.post(
            "/graphql", json={"query": POST, "variables": variables(key)}, headers=headers
        )

    keys = [f"terminated-{index}" for index in range(POSTINGS)]
    ended: set[int] = set()
    async with admin.connection.transaction():
        await admin.connection.execute("lock table ledger_transactions in access exclusive mode")
        in_flight = asyncio.gather(*(post(key) for key in keys))
        # Every backend that comes to wait on the lock, until a few have been ended.
        while len(ended) < 5:
            pid = await admin.blocked_backend(ended)
            assert pid is not None
            await admin.terminate(pid)
            ended.add(pid)
    # The lock is gone: postings run; end the gateway's backends while any remain in flight.
    chooser = random.Random(8)  # which backend to end
    for _ in range(40):
        if in_flight.done():
            break
        backends = await _gateway_backends(admin)
        if backends:
            pid = chooser.choice(backends)
            await admin.connection.fetchval("select pg_terminate_backend($1)", pid)
            ended.add(pid)
        await asyncio.sleep(0.01)
    responses = await in_flight
    outcomes = [_outcome(response) for response in responses]
    assert len(ended) >= 5

    # The client retries what was refused, with the same keys; the pool has recovered.
    for key, outcome in zip(keys, outcomes, strict=True):
        if outcome == "retryable":
            assert _outcome(await post(key)) == "posted"

    async with postgres.engine.connect() as connection:
        per_key: dict[str, int] = dict(
            (
                await connection.execute(
                    select(ledger_transactions.c.idempotency_key, func.count())
                    .where(ledger_transactions.c.tenant_id == tenant_id)
                    .group_by(ledger_transactions.c.idempotency_key)
                )
            ).all()
        )
        entries = await connection.scalar(
            select(func.count()).select_from(ledger_entries)
            .where(ledger_entries.c.tenant_id == tenant_id)
        )  # fmt: skip
    assert per_key == dict.fromkeys(keys, 1)
    assert entries == 2 * POSTINGS
    body = await gql.post(BALANCE, {"id": cash}, tenant_id=tenant_id)
    assert "errors" not in body, body
    assert body["data"]["ledgerAccount"]["balance"]["posted"]["amount"] == "125.00"

    # Replays of every key answer from the ledger and write nothing more.
    replays = await asyncio.gather(*(post(key) for key in keys[:10]))
    for response in replays:
        assert response.json()["data"]["postLedgerTransaction"]["replayed"] is True
