"""The canonical benchmark, end to end: database, seed, servers, wrk, tables.

    python -m bench [--peers issue] [--workers 1,2] [--seconds 10] ...   (or bench/run.sh)

Steps: create the PostgreSQL database (DATABASE_URL, default `finance_gateway_bench`) when it is
missing, migrate it, seed `--customers` (10,000) when it is empty, then per gateway setting
(`--workers` x `--response-cache`) start `gateway serve --workers N` in the background, wait for
/readyz, check the queries answer real data, and per query: warm up, read /metrics, run wrk,
read /metrics again. With --peers the peers of the shared peers folder run next, one at a time
(on their own database `bench`, Q1-Q3 only), and the tables add gateway/peer ratios. With --url
the gateway already running there is measured instead (nothing is started, migrated or seeded).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from adapters.crypto import DEV_SECRET_KEYRING
from bench.load import (
    Workload,
    WrkResult,
    ensure_wrk,
    read_settled_metrics,
    response_cache_counts,
    run_wrk,
)
from bench.peers import Peer, PeerRuntime, parse_peers, prepare_peers
from bench.servers import answers_get, answers_post, check_answers, post, running
from bench.targets import (
    ANALYST_QUERIES,
    MIXED,
    OPERATIONS,
    Targets,
    ensure_provider_links,
    find_posting_pairs,
    find_targets,
    write_bodies,
    write_posting_bodies,
)

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/finance_gateway_bench"
DEFAULT_PEERS_DIR = REPO.parent / "shared" / "peers"
DEFAULT_PEERS_WORK = REPO / "var" / "peers"
RATIO_QUERIES = ("q1", "q2", "q3")  # what the peers serve


@dataclass(frozen=True, slots=True)
class Setting:
    """One way of serving the gateway: worker processes, the response cache, and whether cost
    analysis, rate limits and the access log are on (`protection`, issue 8's overhead)."""

    workers: int = 1
    response_cache: str | None = None  # RESPONSE_CACHE=on|off; None leaves it unset
    protection: str | None = None  # on|off; None: the gateway's defaults, access log quiet

    @property
    def label(self) -> str:
        cache = "" if self.response_cache is None else f" cache {self.response_cache}"
        protection = "" if self.protection is None else f" protection {self.protection}"
        return f"gateway w{self.workers}{cache}{protection}"

    @property
    def env(self) -> dict[str, str]:
        """The gateway's environment for this setting, over the benchmark's own."""
        env = {} if self.response_cache is None else {"RESPONSE_CACHE": self.response_cache}
        if self.protection == "on":
            # Everything on, the access log written (one JSON line per request to the log file).
            env |= {"RATE_LIMITS": "on", "COST_ANALYSIS": "on", "ACCESS_LOG": "on",
                    "LOG_LEVEL": "info"}  # fmt: skip
        elif self.protection == "off":
            env |= {"RATE_LIMITS": "off", "COST_ANALYSIS": "off", "ACCESS_LOG": "off"}
        return env


@dataclass(frozen=True, slots=True)
class _Gateway:
    """How to start and call the gateway under test."""

    env: dict[str, str]
    workloads: dict[str, Path | Workload]
    tokens: dict[str, str]
    setting: Setting = Setting()


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
    # The response cache's hits / (hits + misses), when the gateway exposes the counters.
    response_cache_hit_ratio: float | None = None


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
    parser.add_argument(
        "--analyst-connections",
        type=int,
        default=1,
        help="wrk connections for q6 and q7 (default 1: their latency alone; a request takes"
        " a second or more, so at 32 connections each would queue past wrk's 10 s timeout)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat all servers; mean shown")
    parser.add_argument(
        "--queries",
        default="q1,q2,q3",
        help="any of q1..q7, e1, e100 (q5: 10 %% postings mixed into Q1/Q2 reads; q6: a month's"
        " ledgerSummary, q7: a year of daily balanceHistory of 50 accounts; e1/e100:"
        " Federation's _entities with 1 and 100 customer representations; q6-e100 gateway only)",
    )
    parser.add_argument(
        "--sandbox-latency-ms",
        type=float,
        default=50.0,
        help="Q4: latency added to every provider sandbox call",
    )
    parser.add_argument(
        "--workers",
        default="1",
        help="gateway serve --workers N; a list (1,2) runs each and reports the best",
    )
    parser.add_argument(
        "--response-cache",
        default="off,on",
        help="RESPONSE_CACHE for the gateway: off, on, or off,on (each a run);"
        " 'unset' leaves the environment alone",
    )
    parser.add_argument(
        "--protection",
        default="default",
        help="on, off, or on,off (each a run, alternating within a round): 'off' turns cost"
        " analysis, rate limits and the access log off; 'on' turns them on with the access log"
        " written (LOG_LEVEL=info); the report then gives the overhead of 'on' over 'off'",
    )
    parser.add_argument(
        "--compiled-operations",
        choices=["on", "off"],
        help="COMPILED_OPERATIONS for the gateway (default: its own default)",
    )
    parser.add_argument(
        "--peers",
        default="",
        help="peers to run beside the gateway (Q1-Q3 only): names from"
        " ../shared/peers (mercurius, postgraphile, py-sqljson,"
        " strawberry-tuned, yoga, apollo, mercurius-nojit, py-static), or"
        " 'issue' (mercurius,postgraphile,py-sqljson) or 'all'",
    )
    parser.add_argument(
        "--peer",
        action="store_true",
        help="also run the tuned Strawberry peer (same as --peers strawberry-tuned)",
    )
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=DEFAULT_PEERS_DIR,
        help="the shared peers folder (read-only; copied)",
    )
    parser.add_argument(
        "--peers-work",
        type=Path,
        default=DEFAULT_PEERS_WORK,
        help="writable copy of the peers, with their installs (kept between runs)",
    )
    parser.add_argument("--install-wrk", action="store_true", help="apt-get install wrk if missing")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    return parser  # fmt: skip


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


