"""Malformed input is the client's error: BAD_USER_INPUT naming what was wrong, never masked.

A value of a variable that its type refuses is a request error (graphql-core coerces
variables before execution): `BAD_USER_INPUT`, `extensions.variable` the variable and
`extensions.field` the path inside it. A literal in the document that its type refuses makes
the document invalid: `GRAPHQL_VALIDATION_FAILED` at the literal's location. Neither is ever
`INTERNAL_SERVER_ERROR`, and neither is logged as unexpected.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from resolvers.node import encode_global_id
from tests.factories import make_account
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient

POST = """mutation Post($input: PostLedgerTransactionInput!) {
  postLedgerTransaction(input: $input) { replayed }
}"""
ENTRIES = """query($id: ID!, $after: String) {
  ledgerAccount(id: $id) { entries(first: 5, after: $after) { edges { cursor } } }
}"""


async def _input(database: Database, tenant_id: int, **changes: Any) -> dict[str, Any]:
    cash = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    revenue = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    amount = changes.pop("amount", "1.00")
    return {
        "idempotencyKey": "input-errors",
        "entries": [
            {"accountId": cash, "direction": "DEBIT", "amount": amount, "currency": "USD"},
            {"accountId": revenue, "direction": "CREDIT", "amount": "1.00", "currency": "USD"},
        ],
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"amount": "abc"}, "input.entries.0.amount", id="decimal_garbage"),
        pytest.param({"amount": 12.5}, "input.entries.0.amount", id="decimal_float"),
        pytest.param({"amount": "1" * 5000}, "input.entries.0.amount", id="decimal_5000_digits"),
        pytest.param({"amount": "1." + "0" * 40}, "input.entries.0.amount", id="decimal_precision"),
        pytest.param({"effectiveAt": "nope"}, "input.effectiveAt", id="datetime_garbage"),
        pytest.param({"effectiveAt": "2026-01-01T00:00:00"}, "input.effectiveAt", id="no_zone"),
        pytest.param({"effectiveAt": 12}, "input.effectiveAt", id="datetime_number"),
        pytest.param(
            {"effectiveAt": "0001-01-01T00:00:00+01:00"}, "input.effectiveAt", id="before_year_1"
        ),
        pytest.param(
            {"effectiveAt": "9999-12-31T23:59:59-01:00"}, "input.effectiveAt", id="after_9999"
        ),
    ],
)
async def test_a_variable_its_scalar_refuses_is_bad_user_input_naming_it(
    database: Database,
    gql: GraphQLClient,
    tenant_id: int,
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, Any],
    field: str,
) -> None:
    variables = {"input": await _input(database, tenant_id, **changes)}
    with caplog.at_level(logging.WARNING):
        body = await gql.post(POST, variables, tenant_id=tenant_id)
    assert "data" not in body  # a request error: nothing ran
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field, "variable": "input"}
    assert "request id" not in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_a_variable_of_a_built_in_type_is_bad_user_input_too(
    gql: GraphQLClient, tenant_id: int
) -> None:
    query = "query($first: Int!) { customers(first: $first) { edges { cursor } } }"
    for value in ("x", 2**40, None, [1]):
        body = await gql.post(query, {"first": value}, tenant_id=tenant_id)
        [error] = body["errors"]
        assert error["extensions"] == {
            "code": "BAD_USER_INPUT", "field": "first", "variable": "first"
        }, value  # fmt: skip


async def test_a_literal_its_scalar_refuses_fails_validation_at_the_literal(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    account = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    query = (
        'mutation { postLedgerTransaction(input: {idempotencyKey: "k", entries: [{accountId: '
        f'"{account}", direction: DEBIT, amount: "zz", currency: "USD"}}]}}) {{ replayed }} }}'
    )
    body = await gql.post(query, tenant_id=tenant_id)
    [error] = body["errors"]
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert "Decimal" in error["message"]
    assert error["locations"] == [{"line": 1, "column": query.index('"zz"') + 1}]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"e:999999999999999999:1", id="time_overflows_a_datetime"),
        pytest.param(b"e:9223372036854775807:1", id="largest_bigint_time"),
        pytest.param(b"e:1:" + b"9" * 5000, id="id_of_5000_digits"),
        pytest.param(b"c:1", id="cursor_of_another_list"),
    ],
)
async def test_a_crafted_entries_cursor_is_bad_user_input_naming_after(
    database: Database, gql: GraphQLClient, tenant_id: int, raw: bytes
) -> None:
    account = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    cursor = base64.urlsafe_b64encode(raw).decode()
    body = await gql.post(ENTRIES, {"id": account, "after": cursor}, tenant_id=tenant_id)
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}
    assert error["path"] == ["ledgerAccount", "entries"]


@pytest.mark.parametrize(
    "effective_at",
    [
        pytest.param("9999-12-31T23:59:59Z", id="year_9999"),
        pytest.param("2001-01-01T00:00:00Z", id="decades_back"),
    ],
)
async def test_an_effective_at_outside_the_window_is_bad_user_input_naming_it(
    database: Database, gql: GraphQLClient, tenant_id: int, effective_at: str
) -> None:
    variables = {"input": await _input(database, tenant_id, effectiveAt=effective_at)}
    body = await gql.post(POST, variables, tenant_id=tenant_id)
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "effectiveAt"}
    assert error["path"] == ["postLedgerTransaction"]


@pytest.mark.parametrize("query", ["{}", "{ customers {} }", "query Q { ... on Query {} }"])
async def test_an_empty_selection_set_fails_validation(
    gql: GraphQLClient, tenant_id: int, query: str
) -> None:
    response = await gql.http.post(
        "/graphql",
        json={"query": query},
        headers={"authorization": f"Bearer {gql.token(tenant_id)}"},
    )
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert error["message"] == "Selection sets must select at least one field."
