"""Apollo Federation v2 subgraph fields: `_service { sdl }` and `_entities(representations:)`.

Entities resolve as `node(id:)` does: through the request's loaders (N representations cost the
statements of one), null for another tenant's id, a made-up id or an id of another type, behind
ledger:read, with the same masking. `_service` is the schema: the introspection policy governs
it. The compiled read path leaves both to the resolvers; cost analysis sizes `_entities` by its
representations. (The supergraph itself: tests/federation/test_apollo_gateway.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.access.clients import OperationPolicy
from adapters.ledger.tables import customers
from gateway.cost import CostAnalyzer, CostSettings
from gateway.lifespan import Services
from resolvers.node import encode_global_id
from resolvers.schema import schema
from tests.factories import make_account, make_customer, make_tenant, post_transfer
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient

ROOT = Path(__file__).resolve().parents[2]

ENTITIES = """query Entities($representations: [_Any!]!) {
  _entities(representations: $representations) {
    __typename
    ... on Customer { id displayName email ledgerAccounts(first: 5) { edges { node { name } } } }
    ... on LedgerAccount { id name balance { posted { amount currency } } }
    ... on LedgerTransaction { id status entries { direction amount { amount } } }
  }
}"""

SERVICE = "query Service { _service { sdl } }"


def _ref(type_name: str, pk: int) -> dict[str, str]:
    return {"__typename": type_name, "id": encode_global_id(type_name, pk)}


def _codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


@pytest.fixture
def client(uncached_gql: GraphQLClient) -> GraphQLClient:
    """Every request executes (no response cache); compiled operations on, as deployed."""
    return uncached_gql


# -- _service -----------------------------------------------------------------------------


async def test_service_sdl_is_schema_graphql_with_the_federation_directives(
    client: GraphQLClient, tenant_id: int
) -> None:
    body = await client.post(SERVICE, tenant_id=tenant_id, scopes=())
    assert "errors" not in body
    sdl = body["data"]["_service"]["sdl"]
    assert sdl + "\n" == (ROOT / "schema.graphql").read_text()
    assert 'schema @link(url: "https://specs.apollo.dev/federation/v2.11", import: ["@key"])' in sdl
    for type_name in ("Customer", "LedgerAccount", "LedgerTransaction"):
        assert f'type {type_name} implements Node @key(fields: "id", resolvable: true) {{' in sdl
    assert "type LedgerEntry implements Node {" in sdl  # not an entity
    assert "union _Entity = Customer | LedgerAccount | LedgerTransaction" in sdl


async def test_service_follows_the_introspection_policy(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    closed = OperationPolicy(
        apq_enabled=False, allow_text=True, safelist_required=False, introspection=False
    )
    issued = await services.clients.create(
        tenant_id=tenant_id, name="no-introspection", kind="analyst",
        scopes={"ledger:read"}, policy=closed,
    )  # fmt: skip
    headers = {"authorization": f"Bearer {issued.key}"}
    refused = await http.post("/graphql", json={"query": SERVICE}, headers=headers)
    assert refused.status_code == 403
    assert _codes(refused.json()) == ["INTROSPECTION_DISABLED"]
    # The same client still reads entities
    entities = {"query": ENTITIES, "variables": {"representations": []}}
    allowed = await http.post("/graphql", json=entities, headers=headers)
    assert allowed.json() == {"data": {"_entities": []}}


# -- _entities ----------------------------------------------------------------------------


async def test_entities_answer_in_order_with_null_where_node_is_null(
    client: GraphQLClient, engine: AsyncEngine, tenant_id: int
) -> None:
    customer = await make_customer(engine, tenant_id, display_name="Ada")
    async with engine.begin() as connection:
        await connection.execute(
            update(customers).where(customers.c.id == customer).values(email="ada@example.com")
        )
    wallet = await make_account(engine, tenant_id, customer_id=customer, name="Wallet")
    revenue = await make_account(engine, tenant_id, name="Revenue", normal_balance="credit")
    sale = await post_transfer(engine, tenant_id, debit=wallet, credit=revenue, amount=1250)
    other_tenant = await make_tenant(engine)
    foreign = await make_customer(engine, other_tenant, display_name="Not yours")
    representations = [
        _ref("LedgerTransaction", sale.transaction.id),
        _ref("Customer", customer),
        _ref("Customer", foreign),  # another tenant's: null, as node(id:) answers
        {"__typename": "Customer", "id": encode_global_id("LedgerAccount", wallet)},  # a type
        {"__typename": "Customer", "id": "bm90LWFuLWlk"},  # made up
        _ref("LedgerAccount", wallet),
    ]

    body = await client.post(
        ENTITIES, {"representations": representations}, tenant_id=tenant_id,
        scopes={"ledger:read"},
    )  # fmt: skip

    assert body == {
        "data": {
            "_entities": [
                {"__typename": "LedgerTransaction",
                 "id": encode_global_id("LedgerTransaction", sale.transaction.id),
                 "status": "POSTED",
                 "entries": [{"direction": "DEBIT", "amount": {"amount": "12.50"}},
                             {"direction": "CREDIT", "amount": {"amount": "12.50"}}]},
                {"__typename": "Customer", "id": encode_global_id("Customer", customer),
                 "displayName": "Ada", "email": "a***@example.com",  # masked without pii:read
                 "ledgerAccounts": {"edges": [{"node": {"name": "Wallet"}}]}},
                None,
                None,
                None,
                {"__typename": "LedgerAccount", "id": encode_global_id("LedgerAccount", wallet),
                 "name": "Wallet", "balance": {"posted": {"amount": "12.50", "currency": "USD"}}},
            ]
        }
    }  # fmt: skip


async def test_entities_need_ledger_read_like_node(client: GraphQLClient, tenant_id: int) -> None:
    body = await client.post(
        ENTITIES, {"representations": [_ref("Customer", 1)]}, tenant_id=tenant_id,
        scopes={"ledger:write", "providers:read"},
    )  # fmt: skip
    assert body["data"] is None  # `_entities` is non-null: its refusal nulls the response
    assert [(e["path"], e["extensions"]) for e in body["errors"]] == [
        (["_entities"], {"code": "FORBIDDEN", "scope": "ledger:read"})
    ]


@pytest.mark.parametrize(
    "representation",
    [
        pytest.param({"__typename": "LedgerEntry", "id": "TGVkZ2VyRW50cnk6MQ=="}, id="not_entity"),
        pytest.param({"__typename": "Customer"}, id="no_id"),
        pytest.param({"__typename": "Customer", "id": 7}, id="id_not_a_string"),
        pytest.param({"id": "Q3VzdG9tZXI6MQ=="}, id="no_typename"),
        pytest.param({"__typename": "Customer", "id": "Q3VzdG9tZXI6MQ==", "x": 1}, id="extra"),
        pytest.param("Customer:1", id="not_an_object"),
        pytest.param({"__typename": ["Customer"], "id": "Q3VzdG9tZXI6MQ=="}, id="list_type"),
    ],
)
async def test_a_malformed_representation_is_bad_user_input(
    client: GraphQLClient, tenant_id: int, representation: Any
) -> None:
    body = await client.post(
        ENTITIES, {"representations": [_ref("Customer", 1), representation]},
        tenant_id=tenant_id,
    )  # fmt: skip
    assert body["data"] is None
    assert _codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"].startswith("representations[1] must be")


async def test_more_representations_than_the_list_cap_are_refused(
    client: GraphQLClient, tenant_id: int
) -> None:
    representations = [_ref("Customer", n) for n in range(1, 102)]
    response = await client.http.post(
        "/graphql",
        json={"query": ENTITIES, "variables": {"representations": representations}},
        headers={"authorization": f"Bearer {client.token(tenant_id)}"},
    )
    assert _codes(response.json()) == ["LIMIT_EXCEEDED"]


# -- statements: N representations cost what one does --------------------------------------


@pytest.fixture(params=["compiled", "resolvers"])
def either(
    request: pytest.FixtureRequest, gql: GraphQLClient, reference_gql: GraphQLClient
) -> GraphQLClient:
    return gql if request.param == "compiled" else reference_gql


async def test_entities_statements_do_not_grow_with_the_representations(
    database: Database, either: GraphQLClient, engine: AsyncEngine, tenant_id: int
) -> None:
    refs: dict[str, list[dict[str, str]]] = {"Customer": [], "LedgerAccount": [], "Tx": []}
    revenue = await make_account(engine, tenant_id, name="Revenue", normal_balance="credit")
    for number in range(34):
        customer = await make_customer(engine, tenant_id, display_name=f"C{number}")
        account = await make_account(engine, tenant_id, customer_id=customer, name=f"A{number}")
        sale = await post_transfer(engine, tenant_id, debit=account, credit=revenue, amount=100)
        refs["Customer"].append(_ref("Customer", customer))
        refs["LedgerAccount"].append(_ref("LedgerAccount", account))
        refs["Tx"].append(_ref("LedgerTransaction", sale.transaction.id))
    mixed = [ref for triple in zip(*refs.values(), strict=True) for ref in triple]
    counts = {}
    for label, representations in {
        "1 customer": refs["Customer"][:1],
        "34 customers": refs["Customer"],
        "3 mixed": mixed[:3],
        "100 mixed": mixed[:100],
    }.items():
        with database.metrics.measure_statements() as tally:
            body = await either.post(
                ENTITIES, {"representations": representations}, tenant_id=tenant_id,
                scopes={"ledger:read"},  # with pii:read, unmasked emails add an audit INSERT
            )  # fmt: skip
        assert "errors" not in body, body
        assert len(body["data"]["_entities"]) == len(representations)
        assert None not in body["data"]["_entities"]
        counts[label] = tally.count
    # Plus the tenant's data version, read for the response cache's key when that is on.
    version = int(either.settings.response_cache)
    # customers, then their accounts pages
    assert counts["1 customer"] == counts["34 customers"] == 2 + version
    # transactions, accounts, customers; then transaction entries and customer account pages
    assert counts["3 mixed"] == counts["100 mixed"] == 5 + version


async def test_the_compiled_path_leaves_federation_fields_to_the_resolvers(
    postgres: Database, client: GraphQLClient, engine: AsyncEngine, tenant_id: int
) -> None:
    customer = await make_customer(engine, tenant_id, display_name="Ada")

    def operations(metrics: str) -> dict[str, float]:
        prefix = 'gateway_operations_total{path="'
        return {
            line[len(prefix) :].split('"')[0]: float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith(prefix)
        }

    before = operations((await client.http.get("/metrics")).text)
    entities = await client.post(
        ENTITIES, {"representations": [_ref("Customer", customer)]}, tenant_id=tenant_id
    )
    service = await client.post(SERVICE, tenant_id=tenant_id)
    after = operations((await client.http.get("/metrics")).text)

    assert entities["data"]["_entities"][0]["displayName"] == "Ada"
    assert service["data"]["_service"]["sdl"].startswith('"""')
    assert after.get("compiled", 0) == before.get("compiled", 0)
    assert after["resolvers"] == before.get("resolvers", 0) + 2


# -- cost ---------------------------------------------------------------------------------


def test_entities_cost_is_sized_by_the_representations() -> None:
    analyzer = CostAnalyzer(schema._schema, CostSettings(), max_page_size=100)
    plan = analyzer.plan(ENTITIES, parse(ENTITIES), None)
    assert plan is not None

    def estimate(count: int) -> int:
        return plan.estimate({"representations": [_ref("Customer", 1)] * count})

    # Each representation costs its dearest possible entity: a transaction (1) with its
    # entries (assumed 10), 11; a customer with a page of 5 accounts would cost 7.
    assert estimate(1) == 11
    assert estimate(40) == 40 * 11
    assert estimate(0) == 0
    assert plan.estimate(None) == 100 * 11  # a persisted document: the list cap