def _measure(
    server: str,
    url: str,
    workloads: Mapping[str, Path | Workload],
    tokens: Mapping[str, str | None],
    options: argparse.Namespace,
    round_number: int,
    wrk: str,
    metrics_url: str | None,
    processes: int = 1,
) -> list[Measurement]:
    measurements = []
    for name, workload in workloads.items():
        token = tokens.get(name)
        connections = (
            options.analyst_connections if name in ANALYST_QUERIES else options.connections
        )

        def load(
            seconds: int,
            workload: Path | Workload = workload,
            token: str | None = token,
            connections: int = connections,
        ) -> WrkResult:
            return run_wrk(wrk, url, workload, token=token, seconds=seconds,
                           connections=connections,
                           threads=min(options.threads, connections))  # fmt: skip

        if options.warmup:
            load(options.warmup)
        read = partial(read_settled_metrics, processes=processes)
        before = read(metrics_url) if metrics_url else None
        result = load(options.seconds)
        per_request = upstream = hit_ratio = response_hits = None
        if metrics_url and before is not None:
            after = read(metrics_url)
            if after.get("processes") != before.get("processes"):
                _say("  note: not every worker answered /metrics: no counts for this run")
            else:
                requests = after["gateway_requests_total"] - before["gateway_requests_total"]
                statements = (
                    after["gateway_sql_statements_total"] - before["gateway_sql_statements_total"]
                )
                per_request = statements / requests if requests else None
                upstream, hit_ratio = _provider_figures(before, after, requests)
                response_hits = _response_cache_ratio(before, after)
        measurement = Measurement(server, name, round_number, result, per_request,
                                  upstream, hit_ratio, response_hits)  # fmt: skip
        measurements.append(measurement)
        _say(f"  {server} {name}: {_line(measurement)}")
    return measurements


