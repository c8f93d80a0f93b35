"""Driving a server with wrk and reading the gateway's /metrics counters."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LUA_SCRIPT",
    "WrkResult",
    "ensure_wrk",
    "read_metrics",
    "read_settled_metrics",
    "run_wrk",
]

LUA_SCRIPT = Path(__file__).with_name("wrk") / "post.lua"
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


def run_wrk(
    wrk: str,
    url: str,
    body: Path,
    *,
    token: str | None,
    seconds: int,
    connections: int,
    threads: int,
) -> WrkResult:
    """POST `body` to `url` for `seconds` at fixed concurrency and parse the RESULT line."""
    env = {**os.environ, "WRK_BODY": str(body), "WRK_TOKEN": token or ""}
    completed = subprocess.run(
        [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", str(LUA_SCRIPT), url],
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
    """The gateway's Prometheus counters (`name value` lines) from `url` (…/metrics)."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (our loopback URL)
        text = response.read().decode()
    counters: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            counters[name] = float(value)
    return counters


def read_settled_metrics(
    url: str, *, quiet: float = 0.3, timeout: float = 30.0
) -> dict[str, float]:
    """Counters once the server is idle: two reads `quiet` seconds apart that agree.

    wrk stops with requests still in flight; reading at once would split their statements
    between two runs and skew statements per request when requests are slow.
    """
    deadline = time.monotonic() + timeout
    previous = read_metrics(url)
    while True:
        time.sleep(quiet)
        current = read_metrics(url)
        if current == previous or time.monotonic() > deadline:
            return current
        previous = current
