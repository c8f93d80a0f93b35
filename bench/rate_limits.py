"""Issue 8's rate-limit figures: how exactly two gateway processes on one Redis share a
budget, and how often a client over its budget is refused.

    .venv/bin/python -m bench.rate_limits [--leases 0,1] [--in-flight 1,10,100]

Two `gateway serve` processes (one worker each, production settings) on one Redis
(`--redis-url`) and the benchmark's PostgreSQL database (bench/run.sh seeds it), under a
REDIS_KEY_PREFIX of this run. Every measurement has an analyst API client of its own (its own
budget, `--rate-limit`), and every request is `customers(first: 10)`: 11 points.

- **Shared budget**: 2,000 requests' worth (22,000 points an hour: what refills during a run
  is a few points, and is printed) and twice as many requests sent, by `in-flight` senders
  at once, alternating between the two processes. Printed: the points allowed against the
  budget, what refilled meanwhile, and the charges that reached Redis (the rest were taken
  from leases; once the budget is spent, every refused charge goes to Redis).
- **Over budget**: 1,100 points every 10 s (10 requests a second), spent at once (120
  requests), then 13.5 requests a second for `--seconds`, alternating: the share refused,
  against 1 - 10/13.5.

Each of `--leases` (RATE_LIMIT_LEASE_PERCENT) is measured on its own pair of processes.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import secrets
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from adapters.crypto import DEV_SECRET_KEYRING
from bench.load import read_metrics
from bench.run import DEFAULT_DATABASE_URL, REPO, _ensure_database, _gateway
from bench.servers import answers_get, running
from bench.targets import find_targets

PAGE = "query Page { customers(first: 10) { edges { node { id } } } }"
COST = 11  # the page and its 10 customers (gateway.cost)
SHARED_REQUESTS = 2_000
SHARED_PERIOD = 3_600
OVER_BUDGET_REQUESTS_A_SECOND = 10
OVER_BUDGET_PERIOD = 10
OVER_BUDGET_RATE = 13.5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rate_limits", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--leases", default="0,1", help="RATE_LIMIT_LEASE_PERCENT values")
    parser.add_argument("--in-flight", default="1,10,100", help="senders at once, shared budget")
    parser.add_argument("--seconds", type=float, default=20, help="over-budget sending time")
    parser.add_argument("--port", type=int, default=8110, help="the first process's port")
    return parser


def _client_key(env: Mapping[str, str], tenant: int, rate_limit: int) -> str:
    printed = _gateway(
        "clients", "create", "--tenant", str(tenant), "--name", f"rl-{uuid.uuid4().hex[:8]}",
        "--kind", "analyst", "--scopes", "ledger:read", "--rate-limit", str(rate_limit),
        env=env,
    )  # fmt: skip
    found = re.search(r"^key \(shown once[^:]*: (\S+)$", printed, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no key in `gateway clients create`'s output: {printed!r}")
    return found.group(1)


async def _ask(http: httpx.AsyncClient, url: str, key: str) -> int:
    response = await http.post(
        url, json={"query": PAGE}, headers={"authorization": f"Bearer {key}"}
    )
    if response.status_code not in (200, 429):
        raise SystemExit(f"{url} answered {response.status_code}: {response.text[:300]}")
    return response.status_code


async def _shared_budget(urls: list[str], key: str, in_flight: int) -> tuple[int, float]:
    """(requests allowed, seconds taken) of 2 x SHARED_REQUESTS sent by `in_flight` senders."""
    turns = iter(range(2 * SHARED_REQUESTS))
    allowed = 0

    async def sender(http: httpx.AsyncClient) -> None:
        nonlocal allowed
        for turn in turns:
            status = await _ask(http, urls[turn % 2], key)
            allowed += status == 200  # (after the await: `+=` would read `allowed` before it)

    started = time.monotonic()
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        await asyncio.gather(*(sender(http) for _ in range(in_flight)))
    return allowed, time.monotonic() - started


async def _over_budget(urls: list[str], key: str, seconds: float) -> tuple[int, int]:
    """(requests sent, refused) at OVER_BUDGET_RATE a second once the budget is spent."""
    async with httpx.AsyncClient(timeout=60) as http:
        # More than the budget holds: it is empty when the steady sending starts.
        burst = OVER_BUDGET_REQUESTS_A_SECOND * OVER_BUDGET_PERIOD * 6 // 5
        await asyncio.gather(*(_ask(http, urls[i % 2], key) for i in range(burst)))
        count = int(seconds * OVER_BUDGET_RATE)
        started = time.monotonic()
        pending = []
        for i in range(count):
            delay = started + i / OVER_BUDGET_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.ensure_future(_ask(http, urls[i % 2], key)))
        statuses = await asyncio.gather(*pending)
    return count, sum(status == 429 for status in statuses)


def _counted(urls: list[str], name: str) -> float:
    """`name` summed over both processes' /metrics."""
    return sum(read_metrics(url.replace("/graphql", "/metrics")).get(name, 0.0) for url in urls)


