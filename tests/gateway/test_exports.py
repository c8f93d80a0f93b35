"""Streamed CSV exports (gateway.exports) over HTTP, on SQLite and PostgreSQL: the file's form
(RFC 4180, header, exact amounts), tenant isolation, scopes, input errors, rate limits and
export slots, and agreement with GraphQL's `statement`. The constant-memory test over a
million rows is in test_exports_memory.py."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import GraphQLObjectType
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.sync import sync_bank_links
from adapters.ledger.posting import PostingService
from adapters.records import TransactionStatus
from gateway.app import create_app
from gateway.export_settings import ExportSettings
from gateway.exports import (
    EXPORTS,
    STATEMENT,
    Column,
    ExportEndpoints,
    ExportResponse,
    export_scopes,
)
from gateway.lifespan import Services
from gateway.rate_limits import RateLimitSettings
from gateway.settings import Settings
from resolvers.node import encode_global_id
from resolvers.principal import SCOPES
from resolvers.schema import build_schema
from tests.factories import make_account, make_customer, make_tenant, post_transfer
from tests.fixtures.gateway import GraphQLClient
from tests.gateway.test_persisted_documents import make_client

MARCH = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
ENTRIES = "/exports/ledger-entries.csv"
BANK = "/exports/bank-transactions.csv"
TRICKY = 'Rent, "March"\r\nsecond line'


@pytest.fixture
async def http(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The app with batches of three rows: most exports here span several batches (keyset
    pages on SQLite, cursor fetches on PostgreSQL), splitting the two entries of a transfer,
    which share their effective time: the keyset breaks the tie by id."""
    chosen = dataclasses.replace(settings, exports=ExportSettings(batch_rows=3))
    app = create_app(chosen, dataclasses.replace(services, settings=chosen))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


def _statement_path(account: int) -> str:
    return f"/exports/ledger-accounts/{encode_global_id('LedgerAccount', account)}/statement.csv"


async def _get(
    http: httpx.AsyncClient, gql: GraphQLClient, path: str, tenant_id: int,
    scopes: Any = SCOPES, **params: str,
) -> httpx.Response:  # fmt: skip
    token = gql.token(tenant_id, scopes)
    return await http.get(path, params=params, headers={"authorization": f"Bearer {token}"})


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode(), newline="")))


def _code(response: httpx.Response) -> tuple[int, str, str | None]:
    error = response.json()["errors"][0]["extensions"]
    return response.status_code, error["code"], error.get("field") or error.get("scope")


