"""Cost analysis: directives in the schema, static estimates, budgets (nothing runs over one),
`extensions.cost` on both read paths, and persisted documents priced once at registration."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from graphql import parse
from sqlalchemy import func, select

from adapters.errors import InvalidInput
from adapters.ledger.tables import ledger_transactions
from gateway.app import create_app
from gateway.cost import CostAnalyzer, CostSettings, CostTooExpensive, price_documents
from gateway.lifespan import Services
from gateway.persisted_documents import parse_manifest
from gateway.rate_limits import RateLimitSettings
from gateway.settings import Settings
from resolvers.node import encode_global_id
from resolvers.principal import Principal
from resolvers.schema import schema
from tests.factories import make_account, make_customer
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient
from tests.gateway.test_telemetry import samples

Q1 = (Path(__file__).parents[2] / "bench" / "queries" / "q1.graphql").read_text()
PAGE = "query Page($n: Int) { customers(first: $n) { edges { node { id } } } }"
DEEP = """{ customers(first: 100) { edges { node { ledgerAccounts(first: 100) { edges { node {
  entries(first: 100) { edges { node { id } } } } } } } } } }"""


def analyzer(**settings: object) -> CostAnalyzer:
    return CostAnalyzer(
        schema._schema, CostSettings(**settings),  # type: ignore[arg-type]
        max_page_size=100,
    )  # fmt: skip


def estimate(text: str, variables: dict[str, object] | None = None) -> int:
    plan = analyzer().plan(text, parse(text), None)
    assert plan is not None
    return plan.estimate(variables if variables is not None else {})


def _field_sdl(sdl: str, name: str) -> str:
    """A field's definition in the SDL: its (described, one per line) arguments and type."""
    found = re.search(rf"(?s)\n  {name}\((?:(?!\n  [a-z]).)*?\n  \)[^\n]*", sdl)
    assert found is not None, name
    return found.group(0)


def test_the_schema_carries_the_cost_directives() -> None:
    sdl = (Path(__file__).parents[2] / "schema.graphql").read_text()
    assert "directive @cost(weight: Int!)" in sdl
    assert "directive @listSize(" in sdl
    assert _field_sdl(sdl, "customers").endswith(
        "): CustomerConnection! @listSize("
        'slicingArguments: ["first"], sizedFields: ["edges"], requireOneSlicingArgument: false)'
    )
    assert "): CardPaymentConnection @cost(weight: 10) " in _field_sdl(sdl, "cardPayments")
    assert "type Money @cost(weight: 0)" in sdl


def test_lists_are_multiplied_by_their_slicing_argument() -> None:
    # customers page (1) + 50 x (customer 1 + accounts page 1 + 5 x account 1); Money, edges
    # and balances are free.
    assert estimate(Q1) == 1 + 50 * (1 + 1 + 5)
    assert estimate(PAGE, {"n": 3}) == 1 + 3
    assert estimate(PAGE, {}) == 1 + 20  # the argument's default
    assert estimate(PAGE, {"n": 5000}) == 1 + 100  # capped at the page size


def test_provider_fields_are_weighted_by_the_calls_they_can_cause() -> None:
    ledger_only = '{ customer(id: "x") { id } }'
    cards = '{ customer(id: "x") { cardPayments(first: 2) { edges { node { processorId } } } } }'
    banks = '{ customer(id: "x") { bankAccounts { id } } }'
    assert estimate(ledger_only) == 1
    assert estimate(cards) == 1 + 10 + 2 * 1
    assert estimate(banks) == 1 + 5 + 5 * 1  # one sync call, 5 accounts assumed


def test_a_plan_without_sizing_variables_is_folded_once() -> None:
    """A plan whose estimate no variable changes keeps it (`constant`, what every request
    reads); one a variable sizes has none and is evaluated per request."""
    costs = analyzer()
    fixed = costs.plan(Q1, parse(Q1), None)
    sized = costs.plan(PAGE, parse(PAGE), None)
    assert fixed is not None
    assert sized is not None
    assert fixed.constant == fixed.estimate({"n": 7}) == fixed.estimate(None) == 351
    assert sized.constant is None
    assert (sized.estimate({"n": 3}), sized.estimate({"n": 9})) == (1 + 3, 1 + 9)
    # Looked up again: the same plan (and a document that does not validate: None, kept).
    assert costs.plan(Q1, parse(Q1), None) is fixed
    broken = "{ nope }"
    assert costs.plan(broken, parse(broken), None) is None
    assert costs.plan(broken, parse(broken), None) is None