def _response_cache_ratio(before: Mapping[str, float], after: Mapping[str, float]) -> float | None:
    """Response-cache hits / (hits + misses) between two /metrics reads, when exposed."""
    first, last = response_cache_counts(before), response_cache_counts(after)
    if first is None or last is None:
        return None
    hits, misses = last[0] - first[0], last[1] - first[1]
    return hits / (hits + misses) if hits + misses else None


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
        f"{_rate(r.rps)} req/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, non-2xx {r.non2xx},"
        f" socket errors {r.socket_errors}, with errors {r.gql_errors}, SQL/request {sql}"
    )
    if m.response_cache_hit_ratio is not None:
        line += f", response cache hit ratio {m.response_cache_hit_ratio:.2f}"
    if m.query.startswith("q4") and m.upstream_per_request is not None:
        ratio = "-" if m.cache_hit_ratio is None else f"{m.cache_hit_ratio:.2f}"
        line += f", upstream/request {m.upstream_per_request:.2f}, cache hit ratio {ratio}"
    return line


def _check_gateway(url: str, gateway: _Gateway) -> None:
    """Send each query once and print what came back (Q5: one posting of its mix)."""
    simple = {name: w for name, w in gateway.workloads.items() if isinstance(w, Path)}
    for name, body in simple.items():
        note = check_answers(url, {name: body}, gateway.tokens[name])[name]
        _say(f"  gateway check {name}: {note}")
    mixed = gateway.workloads.get(MIXED)
    if isinstance(mixed, Workload) and mixed.writes:
        template = mixed.writes[0].read_text()
        key = f"bench-check-{time.time_ns():x}"
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            handle.write(template.replace("@KEY@", key))
        try:
            status, raw = post(url, Path(handle.name), gateway.tokens[MIXED])
        finally:
            Path(handle.name).unlink()
        answer = json.loads(raw) if status == 200 else {}
        payload = (answer.get("data") or {}).get("postLedgerTransaction")
        note = (
            f"ok: posted transaction {payload['transaction']['id']}"
            if payload and not answer.get("errors")
            else f"HTTP {status}: {raw[:300]!r}"
        )
        _say(f"  gateway check {MIXED} posting: {note}")


def _gateway_run(
    options: argparse.Namespace,
    wrk: str,
    out: Path,
    round_number: int,
    gateway: _Gateway,
    log: str | None = None,
) -> list[Measurement]:
    env, setting = gateway.env, gateway.setting
    if options.url:
        base = options.url.rstrip("/")
        if round_number == 1:
            _check_gateway(f"{base}/graphql", gateway)
        return _measure("gateway", f"{base}/graphql", gateway.workloads, gateway.tokens, options,
                        round_number, wrk, f"{base}/metrics")  # fmt: skip
    base = f"http://127.0.0.1:{options.port}"
    command = [sys.executable, "-m", "gateway", "serve", "--workers", str(setting.workers)]
    log_name = log or f"{setting.label.replace(' ', '-')}.log"
    with running(command, env=env, ready=lambda: answers_get(f"{base}/readyz"),
                 log=out / log_name):  # fmt: skip
        if round_number == 1:
            _check_gateway(f"{base}/graphql", gateway)
        return _measure(setting.label, f"{base}/graphql", gateway.workloads, gateway.tokens,
                        options, round_number, wrk, f"{base}/metrics",
                        processes=setting.workers)  # fmt: skip


def _peer_run(
    options: argparse.Namespace,
    wrk: str,
    out: Path,
    round_number: int,
    runtime: PeerRuntime,
    peer: Peer,
) -> list[Measurement]:
    bodies = peer.bodies(runtime.copy, _queries(options))
    if not bodies:
        return []
    base = f"http://127.0.0.1:{peer.port}"
    command, cwd = peer.command(runtime.copy)
    env = {**runtime.env, **peer.env, "PORT": str(peer.port)}
    probe = next(iter(bodies.values()))
    with running(command, env=env, cwd=cwd, ready=lambda: answers_post(f"{base}/graphql", probe),
                 log=out / f"peer-{peer.name}.log"):  # fmt: skip
        if round_number == 1:
            ok, report = runtime.verify(peer)
            (out / f"verify-{peer.name}.txt").write_text(report + "\n")
            summary = "; ".join(report.splitlines())
            _say(f"  {peer.name} verify: {'ok' if ok else 'WRONG DATA'} ({summary})")
            if not ok:
                _say(f"  {peer.name} answers differ from the reference: not timed")
                return []
        return _measure(peer.name, f"{base}/graphql", bodies, {}, options, round_number, wrk,
                        None)  # fmt: skip