async def test_ledger_entries_csv_is_rfc4180_with_a_header_and_exact_amounts(
    http: httpx.AsyncClient, gql: GraphQLClient, engine: AsyncEngine, tenant_id: int
) -> None:
    cash = await make_account(engine, tenant_id, name='Cash, "petty"')
    revenue = await make_account(engine, tenant_id, name="Revenue", normal_balance="credit")
    yen = await make_account(engine, tenant_id, name="=cmd|' /C calc'!A0", currency="JPY")
    yen_revenue = await make_account(engine, tenant_id, currency="JPY", normal_balance="credit")
    first = await post_transfer(engine, tenant_id, debit=cash, credit=revenue, amount=1,
                                description=TRICKY, effective_at=MARCH + DAY)  # fmt: skip
    await post_transfer(engine, tenant_id, debit=cash, credit=revenue, amount=123456789012345,
                        effective_at=MARCH + 2 * DAY, status=TransactionStatus.PENDING)  # fmt: skip
    await post_transfer(engine, tenant_id, debit=yen, credit=yen_revenue, amount=1000,
                        currency="JPY", description="-1+2",
                        effective_at=MARCH + 3 * DAY)  # fmt: skip
    await post_transfer(engine, tenant_id, debit=cash, credit=revenue, amount=5,
                        effective_at=MARCH + 40 * DAY)  # outside the range  # fmt: skip

    response = await _get(
        http, gql, ENTRIES, tenant_id, **{"from": "2026-03-01", "to": "2026-03-31"}
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8; header=present"
    assert response.headers["content-disposition"] == (
        'attachment; filename="ledger-entries_2026-03-01_2026-03-31.csv"'
    )
    raw = response.content
    header = (
        b"entry_id,transaction_id,account_id,account_name,effective_at,direction,amount,"
        b"currency,status,description\r\n"
    )
    assert raw.startswith(header)
    # Quoted where needed, quotes doubled, the embedded CRLF kept inside the quotes.
    assert b'"Cash, ""petty"""' in raw
    assert b'"Rent, ""March""\r\nsecond line"' in raw
    assert raw.endswith(b"\r\n")
    assert raw.count(b"\r\n") == 1 + 6 + 2  # the header, 6 rows, 2 inside cells
    rows = _rows(response)
    assert [(r["account_name"], r["direction"], r["amount"], r["currency"], r["status"])
            for r in rows] == [
        ('Cash, "petty"', "DEBIT", "0.01", "USD", "POSTED"),
        ("Revenue", "CREDIT", "0.01", "USD", "POSTED"),
        ('Cash, "petty"', "DEBIT", "1234567890123.45", "USD", "PENDING"),
        ("Revenue", "CREDIT", "1234567890123.45", "USD", "PENDING"),
        ("'=cmd|' /C calc'!A0", "DEBIT", "1000", "JPY", "POSTED"),  # defused formula
        (rows[5]["account_name"], "CREDIT", "1000", "JPY", "POSTED"),
    ]  # fmt: skip
    assert rows[0]["description"] == TRICKY
    assert rows[4]["description"] == "'-1+2"
    assert rows[0]["effective_at"] == "2026-03-02T00:00:00Z"
    assert rows[0]["transaction_id"] == encode_global_id("LedgerTransaction", first.transaction.id)
    assert rows[0]["account_id"] == encode_global_id("LedgerAccount", cash)

    yen_id = encode_global_id("LedgerAccount", yen)
    one = await _get(http, gql, ENTRIES, tenant_id, accountId=yen_id,
                     **{"from": "2026-03-01", "to": "2026-03-31"})  # fmt: skip
    assert [(r["account_id"], r["amount"]) for r in _rows(one)] == [
        (encode_global_id("LedgerAccount", yen), "1000")
    ]


async def test_an_empty_range_is_the_header_alone(
    http: httpx.AsyncClient, gql: GraphQLClient, tenant_id: int
) -> None:
    response = await _get(
        http, gql, ENTRIES, tenant_id, **{"from": "2020-01-01", "to": "2020-01-01"}
    )
    assert response.status_code == 200
    assert response.content.count(b"\r\n") == 1
    assert response.content.startswith(b"entry_id,")


async def test_exports_never_show_another_tenants_rows_or_ids(
    http: httpx.AsyncClient, gql: GraphQLClient, engine: AsyncEngine, tenant_id: int
) -> None:
    other = await make_tenant(engine)
    mine = await make_account(engine, tenant_id)
    mine_too = await make_account(engine, tenant_id, normal_balance="credit")
    theirs = await make_account(engine, other)
    theirs_too = await make_account(engine, other, normal_balance="credit")
    await post_transfer(engine, tenant_id, debit=mine, credit=mine_too, amount=100,
                        effective_at=MARCH)  # fmt: skip
    await post_transfer(engine, other, debit=theirs, credit=theirs_too, amount=200,
                        effective_at=MARCH)  # fmt: skip
    days = {"from": "2026-03-01", "to": "2026-03-01"}

    rows = _rows(await _get(http, gql, ENTRIES, tenant_id, **days))
    assert {r["amount"] for r in rows} == {"1.00"}
    assert {r["account_id"] for r in rows} == {
        encode_global_id("LedgerAccount", mine),
        encode_global_id("LedgerAccount", mine_too),
    }

    their_id = encode_global_id("LedgerAccount", theirs)
    response = await _get(http, gql, ENTRIES, tenant_id, accountId=their_id, **days)
    assert _code(response) == (404, "NOT_FOUND", "accountId")
    response = await _get(http, gql, _statement_path(theirs), tenant_id, **days)
    assert _code(response) == (404, "NOT_FOUND", "accountId")
    customer = encode_global_id("Customer", await make_customer(engine, other))
    response = await _get(http, gql, BANK, tenant_id, customerId=customer, **days)
    assert _code(response) == (404, "NOT_FOUND", "customerId")


@pytest.mark.parametrize(
    ("path", "scopes", "missing"),
    [
        (ENTRIES, {"providers:read", "pii:read"}, "ledger:read"),
        ("statement", {"ledger:write"}, "ledger:read"),
        (BANK, {"ledger:read"}, "providers:read"),
        # Bank rows name their customer: reaching them in GraphQL needs ledger:read too.
        (BANK, {"providers:read"}, "ledger:read"),
    ],
)
async def test_a_missing_scope_is_forbidden(
    http: httpx.AsyncClient, gql: GraphQLClient, engine: AsyncEngine, tenant_id: int,
    path: str, scopes: set[str], missing: str,
) -> None:  # fmt: skip
    if path == "statement":
        path = _statement_path(await make_account(engine, tenant_id))
    days = {"from": "2026-03-01", "to": "2026-03-02"}
    response = await _get(http, gql, path, tenant_id, scopes, **days)
    assert _code(response) == (403, "FORBIDDEN", missing)


async def test_credentials_are_those_of_graphql(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    days = {"from": "2026-03-01", "to": "2026-03-02"}
    response = await http.get(ENTRIES, params=days)
    assert _code(response)[:2] == (401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"] == "Bearer"
    response = await http.get(ENTRIES, params=days, headers={"x-api-key": "fgw_test_nope"})
    assert _code(response)[:2] == (401, "UNAUTHENTICATED")
    _, key = await make_client(services, tenant_id, "analyst", scopes=("ledger:read",))
    response = await http.get(ENTRIES, params=days, headers={"x-api-key": key})
    assert response.status_code == 200, response.text
    response = await http.get(BANK, params=days, headers={"authorization": f"Bearer {key}"})
    assert _code(response) == (403, "FORBIDDEN", "providers:read")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "2026-03-02"}, "from"),
        ({"from": "2026-03-01"}, "to"),
        ({"from": "2026-3-1", "to": "2026-03-02"}, "from"),
        ({"from": "2026-02-30", "to": "2026-03-02"}, "from"),
        ({"from": "2026-03-03", "to": "2026-03-02"}, "from"),
        ({"from": "2025-03-01", "to": "2026-03-02"}, "to"),  # 367 days
        ({"from": "2026-03-01", "to": "2026-03-02", "since": "x"}, "since"),
        ({"from": "2026-03-01", "to": "2026-03-02", "accountId": "bm9wZQ=="}, "accountId"),
        ({"from": "2026-03-01", "to": "2026-03-02",
          "accountId": encode_global_id("Customer", 1)}, "accountId"),
    ],
)  # fmt: skip
async def test_bad_parameters_are_bad_user_input(
    http: httpx.AsyncClient, gql: GraphQLClient, tenant_id: int, params: dict[str, str],
    field: str,
) -> None:  # fmt: skip
    response = await _get(http, gql, ENTRIES, tenant_id, **params)
    assert _code(response) == (400, "BAD_USER_INPUT", field)


