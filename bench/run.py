"""The canonical benchmark, end to end: database, seed, server, wrk, table.

    python -m bench [--peer] [--seconds 10] [--connections 32] ...   (or bench/run.sh, make bench)

Steps: create the PostgreSQL database (DATABASE_URL, default `finance_gateway_bench`) when it is
missing, migrate it, seed `--customers` (10,000) when it is empty, start `gateway serve` (one
process; uvicorn picks uvloop and httptools when installed) in the background, wait for
/readyz, check Q1-Q3 answer real data, then per query: warm up, read /metrics, run wrk, read
/metrics again. With --peer the tuned Strawberry peer of the shared peers folder runs next (on
its own database `bench`), and the table adds gateway/peer ratios. With --url the gateway
already running there is measured instead (nothing is started, migrated or seeded).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from adapters.crypto import DEV_SECRET_KEYRING
from bench.load import WrkResult, ensure_wrk, read_settled_metrics, run_wrk
from bench.servers import answers_get, answers_post, check_answers, running
from bench.targets import OPERATIONS, Targets, ensure_provider_links, find_targets, write_bodies

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/finance_gateway_bench"
DEFAULT_PEERS_DIR = REPO / ".." / "shared" / "peers"
PEER_NAME = "strawberry-tuned"


@dataclass(frozen=True, slots=True)
class _Gateway:
    """How to start and call the gateway under test."""

    env: dict[str, str]
    bodies: dict[str, Path]
    token: str


@dataclass(frozen=True, slots=True)
class Measurement:
    server: str
    query: str
    round: int
    result: WrkResult
    sql_per_request: float | None
    # Q4 only: provider HTTP attempts per request and the read-through cache's hit ratio.
    upstream_per_request: float | None = None
    cache_hit_ratio: float | None = None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--customers", type=int, default=10_000, help="seed size when empty")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--port", type=int, default=8100, help="port for the gateway we start")
    parser.add_argument("--url", help="measure the gateway already running at this base URL")
    parser.add_argument("--seconds", type=int, default=10, help="timed seconds per query")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds per query")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=1, help="repeat all servers; mean shown")
    parser.add_argument("--queries", default="q1,q2,q3", help="any of q1,q2,q3,q4")
    parser.add_argument("--sandbox-latency-ms", type=float, default=50.0,
                        help="Q4: latency added to every provider sandbox call")  # fmt: skip
    parser.add_argument("--peer", action="store_true", help="also run the tuned Strawberry peer")
    parser.add_argument("--peers-dir", type=Path, default=DEFAULT_PEERS_DIR)
    parser.add_argument("--peer-port", type=int, default=4007)
    parser.add_argument("--install-wrk", action="store_true", help="apt-get install wrk if missing")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    return parser


def _say(message: str) -> None:
    print(message, flush=True)


def _gateway(*args: str, env: Mapping[str, str]) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "gateway", *args], env=dict(env), check=True,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    return completed.stdout.strip()


async def _ensure_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = parsed.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        if not await connection.fetchval(
            "select 1 from pg_database where datname = $1", parsed.database
        ):
            _say(f"creating database {parsed.database}")
            await connection.execute(f'create database "{parsed.database}"')
    finally:
        await connection.close()


async def _has_ledger(dsn: str) -> bool:
    try:
        connection = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        return bool(await connection.fetchval("select exists (select 1 from ledger_entries)"))
    except asyncpg.PostgresError:
        return False
    finally:
        await connection.close()


def _measure(
    server: str,
    url: str,
    bodies: Mapping[str, Path],
    token: str | None,
    options: argparse.Namespace,
    round_number: int,
    wrk: str,
    metrics_url: str | None,
) -> list[Measurement]:
    measurements = []
    for name, body in bodies.items():

        def load(seconds: int, body: Path = body) -> WrkResult:
            return run_wrk(wrk, url, body, token=token, seconds=seconds,
                           connections=options.connections, threads=options.threads)  # fmt: skip

        if options.warmup:
            load(options.warmup)
        before = read_settled_metrics(metrics_url) if metrics_url else None
        result = load(options.seconds)
        per_request = upstream = hit_ratio = None
        if metrics_url and before is not None:
            after = read_settled_metrics(metrics_url)
            requests = after["gateway_requests_total"] - before["gateway_requests_total"]
            statements = (
                after["gateway_sql_statements_total"] - before["gateway_sql_statements_total"]
            )
            per_request = statements / requests if requests else None
            upstream, hit_ratio = _provider_figures(before, after, requests)
        measurement = Measurement(server, name, round_number, result, per_request,
                                  upstream, hit_ratio)  # fmt: skip
        measurements.append(measurement)
        _say(f"  {server} {name}: {_line(measurement)}")
    return measurements


def _provider_figures(
    before: Mapping[str, float], after: Mapping[str, float], requests: float
) -> tuple[float | None, float | None]:
    """Upstream attempts per request and cache hit ratio between two /metrics reads."""
    attempts = "gateway_provider_upstream_attempts_total"
    hits, misses = "gateway_provider_cache_hits_total", "gateway_provider_cache_misses_total"
    if attempts not in after or attempts not in before or not requests:
        return None, None
    upstream = (after[attempts] - before[attempts]) / requests
    looked_up = (after[hits] - before[hits]) + (after[misses] - before[misses])
    return upstream, ((after[hits] - before[hits]) / looked_up if looked_up else None)


def _line(m: Measurement) -> str:
    r = m.result
    sql = "-" if m.sql_per_request is None else f"{m.sql_per_request:.2f}"
    line = (
        f"{r.rps:.0f} req/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, non-2xx {r.non2xx},"
        f" socket errors {r.socket_errors}, with errors {r.gql_errors}, SQL/request {sql}"
    )
    if m.query.startswith("q4") and m.upstream_per_request is not None:
        ratio = "-" if m.cache_hit_ratio is None else f"{m.cache_hit_ratio:.2f}"
        line += f", upstream/request {m.upstream_per_request:.2f}, cache hit ratio {ratio}"
    return line


def _gateway_run(
    options: argparse.Namespace,
    wrk: str,
    out: Path,
    round_number: int,
    gateway: _Gateway,
    log: str = "gateway.log",
) -> list[Measurement]:
    env, bodies, token = gateway.env, gateway.bodies, gateway.token
    if options.url:
        base = options.url.rstrip("/")
        if round_number == 1:
            for name, note in check_answers(f"{base}/graphql", bodies, token).items():
                _say(f"  gateway check {name}: {note}")
        return _measure("gateway", f"{base}/graphql", bodies, token, options, round_number, wrk,
                        f"{base}/metrics")  # fmt: skip
    base = f"http://127.0.0.1:{options.port}"
    command = [sys.executable, "-m", "gateway", "serve"]
    with running(command, env=env, ready=lambda: answers_get(f"{base}/readyz"),
                 log=out / log):  # fmt: skip
        if round_number == 1:
            for name, note in check_answers(f"{base}/graphql", bodies, token).items():
                _say(f"  gateway check {name}: {note}")
        return _measure("gateway", f"{base}/graphql", bodies, token, options, round_number, wrk,
                        f"{base}/metrics")  # fmt: skip


def _peer_run(
    options: argparse.Namespace, wrk: str, out: Path, round_number: int, copy: Path, dsn: str
) -> list[Measurement]:
    bodies = {name: copy / "queries" / f"{name}.json" for name in _queries(options)}
    base = f"http://127.0.0.1:{options.peer_port}"
    command = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(copy / "peers" / "python"), "app:app",
        "--host", "127.0.0.1", "--port", str(options.peer_port), "--loop", "uvloop",
        "--http", "httptools", "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_MODE": "tuned", "DATABASE_URL": dsn}
    probe = bodies.get("q3") or next(iter(bodies.values()))
    with running(command, env=env, ready=lambda: answers_post(f"{base}/graphql", probe),
                 log=out / "peer.log"):  # fmt: skip
        if round_number == 1:
            for name, note in check_answers(f"{base}/graphql", bodies, None).items():
                _say(f"  {PEER_NAME} check {name}: {note}")
        return _measure(
            PEER_NAME, f"{base}/graphql", bodies, None, options, round_number, wrk, None
        )


def _queries(options: argparse.Namespace) -> list[str]:
    names = [name.strip() for name in options.queries.split(",") if name.strip()]
    unknown = set(names) - set(OPERATIONS)
    if unknown:
        raise SystemExit(f"unknown queries {sorted(unknown)}; choose from {sorted(OPERATIONS)}")
    return names


def _prepare_peer(options: argparse.Namespace, database_url: str, work: Path) -> tuple[Path, str]:
    source = options.peers_dir.resolve()
    if not (source / "peers" / "python" / "app.py").is_file():
        raise SystemExit(f"no peers at {source} (pass --peers-dir, e.g. ../shared/peers)")
    copy = work / "peers"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("node_modules", ".venv", "results"))
    _check_peer_pins(copy / "peers" / "python" / "requirements.txt")
    parsed = make_url(database_url)
    dsn = parsed.set(drivername="postgresql", database="bench").render_as_string(
        hide_password=False
    )
    if not asyncio.run(_has_ledger(dsn)):
        _say("loading the peers' database `bench` (peers/load.sh)")
        env = {
            **os.environ,
            "PGHOST": parsed.host or "127.0.0.1",
            "PGPORT": str(parsed.port or 5432),
            "PGUSER": parsed.username or "postgres",
        }
        if parsed.password:
            env["PGPASSWORD"] = str(parsed.password)
        subprocess.run(["bash", str(copy / "peers" / "load.sh")], env=env, check=True)
    return copy, dsn


def _check_peer_pins(requirements: Path) -> None:
    """The peer runs on this virtualenv: say so when its pinned versions differ from ours."""
    for line in requirements.read_text().splitlines():
        name, _, pinned = line.partition("==")
        if not pinned or line.startswith("#"):
            continue
        try:
            installed = metadata.version(name.strip())
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != pinned.strip():
            _say(f"  note: peer pins {name.strip()}=={pinned.strip()}, this venv has {installed}")


def _table(measurements: Sequence[Measurement], queries: Sequence[str], latency_ms: float) -> str:
    servers = list(dict.fromkeys(m.server for m in measurements))
    lines = [
        "| server | query | req/s | p50 ms | p99 ms | non-2xx | socket errors | with errors |"
        " SQL/request |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    means: dict[tuple[str, str], float] = {}
    for server in servers:
        for query in queries:
            runs = [m for m in measurements if m.server == server and m.query == query]
            if not runs:
                continue
            rps = statistics.fmean(m.result.rps for m in runs)
            means[server, query] = rps
            sql = [m.sql_per_request for m in runs if m.sql_per_request is not None]
            sql_text = f"{statistics.fmean(sql):.2f}" if sql else "-"
            lines.append(
                f"| {server} | {query} | {rps:.0f}"
                f" | {statistics.fmean(m.result.p50_ms for m in runs):.1f}"
                f" | {statistics.fmean(m.result.p99_ms for m in runs):.1f}"
                f" | {sum(m.result.non2xx for m in runs)}"
                f" | {sum(m.result.socket_errors for m in runs)}"
                f" | {sum(m.result.gql_errors for m in runs)} | {sql_text} |"
            )
    if PEER_NAME in servers and "gateway" in servers:
        lines += [
            "",
            "| query | gateway req/s | peer req/s | gateway/peer |",
            "|---|---:|---:|---:|",
        ]
        for query in queries:
            ours, theirs = means.get(("gateway", query)), means.get((PEER_NAME, query))
            if ours and theirs:
                lines.append(f"| {query} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f} |")
    q4 = [m for m in measurements if m.query.startswith("q4") and m.server == "gateway"]
    if q4:
        lines += [
            "",
            f"Q4 providers (sandboxes in-process, {latency_ms:g} ms added per provider call):",
            "",
            "| query | upstream calls/request | provider cache hit ratio |",
            "|---|---:|---:|",
        ]
        for query in ("q4", "q4-cold"):
            runs = [m for m in q4 if m.query == query and m.upstream_per_request is not None]
            if runs:
                upstream = statistics.fmean(m.upstream_per_request or 0.0 for m in runs)
                ratios = [m.cache_hit_ratio for m in runs if m.cache_hit_ratio is not None]
                ratio = f"{statistics.fmean(ratios):.2f}" if ratios else "-"
                lines.append(f"| {query} | {upstream:.2f} | {ratio} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    queries = _queries(options)
    wrk = ensure_wrk(install=options.install_wrk)
    out = options.results_dir / dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    _say(f"results -> {out}")

    env = {**os.environ, "DATABASE_URL": options.database_url}
    if not options.url:
        # A production-mode server with a secret of this run only (no development defaults).
        env |= {
            "GATEWAY_ENV": "production",
            "JWT_SECRET": secrets.token_urlsafe(48),
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(options.port),
            "LOG_LEVEL": "warning",
            "GRAPHIQL": "false",
            # Q4: provider sandboxes in-process, with a modelled round trip per call.
            "PROVIDERS": "sandbox",
            "SANDBOX_LATENCY_MS": f"{options.sandbox_latency_ms:g}",
            "SECRET_KEYRING": DEV_SECRET_KEYRING,
        }
        asyncio.run(_ensure_database(options.database_url))
        _gateway("migrate", env=env)
        started = time.monotonic()
        _gateway("seed", "--customers", str(options.customers), "--seed", str(options.seed),
                 "--if-empty", env=env)  # fmt: skip
        _say(f"database ready ({time.monotonic() - started:.1f} s for seed-if-empty)")
    targets: Targets = asyncio.run(find_targets(options.database_url))
    _say(
        f"tenant {targets.tenant_id}; Q2 account {targets.account_id}"
        f" ({targets.account_entries} entries); Q3 customer {targets.customer_id}"
    )
    if "q4" in queries:
        asyncio.run(ensure_provider_links(options.database_url, targets))
    bodies = write_bodies(out / "bodies", targets)
    bodies = {name: bodies[name] for name in queries}
    token = _gateway(
        "token", "--tenant", str(targets.tenant_id), "--scopes", "ledger:read", env=env
    )
    gateway = _Gateway(env, bodies, token)

    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="fg-bench-peers-") as work:
        peer = _prepare_peer(options, options.database_url, Path(work)) if options.peer else None
        for round_number in range(1, options.rounds + 1):
            _say(f"== round {round_number}: gateway")
            measurements += _gateway_run(options, wrk, out, round_number, gateway)
            if "q4" in queries and not options.url:
                # Cold: a gateway whose provider cache never holds a fresh entry.
                cold = dataclasses.replace(
                    gateway,
                    env=gateway.env | {"PROVIDER_CACHE_TTL_SECONDS": "0"},
                    bodies={"q4-cold": gateway.bodies["q4"]},
                )
                _say(f"== round {round_number}: gateway, Q4 with a cold provider cache")
                measurements += _gateway_run(options, wrk, out, round_number, cold,
                                             log="gateway-q4-cold.log")  # fmt: skip
            if peer is not None:
                time.sleep(2)
                _say(f"== round {round_number}: {PEER_NAME}")
                measurements += _peer_run(options, wrk, out, round_number, *peer)

    table_queries = [*queries, "q4-cold"] if "q4" in queries else queries
    table = _table(measurements, table_queries, options.sandbox_latency_ms)
    settings = (
        f"{options.connections} connections, {options.threads} wrk threads,"
        f" {options.seconds} s per query after {options.warmup} s warm-up,"
        f" {options.rounds} round(s), {os.cpu_count()} CPUs"
    )
    (out / "table.md").write_text(f"{settings}\n\n{table}\n")
    (out / "results.json").write_text(
        json.dumps(
            {"settings": vars(options) | {"peers_dir": str(options.peers_dir),
                                          "results_dir": str(options.results_dir)},
             "targets": asdict(targets),
             "measurements": [asdict(m) for m in measurements]},
            indent=2,
        )
        + "\n"
    )  # fmt: skip
    _say(f"\n{settings}\n\n{table}")
    return 0
