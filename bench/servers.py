"""Starting and stopping the servers under test, one at a time, by process id."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["answers_get", "answers_post", "check_answers", "post", "running"]


def post(url: str, body: Path, token: str | None) -> tuple[int, bytes]:
    """POST a JSON body file; return status and response bytes (errors included)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 (our own loopback URL)
        url, data=body.read_bytes(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def answers_get(url: str) -> bool:
    """True when GET `url` answers 200 (e.g. the gateway's /readyz)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return int(response.status) == 200
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def answers_post(url: str, body: Path, token: str | None = None) -> bool:
    """True when POSTing `body` answers 200 (the peers have no readiness endpoint)."""
    try:
        return post(url, body, token)[0] == 200
    except OSError:
        return False


@contextmanager
def running(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    ready: Callable[[], bool],
    log: Path,
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> Iterator[None]:
    """Run `command` in the background until the block ends; wait until `ready()` is true.

    Stops the process it started (SIGTERM, then SIGKILL after 20 s), never anything else.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, env=dict(env), cwd=cwd, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} exited with {process.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(command)} was not ready in {timeout:.0f} s; see {log}")
            time.sleep(0.5)
        yield
    finally:
        if process.poll() is not None:
            print(f"{' '.join(command)} had exited with code {process.returncode}; see {log}")
        else:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def check_answers(url: str, bodies: Mapping[str, Path], token: str | None) -> dict[str, str]:
    """Send each query once; describe what came back (sizes, or what is wrong)."""
    notes: dict[str, str] = {}
    for name, body in bodies.items():
        status, raw = post(url, body, token)
        if status != 200:
            notes[name] = f"HTTP {status}: {raw[:200]!r}"
            continue
        answer = json.loads(raw)
        if answer.get("errors"):
            notes[name] = f"errors: {json.dumps(answer['errors'])[:300]}"
            continue
        data = answer.get("data") or {}
        if name == "q1":
            edges = data["customers"]["edges"]
            accounts = sum(len(edge["node"]["ledgerAccounts"]["edges"]) for edge in edges)
            notes[name] = f"ok: {len(edges)} customers, {accounts} accounts, {len(raw)} bytes"
        elif name == "q2":
            account = data.get("ledgerAccount")
            entries = len(account["entries"]["edges"]) if account else 0
            notes[name] = f"ok: {entries} entries, {len(raw)} bytes"
        elif name == "q6":
            groups = data["ledgerSummary"]["edges"]
            counted = sum(edge["node"]["entryCount"] for edge in groups)
            notes[name] = f"ok: {len(groups)} groups of {counted} entries, {len(raw)} bytes"
        elif name == "q7":
            found = [node for node in data["nodes"] if node]
            points = sum(len(node["balanceHistory"]) for node in found)
            notes[name] = f"ok: {len(found)} accounts, {points} daily points, {len(raw)} bytes"
        elif name in ("e1", "e100"):
            found = [entity for entity in data["_entities"] if entity is not None]
            notes[name] = f"ok: {len(found)} of {len(data['_entities'])} entities, {len(raw)} bytes"
        else:
            customer = data.get("customer")
            notes[name] = f"ok: {customer['displayName'] if customer else None!r}, {len(raw)} bytes"
    return notes
