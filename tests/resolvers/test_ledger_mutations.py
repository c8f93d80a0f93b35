"""Posting through the schema: input mapping, codes with camelCase field paths, payloads."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.ledger.tables import ledger_entries, ledger_transactions
from resolvers.node import encode_global_id
from tests.factories import make_account, make_tenant
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient

POST = """mutation Post($input: PostLedgerTransactionInput!) {
  postLedgerTransaction(input: $input) {
    replayed
    transaction { id status description postedAt
      entries { direction amount { amount minorUnits currency exponent } account { id } } }
  }
}"""
BALANCE = """query($id: ID!) { ledgerAccount(id: $id) {
  version balance { posted { amount } pending { amount } available { amount } } } }"""
POST_PENDING = "mutation($id: ID!) { postPendingTransaction(id: $id) { transaction { status } } }"
VOID_PENDING = "mutation($id: ID!) { voidPendingTransaction(id: $id) { transaction { status } } }"


def _entry(account: str, direction: str, amount: str, currency: str = "USD") -> dict[str, str]:
    return {"accountId": account, "direction": direction, "amount": amount, "currency": currency}


async def _accounts(database: Database, tenant_id: int, currency: str = "USD") -> tuple[str, str]:
    cash = await make_account(database.engine, tenant_id, currency=currency, name="Cash")
    revenue = await make_account(
        database.engine, tenant_id, currency=currency, name="Revenue", normal_balance="credit"
    )
    return encode_global_id("LedgerAccount", cash), encode_global_id("LedgerAccount", revenue)


async def _count_writes(database: Database, tenant_id: int) -> tuple[int, int]:
    async with database.engine.connect() as connection:
        transactions = await connection.scalar(
            select(func.count()).select_from(ledger_transactions)
            .where(ledger_transactions.c.tenant_id == tenant_id)
        )  # fmt: skip
        entries = await connection.scalar(
            select(func.count()).select_from(ledger_entries)
            .where(ledger_entries.c.tenant_id == tenant_id)
        )  # fmt: skip
    return int(transactions or 0), int(entries or 0)


async def test_posting_moves_balances_and_replays_by_key(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    cash, revenue = await _accounts(database, tenant_id)
    request = {"input": {
        "idempotencyKey": "sale-1", "description": "Sale",
        "entries": [_entry(cash, "DEBIT", "12.5"), _entry(revenue, "CREDIT", "12.50")],
    }}  # fmt: skip
    first = await gql.post(POST, request, tenant_id=tenant_id)
    assert "errors" not in first
    payload = first["data"]["postLedgerTransaction"]
    assert payload["replayed"] is False
    assert payload["transaction"]["status"] == "POSTED"
    assert payload["transaction"]["postedAt"].endswith("Z")
    assert payload["transaction"]["entries"] == [
        {"direction": "DEBIT", "account": {"id": cash},
         "amount": {"amount": "12.50", "minorUnits": "1250", "currency": "USD", "exponent": 2}},
        {"direction": "CREDIT", "account": {"id": revenue},
         "amount": {"amount": "12.50", "minorUnits": "1250", "currency": "USD", "exponent": 2}},
    ]  # fmt: skip

    again = await gql.post(POST, request, tenant_id=tenant_id)
    assert again["data"]["postLedgerTransaction"]["replayed"] is True
    assert again["data"]["postLedgerTransaction"]["transaction"] == payload["transaction"]
    assert await _count_writes(database, tenant_id) == (1, 2)

    balances = await gql.post(BALANCE, {"id": revenue}, tenant_id=tenant_id)
    assert balances["data"]["ledgerAccount"] == {
        "version": 1,
        "balance": {"posted": {"amount": "12.50"}, "pending": {"amount": "12.50"},
                    "available": {"amount": "12.50"}},
    }  # fmt: skip


async def test_same_key_with_another_body_is_refused(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    cash, revenue = await _accounts(database, tenant_id)
    entries = [_entry(cash, "DEBIT", "1.00"), _entry(revenue, "CREDIT", "1.00")]
    await gql.post(POST, {"input": {"idempotencyKey": "k", "entries": entries}},
                   tenant_id=tenant_id)  # fmt: skip
    other = [_entry(cash, "DEBIT", "2.00"), _entry(revenue, "CREDIT", "2.00")]
    body = await gql.post(POST, {"input": {"idempotencyKey": "k", "entries": other}},
                          tenant_id=tenant_id)  # fmt: skip
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await _count_writes(database, tenant_id) == (1, 2)


@pytest.mark.parametrize(
    ("entries", "code", "field"),
    [
        pytest.param([("cash", "DEBIT", "1.001"), ("revenue", "CREDIT", "1.001")],
                     "BAD_USER_INPUT", "entries.0.amount", id="too_many_decimals_case"),
        pytest.param([("cash", "DEBIT", "0"), ("revenue", "CREDIT", "0")],
                     "BAD_USER_INPUT", "entries.0.amount", id="zero_case"),
        pytest.param([("cash", "DEBIT", "1.00"), ("revenue", "CREDIT", "-1.00")],
                     "BAD_USER_INPUT", "entries.1.amount", id="negative_case"),
        pytest.param([("cash", "DEBIT", "1.00", "ZZZ"), ("revenue", "CREDIT", "1.00", "ZZZ")],
                     "BAD_USER_INPUT", "entries.0.currency", id="unknown_currency_case"),
        pytest.param([("cash", "DEBIT", "1.00", "EUR"), ("revenue", "CREDIT", "1.00", "EUR")],
                     "CURRENCY_MISMATCH", "entries.0.currency", id="currency_mismatch_case"),
        pytest.param([("cash", "DEBIT", "1.00"), ("revenue", "CREDIT", "0.99")],
                     "UNBALANCED_TRANSACTION", "entries", id="unbalanced_case"),
        pytest.param([("cash", "DEBIT", "1.00"), ("theirs", "CREDIT", "1.00")],
                     "NOT_FOUND", "entries.1.accountId", id="other_tenant_account_case"),
        pytest.param([("cash", "DEBIT", "1.00"), ("garbage", "CREDIT", "1.00")],
                     "NOT_FOUND", "entries.1.accountId", id="malformed_account_id_case"),
        pytest.param([("cash", "DEBIT", "1.00")], "UNBALANCED_TRANSACTION", "entries",
                     id="one_sided_case"),
        pytest.param([], "BAD_USER_INPUT", "entries", id="no_entries_case"),
    ],
)  # fmt: skip
async def test_bad_postings_are_refused_with_a_code_and_write_nothing(
    database: Database, gql: GraphQLClient, tenant_id: int,
    entries: list[tuple[str, ...]], code: str, field: str | None,
) -> None:  # fmt: skip
    cash, revenue = await _accounts(database, tenant_id)
    other_tenant = await make_tenant(database.engine)
    theirs = encode_global_id("LedgerAccount", await make_account(database.engine, other_tenant))
    ids = {"cash": cash, "revenue": revenue, "theirs": theirs, "garbage": "not-an-id"}
    request: dict[str, Any] = {"input": {"idempotencyKey": "bad", "entries": [
        _entry(ids[name], direction, amount, *rest) for name, direction, amount, *rest in entries
    ]}}  # fmt: skip
    body = await gql.post(POST, request, tenant_id=tenant_id)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    assert error["extensions"].get("field") == field
    assert await _count_writes(database, tenant_id) == (0, 0)


async def test_two_phase_post_and_void(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    cash, revenue = await _accounts(database, tenant_id)
    ids = []
    for key in ("hold-1", "hold-2"):
        body = await gql.post(POST, {"input": {
            "idempotencyKey": key, "status": "PENDING",
            "entries": [_entry(cash, "DEBIT", "5.00"), _entry(revenue, "CREDIT", "5.00")],
        }}, tenant_id=tenant_id)  # fmt: skip
        transaction = body["data"]["postLedgerTransaction"]["transaction"]
        assert (transaction["status"], transaction["postedAt"]) == ("PENDING", None)
        ids.append(transaction["id"])
    pending = await gql.post(BALANCE, {"id": revenue}, tenant_id=tenant_id)
    assert pending["data"]["ledgerAccount"]["balance"] == {
        "posted": {"amount": "0.00"}, "pending": {"amount": "10.00"},
        "available": {"amount": "0.00"},
    }  # fmt: skip

    posted = await gql.post(POST_PENDING, {"id": ids[0]}, tenant_id=tenant_id)
    assert posted["data"]["postPendingTransaction"]["transaction"]["status"] == "POSTED"
    voided = await gql.post(VOID_PENDING, {"id": ids[1]}, tenant_id=tenant_id)
    assert voided["data"]["voidPendingTransaction"]["transaction"]["status"] == "VOIDED"

    for mutation, transaction_id in ((POST_PENDING, ids[0]), (VOID_PENDING, ids[0]),
                                     (POST_PENDING, ids[1])):  # fmt: skip
        refused = await gql.post(mutation, {"id": transaction_id}, tenant_id=tenant_id)
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_STATE_TRANSITION"

    final = await gql.post(BALANCE, {"id": revenue}, tenant_id=tenant_id)
    assert final["data"]["ledgerAccount"] == {
        "version": 4,
        "balance": {"posted": {"amount": "5.00"}, "pending": {"amount": "5.00"},
                    "available": {"amount": "5.00"}},
    }  # fmt: skip


async def test_another_tenants_pending_transaction_reads_as_not_found(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    other_tenant = await make_tenant(database.engine)
    cash, revenue = await _accounts(database, other_tenant)
    body = await gql.post(POST, {"input": {
        "idempotencyKey": "theirs", "status": "PENDING",
        "entries": [_entry(cash, "DEBIT", "5.00"), _entry(revenue, "CREDIT", "5.00")],
    }}, tenant_id=other_tenant)  # fmt: skip
    their_id = body["data"]["postLedgerTransaction"]["transaction"]["id"]
    refused = await gql.post(POST_PENDING, {"id": their_id}, tenant_id=tenant_id)
    assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    status = await gql.post(
        "query($id: ID!) { ledgerTransaction(id: $id) { status } }", {"id": their_id},
        tenant_id=other_tenant,
    )  # fmt: skip
    assert status["data"]["ledgerTransaction"]["status"] == "PENDING"


async def test_amounts_in_jpy_and_bhd_use_their_exponents(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    for currency, amount, minor in (("JPY", "1500", "1500"), ("BHD", "1.250", "1250")):
        debit, credit = await _accounts(database, tenant_id, currency)
        body = await gql.post(POST, {"input": {
            "idempotencyKey": f"fx-{currency}",
            "entries": [_entry(debit, "DEBIT", amount, currency),
                        _entry(credit, "CREDIT", amount, currency)],
        }}, tenant_id=tenant_id)  # fmt: skip
        money = body["data"]["postLedgerTransaction"]["transaction"]["entries"][0]["amount"]
        assert (money["amount"], money["minorUnits"]) == (amount, minor)
