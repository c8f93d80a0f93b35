"""SIGTERM during load: a real `gateway serve` drains what it accepted, then exits 0.

The process runs on the per-run PostgreSQL database with the in-process provider sandboxes
slowed down (SANDBOX_LATENCY_MS), so reads that select card payments stay in flight for a
while; 25 such reads and 25 postings are sent at once on their own connections, and SIGTERM
arrives while they run. Every request the server accepted completes with 200 and no error (a
request may only fail by never connecting, after the listener closed), every posting answered
is written exactly once and none that was not, and the process exits 0. SIGTERM is sent once
all 50 requests are on the wire (httpx's trace of each request body sent).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from adapters.ledger.tables import ledger_transactions
from adapters.providers.tables import provider_links
from gateway.auth import mint_token
from gateway.settings import Settings
from resolvers.node import encode_global_id
from resolvers.principal import SCOPES
from tests.factories import make_account, make_customer, make_tenant
from tests.fixtures.database import Database
from tests.gateway.test_serve_workers import _env, _free_port, _text, _wait_ready

pytestmark = pytest.mark.fault

SLOW_READ = """{ customers(first: 5) { edges { node {
  displayName cardPayments(first: 3) { edges { node { processorId } } }
} } } }"""
POST = """mutation($input: PostLedgerTransactionInput!) {
  postLedgerTransaction(input: $input) { transaction { status } }
}"""
LATENCY_MS = 3000


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`gateway serve` (one process), its output into `log`."""
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def test_sigterm_during_load_drains_accepted_requests_and_exits_0(
    postgres: Database, settings: Settings, tmp_path: Path
) -> None:
    engine = postgres.engine
    tenant = await make_tenant(engine)
    customer = await make_customer(engine, tenant, display_name="drain")
    cash = encode_global_id("LedgerAccount", await make_account(engine, tenant))
    revenue = encode_global_id(
        "LedgerAccount", await make_account(engine, tenant, normal_balance="credit")
    )
    async with engine.begin() as connection:
        await connection.execute(
            insert(provider_links).values(
                tenant_id=tenant, customer_id=customer, provider="stripe", kind="cards",
                external_id="cus_1",
            )
        )  # fmt: skip
    port = _free_port()
    env = _env(postgres, settings, port) | {
        "PROVIDERS": "sandbox",
        "SANDBOX_LATENCY_MS": str(LATENCY_MS),
        "DATABASE_POOL_SIZE": "3",
    }
    headers = {"authorization": f"Bearer {mint_token(settings, tenant_id=tenant, scopes=SCOPES)}"}
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    process = _start(env, log)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await _wait_ready(http, process, log)

        sent = 0

        async def trace(event: str, _info: dict[str, Any]) -> None:
            nonlocal sent
            if event == "http11.send_request_body.complete":
                sent += 1

        async def send(body: dict[str, Any]) -> httpx.Response | None:
            """The answer; None when the request never connected (the listener was closed)."""
            async with httpx.AsyncClient(base_url=base, timeout=60) as fresh:
                try:
                    return await fresh.post(
                        "/graphql", json=body, headers=headers, extensions={"trace": trace}
                    )
                except httpx.ConnectError:
                    return None

        keys = [f"drain-{index}" for index in range(25)]
        bodies: list[dict[str, Any]] = [{"query": SLOW_READ} for _ in range(25)]
        bodies += [
            {"query": POST, "variables": {"input": {"idempotencyKey": key, "entries": [
                {"accountId": cash, "direction": "DEBIT", "amount": "1.00", "currency": "USD"},
                {"accountId": revenue, "direction": "CREDIT", "amount": "1.00",
                 "currency": "USD"},
            ]}}}
            for key in keys
        ]  # fmt: skip
        load = asyncio.gather(*(send(body) for body in bodies))
        for _ in range(2000):  # until all 50 are on the wire (a bound, not a timing assertion)
            if sent == len(bodies) or load.done():
                break
            await asyncio.sleep(0.005)
        assert sent == len(bodies)
        process.send_signal(signal.SIGTERM)
        responses = await load
        exit_code = await asyncio.to_thread(process.wait, 60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert exit_code == 0, _text(log)
    answered = [(body, r) for body, r in zip(bodies, responses, strict=True) if r is not None]
    assert len(answered) == len(bodies)
    for _, response in answered:
        assert response.status_code == 200, response.text
        assert "errors" not in response.json(), response.text
    reads = [r for body, r in answered if body["query"] == SLOW_READ]
    assert reads, "no slow read was in flight at SIGTERM"
    for response in reads:
        [edge] = response.json()["data"]["customers"]["edges"]
        assert edge["node"]["cardPayments"] is not None
    posted = {
        body["variables"]["input"]["idempotencyKey"] for body, _ in answered if "variables" in body
    }
    async with engine.connect() as connection:
        written: dict[str, int] = dict(
            (
                await connection.execute(
                    select(ledger_transactions.c.idempotency_key, func.count())
                    .where(ledger_transactions.c.tenant_id == tenant)
                    .group_by(ledger_transactions.c.idempotency_key)
                )
            ).all()
        )
    assert written == dict.fromkeys(posted, 1)
