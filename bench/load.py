"""Driving a server with wrk and reading the gateway's /metrics counters."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LUA_SCRIPT",
    "MIX_SCRIPT",
    "Workload",
    "WrkResult",
    "counter",
    "ensure_wrk",
    "read_metrics",
    "read_settled_metrics",
    "response_cache_counts",
    "run_wrk",
]

LUA_SCRIPT = Path(__file__).with_name("wrk") / "post.lua"
MIX_SCRIPT = Path(__file__).with_name("wrk") / "mix.lua"
_PROCESS_INFO = "gateway_process_info"
_RESULT = re.compile(r"^RESULT (.*)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles (ms) and failure counts."""

    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non2xx: int
    socket_errors: int
    gql_errors: int
    min_body_bytes: int


def ensure_wrk(*, install: bool) -> str:
    """Path of wrk; installs it with apt-get when asked, else explains how and raises."""
    found = shutil.which("wrk")
    if found:
        return found
    if not install:
        raise SystemExit(
            "wrk is not installed. Install it with `apt-get install -y wrk` (Debian/Ubuntu;"
            " `brew install wrk` on macOS) or rerun with --install-wrk."
        )
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*prefix, "apt-get", "install", "-y", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get finished but wrk is still not on PATH")
    return found


@dataclass(frozen=True, slots=True)
class Workload:
    """What wrk sends: one body (post.lua), or a mix of reads and writes (mix.lua)."""

    body: Path | None = None
    reads: tuple[Path, ...] = ()
    writes: tuple[Path, ...] = ()  # templates: "@KEY@" becomes a fresh idempotency key
    write_every: int = 10  # every 10th request is a write: 10 % writes

    def script_env(self) -> tuple[Path, dict[str, str]]:
        if self.body is not None:
            return LUA_SCRIPT, {"WRK_BODY": str(self.body)}
        return MIX_SCRIPT, {
            "WRK_READS": ",".join(map(str, self.reads)),
            "WRK_WRITES": ",".join(map(str, self.writes)),
            "WRK_WRITE_EVERY": str(self.write_every),
            # Idempotency keys unique to this wrk run (warm-up and timed runs differ).
            "WRK_RUN_ID": f"bench-{time.time_ns():x}",
        }


def run_wrk(
    wrk: str,
    url: str,
    workload: Path | Workload,
    *,
    token: str | None,
    seconds: int,
    connections: int,
    threads: int,
) -> WrkResult:
    """Send `workload` (a body file, or a read/write mix) to `url` for `seconds` at fixed
    concurrency and parse the RESULT line."""
    if isinstance(workload, Path):
        workload = Workload(body=workload)
    script, script_env = workload.script_env()
    env = {**os.environ, **script_env, "WRK_TOKEN": token or ""}
    completed = subprocess.run(
        [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", str(script), url],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    match = _RESULT.search(completed.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no RESULT line:\n{completed.stdout}\n{completed.stderr}")
    fields = dict(item.split("=", 1) for item in match.group(1).split())
    return WrkResult(
        rps=float(fields["rps"]),
        p50_ms=float(fields["p50_ms"]),
        p90_ms=float(fields["p90_ms"]),
        p99_ms=float(fields["p99_ms"]),
        max_ms=float(fields["max_ms"]),
        requests=int(fields["requests"]),
        non2xx=int(fields["non2xx"]),
        socket_errors=int(fields["socket_errors"]),
        gql_errors=int(fields["gql_errors"]),
        min_body_bytes=int(fields["min_body_bytes"]),
    )


def read_metrics(url: str) -> dict[str, float]:
    """The gateway's Prometheus samples from `url` (…/metrics) of the process that answered,
    summed per metric name (labels dropped: `a{x="1"} 2` and `a{x="2"} 3` give `a` 5), plus
    `pid` of that process (0 when the gateway does not say)."""
    request = urllib.request.Request(url)  # noqa: S310 (our loopback URL)
    token = os.environ.get("METRICS_TOKEN")
    if token:  # a production-mode gateway serves /metrics to its bearer token only
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    counters: dict[str, float] = {"pid": 0.0}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        if name == _PROCESS_INFO:
            pid = labels.partition('pid="')[2].partition('"')[0]
            counters["pid"] = float(pid) if pid.isdigit() else 0.0
            continue
        try:
            number = float(value)
        except ValueError:
            continue  # a sample we do not understand (timestamps, NaN text): not ours
        counters[name] = counters.get(name, 0.0) + number
        if labels:  # also kept whole, for counters told apart by a label (result="hit")
            counters[series] = counters.get(series, 0.0) + number
    return counters


def response_cache_counts(samples: Mapping[str, float]) -> tuple[float, float] | None:
    """(hits, misses) of the gateway's response cache, whatever the exact names: counters
    named like `gateway_response_cache_hits_total` / `..._misses_total`, or one response-cache
    counter with a label saying hit or miss. None when the gateway exposes neither."""
    hits = misses = 0.0
    found = False
    for key, value in samples.items():
        name, _, labels = key.partition("{")
        if "response_cache" not in name:
            continue
        # A labelled series counts by its label; its unlabelled sum by its name only.
        text = labels.lower() if labels else name.lower().removesuffix("_total")
        if text.endswith(("_hits", "_hit")) or 'hit"' in text:
            hits, found = hits + value, True
        elif text.endswith(("_misses", "_miss")) or 'miss"' in text:
            misses, found = misses + value, True
    return (hits, misses) if found else None


def read_all_processes(
    url: str, processes: int, *, attempts: int = 200
) -> dict[int, dict[str, float]]:
    """Samples of each of `processes` worker processes: /metrics is per process, and every
    read is a new connection that the kernel gives to some worker; read until all answered."""
    seen: dict[int, dict[str, float]] = {}
    for _ in range(max(attempts, processes)):
        counters = read_metrics(url)
        seen[int(counters.pop("pid"))] = counters
        if len(seen) >= processes:
            break
    return seen


def counter(samples: Mapping[str, float], *names: str) -> float | None:
    """The first of `names` present in `samples` (None when the gateway has none of them)."""
    for name in names:
        if name in samples:
            return samples[name]
    return None


def read_settled_metrics(
    url: str, *, processes: int = 1, quiet: float = 0.3, timeout: float = 30.0
) -> dict[str, float]:
    """Counters summed over the worker processes once the server is idle: two reads `quiet`
    seconds apart that agree.

    wrk stops with requests still in flight; reading at once would split their statements
    between two runs and skew statements per request when requests are slow.
    """
    deadline = time.monotonic() + timeout
    previous = read_all_processes(url, processes)
    while True:
        time.sleep(quiet)
        current = read_all_processes(url, processes)
        if current == previous or time.monotonic() > deadline:
            break
        previous = current
    if len(current) < processes:
        print(f"  note: /metrics answered from {len(current)} of {processes} workers")
    total: dict[str, float] = {"processes": float(len(current))}
    for samples in current.values():
        for name, value in samples.items():
            total[name] = total.get(name, 0.0) + value
    return total
