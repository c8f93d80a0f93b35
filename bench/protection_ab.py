"""Issue 8's protection overhead, paired and in-process: what cost analysis, rate limits and
the access log each add to one request, without HTTP, wrk or a second process in the way.

    .venv/bin/python -m bench.protection_ab [--query q3] [--rounds 16] [--batch 2000]
        [--with-database] [--opcodes]

One process builds the gateway app five times, each with its own settings (`off`: cost
analysis, rate limits and the access log off; `cost`, `rate`, `access`: one of them on;
`on`: all three), and drives each through its ASGI interface (the POST that wrk sends, the
response consumed) in batches, alternating: every round runs one batch of each. A batch is
timed by the process's CPU time (`time.process_time`), so other programs on the machine
count only through the caches they share. It prints the median microseconds per request of
each setting and its difference from `off`: the overhead of that part alone, measured side by
side with the same data, the same heap and the same moment's machine.

Production settings (`GATEWAY_ENV=production`, a fresh JWT secret), response cache off,
metrics on in all five, the access log written into a temporary file at `LOG_LEVEL=info`.
Each distinct statement is answered once by PostgreSQL and then from memory, so only the
gateway's own Python is counted; `--with-database` sends every statement (asyncpg and the
server on the same cores then count too, and the figures move by more than they measure).

`--opcodes` times nothing: it counts the Python opcodes each setting runs per request (one
batch each, under `sys.settrace`, the access log's delayed flush included) and names the
functions that add the most over `off`. Opcodes are not microseconds (C work and cache misses
are not in them), but they are exact and repeatable on a machine whose timings move by tens
of percent from one minute to the next, so they show whether a change to the hot path did
less work.

Needs the benchmark's database (`bench/run.sh` creates and seeds it; DATABASE_URL as there).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import MutableMapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from adapters.crypto import DEV_SECRET_KEYRING
from bench.targets import find_targets, write_bodies

__all__ = ["SETTINGS", "main"]

_REPO = str(Path(__file__).resolve().parent.parent)
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/finance_gateway_bench"
_OFF = {"RATE_LIMITS": "off", "COST_ANALYSIS": "off", "ACCESS_LOG": "off"}
# Each setting's variables over the common ones; `off` last: the others are read against it.
SETTINGS: dict[str, dict[str, str]] = {
    "on": {"RATE_LIMITS": "on", "COST_ANALYSIS": "on", "ACCESS_LOG": "on"},
    "cost": _OFF | {"COST_ANALYSIS": "on"},
    "rate": _OFF | {"RATE_LIMITS": "on"},
    "access": _OFF | {"ACCESS_LOG": "on"},
    "off": _OFF,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.protection_ab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--query", default="q3", help="q1, q2 or q3 (bench/queries)")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2000, help="requests per batch")
    parser.add_argument(
        "--opcodes",
        action="store_true",
        help="count the Python opcodes of one batch per setting instead of timing (exact and"
        " repeatable: no other program moves it), with the functions that add the most",
    )
    parser.add_argument(
        "--with-database",
        action="store_true",
        help="every statement to PostgreSQL (asyncpg and the server counted too; noisier)",
    )
    return parser


def _stub_database() -> None:
    """Each distinct statement answered once by PostgreSQL, then from memory."""
    from adapters.read_pool import ReadPool

    fetch = ReadPool.fetchval
    answers: dict[tuple[str, tuple[Any, ...]], Any] = {}

    async def remembered(self: ReadPool, sql: str, *arguments: Any, **options: Any) -> Any:
        key = (sql, arguments)
        if key not in answers:
            answers[key] = await fetch(self, sql, *arguments, **options)
        return answers[key]

    ReadPool.fetchval = remembered  # type: ignore[method-assign]


async def _run(
    options: argparse.Namespace, log: Path, opcodes: dict[str, Counter[str]]
) -> dict[str, list[float]]:
    """Each setting's CPU microseconds per request, batch by batch; with `--opcodes`, no
    timing: each setting's opcodes per request by function, into `opcodes`."""
    from gateway.app import create_app
    from gateway.auth import mint_token
    from gateway.json_logs import configure_logging
    from gateway.settings import load_settings

    targets = await find_targets(options.database_url)
    body = write_bodies(log.parent / "bodies", targets)[options.query].read_bytes()
    common = {
        **os.environ,
        "GATEWAY_ENV": "production",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "API_KEY_PEPPER": secrets.token_urlsafe(48),
        "DATABASE_URL": options.database_url,
        "SECRET_KEYRING": DEV_SECRET_KEYRING,
        "RESPONSE_CACHE": "off",
        "GRAPHIQL": "false",
        "PROVIDERS": "sandbox",
        "LOG_LEVEL": "info",
        "RATE_LIMIT_FIRST_PARTY": str(10**12),  # never spent: every request is charged
    }
    apps = {name: create_app(load_settings(common | extra, require_environment=True))
            for name, extra in SETTINGS.items()}  # fmt: skip
    stream = log.open("w")
    sys.stderr = stream  # configure_logging's JSON handler writes to sys.stderr: the file
    try:
        configure_logging("info", "json")
    finally:
        sys.stderr = sys.__stderr__
    token = mint_token(load_settings(common, require_environment=True),
                       tenant_id=targets.tenant_id, scopes=["ledger:read"])  # fmt: skip
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"accept", b"application/json"),
                    (b"authorization", f"Bearer {token}".encode()),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    statuses: set[int] = set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    times: dict[str, list[float]] = {name: [] for name in apps}
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        for app in apps.values():  # warm-up: plans, caches, pools
            for _ in range(options.batch):
                await app(dict(scope), receive, send)
        if options.opcodes:  # one batch per setting, counted
            for name, app in apps.items():
                counter = _OpcodeCount()
                sys.settrace(counter)
                try:
                    for _ in range(options.batch):
                        await app(dict(scope), receive, send)
                    await asyncio.sleep(0.1)  # the access log's delayed flush: counted too
                finally:
                    sys.settrace(None)
                opcodes[name] = counter.per_function(options.batch)
        else:  # rounds of one batch per setting, timed
            for _ in range(options.rounds):
                for name, app in apps.items():
                    started = time.process_time()
                    for _ in range(options.batch):
                        await app(dict(scope), receive, send)
                    times[name].append((time.process_time() - started) / options.batch * 1e6)
    stream.close()
    if statuses != {200}:
        raise SystemExit(f"answers other than 200: {sorted(statuses)}")
    return times


