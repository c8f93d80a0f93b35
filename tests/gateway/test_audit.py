"""The audit trail: unmasked personal-data reads and postings, recorded once per request and
readable with audit:read; on PostgreSQL the table refuses UPDATE and DELETE for every role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.audit.tables import audit_events
from adapters.ledger.tables import customers
from resolvers.node import encode_global_id
from tests.factories import make_account, make_customer, make_tenant
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient

EMAILS = """query Emails { customers(first: 10) { edges { node { id displayName email
  again: email } } } }"""
AUDIT = """query Audit($since: DateTime) { auditEvents(first: 50, since: $since) {
  edges { node { action objectType objectId fields subject clientId requestId operationName } }
} }"""
POST = """mutation Post($key: String!, $debit: ID!, $credit: ID!) {
  postLedgerTransaction(input: {idempotencyKey: $key, status: PENDING, entries: [
    {accountId: $debit, direction: DEBIT, amount: "5.00", currency: "USD"},
    {accountId: $credit, direction: CREDIT, amount: "5.00", currency: "USD"}]}) { transactionId }
}"""
ALL = ("ledger:read", "ledger:write", "pii:read", "audit:read")


class Inserts:
    """INSERT statements into audit_events sent through an engine while it is attached."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().lower().startswith("insert into audit_events"):
            self.count += 1


@pytest.fixture
def inserts(engine: AsyncEngine) -> Iterator[Inserts]:
    counter = Inserts()
    event.listen(engine.sync_engine, "before_cursor_execute", counter)
    yield counter
    event.remove(engine.sync_engine, "before_cursor_execute", counter)


async def _customers(engine: AsyncEngine, tenant_id: int, count: int) -> list[int]:
    ids = []
    for index in range(count):
        pk = await make_customer(engine, tenant_id, display_name=f"C{index}")
        async with engine.begin() as connection:
            await connection.execute(
                update(customers).where(customers.c.id == pk).values(email=f"c{index}@x.com")
            )
        ids.append(pk)
    return ids


async def _post(
    gql: GraphQLClient, query: str, variables: dict[str, Any], tenant_id: int, scopes: Any, rid: str
) -> httpx.Response:
    return await gql.http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={
            "authorization": f"Bearer {gql.token(tenant_id, scopes)}",
            "x-request-id": rid,
        },
    )


async def _events(engine: AsyncEngine, tenant_id: int) -> list[Any]:
    async with engine.connect() as connection:
        query = select(audit_events).where(audit_events.c.tenant_id == tenant_id)
        return list((await connection.execute(query.order_by(audit_events.c.id))).all())


async def test_an_unmasked_read_records_one_event_per_customer_in_one_insert(
    engine: AsyncEngine, gql: GraphQLClient, tenant_id: int, inserts: Inserts
) -> None:
    ids = await _customers(engine, tenant_id, 3)

    response = await _post(gql, EMAILS, {}, tenant_id, ["ledger:read", "pii:read"], "req-pii-1")

    body = response.json()
    assert "errors" not in body
    assert [e["node"]["email"] for e in body["data"]["customers"]["edges"]] == [
        "c0@x.com", "c1@x.com", "c2@x.com"
    ]  # fmt: skip
    assert inserts.count == 1
    rows = await _events(engine, tenant_id)
    assert sorted(row.object_id for row in rows) == ids
    for row in rows:
        assert (row.action, row.object_type, row.fields) == ("read", "Customer", ["email"])
        assert row.request_id == "req-pii-1"
        assert row.operation_name == "Emails"
        assert row.subject == "developer"  # the token's subject
        assert row.client_id is None


