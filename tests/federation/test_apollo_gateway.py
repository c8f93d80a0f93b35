"""A real supergraph: @apollo/gateway composes the finance gateway with a small CRM subgraph.

The finance gateway is served by uvicorn on a free port over the per-run test database;
`supergraph.mjs` (Node) starts the CRM subgraph (@apollo/subgraph, `Customer @key(fields:
"id") { crmNotes }` and `crmFollowUps` that reference our customers) and an @apollo/gateway
that composes both with IntrospectAndCompose (our `_service { sdl }`), forwarding the caller's
Authorization header to every subgraph. Queries sent to the Apollo gateway cross the two
subgraphs both ways: ledger -> CRM (`crmNotes` of our customers) and CRM -> ledger (our
`_entities`, where another tenant's id or an id of another type is null).

The Node packages are installed with npm (pinned) into var/federation/npm on first use. Without
node or npm (or the registry) the test is skipped locally and fails under CI/REQUIRE_SERVICES.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import create_app
from gateway.graphiql_assets import InstallError, npm_install, package_version
from gateway.lifespan import Services
from gateway.settings import Settings
from resolvers.node import encode_global_id
from tests.factories import make_account, make_customer, make_tenant, post_transfer
from tests.fixtures.database import Database, services_required
from tests.fixtures.serving import serving

HERE = Path(__file__).resolve().parent
NPM_DIR = HERE.parents[1] / "var" / "federation" / "npm"
PACKAGES = {
    "@apollo/gateway": "2.14.4",
    "@apollo/subgraph": "2.14.4",
    "@apollo/server": "5.5.1",
    "graphql": "16.15.0",
}
# Bounds on waiting, not timing assertions: composing at start-up takes a second or two.
START_TIMEOUT_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 30

LEDGER_TO_CRM = """query Crossing {
  customers(first: 10) { edges { node {
    displayName
    crmNotes
    ledgerAccounts(first: 5) { edges { node { name } } }
  } } }
}"""

CRM_TO_LEDGER = """query FollowUps {
  crmFollowUps {
    note
    customer {
      displayName
      ledgerAccounts(first: 5) { edges { node { name balance { posted { amount } } } } }
    }
  }
}"""


def _require(what: str) -> None:
    """Without node or the Apollo packages: skip locally, fail where services are required."""
    message = f"{what} (the federation test needs Node.js 18+ with npm and the npm registry)"
    if services_required():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def supergraph_script() -> Path:
    """supergraph.mjs next to its installed packages (ES modules resolve from the script)."""
    if shutil.which("node") is None:
        _require("node is not on PATH")
    node_modules = NPM_DIR / "node_modules"
    if any(package_version(node_modules / n) != v for n, v in PACKAGES.items()):
        try:
            npm_install(NPM_DIR, PACKAGES)
        except InstallError as error:
            _require(f"the Apollo packages cannot be installed: {error}")
    script = NPM_DIR / "supergraph.mjs"
    shutil.copyfile(HERE / "supergraph.mjs", script)
    return script


@dataclass
class Seeded:
    key: str
    ada: str
    grace: str
    foreign: str
    wallet: str


async def _seed(engine: AsyncEngine, services: Services, tenant_id: int) -> Seeded:
    ada = await make_customer(engine, tenant_id, display_name="Ada")
    grace = await make_customer(engine, tenant_id, display_name="Grace")
    wallet = await make_account(engine, tenant_id, customer_id=ada, name="Wallet")
    await make_account(engine, tenant_id, customer_id=ada, name="Savings")
    card = await make_account(engine, tenant_id, customer_id=grace, name="Card")
    await post_transfer(engine, tenant_id, debit=wallet, credit=card, amount=1250)
    other_tenant = await make_tenant(engine)
    foreign = await make_customer(engine, other_tenant, display_name="Not yours")
    issued = await services.clients.create(
        tenant_id=tenant_id, name="supergraph", kind="analyst", scopes={"ledger:read"}
    )
    return Seeded(
        key=issued.key,
        ada=encode_global_id("Customer", ada),
        grace=encode_global_id("Customer", grace),
        foreign=encode_global_id("Customer", foreign),
        wallet=encode_global_id("LedgerAccount", wallet),
    )


async def _ready_line(process: asyncio.subprocess.Process) -> str | None:
    """The JSON after `READY ` on the script's stdout; None when it exits first."""
    assert process.stdout is not None
    while line := await process.stdout.readline():
        if line.startswith(b"READY "):
            return line.removeprefix(b"READY ").decode()
    return None