async def test_a_whole_year_is_allowed_and_other_formats_are_not_found(
    http: httpx.AsyncClient, gql: GraphQLClient, tenant_id: int
) -> None:
    year = {"from": "2024-01-01", "to": "2024-12-31"}  # 366 days
    assert (await _get(http, gql, ENTRIES, tenant_id, **year)).status_code == 200
    response = await _get(http, gql, "/exports/ledger-entries.xlsx", tenant_id, **year)
    assert _code(response) == (404, "NOT_FOUND", "format")
    response = await _get(http, gql, _statement_path(1)[:-3] + "json", tenant_id, **year)
    assert _code(response) == (404, "NOT_FOUND", "format")


STATEMENT_QUERY = """query($id: ID!) { ledgerAccount(id: $id) {
  statement(from: "2026-03-02", to: "2026-03-16") {
    opening { posted { amount } pending { amount } }
    closing { posted { amount } pending { amount } }
    totals { debits { amount } credits { amount } }
    entries(first: 100) { edges { node { id amount { amount } direction status } } }
  } } }"""


async def test_statement_export_agrees_with_the_graphql_statement(
    http: httpx.AsyncClient, gql: GraphQLClient, engine: AsyncEngine, tenant_id: int
) -> None:
    cash = await make_account(engine, tenant_id, name="Cash")
    revenue = await make_account(engine, tenant_id, name="Revenue", normal_balance="credit")
    posted = TransactionStatus.POSTED
    for amount, when, status, debit in [
        (700, MARCH - 9 * DAY, posted, cash),  # before the period: opening
        (10_000, MARCH + 2 * DAY, posted, cash),
        (4_000, MARCH + 9 * DAY, TransactionStatus.PENDING, cash),
        (1_234, MARCH + 4 * DAY, posted, revenue),  # a credit to cash, back-dated
        (99, MARCH + 30 * DAY, posted, cash),  # after the period
    ]:
        credit = revenue if debit == cash else cash
        await post_transfer(engine, tenant_id, debit=debit, credit=credit, amount=amount,
                            effective_at=when, status=status, description=f"t{amount}")  # fmt: skip
    voided = await post_transfer(engine, tenant_id, debit=cash, credit=revenue, amount=55,
                                 effective_at=MARCH + 5 * DAY,
                                 status=TransactionStatus.PENDING)  # fmt: skip
    await PostingService(engine).void_pending(tenant_id, voided.transaction.id)

    account_id = encode_global_id("LedgerAccount", cash)
    body = await gql.post(STATEMENT_QUERY, {"id": account_id}, tenant_id=tenant_id)
    assert "errors" not in body, body
    statement = body["data"]["ledgerAccount"]["statement"]
    response = await _get(http, gql, _statement_path(cash), tenant_id,
                          **{"from": "2026-03-02", "to": "2026-03-16"})  # fmt: skip
    assert response.headers["content-disposition"].endswith('statement_2026-03-02_2026-03-16.csv"')
    rows = _rows(response)

    opening, *entries, closing = rows
    assert (opening["row_type"], closing["row_type"]) == ("opening", "closing")
    assert (opening["posted_balance"], opening["pending_balance"]) == (
        statement["opening"]["posted"]["amount"],
        statement["opening"]["pending"]["amount"],
    )
    assert (closing["posted_balance"], closing["pending_balance"]) == (
        statement["closing"]["posted"]["amount"],
        statement["closing"]["pending"]["amount"],
    )
    assert (closing["debit"], closing["credit"]) == (
        statement["totals"]["debits"]["amount"],
        statement["totals"]["credits"]["amount"],
    )
    assert (opening["effective_at"], closing["effective_at"]) == (
        "2026-03-02T00:00:00Z",
        "2026-03-17T00:00:00Z",
    )
    graphql_entries = [e["node"] for e in statement["entries"]["edges"]]
    assert [r["entry_id"] for r in entries] == [e["id"] for e in graphql_entries]
    assert [(r["debit"] or r["credit"], r["status"]) for r in entries] == [
        (e["amount"]["amount"], e["status"]) for e in graphql_entries
    ]
    assert [(r["description"], r["debit"], r["credit"], r["posted_balance"], r["pending_balance"])
            for r in entries] == [
        ("t10000", "100.00", "", "107.00", "107.00"),
        ("t1234", "", "12.34", "94.66", "94.66"),
        ("t4000", "40.00", "", "94.66", "134.66"),
    ]  # fmt: skip
    # The last running balance is the closing one, as GraphQL has it.
    assert (entries[-1]["posted_balance"], entries[-1]["pending_balance"]) == (
        closing["posted_balance"],
        closing["pending_balance"],
    )


