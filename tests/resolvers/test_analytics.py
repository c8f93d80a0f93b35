"""Analysts' fields: balances back in time, history, statements, aggregates, bank spend."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.sync import sync_bank_links
from adapters.records import TransactionStatus
from resolvers.node import encode_global_id
from tests.factories import make_account, make_customer, make_tenant, post_transfer
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient

MARCH = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

ACCOUNT = """query Account($id: ID!, $asOf: DateTime, $from: Date, $to: Date,
                         $interval: PeriodInterval!) {
  ledgerAccount(id: $id) {
    now: balanceAt { posted { amount } }
    then: balanceAt(asOf: $asOf) { posted { amount } pending { amount } available { amount } }
    balanceHistory(from: $from, to: $to, interval: $interval) {
      periodStart periodEnd closing { posted { minorUnits } pending { minorUnits } }
    }
    statement(from: $from, to: $to) {
      from to
      opening { posted { minorUnits } pending { minorUnits } }
      closing { posted { minorUnits } pending { minorUnits } }
      totals { debits { minorUnits } credits { minorUnits } postedDebits { minorUnits }
               pendingCredits { minorUnits } }
      entries(first: 2) { edges { node { amount { minorUnits } direction } }
                          pageInfo { hasNextPage endCursor } }
    }
  }
}"""


async def _ledger(engine: AsyncEngine, tenant_id: int) -> tuple[int, int]:
    """Cash (debit normal) and revenue: 100 on Mar 3, 40 pending on Mar 10, then 7 back-dated
    to Feb 20 and 25 back-dated to Mar 5, recorded last."""
    cash = await make_account(engine, tenant_id, name="Cash")
    revenue = await make_account(engine, tenant_id, name="Revenue", normal_balance="credit")
    for amount, when, status in [
        (10_000, MARCH + 2 * DAY, TransactionStatus.POSTED),
        (4_000, MARCH + 9 * DAY, TransactionStatus.PENDING),
        (700, MARCH - 9 * DAY, TransactionStatus.POSTED),
        (2_500, MARCH + 4 * DAY, TransactionStatus.POSTED),
    ]:
        await post_transfer(engine, tenant_id, debit=cash, credit=revenue, amount=amount,
                            effective_at=when, status=status)  # fmt: skip
    return cash, revenue


async def test_balance_at_history_and_statement_of_a_back_dated_ledger(
    engine: AsyncEngine, gql: GraphQLClient, tenant_id: int
) -> None:
    cash, _ = await _ledger(engine, tenant_id)
    variables = {
        "id": encode_global_id("LedgerAccount", cash), "asOf": "2026-03-06T00:00:00Z",
        "from": "2026-03-02", "to": "2026-03-16", "interval": "WEEK",
    }  # fmt: skip
    body = await gql.post(ACCOUNT, variables, tenant_id=tenant_id)
    assert "errors" not in body, body
    account = body["data"]["ledgerAccount"]
    assert account["now"] == {"posted": {"amount": "132.00"}}
    # Mar 6: 7 (Feb 20) + 100 (Mar 3) + 25 (Mar 5, recorded after the Mar 10 hold)
    assert account["then"] == {
        "posted": {"amount": "132.00"}, "pending": {"amount": "132.00"},
        "available": {"amount": "132.00"},
    }  # fmt: skip
    weeks = [
        (p["periodStart"], p["periodEnd"], p["closing"]["posted"]["minorUnits"],
         p["closing"]["pending"]["minorUnits"])
        for p in account["balanceHistory"]
    ]  # fmt: skip
    assert weeks == [
        ("2026-03-02", "2026-03-08", "13200", "13200"),
        ("2026-03-09", "2026-03-15", "13200", "17200"),
        ("2026-03-16", "2026-03-16", "13200", "17200"),
    ]
    statement = account["statement"]
    assert (statement["from"], statement["to"]) == ("2026-03-02", "2026-03-16")
    assert statement["opening"] == {
        "posted": {"minorUnits": "700"},
        "pending": {"minorUnits": "700"},
    }
    assert statement["closing"] == {
        "posted": {"minorUnits": "13200"}, "pending": {"minorUnits": "17200"},
    }  # fmt: skip
    assert statement["totals"] == {
        "debits": {"minorUnits": "16500"}, "credits": {"minorUnits": "0"},
        "postedDebits": {"minorUnits": "12500"}, "pendingCredits": {"minorUnits": "0"},
    }  # fmt: skip
    entries = statement["entries"]
    assert [e["node"]["amount"]["minorUnits"] for e in entries["edges"]] == ["10000", "2500"]
    assert entries["pageInfo"]["hasNextPage"] is True
    rest = await gql.post(
        """query($id: ID!, $after: String) { ledgerAccount(id: $id) {
             statement(from: "2026-03-02", to: "2026-03-16") {
               entries(first: 5, after: $after) { edges { node { amount { minorUnits } } } }
             } } }""",
        {"id": variables["id"], "after": entries["pageInfo"]["endCursor"]},
        tenant_id=tenant_id,
    )
    edges = rest["data"]["ledgerAccount"]["statement"]["entries"]["edges"]
    assert [e["node"]["amount"]["minorUnits"] for e in edges] == ["4000"]


async def test_history_of_many_accounts_is_one_statement(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    customer = await make_customer(database.engine, tenant_id)
    revenue = await make_account(database.engine, tenant_id, normal_balance="credit")
    for n in range(5):
        account = await make_account(database.engine, tenant_id, customer_id=customer)
        await post_transfer(database.engine, tenant_id, debit=account, credit=revenue,
                            amount=100 + n, effective_at=MARCH + n * DAY)  # fmt: skip
    query = """query($id: ID!) { customer(id: $id) { ledgerAccounts(first: 10) { edges { node {
      balanceHistory(from: "2026-03-01", to: "2026-03-31") { closing { posted { amount } } }
      statement(from: "2026-03-01", to: "2026-03-31") { closing { posted { amount } } }
    } } } } }"""
    with database.metrics.measure_statements() as tally:
        body = await gql.post(query, {"id": encode_global_id("Customer", customer)},
                              tenant_id=tenant_id)  # fmt: skip
    assert "errors" not in body, body
    # customer, accounts page, one history statement, one statement-totals statement
    assert tally.count == 4
    nodes = [e["node"] for e in body["data"]["customer"]["ledgerAccounts"]["edges"]]
    assert [len(n["balanceHistory"]) for n in nodes] == [31] * 5
    assert [n["balanceHistory"][-1]["closing"]["posted"]["amount"] for n in nodes] == [
        "1.00", "1.01", "1.02", "1.03", "1.04",
    ]  # fmt: skip
    assert [n["balanceHistory"][0]["closing"]["posted"]["amount"] for n in nodes] == [
        "1.00", "0.00", "0.00", "0.00", "0.00",
    ]  # fmt: skip


async def test_bad_ranges_are_bad_user_input(gql: GraphQLClient, engine: AsyncEngine,
                                             tenant_id: int) -> None:  # fmt: skip
    account = encode_global_id("LedgerAccount", await make_account(engine, tenant_id))
    for field in (
        'balanceHistory(from: "2026-03-02", to: "2026-03-01") { periodStart }',
        'balanceHistory(from: "2020-01-01", to: "2026-03-01") { periodStart }',
        'statement(from: "2026-03-02", to: "2026-03-01") { from }',
    ):
        body = await gql.post(f"query($id: ID!) {{ ledgerAccount(id: $id) {{ {field} }} }}",
                              {"id": account}, tenant_id=tenant_id)  # fmt: skip
        [error] = body["errors"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "from"}, field


SUMMARY = """query($groupBy: [LedgerSummaryDimension!]!, $first: Int!, $after: String,
               $accountIds: [ID!], $statuses: [TransactionStatus!]) {
  ledgerSummary(from: "2026-02-01", to: "2026-03-31", groupBy: $groupBy, interval: MONTH,
                first: $first, after: $after, accountIds: $accountIds, statuses: $statuses) {
    edges { cursor node { periodStart currency accountName customerKind direction status
                          debits { amount } credits { amount } debitCount creditCount entryCount } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def _summary_ledger(engine: AsyncEngine, tenant_id: int) -> dict[str, int]:
    person = await make_customer(engine, tenant_id, kind="individual")
    company = await make_customer(engine, tenant_id, kind="business")
    ids = {
        "wallet": await make_account(engine, tenant_id, customer_id=person, name="Wallet"),
        "treasury": await make_account(engine, tenant_id, customer_id=company, name="Treasury"),
        "revenue": await make_account(engine, tenant_id, name="Revenue", normal_balance="credit"),
        "wallet_eur": await make_account(engine, tenant_id, customer_id=person, name="Wallet",
                                         currency="EUR"),
        "revenue_eur": await make_account(engine, tenant_id, name="Revenue", currency="EUR",
                                          normal_balance="credit"),
        "person": person, "company": company,
    }  # fmt: skip
    for debit, credit, amount, when, currency, status in [
        ("wallet", "revenue", 1000, MARCH - 5 * DAY, "USD", TransactionStatus.POSTED),
        ("wallet", "revenue", 250, MARCH + 3 * DAY, "USD", TransactionStatus.POSTED),
        ("treasury", "revenue", 9999, MARCH + 4 * DAY, "USD", TransactionStatus.PENDING),
        ("wallet_eur", "revenue_eur", 777, MARCH + 5 * DAY, "EUR", TransactionStatus.POSTED),
        ("wallet", "revenue", 5, MARCH + 40 * DAY, "USD", TransactionStatus.POSTED),  # April
    ]:
        await post_transfer(engine, tenant_id, debit=ids[debit], credit=ids[credit],
                            amount=amount, effective_at=when, currency=currency,
                            status=status)  # fmt: skip
    return ids


def _rows(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    assert "errors" not in body, body
    return [
        (n["periodStart"], n["currency"], n["accountName"], n["customerKind"], n["direction"],
         n["status"], n["debits"]["amount"], n["credits"]["amount"], n["entryCount"])
        for n in (e["node"] for e in body["data"]["ledgerSummary"]["edges"])
    ]  # fmt: skip


async def test_ledger_summary_groups_by_the_chosen_dimensions_per_currency(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    await _summary_ledger(database.engine, tenant_id)
    other = await make_tenant(database.engine)
    await _summary_ledger(database.engine, other)  # never counted for `tenant_id`
    by_month = await gql.post(SUMMARY, {"groupBy": ["PERIOD"], "first": 10}, tenant_id=tenant_id)
    assert _rows(by_month) == [
        ("2026-02-01", "USD", None, None, None, None, "10.00", "10.00", 2),
        ("2026-03-01", "EUR", None, None, None, None, "7.77", "7.77", 2),
        ("2026-03-01", "USD", None, None, None, None, "102.49", "102.49", 4),
    ]
    with database.metrics.measure_statements() as tally:
        by_kind = await gql.post(
            SUMMARY, {"groupBy": ["CUSTOMER_KIND", "DIRECTION", "STATUS"], "first": 10},
            tenant_id=tenant_id,
        )  # fmt: skip
    assert tally.count == 1
    assert _rows(by_kind) == [
        (None, "USD", None, "BUSINESS", "DEBIT", "PENDING", "99.99", "0.00", 1),
        (None, "EUR", None, "INDIVIDUAL", "DEBIT", "POSTED", "7.77", "0.00", 1),
        (None, "USD", None, "INDIVIDUAL", "DEBIT", "POSTED", "12.50", "0.00", 2),
        (None, "USD", None, None, "CREDIT", "PENDING", "0.00", "99.99", 1),
        (None, "EUR", None, None, "CREDIT", "POSTED", "0.00", "7.77", 1),
        (None, "USD", None, None, "CREDIT", "POSTED", "0.00", "12.50", 2),
    ]


async def test_ledger_summary_pages_and_filters(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    ids = await _summary_ledger(database.engine, tenant_id)
    variables: dict[str, Any] = {"groupBy": ["ACCOUNT_NAME"], "first": 2}
    first = await gql.post(SUMMARY, variables, tenant_id=tenant_id)
    page = first["data"]["ledgerSummary"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await gql.post(SUMMARY, {**variables, "first": 10,
                                    "after": page["pageInfo"]["endCursor"]},
                          tenant_id=tenant_id)  # fmt: skip
    names = [(row[2], row[1]) for row in _rows(first) + _rows(rest)]
    assert names == [("Revenue", "EUR"), ("Revenue", "USD"), ("Treasury", "USD"),
                     ("Wallet", "EUR"), ("Wallet", "USD")]  # fmt: skip
    assert rest["data"]["ledgerSummary"]["pageInfo"]["hasNextPage"] is False
    only = await gql.post(
        SUMMARY,
        {"groupBy": [], "first": 10, "statuses": ["POSTED"],
         "accountIds": [encode_global_id("LedgerAccount", ids["wallet"])]},
        tenant_id=tenant_id,
    )  # fmt: skip
    assert _rows(only) == [(None, "USD", None, None, None, None, "12.50", "0.00", 2)]
    over = await gql.post(SUMMARY, {"groupBy": [], "first": 101}, tenant_id=tenant_id)
    assert over["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "first"}


async def test_customer_ledger_summary_is_per_customer_in_one_statement(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    await _summary_ledger(database.engine, tenant_id)
    query = """{ customers(first: 10) { edges { node { kind
      ledgerSummary(from: "2026-02-01", to: "2026-03-31", groupBy: []) {
        edges { node { currency debits { amount } entryCount } } } } } } }"""
    with database.metrics.measure_statements() as tally:
        body = await gql.post(query, tenant_id=tenant_id)
    assert "errors" not in body, body
    assert tally.count == 2  # customers page, summaries
    got = [
        (customer["kind"], [
            (g["node"]["currency"], g["node"]["debits"]["amount"], g["node"]["entryCount"])
            for g in customer["ledgerSummary"]["edges"]
        ])
        for customer in (e["node"] for e in body["data"]["customers"]["edges"])
    ]  # fmt: skip
    assert got == [
        ("INDIVIDUAL", [("EUR", "7.77", 1), ("USD", "12.50", 2)]),
        ("BUSINESS", [("USD", "99.99", 1)]),
    ]


async def test_bank_spend_by_month_and_category(
    providers: Any, engine: AsyncEngine, tenant_id: int
) -> None:
    customer = await make_customer(engine, tenant_id)
    item = await providers.link_bank(tenant_id, customer, transactions=0)
    bank = providers.banking
    bank.add_transaction(item, amount="12.50", day=31)  # Feb 1: out
    bank.add_transaction(item, amount="7.25", day=40)  # Feb 10: out
    bank.add_transaction(item, amount="-100.00", day=41)  # money in: not spend
    bank.add_transaction(item, amount="3.00", day=42, pending=True)  # pending: not yet
    bank.add_transaction(item, amount="1.01", day=60)  # Mar 2: out
    bank.add_transaction(item, amount="9.99", day=120)  # May: outside the range
    runtime = providers.runtime
    await sync_bank_links(engine, runtime.banking_providers, runtime.secret_box,
                          tenant_id=tenant_id)  # fmt: skip
    query = """query($id: ID!) { customer(id: $id) {
      bankSpend(from: "2026-01-15", to: "2026-04-30") {
        month category count amount { amount currency } } } }"""
    body = await providers.execute(query, {"id": encode_global_id("Customer", customer)},
                                   tenant_id=tenant_id)  # fmt: skip
    assert body.get("errors") is None, body
    assert body["data"]["customer"]["bankSpend"] == [
        {"month": "2026-02-01", "category": "GENERAL_MERCHANDISE", "count": 2,
         "amount": {"amount": "19.75", "currency": "USD"}},
        {"month": "2026-03-01", "category": "GENERAL_MERCHANDISE", "count": 1,
         "amount": {"amount": "1.01", "currency": "USD"}},
    ]  # fmt: skip
