"""Subscription fan-out: events per second delivered to N subscribers across two processes.

    .venv/bin/python -m bench.subscription_fanout [--subscribers 100] [--postings 300]

Starts two gateway processes (`gateway serve`, one worker each) on one PostgreSQL database and
one Redis, opens `--subscribers` graphql-transport-ws connections split evenly between them,
each subscribed to `ledgerTransactionPosted { id status }`, then posts `--postings`
transactions through process A's /graphql (`--concurrency` at a time). Every posting is
published to Redis after it commits and delivered by both processes to their subscribers, each
of which reads the transaction through the normal loaders (one SQL statement per subscriber
per event). Reported: postings per second, events delivered per second (subscribers x
postings / time from the first posting to the last delivery), delivery latency (posting sent
to result received) p50/p99, and subscribers dropped as too slow (should be 0).

Needs PostgreSQL and Redis. Not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
from sqlalchemy import insert
from websockets.asyncio.client import ClientConnection, connect

from adapters.ledger.engine import create_ledger_engine
from adapters.ledger.tables import ledger_accounts, tenants
from bench.load import read_metrics
from bench.run import _ensure_database, _gateway
from bench.servers import answers_get, running
from bench.targets import global_id

SUBSCRIPTION = "subscription { ledgerTransactionPosted { id status } }"
POST = """mutation Post($input: PostLedgerTransactionInput!) {
  postLedgerTransaction(input: $input) { transactionId }
}"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.subscription_fanout")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DATABASE_URL",
            "postgresql+asyncpg://postgres@127.0.0.1:5432/finance_gateway_bench_live",
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--postings", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--ports", default="8110,8111")
    parser.add_argument("--logs", default="bench/results/subscription-fanout")
    return parser


async def _two_accounts(database_url: str) -> tuple[int, int, int]:
    """(tenant, debit account, credit account): a tenant of this run with two USD accounts."""
    engine = create_ledger_engine(database_url)
    try:
        async with engine.begin() as connection:
            tenant = await connection.scalar(
                insert(tenants)
                .values(name=f"fanout-{uuid.uuid4().hex[:8]}")
                .returning(tenants.c.id)
            )
            accounts = [
                await connection.scalar(
                    insert(ledger_accounts).values(
                        tenant_id=tenant, name=name, currency="USD", currency_exponent=2,
                        normal_balance=normal, debits_must_not_exceed_credits=False,
                        credits_must_not_exceed_debits=False,
                    ).returning(ledger_accounts.c.id)
                )
                for name, normal in (("Cash", "debit"), ("Revenue", "credit"))
            ]  # fmt: skip
    finally:
        await engine.dispose()
    return int(tenant), int(accounts[0]), int(accounts[1])


class _Subscriber:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.received: dict[str, float] = {}
        self.closed: int | None = None

    async def read(self, expected: int) -> None:
        try:
            while len(self.received) < expected:
                message = orjson.loads(await self.connection.recv())
                if message.get("type") == "next":
                    transaction = message["payload"]["data"]["ledgerTransactionPosted"]["id"]
                    self.received[transaction] = time.perf_counter()
        except Exception:  # noqa: BLE001 - a closed connection is reported, not raised
            rcvd = getattr(sys.exc_info()[1], "rcvd", None)
            self.closed = None if rcvd is None else rcvd.code


async def _subscribe(ws_url: str, token: str) -> _Subscriber:
    connection = await connect(
        ws_url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        compression=None,
        proxy=None,
        max_size=None,
    )
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await connection.send(orjson.dumps(init).decode())
    ack = orjson.loads(await connection.recv())
    if ack.get("type") != "connection_ack":
        raise SystemExit(f"not acknowledged: {ack}")
    subscribe = {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}
    await connection.send(orjson.dumps(subscribe).decode())
    return _Subscriber(connection)


async def _wait_started(bases: Sequence[str], counts: Sequence[int]) -> None:
    for base, count in zip(bases, counts, strict=True):
        for _ in range(600):
            started = read_metrics(base + "/metrics").get("gateway_subscriptions_started_total", 0)
            if started >= count:
                break
            await asyncio.sleep(0.05)
        else:
            raise SystemExit(f"{base}: fewer than {count} subscriptions started")