async def test_bank_transactions_export(
    providers: Any, http: httpx.AsyncClient, gql: GraphQLClient, engine: AsyncEngine,
    tenant_id: int,
) -> None:  # fmt: skip
    customer = await make_customer(engine, tenant_id)
    item = await providers.link_bank(tenant_id, customer, transactions=0)
    bank = providers.banking
    bank.add_transaction(item, amount="12.50", day=31, name='Cafe "Zoe", Paris')  # Feb 1
    bank.add_transaction(item, amount="-100.00", day=41, name="Payroll")  # money in
    bank.add_transaction(item, amount="3.00", day=42, name="=HYPERLINK()", pending=True)
    bank.add_transaction(item, amount="9.99", day=120)  # May: outside the range
    runtime = providers.runtime
    await sync_bank_links(engine, runtime.banking_providers, runtime.secret_box,
                          tenant_id=tenant_id)  # fmt: skip
    other = await make_tenant(engine)
    other_item = await providers.link_bank(other, await make_customer(engine, other),
                                           transactions=0)  # fmt: skip
    bank.add_transaction(other_item, amount="1.00", day=35)
    await sync_bank_links(engine, runtime.banking_providers, runtime.secret_box, tenant_id=other)

    response = await _get(http, gql, BANK, tenant_id, **{"from": "2026-01-15", "to": "2026-04-30"})
    rows = _rows(response)
    assert response.content.startswith(
        b"transaction_id,provider_transaction_id,bank_account_id,customer_id,date,"
        b"authorized_date,name,merchant_name,category_primary,category_detailed,amount,"
        b"currency,is_pending\r\n"
    )
    assert b'"CAFE ""ZOE"", PARIS"' in response.content
    assert [(r["date"], r["name"], r["merchant_name"], r["amount"], r["currency"],
             r["is_pending"]) for r in rows] == [
        ("2026-02-01", 'CAFE "ZOE", PARIS', 'Cafe "Zoe", Paris', "-12.50", "USD", "false"),
        ("2026-02-11", "PAYROLL", "Payroll", "100.00", "USD", "false"),
        ("2026-02-12", "'=HYPERLINK()", "'=HYPERLINK()", "-3.00", "USD", "true"),
    ]  # fmt: skip
    assert {r["customer_id"] for r in rows} == {encode_global_id("Customer", customer)}
    assert rows[0]["category_primary"] == "GENERAL_MERCHANDISE"

    account = rows[0]["bank_account_id"]
    one = await _get(http, gql, BANK, tenant_id, bankAccountId=account,
                     **{"from": "2026-02-11", "to": "2026-02-11"})  # fmt: skip
    assert [r["name"] for r in _rows(one)] == ["PAYROLL"]
    response = await _get(http, gql, BANK, other, bankAccountId=account,
                          **{"from": "2026-02-11", "to": "2026-02-11"})  # fmt: skip
    assert _code(response) == (404, "NOT_FOUND", "bankAccountId")