def test_the_worst_case_takes_every_variable_at_the_page_cap() -> None:
    plan = analyzer().plan(PAGE, parse(PAGE), None)
    assert plan is not None
    assert plan.estimate(None) == 1 + 100


def test_actual_counts_what_the_response_holds() -> None:
    plan = analyzer().plan(Q1, parse(Q1), None)
    assert plan is not None
    data = {"customers": {"edges": [
        {"node": {"id": "a", "ledgerAccounts": {"edges": [{"node": {"id": "x"}}]}}},
        {"node": {"id": "b", "ledgerAccounts": {"edges": []}}},
    ]}}  # fmt: skip
    assert plan.actual(data) == 1 + (1 + 1 + 1) + (1 + 1)


@pytest.fixture
async def reporting(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The app with analysts' cost reports on (the shared test settings turn them off)."""
    chosen = dataclasses.replace(settings, cost=CostSettings())
    app = create_app(chosen, dataclasses.replace(services, settings=chosen))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


async def test_an_operation_over_the_budget_is_refused_and_nothing_runs(
    database: Database, services: Services, http: httpx.AsyncClient, tenant_id: int
) -> None:
    issued = await services.clients.create(
        tenant_id=tenant_id, name="tight", kind="analyst",
        scopes=["ledger:read", "ledger:write"], max_cost=5,
    )  # fmt: skip
    debit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    credit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    # A mutation costs 10, and its payload's transaction with 10 assumed entries more.
    mutation = """mutation { postLedgerTransaction(input: {idempotencyKey: "k", entries: [
      {accountId: "%s", direction: DEBIT, amount: "1.00", currency: "USD"},
      {accountId: "%s", direction: CREDIT, amount: "1.00", currency: "USD"}]}) {
      transaction { entries { id } } } }""" % (debit, credit)  # noqa: UP031
    response = await http.post(
        "/graphql", json={"query": mutation}, headers={"authorization": f"Bearer {issued.key}"}
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "COST_ESTIMATED_TOO_EXPENSIVE"
    assert error["extensions"]["cost"] == {"estimated": 10 + 1 + 10, "maxCost": 5}
    async with database.engine.connect() as connection:
        written = await connection.scalar(
            select(func.count()).where(ledger_transactions.c.tenant_id == tenant_id)
        )
    assert written == 0


async def test_budgets_come_from_the_kind_unless_the_client_has_its_own(
    gql: GraphQLClient, services: Services, tenant_id: int
) -> None:
    # A JWT of the default kind (first_party, 10,000): 100 x 100 x 100 entries are too many.
    body = await gql.http.post(
        "/graphql", json={"query": DEEP},
        headers={"authorization": f"Bearer {gql.token(tenant_id)}"},
    )  # fmt: skip
    assert body.json()["errors"][0]["extensions"]["cost"]["maxCost"] == 10_000
    issued = await services.clients.create(
        tenant_id=tenant_id, name="roomy", kind="analyst", scopes=["ledger:read"]
    )
    client = await services.clients.update_limits(issued.client.id, max_cost=2_000_000)
    assert client.max_cost == 2_000_000
    response = await gql.http.post(
        "/graphql", json={"query": DEEP}, headers={"authorization": f"Bearer {issued.key}"}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"customers": {"edges": []}}}
    with pytest.raises(InvalidInput):
        await services.clients.update_limits(issued.client.id, max_cost=0)
    cleared = await services.clients.update_limits(issued.client.id, clear=frozenset({"max_cost"}))
    assert cleared.max_cost is None


async def _customers_with_accounts(database: Database, tenant_id: int) -> None:
    for accounts in (2, 0, 1):
        customer = await make_customer(database.engine, tenant_id)
        for _ in range(accounts):
            await make_account(database.engine, tenant_id, customer_id=customer)


async def test_the_cost_is_reported_when_asked_on_both_paths(
    database: Database, gql: GraphQLClient, reference_gql: GraphQLClient, tenant_id: int
) -> None:
    await _customers_with_accounts(database, tenant_id)
    reports = []
    for client in (gql, reference_gql):  # compiled (on PostgreSQL) and resolvers
        plain = await client.post(Q1, tenant_id=tenant_id)
        assert "extensions" not in plain
        response = await client.http.post(
            "/graphql", json={"query": Q1},
            headers={"authorization": f"Bearer {client.token(tenant_id)}",
                     "x-graphql-cost": "report"},
        )  # fmt: skip
        body = response.json()
        assert body["data"] == plain["data"]
        reports.append(body["extensions"]["cost"])
    # actual: the page, 3 customers, their 3 account pages, 3 accounts.
    expected = {"estimated": 351, "actual": 1 + 3 + 3 + 3, "maxCost": 10_000}
    assert reports == [expected, expected]


async def test_analysts_always_get_the_cost(
    reporting: httpx.AsyncClient, gql: GraphQLClient, settings: Settings, tenant_id: int
) -> None:
    from gateway.auth import mint_token

    token = mint_token(settings, tenant_id=tenant_id, scopes=["ledger:read"], kind="analyst")
    response = await reporting.post(
        "/graphql", json={"query": PAGE, "variables": {"n": 2}},
        headers={"authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert response.json()["extensions"]["cost"] == {
        "estimated": 3, "actual": 1, "maxCost": 100_000,
    }  # fmt: skip
    first_party = await reporting.post(
        "/graphql", json={"query": PAGE},
        headers={"authorization": f"Bearer {gql.token(tenant_id)}"},
    )  # fmt: skip
    assert "extensions" not in first_party.json()


async def test_persisted_documents_are_priced_once_at_registration(
    services: Services, tenant_id: int
) -> None:
    issued = await services.clients.create(
        tenant_id=tenant_id, name="partner", kind="partner", scopes=["ledger:read"], max_cost=200
    )
    budget = CostSettings().budget(Principal.of_client(issued.client))
    assert budget == 200
    manifest = orjson.dumps({"page": PAGE, "q1": Q1})
    with pytest.raises(CostTooExpensive) as refused:
        price_documents(analyzer(), parse_manifest(manifest, schema._schema), budget)
    assert "'q1'" in refused.value.message
    store = services.trusted_documents.store
    assert await store.list(issued.client.id) == []
    priced = price_documents(analyzer(), parse_manifest(orjson.dumps({"page": PAGE})), budget)
    await store.register(issued.client.id, priced)
    [stored] = await store.list(issued.client.id)
    assert stored.cost == 1 + 100  # worst case: $n may be up to the page cap


async def test_with_cost_analysis_and_rate_limits_off_nothing_is_priced(
    settings: Settings, services: Services, tenant_id: int
) -> None:
    """Both off: no estimate, no charge, no report and no cost observed (what the
    benchmark's `--protection off` measures against)."""
    from gateway.auth import mint_token

    chosen = dataclasses.replace(
        settings,
        cost=CostSettings(enabled=False),
        rate_limits=RateLimitSettings(enabled=False),
    )
    app = create_app(chosen, dataclasses.replace(services, settings=chosen, rate_limiter=None))
    token = mint_token(settings, tenant_id=tenant_id, scopes=["ledger:read"], kind="analyst")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        before = samples((await client.get("/metrics")).text)
        response = await client.post(
            "/graphql", json={"query": DEEP},  # far over any budget: not priced, not refused
            headers={"authorization": f"Bearer {token}", "x-graphql-cost": "report"},
        )  # fmt: skip
        after = samples((await client.get("/metrics")).text)
    assert response.status_code == 200, response.text
    assert "extensions" not in response.json()
    assert "ratelimit" not in response.headers
    assert "ratelimit-policy" not in response.headers
    observed = "gateway_operation_cost_count"
    assert sum(v for (n, _), v in after.items() if n == observed) == sum(
        v for (n, _), v in before.items() if n == observed
    )
