"""Adyen webhook ingest: notifications per second with signature checks, and what a burst of
10,000 does to read latency.

    .venv/bin/python -m bench.adyen_ingest [--database-url URL] [--notifications 20000]
                                           [--burst 10000] [--concurrency 8] [--batch-size 10]

Against a real `gateway serve` (production mode, one worker, PostgreSQL; the Stripe and Plaid
sandboxes in-process, Adyen configured with a merchant account, an HMAC key and webhook
credentials). Its own database (`finance_gateway_bench_adyen` by default): migrated, given a
tenant with 200 customers when empty, each linked to an Adyen shopper.

1. Sustained ingest: `--notifications` signed items (payment lives: AUTHORISATION, CAPTURE,
   sometimes REFUND or CHARGEBACK), POSTed in batches of `--batch-size` by `--concurrency`
   senders, as Adyen does; every answer must be `[accepted]`. Prints items/s and requests/s.
2. Read latency: one client reads `customers(first: 20) { cardPayments(first: 10) ... }`
   (both processors merged) back to back for a few seconds: p50/p99 at rest; then again while
   a burst of `--burst` items is sent at once (one item per request, `--concurrency` x 4
   senders): p50/p99 during the burst and how long the burst took.

Not a test: nothing here asserts a speed. Figures go to bench/README.md by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from adapters.ledger.engine import create_ledger_engine
from adapters.ledger.tables import customers as customer_table
from adapters.ledger.tables import tenants
from adapters.providers.tables import provider_links
from adapters.sandbox.adyen_app import SANDBOX_HMAC_KEY, AdyenSandbox
from bench.run import _ensure_database, _gateway
from bench.servers import answers_get, running

ACCOUNT = "BenchMerchant"
USER, PASSWORD = "bench-adyen", secrets.token_urlsafe(16)
READ = """{ customers(first: 20) { edges { node { cardPayments(first: 10) {
  edges { node { processorId provider status createdAt amount { amount currency } } }
  pageInfo { hasNextPage } } } } } }"""
LIVES = (
    ("AUTHORISATION", "CAPTURE"),
    ("AUTHORISATION", "CAPTURE", "REFUND"),
    ("AUTHORISATION", "CAPTURE", "CHARGEBACK"),
    ("AUTHORISATION", "CANCELLATION"),
)


async def _prepare(database_url: str) -> tuple[int, list[str]]:
    """The tenant with the most customers and its shoppers (created and linked once; no ledger
    data: the read under test is the card payments field)."""
    engine = create_ledger_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            if not await connection.scalar(text("select count(*) from customers")):
                tenant = (
                    await connection.execute(
                        tenants.insert().values(name="adyen-bench").returning(tenants.c.id)
                    )
                ).scalar_one()
                await connection.execute(
                    customer_table.insert(),
                    [
                        {
                            "tenant_id": tenant,
                            "kind": "individual",
                            "display_name": f"Bench {n}",
                            "email": None,
                            "metadata": {},
                        }
                        for n in range(200)
                    ],
                )
            tenant = await connection.scalar(
                text(
                    "select tenant_id from customers group by tenant_id"
                    " order by count(*) desc limit 1"
                )
            )
            customers = list(
                await connection.scalars(
                    text("select id from customers where tenant_id = :t order by id limit 200"),
                    {"t": tenant},
                )
            )
            linked = set(
                await connection.scalars(
                    text(
                        "select customer_id from provider_links where tenant_id = :t"
                        " and provider = 'adyen'"
                    ),
                    {"t": tenant},
                )
            )
            missing = [c for c in customers if c not in linked]
            if missing:
                await connection.execute(
                    provider_links.insert(),
                    [
                        {
                            "tenant_id": tenant,
                            "customer_id": c,
                            "provider": "adyen",
                            "kind": "cards",
                            "external_id": f"bench-shopper-{c}",
                        }
                        for c in missing
                    ],
                )
    finally:
        await engine.dispose()
    return int(tenant), [f"bench-shopper-{c}" for c in customers]


def _items(sandbox: AdyenSandbox, shoppers: list[str], count: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    number = 0
    while len(items) < count:
        life = LIVES[number % len(LIVES)]
        items += sandbox.payment(
            shoppers[number % len(shoppers)], amount=1000 + number, events=life
        )[1]
        number += 1
    return items[:count]


async def _send(
    client: httpx.AsyncClient, url: str, bodies: list[dict[str, Any]], concurrency: int
) -> float:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def sender() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            response = await client.post(url, json=body, auth=(USER, PASSWORD))
            if response.text != "[accepted]":
                raise SystemExit(f"webhook answered {response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _reads(
    client: httpx.AsyncClient, url: str, token: str, stop: asyncio.Event, seconds: float
) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while not stop.is_set() and time.perf_counter() < deadline:
        started = time.perf_counter()
        response = await client.post(
            url, json={"query": READ}, headers={"Authorization": f"Bearer {token}"}
        )
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or "errors" in response.json():
            raise SystemExit(f"read failed: {response.text[:300]}")
    return latencies


def _percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    cuts = statistics.quantiles(values, n=100)
    return f"p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms ({len(values)} reads)"


async def _bench(options: argparse.Namespace, base: str, token: str, shoppers: list[str]) -> None:
    sandbox = AdyenSandbox(merchant_account=ACCOUNT, username=USER, password=PASSWORD)
    webhook, graphql = f"{base}/webhooks/adyen", f"{base}/graphql"
    limits = httpx.Limits(max_connections=256)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        items = _items(sandbox, shoppers, options.notifications)
        bodies = sandbox.batches(items, options.batch_size)
        elapsed = await _send(client, webhook, bodies, options.concurrency)
        print(
            f"sustained: {len(items)} notifications in {len(bodies)} deliveries "
            f"(batches of {options.batch_size}, {options.concurrency} senders) in "
            f"{elapsed:.1f} s: {len(items) / elapsed:.0f} notifications/s, "
            f"{len(bodies) / elapsed:.0f} deliveries/s"
        )

        rest = await _reads(client, graphql, token, asyncio.Event(), options.read_seconds)
        print(f"reads at rest: {_percentiles(rest)}")
        burst = sandbox.batches(_items(sandbox, shoppers, options.burst), 1)
        stop = asyncio.Event()
        reader = asyncio.create_task(_reads(client, graphql, token, stop, 3600))
        took = await _send(client, webhook, burst, options.concurrency * 4)
        stop.set()
        during = await reader
        print(
            f"burst: {options.burst} notifications (one per delivery, "
            f"{options.concurrency * 4} senders) in {took:.1f} s "
            f"({options.burst / took:.0f}/s); reads during it: {_percentiles(during)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.adyen_ingest")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DATABASE_URL",
            "postgresql+asyncpg://postgres@127.0.0.1:5432/finance_gateway_bench_adyen",
        ),
    )
    parser.add_argument("--notifications", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--read-seconds", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=8110)
    parser.add_argument("--log", type=Path, default=Path("bench/results/adyen-gateway.log"))
    options = parser.parse_args(argv)
    env = {
        **os.environ,
        "DATABASE_URL": options.database_url,
        "GATEWAY_ENV": "production",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "API_KEY_PEPPER": secrets.token_urlsafe(48),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(options.port),
        "LOG_LEVEL": "warning",
        "GRAPHIQL": "false",
        "RATE_LIMIT_FIRST_PARTY": str(10**12),
        "PROVIDERS": "sandbox",
        "DATABASE_POOL_SIZE": os.environ.get("DATABASE_POOL_SIZE", "8"),
    }
    asyncio.run(_ensure_database(options.database_url))
    _gateway("migrate", env=env)
    tenant, shoppers = asyncio.run(_prepare(options.database_url))
    env |= {
        "ADYEN_MERCHANT_ACCOUNTS": f"{ACCOUNT}={tenant}",
        "ADYEN_HMAC_KEYS": SANDBOX_HMAC_KEY,
        "ADYEN_WEBHOOK_USERNAME": USER,
        "ADYEN_WEBHOOK_PASSWORD": PASSWORD,
    }
    token = _gateway(
        "token", "--tenant", str(tenant), "--scopes", "ledger:read,providers:read", env=env
    )
    base = f"http://127.0.0.1:{options.port}"
    command = [sys.executable, "-m", "gateway", "serve", "--workers", "1"]
    with running(command, env=env, ready=lambda: answers_get(f"{base}/readyz"), log=options.log):
        asyncio.run(_bench(options, base, token, shoppers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