@asynccontextmanager
async def _supergraph(script: Path, env: dict[str, str], log: Path) -> AsyncIterator[str]:
    """supergraph.mjs running; the Apollo gateway's URL once it has composed the subgraphs."""
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            "node", str(script), env={**os.environ, **env}, cwd=script.parent,
            stdout=asyncio.subprocess.PIPE, stderr=output,
        )  # fmt: skip
    try:
        try:
            ready = await asyncio.wait_for(_ready_line(process), START_TIMEOUT_SECONDS)
        except TimeoutError:
            ready = None
        if ready is None:
            printed = await asyncio.to_thread(log.read_text)
            raise AssertionError(f"the supergraph did not start:\n{printed}")
        yield str(json.loads(ready)["gateway"])
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def _post(http: httpx.AsyncClient, url: str, query: str, key: str) -> dict[str, Any]:
    response = await http.post(
        url, json={"query": query}, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_supergraph_query_crosses_the_ledger_and_another_subgraph(
    supergraph_script: Path, database: Database, settings: Settings, services: Services,
    engine: AsyncEngine, tenant_id: int, tmp_path: Path,
) -> None:  # fmt: skip
    seeded = await _seed(engine, services, tenant_id)
    readonly = await services.clients.create(
        tenant_id=tenant_id, name="providers-only", kind="analyst", scopes={"providers:read"}
    )
    crm_notes = {seeded.ada: ["prefers email", "VIP"], seeded.foreign: ["never shown"]}
    follow_ups = [
        {"note": "call Ada", "customerId": seeded.ada},
        {"note": "call Grace", "customerId": seeded.grace},
        {"note": "another tenant's", "customerId": seeded.foreign},
        {"note": "an account id", "customerId": seeded.wallet},
        {"note": "Ada again", "customerId": seeded.ada},
    ]
    async with serving(create_app(settings, services)) as ledger:
        env = {
            "LEDGER_URL": f"{ledger}/graphql",
            "SUBGRAPH_AUTHORIZATION": f"Bearer {seeded.key}",
            "CRM_NOTES": json.dumps(crm_notes),
            "CRM_FOLLOW_UPS": json.dumps(follow_ups),
        }
        log = tmp_path / "supergraph.log"
        async with (
            _supergraph(supergraph_script, env, log) as gateway,
            httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS) as http,
        ):
            # ledger -> CRM: our customers (one fetch) with the CRM's notes on them
            crossing = await _post(http, gateway, LEDGER_TO_CRM, seeded.key)
            # CRM -> ledger: the CRM's follow-ups with our customers (one `_entities` fetch)
            # (statements of the server's tasks: the engine's total, nothing else runs here)
            before = database.metrics.sql_statements
            follow = await _post(http, gateway, CRM_TO_LEDGER, seeded.key)
            statements = database.metrics.sql_statements - before
            # The caller's credential reaches the ledger, not the gateway's own
            refused = await _post(http, gateway, LEDGER_TO_CRM, readonly.key)

    assert crossing == {"data": {"customers": {"edges": [
        {"node": {"displayName": "Ada", "crmNotes": ["prefers email", "VIP"],
                  "ledgerAccounts": {"edges": [{"node": {"name": "Wallet"}},
                                               {"node": {"name": "Savings"}}]}}},
        {"node": {"displayName": "Grace", "crmNotes": [],
                  "ledgerAccounts": {"edges": [{"node": {"name": "Card"}}]}}},
    ]}}}, log.read_text()  # fmt: skip
    ada = {"displayName": "Ada", "ledgerAccounts": {"edges": [
        {"node": {"name": "Wallet", "balance": {"posted": {"amount": "12.50"}}}},
        {"node": {"name": "Savings", "balance": {"posted": {"amount": "0.00"}}}},
    ]}}  # fmt: skip
    grace = {"displayName": "Grace", "ledgerAccounts": {"edges": [
        {"node": {"name": "Card", "balance": {"posted": {"amount": "-12.50"}}}},
    ]}}  # fmt: skip
    assert follow["data"] == {"crmFollowUps": [
        {"note": "call Ada", "customer": ada},
        {"note": "call Grace", "customer": grace},
        {"note": "another tenant's", "customer": None},
        {"note": "an account id", "customer": None},
        {"note": "Ada again", "customer": ada},
    ]}, log.read_text()  # fmt: skip
    # Our null entities (another tenant's id, an account's id) are what the Apollo gateway
    # reports: the customers the CRM referenced that our subgraph says do not exist.
    assert "errors" not in follow
    completions = follow["extensions"]["valueCompletion"]
    assert [c["path"] for c in completions] == [
        ["crmFollowUps", 2, "customer", "displayName"],
        ["crmFollowUps", 3, "customer", "displayName"],
    ]
    # Customers by id, then their accounts' pages, whatever the number of follow-ups; plus the
    # response cache's version read, and the API key's lookup where it goes through the counted
    # engine (SQLite; on PostgreSQL the read pool the test's services share is not counted).
    key_lookup = int(database.backend == "sqlite")
    assert statements == 2 + int(settings.response_cache) + key_lookup, statements
    assert refused["data"] is None
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]
