"""Two gateway processes (`gateway serve`, real ports) sharing PostgreSQL and Redis: a posting
through process A reaches WebSocket and SSE subscribers of process B through Redis pub/sub, and
stopping B (SIGTERM) ends its subscriptions at once: WebSocket close 1001, SSE one last
SERVER_SHUTTING_DOWN result and `complete`, and B exits cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from gateway.auth import mint_token
from gateway.settings import Settings
from resolvers.node import encode_global_id
from tests.factories import make_account, make_tenant
from tests.fixtures.cache import REDIS_URL
from tests.fixtures.database import Database
from tests.gateway.subscription_clients import open_sse, open_ws
from tests.gateway.test_serve_workers import _env, _free_port, _text, _wait_ready
from tests.gateway.test_subscriptions import POST, TRANSACTIONS

_STARTED = re.compile(r"^gateway_subscriptions_started_total (\d+)(?:\.0)?$", re.MULTILINE)


@contextmanager
def _gateway(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=env, stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _subscriptions_started(base: str, count: int) -> None:
    """Wait until the process's /metrics counts `count` subscriptions listening."""
    async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
        for _ in range(500):
            found = _STARTED.search((await http.get("/metrics")).text)
            if found is not None and int(found.group(1)) >= count:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"{base} never counted {count} subscriptions")


async def test_a_posting_through_one_process_reaches_subscribers_of_another(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    if database.backend != "postgresql":
        pytest.skip("several gateway processes need PostgreSQL")
    tenant = await make_tenant(database.engine)
    cash = await make_account(database.engine, tenant)
    revenue = await make_account(database.engine, tenant, normal_balance="credit")
    token = mint_token(settings, tenant_id=tenant, scopes=["ledger:read", "ledger:write"])
    prefix = f"fg-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    ports = {"a": _free_port(), "b": _free_port()}
    bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    logs = {name: tmp_path / f"{name}.log" for name in ports}

    with ExitStack() as stack:
        processes = {
            name: stack.enter_context(_gateway(
                _env(database, settings, port) | {
                    "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": prefix, "DATABASE_POOL_SIZE": "2",
                },
                logs[name],
            ))
            for name, port in ports.items()
        }  # fmt: skip
        for name, base in bases.items():
            async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
                await _wait_ready(http, processes[name], logs[name])

        ws_url = bases["b"].replace("http://", "ws://") + "/graphql"
        async with (
            open_ws(ws_url) as client,
            open_sse(bases["b"], token, TRANSACTIONS) as stream,
        ):
            assert await client.init(token) == {"type": "connection_ack"}
            await client.subscribe("1", TRANSACTIONS)
            await _subscriptions_started(bases["b"], 2)

            entries = [
                {"accountId": encode_global_id("LedgerAccount", cash), "direction": "DEBIT",
                 "amount": "7.00", "currency": "USD"},
                {"accountId": encode_global_id("LedgerAccount", revenue), "direction": "CREDIT",
                 "amount": "7.00", "currency": "USD"},
            ]  # fmt: skip
            variables = {"input": {"idempotencyKey": "two-processes", "entries": entries}}
            async with httpx.AsyncClient(base_url=bases["a"], trust_env=False) as http:
                response = await http.post(
                    "/graphql", json={"query": POST, "variables": variables},
                    headers={"authorization": f"Bearer {token}"},
                )  # fmt: skip
            posted = response.json()["data"]["postLedgerTransaction"]["transactionId"]

            message = await client.receive()
            assert message["type"] == "next"
            assert message["payload"]["data"]["ledgerTransactionPosted"]["id"] == posted
            name, data = await stream.event()
            assert name == "next"
            assert data["data"]["ledgerTransactionPosted"]["id"] == posted

            processes["b"].send_signal(signal.SIGTERM)
            assert await client.closed_with() == (1001, "the server is shutting down")
            name, data = await stream.event()
            assert name == "next"
            assert data["errors"][0]["extensions"] == {"code": "SERVER_SHUTTING_DOWN"}
            assert await stream.event() == ("complete", None)

        # Nothing holds the shutdown: B exits well before uvicorn's 30 s graceful limit.
        assert await asyncio.to_thread(processes["b"].wait, 20) == 0, _text(logs["b"])
        assert processes["a"].poll() is None, _text(logs["a"])