async def test_each_export_is_charged_to_the_rate_limit(
    settings: Settings, services: Services, gql: GraphQLClient, tenant_id: int
) -> None:
    chosen = dataclasses.replace(
        settings,
        rate_limits=RateLimitSettings(limits={"first_party": 2500, "partner": 2500,
                                              "analyst": 2500}),
        exports=ExportSettings(cost=1000),
    )  # fmt: skip
    app = create_app(chosen, dataclasses.replace(services, settings=chosen, rate_limiter=None))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        days = {"from": "2026-03-01", "to": "2026-03-01"}
        first = await _get(http, gql, ENTRIES, tenant_id, **days)
        assert first.status_code == 200
        assert first.headers["ratelimit"].startswith('"cost";r=1500;')
        assert (await _get(http, gql, ENTRIES, tenant_id, **days)).status_code == 200
        refused = await _get(http, gql, ENTRIES, tenant_id, **days)
        assert _code(refused)[:2] == (429, "RATE_LIMITED")
        assert int(refused.headers["retry-after"]) >= 1


async def test_exports_beyond_the_process_slots_are_busy_until_one_ends(
    settings: Settings, services: Services, gql: GraphQLClient, engine: AsyncEngine,
    tenant_id: int,
) -> None:  # fmt: skip
    chosen = dataclasses.replace(settings, exports=ExportSettings(max_concurrent=1))
    endpoints = ExportEndpoints(dataclasses.replace(services, settings=chosen))
    account = encode_global_id("LedgerAccount", await make_account(engine, tenant_id))
    token = gql.token(tenant_id)

    def request() -> Any:
        from starlette.requests import Request

        scope = {
            "type": "http", "method": "GET", "path": "/", "query_string":
            b"from=2026-03-01&to=2026-03-02", "headers": [(b"authorization",
                                                           f"Bearer {token}".encode())],
            "path_params": {"format": "csv", "accountId": account},
        }  # fmt: skip
        return Request(scope)

    streaming = await endpoints.serve(request(), STATEMENT)
    assert streaming.status_code == 200
    busy = await endpoints.serve(request(), STATEMENT)
    assert (busy.status_code, busy.headers["retry-after"]) == (503, "5")
    chunks = [chunk async for chunk in streaming.body_iterator]  # type: ignore[attr-defined]
    assert b"".join(chunks).count(b"\r\n") == 3  # header, opening, closing
    again = await endpoints.serve(request(), STATEMENT)
    assert isinstance(again, ExportResponse)
    await again.aclose()  # as the response does when the client goes away
    last = await endpoints.serve(request(), STATEMENT)
    assert isinstance(last, ExportResponse)
    await last.aclose()


def test_export_scopes_follow_the_graphql_rules_and_refuse_masked_fields() -> None:
    schema = build_schema()._schema
    for export in EXPORTS:
        for column in export.columns:
            if column.source is not None:
                type_name, field = column.source
                graphql_type = schema.type_map[type_name]
                assert isinstance(graphql_type, GraphQLObjectType)
                assert field in graphql_type.fields, column
    assert export_scopes([Column("id", ("Customer", "id"))]) == {"ledger:read"}
    with pytest.raises(ValueError, match="masked"):
        export_scopes([Column("email", ("Customer", "email"))])
    with pytest.raises(LookupError):
        export_scopes([Column("x", ("NoSuchType", "x"))])