async def test_a_masked_read_records_nothing_and_stays_cheap(
    engine: AsyncEngine, gql: GraphQLClient, tenant_id: int, inserts: Inserts, database: Database
) -> None:
    await _customers(engine, tenant_id, 2)
    compiled_before = database.metrics.compiled_operations

    response = await _post(gql, EMAILS, {}, tenant_id, ["ledger:read"], "req-masked")

    emails = [e["node"]["email"] for e in response.json()["data"]["customers"]["edges"]]
    assert emails == ["c***@x.com", "c***@x.com"]
    assert inserts.count == 0
    assert await _events(engine, tenant_id) == []
    if database.backend == "postgresql" and gql.settings.compiled_operations:
        assert database.metrics.compiled_operations == compiled_before + 1


async def test_an_unmasked_read_leaves_the_compiled_path_for_the_audited_resolvers(
    engine: AsyncEngine, gql: GraphQLClient, tenant_id: int, database: Database
) -> None:
    """The compiled path masks in SQL and records nothing: with pii:read it must not answer."""
    await _customers(engine, tenant_id, 1)
    compiled_before = database.metrics.compiled_operations

    await _post(gql, EMAILS, {}, tenant_id, ["ledger:read", "pii:read"], "req-fallback")

    assert database.metrics.compiled_operations == compiled_before
    assert len(await _events(engine, tenant_id)) == 1


async def test_postings_record_events_in_their_transaction(
    engine: AsyncEngine, gql: GraphQLClient, tenant_id: int
) -> None:
    debit = encode_global_id("LedgerAccount", await make_account(engine, tenant_id))
    credit = encode_global_id(
        "LedgerAccount", await make_account(engine, tenant_id, normal_balance="credit")
    )
    ids = []
    for key in ("a", "b"):
        variables = {"key": key, "debit": debit, "credit": credit}
        response = await _post(gql, POST, variables, tenant_id, ALL, f"req-post-{key}")
        ids.append(response.json()["data"]["postLedgerTransaction"]["transactionId"])
    replay = {"key": "a", "debit": debit, "credit": credit}
    await _post(gql, POST, replay, tenant_id, ALL, "req-replay")  # writes nothing, records nothing
    confirm = "mutation C($id: ID!) { postPendingTransaction(id: $id) { transactionId } }"
    await _post(gql, confirm, {"id": ids[0]}, tenant_id, ALL, "req-confirm")
    void = "mutation V($id: ID!) { voidPendingTransaction(id: $id) { transactionId } }"
    await _post(gql, void, {"id": ids[1]}, tenant_id, ALL, "req-void")
    reverse = """mutation R($id: ID!) { reverseLedgerTransaction(id: $id, idempotencyKey: "r") {
      transactionId } }"""
    reversed_ = await _post(gql, reverse, {"id": ids[0]}, tenant_id, ALL, "req-reverse")
    reversal = reversed_.json()["data"]["reverseLedgerTransaction"]["transactionId"]

    response = await _post(gql, AUDIT, {}, tenant_id, ["audit:read"], "req-audit")

    body = response.json()
    assert "errors" not in body
    nodes = [edge["node"] for edge in body["data"]["auditEvents"]["edges"]]
    assert [(n["action"], n["objectId"], n["requestId"]) for n in nodes] == [
        ("reverse", reversal, "req-reverse"),
        ("void", ids[1], "req-void"),
        ("post_pending", ids[0], "req-confirm"),
        ("post", ids[1], "req-post-b"),
        ("post", ids[0], "req-post-a"),
    ]
    assert {n["objectType"] for n in nodes} == {"LedgerTransaction"}
    assert nodes[-1]["operationName"] == "Post"


async def test_audit_events_are_tenant_scoped_and_need_audit_read(
    engine: AsyncEngine, gql: GraphQLClient, tenant_id: int
) -> None:
    other = await make_tenant(engine)
    await _customers(engine, other, 1)
    await _post(gql, EMAILS, {}, other, ["ledger:read", "pii:read"], "req-other")
    await _customers(engine, tenant_id, 1)
    await _post(gql, EMAILS, {}, tenant_id, ["ledger:read", "pii:read"], "req-mine")

    mine = (await _post(gql, AUDIT, {}, tenant_id, ["audit:read"], "r1")).json()
    refused = (await _post(gql, AUDIT, {}, tenant_id, ["ledger:read", "pii:read"], "r2")).json()

    assert [e["node"]["requestId"] for e in mine["data"]["auditEvents"]["edges"]] == ["req-mine"]
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"] == {"code": "FORBIDDEN", "scope": "audit:read"}