def _queries(options: argparse.Namespace) -> list[str]:
    names = [name.strip() for name in options.queries.split(",") if name.strip()]
    unknown = set(names) - {*OPERATIONS, MIXED}
    if unknown:
        choices = sorted({*OPERATIONS, MIXED})
        raise SystemExit(f"unknown queries {sorted(unknown)}; choose from {choices}")
    return names


def _settings(options: argparse.Namespace) -> list[Setting]:
    try:
        workers = [int(item) for item in options.workers.split(",") if item.strip()]
    except ValueError:
        raise SystemExit(f"--workers takes numbers, e.g. 1 or 1,2: {options.workers!r}") from None
    if not workers or min(workers) < 1:
        raise SystemExit("--workers needs at least one number >= 1")
    caches: list[str | None] = []
    for item in (part.strip() for part in options.response_cache.split(",")):
        if item in ("on", "off"):
            caches.append(item)
        elif item in ("unset", ""):
            caches.append(None)
        else:
            raise SystemExit(f"--response-cache takes on, off or unset: {item!r}")
    protections: list[str | None] = []
    for item in (part.strip() for part in options.protection.split(",")):
        if item in ("on", "off"):
            protections.append(item)
        elif item in ("default", ""):
            protections.append(None)
        else:
            raise SystemExit(f"--protection takes on, off or default: {item!r}")
    return [
        Setting(w, c, p)
        for c in dict.fromkeys(caches)
        for w in dict.fromkeys(workers)
        for p in dict.fromkeys(protections)
    ]


def _rate(rps: float) -> str:
    """Requests per second: a decimal below 10 (the analysts' queries run about one a second)."""
    return f"{rps:.1f}" if rps < 10 else f"{rps:.0f}"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.fmean(present) if present else None


