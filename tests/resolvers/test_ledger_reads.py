"""Reading the ledger through the schema: ids, pagination, money, tenancy."""

from __future__ import annotations

from typing import Any

import pytest

from resolvers.node import encode_global_id
from tests.factories import make_account, make_customer, make_tenant
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient

PAGE = """query Page($first: Int!, $after: String) {
  customers(first: $first, after: $after) {
    totalCount
    edges { cursor node { id displayName kind } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def _customers(database: Database, tenant_id: int, count: int) -> list[int]:
    return [
        await make_customer(database.engine, tenant_id, display_name=f"Customer {n}")
        for n in range(count)
    ]


async def test_customers_page_forward_with_cursors(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    ids = await _customers(database, tenant_id, 5)
    first = await gql.post(PAGE, {"first": 2}, tenant_id=tenant_id)
    page = first["data"]["customers"]
    assert page["totalCount"] == 5
    assert [edge["node"]["id"] for edge in page["edges"]] == [
        encode_global_id("Customer", pk) for pk in ids[:2]
    ]
    assert page["pageInfo"] == {
        "hasNextPage": True,
        "hasPreviousPage": False,
        "startCursor": page["edges"][0]["cursor"],
        "endCursor": page["edges"][1]["cursor"],
    }
    rest = await gql.post(
        PAGE, {"first": 10, "after": page["pageInfo"]["endCursor"]}, tenant_id=tenant_id
    )
    tail = rest["data"]["customers"]
    assert [edge["node"]["displayName"] for edge in tail["edges"]] == [
        "Customer 2", "Customer 3", "Customer 4",
    ]  # fmt: skip
    assert tail["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    ("variables", "field", "message"),
    [
        pytest.param({"first": 101}, "first", "between 0 and 100", id="over_cap_case"),
        pytest.param({"first": -1}, "first", "between 0 and 100", id="negative_case"),
        pytest.param({"first": 1, "after": "bm9wZQ=="}, "after", "not a cursor",
                     id="bad_cursor_case"),
        pytest.param({"first": 1, "after": "YTox"}, "after", "not a cursor",
                     id="cursor_of_another_list_case"),
    ],
)  # fmt: skip
async def test_bad_pagination_arguments_name_their_field(
    gql: GraphQLClient, tenant_id: int, variables: dict[str, Any], field: str, message: str
) -> None:
    body = await gql.post(PAGE, variables, tenant_id=tenant_id)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert message in error["message"]


async def test_another_tenants_objects_read_as_not_found(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    other_tenant = await make_tenant(database.engine)
    theirs = await make_customer(database.engine, other_tenant, display_name="Not yours")
    their_account = await make_account(database.engine, other_tenant, customer_id=theirs)
    mine = await make_customer(database.engine, tenant_id, display_name="Yours")
    query = """query($c: ID!, $a: ID!) {
      customer(id: $c) { id } ledgerAccount(id: $a) { id }
      node(id: $c) { id }
      customers { totalCount edges { node { displayName } } }
    }"""
    body = await gql.post(
        query,
        {"c": encode_global_id("Customer", theirs),
         "a": encode_global_id("LedgerAccount", their_account)},
        tenant_id=tenant_id,
    )  # fmt: skip
    assert body == {
        "data": {
            "customer": None,
            "ledgerAccount": None,
            "node": None,
            "customers": {"totalCount": 1, "edges": [{"node": {"displayName": "Yours"}}]},
        }
    }
    assert mine


@pytest.mark.parametrize(
    "global_id",
    [
        pytest.param("not base64!", id="garbage_case"),
        pytest.param(encode_global_id("LedgerAccount", 1), id="other_type_case"),
        pytest.param("Q3VzdG9tZXI6MA==", id="zero_pk_case"),  # Customer:0
        pytest.param("Q3VzdG9tZXI6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ==", id="huge_pk_case"),
    ],
)
async def test_malformed_ids_read_as_null(
    gql: GraphQLClient, tenant_id: int, global_id: str
) -> None:
    body = await gql.post(
        "query($id: ID!) { customer(id: $id) { id } }", {"id": global_id}, tenant_id=tenant_id
    )
    assert body == {"data": {"customer": None}}


async def test_node_resolves_every_type(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    customer = await make_customer(database.engine, tenant_id, display_name="Node")
    account = await make_account(database.engine, tenant_id, customer_id=customer, name="Main")
    body = await gql.post(
        """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id
             ... on Customer { displayName } ... on LedgerAccount { name } } }""",
        {"ids": [encode_global_id("Customer", customer),
                 encode_global_id("LedgerAccount", account)]},
        tenant_id=tenant_id,
    )  # fmt: skip
    assert body["data"]["nodes"] == [
        {"__typename": "Customer", "id": encode_global_id("Customer", customer),
         "displayName": "Node"},
        {"__typename": "LedgerAccount", "id": encode_global_id("LedgerAccount", account),
         "name": "Main"},
    ]  # fmt: skip


@pytest.mark.parametrize(("currency", "amount"), [("USD", "0.00"), ("JPY", "0"), ("BHD", "0.000")])
async def test_balances_are_money_with_iso_exponents(
    database: Database, gql: GraphQLClient, tenant_id: int, currency: str, amount: str
) -> None:
    account = await make_account(database.engine, tenant_id, currency=currency)
    body = await gql.post(
        """query($id: ID!) { ledgerAccount(id: $id) { currency normalBalance version
             balance { posted { amount minorUnits currency exponent } } } }""",
        {"id": encode_global_id("LedgerAccount", account)},
        tenant_id=tenant_id,
    )
    exponent = {"USD": 2, "JPY": 0, "BHD": 3}[currency]
    assert body["data"]["ledgerAccount"] == {
        "currency": currency,
        "normalBalance": "DEBIT",
        "version": 0,
        "balance": {"posted": {"amount": amount, "minorUnits": "0", "currency": currency,
                               "exponent": exponent}},
    }  # fmt: skip