class _OpcodeCount:
    """A `sys.settrace` function counting the opcodes each Python function runs."""

    def __init__(self) -> None:
        self._counts: Counter[CodeType] = Counter()

    def __call__(self, frame: FrameType, event: str, arg: object) -> _OpcodeCount:
        frame.f_trace_lines = False
        frame.f_trace_opcodes = True
        if event == "opcode":
            self._counts[frame.f_code] += 1
        return self

    def per_function(self, requests: int) -> Counter[str]:
        """Opcodes per request by `path:function` (paths from the repository or the
        installed packages)."""
        named: Counter[str] = Counter()
        for code, count in self._counts.items():
            path = code.co_filename.split("site-packages/")[-1].removeprefix(f"{_REPO}/")
            named[f"{path}:{code.co_qualname}"] += count
        return Counter({name: count / requests for name, count in named.items()})


def _print_opcodes(query: str, batch: int, opcodes: dict[str, Counter[str]]) -> None:
    base = opcodes["off"]
    print(f"{query}, {batch} requests per setting; Python opcodes per request\n")
    print("| setting | opcodes | vs off | adding most (opcodes per request) |")
    print("|---|---:|---:|---|")
    for name, counts in opcodes.items():
        added = Counter({key: counts[key] - base[key] for key in counts.keys() | base.keys()})
        most = ", ".join(f"{key} {value:+.0f}" for key, value in added.most_common(6)
                         if value >= 1)  # fmt: skip
        total = sum(counts.values())
        print(f"| {name} | {total:.0f} | {total - sum(base.values()):+.0f} | {most} |")


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    if not options.with_database:
        _stub_database()
    opcodes: dict[str, Counter[str]] = {}
    with tempfile.TemporaryDirectory(prefix="protection-ab-") as directory:
        log = Path(directory) / "access.log"
        times = asyncio.run(_run(options, log, opcodes))
    if options.opcodes:
        _print_opcodes(options.query, options.batch, opcodes)
        return 0
    base = statistics.median(times["off"])
    stubbed = "" if options.with_database else ", statements answered from memory"
    print(f"{options.query}, {options.rounds} rounds of {options.batch} requests per setting"
          f"{stubbed}; CPU us per request\n")  # fmt: skip
    print("| setting | median us | min us | vs off |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {min(values):.2f} | {median - base:+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
