"""GraphiQL's example tabs: valid against the schema, and the analysts' ones answer with data."""

from __future__ import annotations

import datetime as dt

import pytest
from graphql import parse, validate
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.records import TransactionStatus
from gateway.graphiql_examples import EXAMPLE_OPERATIONS
from resolvers.node import encode_global_id
from resolvers.schema import schema
from tests.factories import make_account, make_customer, post_transfer
from tests.fixtures.gateway import GraphQLClient


@pytest.mark.parametrize(
    ("name", "text"), EXAMPLE_OPERATIONS, ids=[n for n, _ in EXAMPLE_OPERATIONS]
)
def test_every_graphiql_example_validates_against_the_schema(name: str, text: str) -> None:
    document = parse(text)
    assert validate(schema._schema, document) == []
    assert document.definitions[0].name.value == name  # type: ignore[attr-defined]


async def analyst_ledger(engine: AsyncEngine, tenant_id: int) -> int:
    """A customer's wallet (debit normal) paid from revenue: 100.00 on Mar 5, 40.00 still
    pending on Mar 20, 25.00 on May 1 2026; the wallet's id."""
    person = await make_customer(engine, tenant_id, kind="individual")
    wallet = await make_account(engine, tenant_id, customer_id=person, name="Wallet")
    revenue = await make_account(engine, tenant_id, name="Revenue", normal_balance="credit")
    for amount, day, status in [
        (10_000, dt.date(2026, 3, 5), TransactionStatus.POSTED),
        (4_000, dt.date(2026, 3, 20), TransactionStatus.PENDING),
        (2_500, dt.date(2026, 5, 1), TransactionStatus.POSTED),
    ]:
        when = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        await post_transfer(engine, tenant_id, debit=wallet, credit=revenue, amount=amount,
                            effective_at=when, status=status)  # fmt: skip
    return wallet


async def test_the_analyst_examples_run_as_shipped_and_answer_from_the_ledger(
    engine: AsyncEngine, gql: GraphQLClient, tenant_id: int
) -> None:
    wallet = {"id": encode_global_id("LedgerAccount", await analyst_ledger(engine, tenant_id))}
    examples = dict(EXAMPLE_OPERATIONS)

    history = await gql.post(examples["History"], wallet, tenant_id=tenant_id)
    statement = await gql.post(examples["PeriodStatement"], wallet, tenant_id=tenant_id)
    summary = await gql.post(examples["Summary"], None, tenant_id=tenant_id)

    for body in (history, statement, summary):
        assert "errors" not in body, body
    days = history["data"]["ledgerAccount"]["balanceHistory"]
    assert len(days) == 365  # a year of daily closing balances
    assert (days[0]["periodStart"], days[-1]["periodEnd"]) == ("2026-01-01", "2026-12-31")
    closing = {day["periodStart"]: day["closing"]["posted"]["amount"] for day in days}
    assert (closing["2026-03-04"], closing["2026-03-05"], closing["2026-05-01"]) == (
        "0.00", "100.00", "125.00",
    )  # fmt: skip
    assert history["data"]["ledgerAccount"]["balanceAt"]["posted"]["amount"] == "125.00"
    march = statement["data"]["ledgerAccount"]["statement"]
    assert (march["from"], march["to"]) == ("2026-03-01", "2026-03-31")
    assert march["opening"]["posted"]["amount"] == "0.00"
    assert march["totals"]["debits"]["amount"] == "140.00"  # posted and pending
    assert march["closing"]["posted"]["amount"] == "100.00"
    assert [e["node"]["amount"]["amount"] for e in march["entries"]["edges"]] == [
        "100.00", "40.00",
    ]  # fmt: skip
    groups = {
        (n["periodStart"], n["customerKind"], n["direction"]): (n["entryCount"], n["currency"])
        for n in (edge["node"] for edge in summary["data"]["ledgerSummary"]["edges"])
    }
    assert groups == {
        ("2026-03-01", "INDIVIDUAL", "DEBIT"): (2, "USD"),
        ("2026-03-01", None, "CREDIT"): (2, "USD"),
        ("2026-05-01", "INDIVIDUAL", "DEBIT"): (1, "USD"),
        ("2026-05-01", None, "CREDIT"): (1, "USD"),
    }
