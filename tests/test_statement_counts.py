"""Fixed queries issue a fixed number of SQL statements, whatever the page size (no N+1).

On PostgreSQL a known query is compiled into one statement; the resolvers (SQLite, or
COMPILED_OPERATIONS=off) batch each level of the query into one statement.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import make_account, make_customer, post_transfer
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient

Q1 = """
query Dashboard($first: Int!) {
  customers(first: $first) {
    edges { node { id displayName
      ledgerAccounts(first: 5) { edges { node { id name currency
        balance { posted { amount currency } available { amount currency } } } } }
    } }
  }
}"""

Q2 = """
query Statement($id: ID!, $first: Int!) {
  ledgerAccount(id: $id) {
    entries(first: $first) { edges { node { id direction amount { amount currency }
      transaction { id description postedAt } } } }
  }
}"""


@pytest.fixture(params=["compiled", "resolvers"])
def client(
    request: pytest.FixtureRequest, gql: GraphQLClient, reference_gql: GraphQLClient
) -> GraphQLClient:
    return gql if request.param == "compiled" else reference_gql


def _expected(database: Database, client: GraphQLClient, by_level: int) -> int:
    compiled = client.settings.compiled_operations and database.backend == "postgresql"
    # plus the tenant's data version, read for the response cache's key when that is on
    return (1 if compiled else by_level) + int(client.settings.response_cache)


@pytest.fixture
async def dashboard_tenant(database: Database, tenant_id: int) -> int:
    for number in range(55):
        customer = await make_customer(database.engine, tenant_id, display_name=f"C{number:02}")
        for name in ("Checking", "Savings", "Card"):
            await make_account(database.engine, tenant_id, customer_id=customer, name=name)
    return tenant_id


async def test_q1_statements_do_not_grow_with_the_page(
    database: Database, client: GraphQLClient, dashboard_tenant: int
) -> None:
    counts = {}
    for first in (5, 50):
        with database.metrics.measure_statements() as tally:
            body = await client.post(Q1, {"first": first}, tenant_id=dashboard_tenant)
        assert "errors" not in body
        edges = body["data"]["customers"]["edges"]
        assert len(edges) == first
        assert all(len(edge["node"]["ledgerAccounts"]["edges"]) == 3 for edge in edges)
        counts[first] = tally.count
    # resolvers: customers page + accounts of all customers
    assert counts[5] == counts[50] == _expected(database, client, 2)


async def test_q2_statements_do_not_grow_with_the_page(
    database: Database, client: GraphQLClient, tenant_id: int
) -> None:
    engine = database.engine
    account = await make_account(engine, tenant_id)
    other = await make_account(engine, tenant_id)
    # Within the back-dating window of the posting service's real clock.
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
    for number in range(110):
        await post_transfer(
            engine, tenant_id, debit=account, credit=other, amount=100 + number,
            effective_at=start + dt.timedelta(minutes=number), description=f"t{number}",
        )  # fmt: skip
    from resolvers.node import encode_global_id

    account_id = encode_global_id("LedgerAccount", account)
    counts = {}
    for first in (10, 100):
        with database.metrics.measure_statements() as tally:
            body = await client.post(Q2, {"id": account_id, "first": first}, tenant_id=tenant_id)
        assert "errors" not in body
        edges = body["data"]["ledgerAccount"]["entries"]["edges"]
        assert len(edges) == first
        # newest first
        assert edges[0]["node"]["transaction"]["description"] == "t109"
        assert edges[0]["node"]["amount"] == {"amount": "2.09", "currency": "USD"}
        counts[first] = tally.count
    # resolvers: account + its entries + their transactions
    assert counts[10] == counts[100] == _expected(database, client, 3)