async def test_the_audit_trail_refuses_update_and_delete_on_postgresql(
    postgres: Database, tenant_id: int, gql: GraphQLClient
) -> None:
    engine = postgres.engine
    await _customers(engine, tenant_id, 1)
    await _post(gql, EMAILS, {}, tenant_id, ["ledger:read", "pii:read"], "req-guard")

    for statement in (
        update(audit_events).where(audit_events.c.tenant_id == tenant_id).values(subject="x"),
        audit_events.delete().where(audit_events.c.tenant_id == tenant_id),
    ):
        with pytest.raises(DBAPIError, match="append-only"):  # even as the owner (superuser)
            async with engine.begin() as connection:
                await connection.execute(statement)
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as connection:
            await connection.execute(text("truncate audit_events"))
    assert len(await _events(engine, tenant_id)) == 1


async def test_the_application_role_may_only_insert_and_select_audit_events(
    postgres: Database, tenant_id: int
) -> None:
    engine = postgres.engine
    script = (
        __import__("pathlib").Path(__file__).parents[2] / "adapters" / "audit" / "app_role.sql"
    ).read_text()
    async with engine.begin() as connection:
        raw = await connection.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection
        await driver.execute(script)
    async with engine.connect() as connection:
        await connection.execute(text("set role gateway_app"))
        await connection.execute(
            text(
                "insert into audit_events (tenant_id, occurred_at, action, object_type, fields,"
                " subject, request_id) values (:t, now(), 'read', 'Customer', '[]', 'app', 'r')"
            ),
            {"t": tenant_id},
        )
        count = await connection.scalar(
            select(func.count())
            .select_from(audit_events)
            .where(audit_events.c.tenant_id == tenant_id)
        )
        assert count == 1
        for statement in ("update audit_events set subject = 'x'", "delete from audit_events"):
            savepoint = await connection.begin_nested()
            with pytest.raises(DBAPIError, match="permission denied"):
                await connection.execute(text(statement))
            await savepoint.rollback()
        await connection.rollback()


async def test_a_repeated_unmasked_read_is_recorded_again_not_served_from_the_response_cache(
    engine: AsyncEngine, gql: GraphQLClient, tenant_id: int
) -> None:
    await _customers(engine, tenant_id, 2)
    scopes = ["ledger:read", "pii:read"]

    await _post(gql, EMAILS, {}, tenant_id, scopes, "req-first")
    again = await _post(gql, EMAILS, {}, tenant_id, scopes, "req-again")

    assert again.headers.get("x-cache") != "hit"
    rows = await _events(engine, tenant_id)
    assert sorted(row.request_id for row in rows) == ["req-again"] * 2 + ["req-first"] * 2


async def test_audit_events_are_never_answered_from_the_response_cache(
    engine: AsyncEngine, gql: GraphQLClient, tenant_id: int
) -> None:
    """Reads record events without a ledger write: the data version does not move."""
    await _customers(engine, tenant_id, 1)
    before = (await _post(gql, AUDIT, {}, tenant_id, ["audit:read"], "r-before")).json()

    await _post(gql, EMAILS, {}, tenant_id, ["ledger:read", "pii:read"], "req-read")
    after = (await _post(gql, AUDIT, {}, tenant_id, ["audit:read"], "r-after")).json()

    assert before["data"]["auditEvents"]["edges"] == []
    assert [e["node"]["requestId"] for e in after["data"]["auditEvents"]["edges"]] == ["req-read"]