async def _measure(options: argparse.Namespace, bases: list[str], token: str,
                   tenant: int, debit: int, credit: int) -> None:  # fmt: skip
    half = options.subscribers // 2
    counts = [half, options.subscribers - half]
    subscribers = []
    for base, count in zip(bases, counts, strict=True):
        ws_url = base.replace("http://", "ws://") + "/graphql"
        subscribers += [await _subscribe(ws_url, token) for _ in range(count)]
    await _wait_started(bases, counts)
    readers = [asyncio.create_task(s.read(options.postings)) for s in subscribers]

    run = uuid.uuid4().hex[:8]
    sent: dict[str, float] = {}
    entries = [
        {"accountId": global_id("LedgerAccount", debit), "direction": "DEBIT", "amount": "0.01",
         "currency": "USD"},
        {"accountId": global_id("LedgerAccount", credit), "direction": "CREDIT", "amount": "0.01",
         "currency": "USD"},
    ]  # fmt: skip
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(options.postings):
        queue.put_nowait(number)

    async with httpx.AsyncClient(base_url=bases[0], trust_env=False, timeout=30) as http:

        async def poster() -> None:
            while not queue.empty():
                number = queue.get_nowait()
                variables = {"input": {"idempotencyKey": f"fanout-{run}-{number}",
                                       "entries": entries}}  # fmt: skip
                started = time.perf_counter()
                response = await http.post(
                    "/graphql", json={"query": POST, "variables": variables},
                    headers={"authorization": f"Bearer {token}"},
                )  # fmt: skip
                body = response.json()
                if "errors" in body:
                    raise SystemExit(f"posting failed: {body}")
                sent[body["data"]["postLedgerTransaction"]["transactionId"]] = started

        first = time.perf_counter()
        await asyncio.gather(*(poster() for _ in range(options.concurrency)))
        posted = time.perf_counter()
    try:
        async with asyncio.timeout(120):
            await asyncio.gather(*readers)
    except TimeoutError:
        print("some subscribers did not receive every event within 120 s")
    last = max((max(s.received.values(), default=first) for s in subscribers), default=first)
    delivered = sum(len(s.received) for s in subscribers)
    latencies = sorted(
        (at - sent[transaction]) * 1000
        for s in subscribers for transaction, at in s.received.items() if transaction in sent
    )  # fmt: skip
    dropped = [s.closed for s in subscribers if s.closed is not None]
    for subscriber in subscribers:
        await subscriber.connection.close()

    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    print(f"subscribers: {options.subscribers} ({counts[0]} on A, {counts[1]} on B), "
          f"postings: {options.postings} through A, concurrency {options.concurrency}")  # fmt: skip
    print(f"postings/s: {options.postings / (posted - first):.0f}")
    print(f"events delivered: {delivered} of {options.subscribers * options.postings}, "
          f"{delivered / (last - first):.0f} events/s")  # fmt: skip
    if latencies:
        print(f"delivery latency ms: p50 {statistics.median(latencies):.1f}, p99 {p99:.1f}")
    print(f"subscribers disconnected: {len(dropped)} (close codes {sorted(set(dropped))})")


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    ports = [int(port) for port in options.ports.split(",")]
    logs = Path(options.logs)
    env = {
        **os.environ,
        "DATABASE_URL": options.database_url,
        "GATEWAY_ENV": "test",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "API_KEY_PEPPER": secrets.token_urlsafe(48),
        "REDIS_URL": options.redis_url,
        "REDIS_KEY_PREFIX": f"fanout-{uuid.uuid4().hex[:8]}",
        "LOG_LEVEL": "warning",
        "GRAPHIQL": "false",
        "DATABASE_POOL_SIZE": "5",
        "RATE_LIMIT_FIRST_PARTY": str(10**12),
        "SUBSCRIPTION_MAX_CONNECTIONS_PER_CLIENT": str(options.subscribers),
    }
    asyncio.run(_ensure_database(options.database_url))
    _gateway("migrate", env=env)
    tenant, debit, credit = asyncio.run(_two_accounts(options.database_url))
    token = _gateway("token", "--tenant", str(tenant), "--scopes", "ledger:read,ledger:write",
                     env=env)  # fmt: skip
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    with ExitStack() as stack:
        for name, port, base in zip("ab", ports, bases, strict=True):
            stack.enter_context(running(
                [sys.executable, "-m", "gateway", "serve"],
                env=env | {"GATEWAY_PORT": str(port)},
                ready=lambda base=base: answers_get(base + "/readyz"),  # type: ignore[misc]
                log=logs / f"gateway-{name}.log",
            ))  # fmt: skip
        asyncio.run(_measure(options, bases, token, tenant, debit, credit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
