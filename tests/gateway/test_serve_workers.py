"""`gateway serve --workers N`: real processes on a real port, on the per-run test database.

PostgreSQL: two uvicorn workers each open their own services and answer; SIGTERM stops them
all. SQLite (the embedded default): more than one worker is refused before anything starts.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from gateway.auth import mint_token
from gateway.settings import Settings
from tests.factories import make_customer, make_tenant
from tests.fixtures.database import Database
from tests.fixtures.gateway import TEST_SECRET

QUERY = "{ customers(first: 5) { edges { node { displayName } } } }"
# prometheus-client prints every sample as a float (`1.0`).
_PID = re.compile(r'^gateway_process_info\{pid="(\d+)"\} 1(?:\.0)?$', re.MULTILINE)
_REQUESTS = re.compile(r"^gateway_requests_total (\d+)(?:\.0)?$", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(database: Database, settings: Settings, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    return env | {
        "DATABASE_URL": database.url,
        "GATEWAY_ENV": "test",
        "JWT_SECRET": TEST_SECRET,
        "API_KEY_PEPPER": settings.api_key_pepper.reveal(),
        "JWT_ISSUER": settings.jwt_issuer,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GRAPHIQL": "false",
        "LOG_LEVEL": "warning",
        # Two small pools per worker: the test's 20 concurrent requests wait for a connection
        # rather than crowd a PostgreSQL shared with other test runs.
        "DATABASE_POOL_SIZE": "3",
    }


def _text(log: Path) -> str:
    return log.read_text()


def _parent_of(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    match = re.search(r"^PPid:\s+(\d+)$", status, re.MULTILINE)
    return int(match.group(1)) if match else None


@contextmanager
def _serving(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--workers", "2"],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _wait_ready(http: httpx.AsyncClient, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):  # a bound on attempts, not a timing assertion
        assert process.poll() is None, _text(log)
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"the gateway never became ready:\n{_text(log)}")


async def _workers_seen(base: str) -> dict[int, int]:
    """GraphQL requests served per worker pid, from /metrics on fresh connections."""
    seen: dict[int, int] = {}
    for _ in range(400):
        async with httpx.AsyncClient(base_url=base) as fresh:  # a new connection each time
            text = (await fresh.get("/metrics")).text
        pid = _PID.search(text)
        requests = _REQUESTS.search(text)
        assert pid is not None, text
        assert requests is not None, text
        seen[int(pid.group(1))] = int(requests.group(1))
        if len(seen) == 2 and all(seen.values()):
            break
    return seen


async def test_two_workers_answer_and_stop_cleanly(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    port = _free_port()
    env = _env(database, settings, port)
    log = tmp_path / "serve.log"

    if database.backend == "sqlite":
        refused = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--workers", "2",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await refused.communicate()
        assert refused.returncode == 2
        assert b"--workers > 1 needs PostgreSQL" in stderr
        with socket.socket() as probe:  # nothing was left listening
            assert probe.connect_ex(("127.0.0.1", port)) != 0
        return

    tenant = await make_tenant(database.engine)
    names = {f"worker-test {index}" for index in range(3)}
    for name in sorted(names):
        await make_customer(database.engine, tenant, display_name=name)
    token = mint_token(settings, tenant_id=tenant, scopes=["ledger:read"])
    base = f"http://127.0.0.1:{port}"

    with _serving(env, log) as process:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await _wait_ready(http, process, log)
            headers = {"Authorization": f"Bearer {token}"}

            async def ask() -> set[str]:
                # A fresh connection per request, so the kernel may hand it to either worker.
                async with httpx.AsyncClient(base_url=base, timeout=30) as fresh:
                    response = await fresh.post("/graphql", json={"query": QUERY}, headers=headers)
                assert response.status_code == 200, response.text
                body = response.json()
                assert "errors" not in body, body
                return {edge["node"]["displayName"] for edge in body["data"]["customers"]["edges"]}

            for _ in range(5):
                answers = await asyncio.gather(*(ask() for _ in range(20)))
                assert all(answer == names for answer in answers)
            # Without Redis each worker enforces half of every budget (RATE_LIMIT_PROCESSES).
            charged = await http.post("/graphql", json={"query": QUERY}, headers=headers)
            assert charged.headers["ratelimit-policy"] == '"cost";q=25000;w=60'
            workers = await _workers_seen(base)

        # Two distinct worker processes, children of `gateway serve`, each served GraphQL.
        assert len(workers) == 2, workers
        assert all(count > 0 for count in workers.values()), workers
        assert {_parent_of(pid) for pid in workers} == {process.pid}
        assert "without REDIS_URL" in _text(log)
        assert "enforces 1/2 of every rate-limit budget" in _text(log)

        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0, _text(log)
    assert all(_parent_of(pid) is None for pid in workers), "a worker outlived the server"