_REDIS_CALLS = "gateway_rate_limit_redis_calls_total"
_FALLBACKS = "gateway_rate_limit_fallbacks_total"


@contextmanager
def _pair(
    port: int, env: Mapping[str, str], lease: float, period: int, out: Path
) -> Iterator[list[str]]:
    """Two gateway processes on `port` and `port + 1`: their /graphql URLs."""
    ports = [port, port + 1]
    with ExitStack() as stack:
        for each in ports:
            stack.enter_context(
                running(
                    [sys.executable, "-m", "gateway", "serve", "--workers", "1"],
                    env={
                        **env,
                        "GATEWAY_PORT": str(each),
                        "RATE_LIMIT_LEASE_PERCENT": f"{lease:g}",
                        "RATE_LIMIT_PERIOD_SECONDS": str(period),
                    },
                    ready=functools.partial(answers_get, f"http://127.0.0.1:{each}/readyz"),
                    log=out / f"gateway-lease-{lease:g}-period-{period}-{each}.log",
                )
            )
        yield [f"http://127.0.0.1:{each}/graphql" for each in ports]


def main(argv: list[str] | None = None) -> None:
    options = _parser().parse_args(argv)
    leases = [float(part) for part in options.leases.split(",")]
    in_flights = [int(part) for part in options.in_flight.split(",")]
    os.environ.setdefault("METRICS_TOKEN", secrets.token_urlsafe(32))
    env = {
        **os.environ,
        "DATABASE_URL": options.database_url,
        "REDIS_URL": options.redis_url,
        "REDIS_KEY_PREFIX": f"bench-rl-{uuid.uuid4().hex[:8]}",
        "GATEWAY_ENV": "production",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "API_KEY_PEPPER": secrets.token_urlsafe(48),
        "SECRET_KEYRING": DEV_SECRET_KEYRING,
        "GATEWAY_HOST": "127.0.0.1",
        "LOG_LEVEL": "warning",
        "GRAPHIQL": "false",
        "RESPONSE_CACHE": "off",
    }
    asyncio.run(_ensure_database(options.database_url))
    _gateway("migrate", env=env)
    _gateway("seed", "--customers", "10000", "--if-empty", env=env)
    tenant = asyncio.run(find_targets(options.database_url)).tenant_id
    out = REPO / "bench" / "results" / f"rate-limits-{time.strftime('%Y%m%d-%H%M%S')}"
    print(
        f"two processes on {options.redis_url}; {COST}-point requests; shared budget"
        f" {SHARED_REQUESTS * COST:,} points an hour, {2 * SHARED_REQUESTS:,} requests sent;"
        f" over budget: {OVER_BUDGET_REQUESTS_A_SECOND * COST * OVER_BUDGET_PERIOD:,} points"
        f" every {OVER_BUDGET_PERIOD} s,"
        f" {OVER_BUDGET_RATE} requests a second for {options.seconds:g} s\n",
        flush=True,
    )
    print("| lease % | in flight | allowed points / budget | refilled meanwhile | Redis calls for"
          " charges allowed + refused | fallbacks |\n|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    over_rows = []
    for lease in leases:
        with _pair(options.port, env, lease, SHARED_PERIOD, out) as urls:
            for in_flight in in_flights:
                budget = SHARED_REQUESTS * COST
                key = _client_key(env, tenant, budget)
                calls, fallbacks = _counted(urls, _REDIS_CALLS), _counted(urls, _FALLBACKS)
                allowed, took = asyncio.run(_shared_budget(urls, key, in_flight))
                calls = _counted(urls, _REDIS_CALLS) - calls
                fallbacks = _counted(urls, _FALLBACKS) - fallbacks
                refilled = took * budget / SHARED_PERIOD
                print(
                    f"| {lease:g} | {in_flight} | {allowed * COST:,} / {budget:,}"
                    f" ({allowed * COST / budget:.3f}) | {refilled:.0f} |"
                    f" {calls:.0f} for {allowed:,} + {2 * SHARED_REQUESTS - allowed:,}"
                    f" | {fallbacks:.0f} |",
                    flush=True,
                )
        with _pair(options.port, env, lease, OVER_BUDGET_PERIOD, out) as urls:
            key = _client_key(
                env, tenant, OVER_BUDGET_REQUESTS_A_SECOND * COST * OVER_BUDGET_PERIOD
            )
            fallbacks = _counted(urls, _FALLBACKS)
            sent, refused = asyncio.run(_over_budget(urls, key, options.seconds))
            over_rows.append((lease, sent, refused, _counted(urls, _FALLBACKS) - fallbacks))
    expected = 1 - OVER_BUDGET_REQUESTS_A_SECOND / OVER_BUDGET_RATE
    print("\n| lease % | sent | refused | share refused | expected | fallbacks |")
    print("|---:|---:|---:|---:|---:|---:|")
    for lease, sent, refused, fallbacks in over_rows:
        print(
            f"| {lease:g} | {sent} | {refused} | {refused / sent:.3f} | {expected:.3f}"
            f" | {fallbacks:.0f} |"
        )


if __name__ == "__main__":
    main()
