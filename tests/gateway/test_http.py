"""GraphQL over HTTP: authentication first, request shapes, status codes, masking."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import httpx
import pytest
from graphql import GraphQLError
from sqlalchemy import func, select

from adapters.ledger.tables import ledger_transactions
from gateway.app import create_app
from gateway.errors import format_errors
from gateway.lifespan import Services
from gateway.settings import Settings
from resolvers.node import encode_global_id
from tests.factories import make_account, make_customer
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient

LOOKUP = "query Lookup($id: ID!) { customer(id: $id) { id displayName } }"


async def test_a_request_without_a_token_is_401_before_anything_else(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/graphql", content=b"not even json")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["x-request-id"]
    assert response.json() == {
        "errors": [
            {
                "message": "missing bearer token (Authorization: Bearer <token>)",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    }


async def test_a_bad_token_is_401(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"authorization": "Bearer x.y.z"}
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        pytest.param(b"{}", "text/plain", 415, "must be application/json", id="not_json_case"),
        pytest.param(b"{nope", "application/json", 400, "not valid JSON", id="bad_json_case"),
        pytest.param(b"[]", "application/json", 400, "must be a JSON object", id="array_case"),
        pytest.param(b"{}", "application/json", 400, "no GraphQL query", id="no_query_case"),
        pytest.param(
            b'{"query": "{ __typename }", "variables": [1]}', "application/json", 400,
            "variables must be a JSON object", id="bad_variables_case",
        ),
        pytest.param(
            b'{"query": "' + b"{ __typename }" * 10_000 + b'"}', "application/json", 400,
            "larger than", id="too_large_case",
        ),
    ],
)  # fmt: skip
async def test_malformed_requests_are_refused_with_a_status(
    gql: GraphQLClient, tenant_id: int, content: bytes, content_type: str, status: int,
    message: str,
) -> None:  # fmt: skip
    response = await gql.http.post(
        "/graphql",
        content=content,
        headers={"authorization": f"Bearer {gql.token(tenant_id)}", "content-type": content_type},
    )
    assert response.status_code == status
    error = response.json()["errors"][0]
    assert message in error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"


async def test_get_runs_queries(database: Database, gql: GraphQLClient, tenant_id: int) -> None:
    customer = await make_customer(database.engine, tenant_id, display_name="Ada")
    global_id = encode_global_id("Customer", customer)
    response = await gql.http.get(
        "/graphql",
        params={"query": LOOKUP, "variables": f'{{"id": "{global_id}"}}'},
        headers={"authorization": f"Bearer {gql.token(tenant_id)}", "graphql-preflight": "1"},
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"customer": {"id": global_id, "displayName": "Ada"}}}
    assert response.headers["cache-control"] == "no-store"


async def test_get_never_executes_a_mutation(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    debit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    credit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    mutation = (
        'mutation { postLedgerTransaction(input: {idempotencyKey: "k", entries: ['
        f'{{accountId: "{debit}", direction: DEBIT, amount: "1.00", currency: "USD"}},'
        f'{{accountId: "{credit}", direction: CREDIT, amount: "1.00", currency: "USD"}}]}})'
        " { replayed } }"
    )
    response = await gql.http.get(
        "/graphql",
        params={"query": mutation},
        headers={"authorization": f"Bearer {gql.token(tenant_id)}", "graphql-preflight": "1"},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    async with database.engine.connect() as connection:
        written = await connection.scalar(
            select(func.count())
            .select_from(ledger_transactions)
            .where(ledger_transactions.c.tenant_id == tenant_id)
        )
    assert written == 0


async def test_validation_errors_carry_a_code_and_status_by_media_type(
    gql: GraphQLClient, tenant_id: int
) -> None:
    headers = {"authorization": f"Bearer {gql.token(tenant_id)}"}
    legacy = await gql.http.post("/graphql", json={"query": "{ nope }"}, headers=headers)
    assert legacy.status_code == 200
    assert "data" not in legacy.json()
    assert legacy.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

    modern = await gql.http.post(
        "/graphql",
        json={"query": "{ nope }"},
        headers={**headers, "accept": "application/graphql-response+json"},
    )
    assert modern.status_code == 400
    assert modern.headers["content-type"].startswith("application/graphql-response+json")
    assert "data" not in modern.json()


GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        pytest.param("{ customers {", None, "GRAPHQL_PARSE_FAILED", id="parse_case"),
        pytest.param("{ nope }", None, "GRAPHQL_VALIDATION_FAILED", id="validation_case"),
        pytest.param(LOOKUP, {}, None, id="missing_variable_case"),
    ],
)
@pytest.mark.parametrize(
    ("accept", "status"),
    [pytest.param(GRAPHQL_RESPONSE, 400, id="graphql_response_case"),
     pytest.param("application/json", 200, id="json_case")],
)  # fmt: skip
async def test_request_errors_answer_without_a_data_entry(
    gql: GraphQLClient, tenant_id: int, query: str, variables: dict[str, str] | None,
    code: str | None, accept: str, status: int,
) -> None:  # fmt: skip
    """GraphQL over HTTP: a request error means nothing executed, so there is no `data`."""
    response = await gql.http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {gql.token(tenant_id)}", "accept": accept},
    )
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"errors"}
    if code is not None:
        assert body["errors"][0]["extensions"]["code"] == code


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, "application/json"])
async def test_an_executed_request_with_a_field_error_keeps_data_null(
    gql: GraphQLClient, tenant_id: int, accept: str
) -> None:
    response = await gql.http.post(
        "/graphql",
        json={"query": "{ customers { totalCount } }"},
        headers={"authorization": f"Bearer {gql.token(tenant_id, ['ledger:write'])}",
                 "accept": accept},
    )  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["path"] == ["customers"]


async def test_query_depth_is_limited(gql: GraphQLClient, tenant_id: int) -> None:
    path = ["customers", "edges", "node", "ledgerAccounts", "edges", "node", "entries", "edges",
            "node", "transaction", "entries", "account", "entries", "edges", "node"]  # fmt: skip
    deep = "{ " + " { ".join(path) + " { id" + " }" * (len(path) + 1)
    body = await gql.post(deep, tenant_id=tenant_id)
    assert "data" not in body  # a validation rule: nothing executed
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


async def test_aliases_are_limited(gql: GraphQLClient, tenant_id: int) -> None:
    aliases = " ".join(f"a{i}: __typename" for i in range(31))
    body = await gql.post(f"{{ {aliases} }}", tenant_id=tenant_id)
    assert "data" not in body
    assert "aliases" in body["errors"][0]["message"]


async def test_writing_needs_the_write_scope_and_writes_nothing(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    debit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    credit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    body = await gql.post(
        """mutation Post($input: PostLedgerTransactionInput!) {
             postLedgerTransaction(input: $input) { replayed } }""",
        {"input": {"idempotencyKey": "k1", "entries": [
            {"accountId": debit, "direction": "DEBIT", "amount": "1.00", "currency": "USD"},
            {"accountId": credit, "direction": "CREDIT", "amount": "1.00", "currency": "USD"}]}},
        tenant_id=tenant_id,
        scopes=["ledger:read"],
    )  # fmt: skip
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN", "scope": "ledger:write"}
    async with database.engine.connect() as connection:
        written = await connection.scalar(
            select(func.count())
            .select_from(ledger_transactions)
            .where(ledger_transactions.c.tenant_id == tenant_id)
        )
    assert written == 0


async def test_reading_needs_the_read_scope(gql: GraphQLClient, tenant_id: int) -> None:
    body = await gql.post("{ customers { edges { node { id } } } }", tenant_id=tenant_id,
                          scopes=["ledger:write"])  # fmt: skip
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN", "scope": "ledger:read"}


def test_unexpected_errors_are_masked_and_logged_with_the_request_id_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "password=hunter2 at db-host:5432"
    error = GraphQLError("boom", path=["customer"], original_error=RuntimeError(secret))
    with caplog.at_level(logging.ERROR, logger="gateway.errors"):
        formatted = format_errors([error], "req-123")
    assert formatted == [
        {
            "message": "Internal server error (request id req-123).",
            "path": ["customer"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-123"},
        }
    ]
    assert "req-123" in caplog.text
    # The cause stays in the server log only, and even there without its password.
    assert "RuntimeError: password=[REDACTED] at db-host:5432" in caplog.text
    assert "hunter2" not in caplog.text


async def test_health_readiness_and_metrics(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"status": "ready"}
    metrics = (await http.get("/metrics")).text
    assert "gateway_sql_statements_total" in metrics


async def test_a_browser_gets_graphiql_with_the_development_token(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    browsing = dataclasses.replace(settings, graphiql=True, graphiql_assets_dir=tmp_path)
    app = create_app(
        browsing, dataclasses.replace(services, settings=browsing, development_token="dev-tok")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        page = await client.get("/graphql", headers={"accept": "text/html"})
        api = await client.get("/graphql", headers={"accept": "application/json"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # No assets in tmp_path: the page says so plainly instead of loading forever.
    assert "not installed" in page.text
    assert "<script" not in page.text
    assert api.status_code == 401  # an API client without a token still gets 401


async def test_syntax_errors_have_their_own_code(gql: GraphQLClient, tenant_id: int) -> None:
    body = await gql.post("{ customers {", tenant_id=tenant_id)
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