def _table(measurements: Sequence[Measurement], queries: Sequence[str], latency_ms: float) -> str:
    servers = list(dict.fromkeys(m.server for m in measurements))
    lines = [
        "| server | query | req/s | p50 ms | p99 ms | non-2xx | socket errors | with errors |"
        " SQL/request | response cache hit ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rps: dict[tuple[str, str], float] = {}
    p99: dict[tuple[str, str], float] = {}
    p50: dict[tuple[str, str], float] = {}
    for server in servers:
        for query in queries:
            runs = [m for m in measurements if m.server == server and m.query == query]
            if not runs:
                continue
            rps[server, query] = statistics.fmean(m.result.rps for m in runs)
            p99[server, query] = statistics.fmean(m.result.p99_ms for m in runs)
            p50[server, query] = statistics.fmean(m.result.p50_ms for m in runs)
            lines.append(
                f"| {server} | {query} | {_rate(rps[server, query])}"
                f" | {p50[server, query]:.1f}"
                f" | {p99[server, query]:.1f}"
                f" | {sum(m.result.non2xx for m in runs)}"
                f" | {sum(m.result.socket_errors for m in runs)}"
                f" | {sum(m.result.gql_errors for m in runs)}"
                f" | {_fmt(_mean([m.sql_per_request for m in runs]))}"
                f" | {_fmt(_mean([m.response_cache_hit_ratio for m in runs]))} |"
            )
    gateways = [server for server in servers if server.startswith("gateway")]
    peers = [server for server in servers if not server.startswith("gateway")]
    ratio_queries = [query for query in queries if query in RATIO_QUERIES]
    if gateways and peers and ratio_queries:
        lines += [
            "",
            "Ratios, gateway / peer (same run): req/s ratio, then p99 ratio (below 1: lower p99).",
            "",
            "| gateway | query | req/s | p99 ms |"
            + "".join(f" req/s vs {peer} | p99 vs {peer} |" for peer in peers),
            "|---|---|---:|---:|" + "---:|---:|" * len(peers),
        ]
        for gateway in gateways:
            for query in ratio_queries:
                if (gateway, query) not in rps:
                    continue
                cells = []
                for peer in peers:
                    theirs, their_p99 = rps.get((peer, query)), p99.get((peer, query))
                    cells.append(f"{rps[gateway, query] / theirs:.2f}" if theirs else "-")
                    cells.append(f"{p99[gateway, query] / their_p99:.2f}" if their_p99 else "-")
                lines.append(
                    f"| {gateway} | {query} | {rps[gateway, query]:.0f}"
                    f" | {p99[gateway, query]:.1f} | " + " | ".join(cells) + " |"
                )
    lines += _best_workers(gateways, queries, rps)
    lines += _overhead(gateways, queries, rps, p50)
    q4 = [m for m in measurements if m.query.startswith("q4") and m.server.startswith("gateway")]
    if q4:
        lines += [
            "",
            f"Q4 providers (sandboxes in-process, {latency_ms:g} ms added per provider call):",
            "",
            "| server | query | upstream calls/request | provider cache hit ratio |",
            "|---|---|---:|---:|",
        ]
        for server in dict.fromkeys(m.server for m in q4):
            for query in ("q4", "q4-cold"):
                runs = [m for m in q4 if m.server == server and m.query == query]
                upstream = _mean([m.upstream_per_request for m in runs])
                if upstream is not None:
                    ratio = _fmt(_mean([m.cache_hit_ratio for m in runs]))
                    lines.append(f"| {server} | {query} | {upstream:.2f} | {ratio} |")
    return "\n".join(lines)


def _best_workers(
    gateways: Sequence[str], queries: Sequence[str], rps: Mapping[tuple[str, str], float]
) -> list[str]:
    """With several --workers settings: the best per query and response-cache setting."""
    groups: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for gateway in gateways:
        workers, _, cache = gateway.removeprefix("gateway w").partition(" ")
        for query in queries:
            if (gateway, query) in rps:
                groups.setdefault((cache, query), []).append((rps[gateway, query], workers))
    if not any(len(runs) > 1 for runs in groups.values()):
        return []
    lines = ["", "Best `--workers` per query (req/s with each worker count):", ""]
    for (cache, query), runs in groups.items():
        best = max(runs)
        each = ", ".join(f"{w}: {r:.0f}" for r, w in runs)
        lines.append(f"- {query}{' ' + cache if cache else ''}: {best[1]} workers ({each})")
    return lines


def _overhead(
    gateways: Sequence[str],
    queries: Sequence[str],
    rps: Mapping[tuple[str, str], float],
    p50: Mapping[tuple[str, str], float],
) -> list[str]:
    """With --protection on,off: what cost analysis, rate limits and the access log add to a
    request's time (the same setting otherwise, the same run)."""
    rows = []
    for on in gateways:
        if not on.endswith(" protection on"):
            continue
        off = on.removesuffix(" on") + " off"
        setting = on.removesuffix(" protection on")
        for query in queries:
            if (on, query) in rps and (off, query) in rps:
                # Time per request at saturation is 1/throughput: on's over off's, less one.
                extra = rps[off, query] / rps[on, query] - 1
                rows.append(
                    f"| {setting} | {query} | {rps[on, query]:.0f} | {rps[off, query]:.0f}"
                    f" | {p50[on, query]:.1f} | {p50[off, query]:.1f} | {extra * 100:+.1f} % |"
                )
    if not rows:
        return []
    return [
        "",
        "Protection overhead (cost analysis, rate limits and the access log; same run):",
        "",
        "| setting | query | req/s on | req/s off | p50 ms on | p50 ms off | time per request |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    queries = _queries(options)
    settings_to_run = _settings(options)
    peers = parse_peers(options.peers, legacy_peer=options.peer)
    wrk = ensure_wrk(install=options.install_wrk)
    out = options.results_dir / dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    _say(f"results -> {out}")
    runtime = None
    if peers:  # first: a missing peers folder or npm fails before anything is measured
        runtime = prepare_peers(options.peers_dir, options.peers_work, options.database_url,
                                say=_say)  # fmt: skip

    if not options.url:
        # /metrics of a production-mode gateway needs its bearer token (read_metrics sends it).
        os.environ.setdefault("METRICS_TOKEN", secrets.token_urlsafe(32))
    env = {**os.environ, "DATABASE_URL": options.database_url}
    if not options.url:
        # A production-mode server with a secret of this run only (no development defaults).
        env |= {
            "GATEWAY_ENV": "production",
            "JWT_SECRET": secrets.token_urlsafe(48),
            "API_KEY_PEPPER": secrets.token_urlsafe(48),
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(options.port),
            "LOG_LEVEL": "warning",
            "GRAPHIQL": "false",
            # Cost analysis and rate limits stay on (every request is priced and charged) with
            # a budget the benchmark's token cannot spend in a run.
            "RATE_LIMIT_FIRST_PARTY": str(10**12),
            # Q4: provider sandboxes in-process, with a modelled round trip per call.
            "PROVIDERS": "sandbox",
            "SANDBOX_LATENCY_MS": f"{options.sandbox_latency_ms:g}",
            "SECRET_KEYRING": DEV_SECRET_KEYRING,
        }
        if options.compiled_operations:
            env["COMPILED_OPERATIONS"] = options.compiled_operations
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
    workloads: dict[str, Path | Workload] = {
        name: bodies[name] for name in queries if name in OPERATIONS
    }
    read_token = _gateway(
        "token", "--tenant", str(targets.tenant_id), "--scopes", "ledger:read", env=env
    )
    tokens = dict.fromkeys(workloads, read_token)
    if MIXED in queries:
        pairs = asyncio.run(find_posting_pairs(options.database_url, targets))
        _say(f"Q5: postings rotate over {len(pairs)} account pairs of the tenant")
        writes = write_posting_bodies(out / "bodies", pairs)
        workloads[MIXED] = Workload(reads=(bodies["q1"], bodies["q2"]), writes=tuple(writes))
        tokens[MIXED] = _gateway("token", "--tenant", str(targets.tenant_id),
                                 "--scopes", "ledger:read,ledger:write", env=env)  # fmt: skip
    if options.url:
        settings_to_run = [Setting()]

    measurements: list[Measurement] = []
    for round_number in range(1, options.rounds + 1):
        for index, setting in enumerate(settings_to_run):
            gateway_env = dict(env)
            gateway_env |= setting.env
            gateway = _Gateway(gateway_env, workloads, tokens, setting)
            _say(f"== round {round_number}: {setting.label}")
            measurements += _gateway_run(options, wrk, out, round_number, gateway)
            if "q4" in queries and not options.url and index == 0:
                # Cold: a gateway whose provider cache never holds a fresh entry.
                cold = dataclasses.replace(
                    gateway,
                    env=gateway.env | {"PROVIDER_CACHE_TTL_SECONDS": "0"},
                    workloads={"q4-cold": workloads["q4"]},
                    tokens={"q4-cold": read_token},
                )
                _say(f"== round {round_number}: {setting.label}, Q4 with a cold provider cache")
                measurements += _gateway_run(options, wrk, out, round_number, cold,
                                             log="gateway-q4-cold.log")  # fmt: skip
            time.sleep(2)
        for peer in peers:
            assert runtime is not None
            _say(f"== round {round_number}: {peer.name} ({peer.note})")
            measurements += _peer_run(options, wrk, out, round_number, runtime, peer)
            time.sleep(2)

    table_queries = [*queries, "q4-cold"] if "q4" in queries else queries
    table = _table(measurements, table_queries, options.sandbox_latency_ms)
    analysts = [query for query in queries if query in ANALYST_QUERIES]
    settings_line = (
        f"{options.connections} connections"
        + (f" ({options.analyst_connections} for {','.join(analysts)})" if analysts else "")
        + f", {options.threads} wrk threads,"
        f" {options.seconds} s per query after {options.warmup} s warm-up,"
        f" {options.rounds} round(s), {os.cpu_count()} CPUs"
    )
    (out / "table.md").write_text(f"{settings_line}\n\n{table}\n")
    (out / "results.json").write_text(
        json.dumps(
            {"settings": vars(options) | {"peers_dir": str(options.peers_dir),
                                          "peers_work": str(options.peers_work),
                                          "results_dir": str(options.results_dir)},
             "targets": asdict(targets),
             "measurements": [asdict(m) for m in measurements]},
            indent=2,
        )
        + "\n"
    )  # fmt: skip
    _say(f"\n{settings_line}\n\n{table}")
    return 0
