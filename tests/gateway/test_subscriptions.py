"""Live updates over a real server (uvicorn on a free port) and real clients: the
graphql-transport-ws protocol, SSE, tenancy and scopes per event, the document policy, the
bounded queue of a slow subscriber, the per-client connection cap, and that /graphql (with its
compiled path and response cache) never runs a subscription.

The two-process test (a posting through one gateway process reaching a subscriber of another
through Redis) is tests/gateway/test_subscriptions_processes.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from graphql import parse
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.events import LedgerEvent, MemoryEventBroker
from adapters.ledger.posting import PostingService
from gateway.app import create_app
from gateway.auth import mint_token
from gateway.compiled import CompiledOperations
from gateway.cost import CostSettings
from gateway.lifespan import Services
from gateway.persisted_documents import parse_manifest
from gateway.response_cache import _cacheable_digest
from gateway.settings import Settings
from gateway.subscription_settings import SubscriptionSettings
from resolvers.node import encode_global_id
from resolvers.principal import SCOPES
from resolvers.schema import schema
from tests.factories import make_account, make_customer, make_tenant, post_transfer
from tests.gateway.subscription_clients import WsClient, open_sse, open_ws

TRANSACTIONS = """subscription Posted {
  ledgerTransactionPosted { id status description entries { amount { amount currency } } }
}"""
BALANCES = """subscription Balances($ids: [ID!]!) {
  ledgerAccountBalanceChanged(accountIds: $ids) {
    id version balance { posted { amount currency } pending { amount } }
  }
}"""
POST = """mutation Post($input: PostLedgerTransactionInput!) {
  postLedgerTransaction(input: $input) { transactionId }
}"""


@dataclass
class Live:
    """A gateway served by uvicorn on a free port, its in-process broker and a way to post."""

    url: str
    settings: Settings
    services: Services
    broker: MemoryEventBroker

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    def token(self, tenant_id: int, scopes: Iterable[str] = SCOPES) -> str:
        return mint_token(self.settings, tenant_id=tenant_id, scopes=scopes)

    async def subscribers(self, tenant_id: int, count: int) -> None:
        """Wait until `count` subscriptions of the tenant listen (events sent before would be
        missed: delivery starts when the subscription does)."""
        for _ in range(500):
            if self.broker.fanout.subscriber_count(tenant_id) == count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{self.broker.fanout.subscriber_count(tenant_id)} subscribers")

    async def post(self, tenant_id: int, debit: int, credit: int, amount: str, key: str) -> str:
        """Post through POST /graphql; the new transaction's global id."""
        entries = [
            {"accountId": encode_global_id("LedgerAccount", debit), "direction": "DEBIT",
             "amount": amount, "currency": "USD"},
            {"accountId": encode_global_id("LedgerAccount", credit), "direction": "CREDIT",
             "amount": amount, "currency": "USD"},
        ]  # fmt: skip
        variables = {"input": {"idempotencyKey": key, "entries": entries}}
        async with httpx.AsyncClient(base_url=self.url, trust_env=False) as client:
            response = await client.post(
                "/graphql",
                json={"query": POST, "variables": variables},
                headers={"authorization": f"Bearer {self.token(tenant_id)}"},
            )
        body = response.json()
        assert "errors" not in body, body
        transaction_id: str = body["data"]["postLedgerTransaction"]["transactionId"]
        return transaction_id


@asynccontextmanager
async def serving(settings: Settings, services: Services) -> AsyncIterator[Live]:
    broker = MemoryEventBroker()
    wired = dataclasses.replace(
        services,
        settings=settings,
        events=broker,
        posting=PostingService(services.engine, events=broker),
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings, wired), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        for _ in range(500):  # uvicorn says nothing when it has started: poll, 10 s at most
            if server.started or serving.done():
                break
            await asyncio.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield Live(f"http://127.0.0.1:{listener.getsockname()[1]}", settings, wired, broker)
    finally:
        server.should_exit = True
        await serving
        listener.close()
        await broker.close()


@pytest.fixture
async def live(settings: Settings, services: Services) -> AsyncIterator[Live]:
    async with serving(settings, services) as gateway:
        yield gateway


@dataclass
class Books:
    tenant_id: int
    cash: int
    revenue: int


async def _books(engine: AsyncEngine, tenant_id: int) -> Books:
    customer = await make_customer(engine, tenant_id)
    cash = await make_account(engine, tenant_id, customer_id=customer)
    revenue = await make_account(engine, tenant_id, normal_balance="credit")
    return Books(tenant_id, cash, revenue)


async def _ready(client: WsClient, credential: str) -> None:
    assert await client.init(credential) == {"type": "connection_ack"}


# The protocol -----------------------------------------------------------------------------


async def test_a_posting_is_delivered_to_a_websocket_subscriber_after_it_committed(
    live: Live, engine: AsyncEngine, tenant_id: int
) -> None:
    books = await _books(engine, tenant_id)
    async with open_ws(live.ws_url) as client:
        await _ready(client, live.token(tenant_id))
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}
        await client.subscribe("1", TRANSACTIONS)
        await live.subscribers(tenant_id, 1)

        posted = await live.post(tenant_id, books.cash, books.revenue, "12.50", "ws-1")

        assert await client.receive() == {
            "id": "1",
            "type": "next",
            "payload": {"data": {"ledgerTransactionPosted": {
                "id": posted, "status": "POSTED", "description": None,
                "entries": [{"amount": {"amount": "12.50", "currency": "USD"}},
                            {"amount": {"amount": "12.50", "currency": "USD"}}],
            }}},
        }  # fmt: skip
        await client.send({"id": "1", "type": "complete"})
        await live.subscribers(tenant_id, 0)


async def test_balances_arrive_for_the_accounts_asked_only(
    live: Live, engine: AsyncEngine, tenant_id: int
) -> None:
    """Given a subscriber of one account, when postings touch it and other accounts, then each
    change of that account arrives with its new balance and version, and nothing else does."""
    books = await _books(engine, tenant_id)
    other = await make_account(engine, tenant_id)
    account = encode_global_id("LedgerAccount", books.cash)
    async with open_ws(live.ws_url) as client:
        await _ready(client, live.token(tenant_id, {"ledger:read"}))
        await client.subscribe("b", BALANCES, {"ids": [account]})
        await live.subscribers(tenant_id, 1)

        await live.post(tenant_id, other, books.revenue, "1.00", "bal-other")
        await live.post(tenant_id, books.cash, books.revenue, "2.50", "bal-1")
        await live.post(tenant_id, books.cash, books.revenue, "0.25", "bal-2")

        for version, posted in ((1, "2.50"), (2, "2.75")):
            message = await client.receive()
            assert message == {"id": "b", "type": "next", "payload": {"data": {
                "ledgerAccountBalanceChanged": {
                    "id": account,
                    "version": version,
                    "balance": {"posted": {"amount": posted, "currency": "USD"},
                                "pending": {"amount": posted}},
                },
            }}}  # fmt: skip


async def test_another_tenants_postings_and_accounts_never_reach_a_subscriber(
    live: Live, engine: AsyncEngine, tenant_id: int
) -> None:
    mine = await _books(engine, tenant_id)
    other_tenant = await make_tenant(engine)
    theirs = await _books(engine, other_tenant)
    their_account = encode_global_id("LedgerAccount", theirs.cash)
    async with open_ws(live.ws_url) as client:
        await _ready(client, live.token(tenant_id))
        await client.subscribe("all", TRANSACTIONS)
        # Their account id reads exactly like a missing one.
        await client.subscribe("theirs", BALANCES, {"ids": [their_account]})
        refused = await client.receive()
        assert refused["id"] == "theirs"
        assert refused["payload"]["errors"][0]["extensions"] == {
            "code": "NOT_FOUND", "field": "accountIds",
        }  # fmt: skip
        assert await client.receive() == {"id": "theirs", "type": "complete"}
        await live.subscribers(tenant_id, 1)

        await live.post(other_tenant, theirs.cash, theirs.revenue, "9.00", "theirs-1")
        # Even an event naming our tenant with their transaction finds nothing to show.
        their_posting = await post_transfer(
            engine, other_tenant, debit=theirs.cash, credit=theirs.revenue, amount=1
        )
        forged = LedgerEvent(tenant_id, their_posting.transaction.id, "post", ((theirs.cash, 2),))
        await live.broker.publish(forged)
        posted = await live.post(tenant_id, mine.cash, mine.revenue, "1.00", "mine-1")

        message = await client.receive()
        assert message["id"] == "all"
        assert message["payload"]["data"]["ledgerTransactionPosted"]["id"] == posted


async def test_without_ledger_read_a_subscription_is_refused_before_any_event(
    live: Live, engine: AsyncEngine, tenant_id: int
) -> None:
    async with open_ws(live.ws_url) as client:
        await _ready(client, live.token(tenant_id, {"ledger:write"}))
        await client.subscribe("1", TRANSACTIONS)
        message = await client.receive()
        assert message["type"] == "error"
        assert message["id"] == "1"
        assert [e["extensions"] for e in message["payload"]] == [
            {"code": "FORBIDDEN", "scope": "ledger:read"}
        ]
        assert live.broker.fanout.subscriber_count(tenant_id) == 0


@pytest.mark.parametrize(
    ("credential", "reason"),
    [
        (None, "Forbidden: missing bearer token"),
        ("not-a-token", "Forbidden: "),
        ("fgw_test_" + "x" * 40, "Forbidden: the API key is not valid or has been revoked"),
    ],
    ids=["none", "garbage", "unknown-key"],
)
async def test_a_connection_init_without_a_valid_credential_is_closed_4403(
    live: Live, credential: str | None, reason: str
) -> None:
    async with open_ws(live.ws_url) as client:
        payload = {} if credential is None else {"authorization": f"Bearer {credential}"}
        await client.send({"type": "connection_init", "payload": payload})
        code, said = await client.closed_with()
    assert code == 4403
    assert said.startswith(reason)


async def test_protocol_violations_close_with_the_protocols_codes(
    live: Live, tenant_id: int
) -> None:
    async with open_ws(live.ws_url, subprotocol=None) as client:
        assert await client.closed_with() == (4406, "Subprotocol not acceptable")
    async with open_ws(live.ws_url) as client:
        await client.subscribe("1", TRANSACTIONS)
        assert await client.closed_with() == (4401, "Unauthorized")
    async with open_ws(live.ws_url) as client:
        await _ready(client, live.token(tenant_id))
        await client.send({"type": "connection_init"})
        assert await client.closed_with() == (4429, "Too many initialisation requests")
    async with open_ws(live.ws_url) as client:
        await _ready(client, live.token(tenant_id))
        await client.subscribe("same", TRANSACTIONS)
        await client.subscribe("same", TRANSACTIONS)
        assert await client.closed_with() == (4409, "Subscriber for same already exists")
    async with open_ws(live.ws_url) as client:
        await client.connection.send("{not json")
        assert await client.closed_with() == (4400, "invalid message: not JSON")


async def test_a_client_that_never_sends_connection_init_is_closed_4408(
    settings: Settings, services: Services
) -> None:
    quick = dataclasses.replace(
        settings, subscriptions=SubscriptionSettings(init_timeout_seconds=0.2)
    )
    async with serving(quick, services) as live, open_ws(live.ws_url) as client:
        assert await client.closed_with() == (4408, "Connection initialisation timeout")


async def test_subscriptions_over_the_per_connection_limit_are_refused_one_by_one(
    settings: Settings, services: Services, tenant_id: int
) -> None:
    one = dataclasses.replace(
        settings, subscriptions=SubscriptionSettings(max_operations_per_connection=1)
    )
    async with serving(one, services) as live, open_ws(live.ws_url) as client:
        await _ready(client, live.token(tenant_id))
        await client.subscribe("first", TRANSACTIONS)
        await live.subscribers(tenant_id, 1)
        await client.subscribe("second", TRANSACTIONS)
        assert await client.receive() == {"id": "second", "type": "error", "payload": [{
            "message": "at most 1 subscriptions per connection",
            "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"},
        }]}  # fmt: skip
        await client.send({"id": "first", "type": "complete"})
        await live.subscribers(tenant_id, 0)
        await client.subscribe("third", TRANSACTIONS)  # room again
        await live.subscribers(tenant_id, 1)


async def test_a_subscription_whose_events_would_cost_more_than_the_budget_is_refused(
    settings: Settings, services: Services, tenant_id: int
) -> None:
    """The selection is priced as a query's (gateway.cost): each event costs that much to
    answer, so a subscription over the caller's budget never starts."""
    frugal = dataclasses.replace(
        settings, cost=CostSettings(max_cost={"first_party": 5}, report_to_analysts=False)
    )
    query = """subscription { ledgerTransactionPosted {
      id entries { amount { amount } } } }"""
    async with serving(frugal, services) as live, open_ws(live.ws_url) as client:
        await _ready(client, live.token(tenant_id))
        await client.subscribe("cheap", "subscription { ledgerTransactionPosted { id } }")
        await live.subscribers(tenant_id, 1)
        await client.subscribe("dear", query)
        refused = await client.receive()
        assert refused["id"] == "dear"
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "COST_ESTIMATED_TOO_EXPENSIVE"
        assert live.broker.fanout.subscriber_count(tenant_id) == 1


async def test_queries_mutations_and_bad_documents_are_refused_with_an_error_message(
    live: Live, tenant_id: int
) -> None:
    async with open_ws(live.ws_url) as client:
        await _ready(client, live.token(tenant_id))
        await client.subscribe("q", "{ customers(first: 1) { edges { cursor } } }")
        await client.subscribe("bad", "subscription { ledgerTransactionPosted { nope } }")
        answers = {m["id"]: m for m in [await client.receive(), await client.receive()]}
        assert answers["q"]["type"] == "error"
        assert answers["q"]["payload"][0]["extensions"] == {"code": "BAD_REQUEST"}
        assert answers["bad"]["type"] == "error"
        assert answers["bad"]["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        # The connection is still usable.
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}


async def test_a_partner_client_may_subscribe_only_with_a_registered_document(
    live: Live, engine: AsyncEngine, tenant_id: int
) -> None:
    books = await _books(engine, tenant_id)
    issued = await live.services.clients.create(
        tenant_id=tenant_id, name="partner-live", kind="partner", scopes={"ledger:read"}
    )
    manifest = parse_manifest(orjson.dumps({"Posted": TRANSACTIONS}), schema._schema)
    await live.services.trusted_documents.store.register(issued.client.id, manifest)
    async with open_ws(live.ws_url) as client:
        await _ready(client, issued.key)
        await client.subscribe("text", TRANSACTIONS)
        refused = await client.receive()
        assert refused["type"] == "error"
        # As on /graphql: a partner's policy takes registered documents only, by id.
        assert refused["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_ID_REQUIRED"
        await client.send({"id": "byid", "type": "subscribe", "payload": {"documentId": "Posted"}})
        await live.subscribers(tenant_id, 1)
        posted = await live.post(tenant_id, books.cash, books.revenue, "3.00", "partner-1")
        message = await client.receive()
        assert message["id"] == "byid"
        assert message["payload"]["data"]["ledgerTransactionPosted"]["id"] == posted


# SSE --------------------------------------------------------------------------------------


async def test_sse_streams_postings_as_next_events(
    live: Live, engine: AsyncEngine, tenant_id: int
) -> None:
    books = await _books(engine, tenant_id)
    async with open_sse(live.url, live.token(tenant_id), TRANSACTIONS) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        await live.subscribers(tenant_id, 1)
        posted = await live.post(tenant_id, books.cash, books.revenue, "4.00", "sse-1")
        name, data = await stream.event()
        assert name == "next"
        assert data["data"]["ledgerTransactionPosted"]["id"] == posted
    await live.subscribers(tenant_id, 0)  # the client went away: the subscription ended


async def test_sse_refuses_like_graphql_does_before_the_stream_starts(
    live: Live, tenant_id: int
) -> None:
    body = {"query": TRANSACTIONS}
    async with httpx.AsyncClient(base_url=live.url, trust_env=False) as client:
        anonymous = await client.post(
            "/graphql/stream", json=body, headers={"accept": "text/event-stream"}
        )
        wrong_accept = await client.post(
            "/graphql/stream", json=body,
            headers={"authorization": f"Bearer {live.token(tenant_id)}", "accept": "text/html"},
        )  # fmt: skip
        garbled = await client.post(
            "/graphql/stream", json={"query": "subscription { ledgerTransactionPosted {"},
            headers={"authorization": f"Bearer {live.token(tenant_id)}",
                     "accept": "text/event-stream"},
        )  # fmt: skip
    assert anonymous.status_code == 401
    assert anonymous.json()["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    assert wrong_accept.status_code == 406
    # refused in the stream, as any other refusal after authentication: one `next`, `complete`
    assert '"code":"GRAPHQL_PARSE_FAILED"' in garbled.text.replace(" ", "")
    assert "event: complete" in garbled.text
    async with open_sse(live.url, live.token(tenant_id, {"pii:read"}), TRANSACTIONS) as stream:
        name, data = await stream.event()
        assert name == "next"
        assert data["errors"][0]["extensions"] == {"code": "FORBIDDEN", "scope": "ledger:read"}
        assert await stream.event() == ("complete", None)


# Slow subscribers and the connection cap --------------------------------------------------


async def test_a_slow_subscriber_is_closed_1013_while_a_fast_one_keeps_receiving(
    settings: Settings, services: Services, engine: AsyncEngine, tenant_id: int
) -> None:
    """Given two subscribers, one of which stops reading (a small receive buffer, so the
    server's writes to it back up), when events keep coming, then the slow one's queue
    overflows and it is closed with 1013 while the fast one receives every event in order."""
    small = dataclasses.replace(settings, subscriptions=SubscriptionSettings(queue_size=4))
    books = await _books(engine, tenant_id)
    posting = await post_transfer(
        engine, tenant_id, debit=books.cash, credit=books.revenue, amount=1,
        description="x" * 1000,  # large results fill the slow client's buffers sooner
    )  # fmt: skip
    query = "subscription { ledgerTransactionPosted { id description } }"
    async with (
        serving(small, services) as live,
        open_ws(live.ws_url) as fast,
        open_ws(live.ws_url, receive_buffer=4096, max_queue=1) as slow,
    ):
        for client in (fast, slow):
            await _ready(client, live.token(tenant_id))
            await client.subscribe("s", query)
        await live.subscribers(tenant_id, 2)

        sent = 0
        while live.broker.fanout.subscriber_count(tenant_id) == 2:
            assert sent < 5000, "the slow subscriber was never dropped"
            sent += 1
            event = LedgerEvent(tenant_id, posting.transaction.id, "post", ((books.cash, sent),))
            await live.broker.publish(event)
            message = await fast.receive()  # the fast one keeps up, one event at a time
            assert message["payload"]["data"]["ledgerTransactionPosted"]["description"] == (
                "x" * 1000
            )
        await live.broker.publish(event)

        assert (await fast.receive())["type"] == "next"
        code, reason = await slow.closed_with(within=30)
        assert (code, reason) == (1013, "subscriber too slow: more than 4 events waiting")
        assert live.services.metrics.subscribers_too_slow == 1


async def test_a_client_over_its_connection_cap_is_refused_until_one_closes(
    settings: Settings, services: Services, tenant_id: int
) -> None:
    capped = dataclasses.replace(
        settings, subscriptions=SubscriptionSettings(max_connections_per_client=2)
    )
    async with serving(capped, services) as live:
        token = live.token(tenant_id)
        other = live.token(tenant_id, {"ledger:read"}) + ""  # the same subject: same client
        async with open_ws(live.ws_url) as first, open_ws(live.ws_url) as second:
            await _ready(first, token)
            await _ready(second, other)
            async with open_ws(live.ws_url) as third:
                await third.send(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                )
                code, reason = await third.closed_with()
            assert code == 4429
            assert reason == "at most 2 subscription connections per client; close one first"
            async with httpx.AsyncClient(base_url=live.url, trust_env=False) as http:
                response = await http.post(
                    "/graphql/stream", json={"query": TRANSACTIONS},
                    headers={"authorization": f"Bearer {token}", "accept": "text/event-stream"},
                )  # fmt: skip
            assert response.status_code == 429
            assert response.json()["errors"][0]["extensions"] == {"code": "TOO_MANY_CONNECTIONS"}
            # Another client (another subject) is not affected.
            async with open_ws(live.ws_url) as stranger:
                someone = mint_token(capped, tenant_id=tenant_id, scopes=SCOPES, subject="eve")
                await _ready(stranger, someone)
        async with open_ws(live.ws_url) as again:  # the first two closed: a slot is free
            await _ready(again, token)


# /graphql never runs subscriptions --------------------------------------------------------


async def test_graphql_over_http_refuses_a_subscription_before_compiled_or_cached_paths(
    live: Live, tenant_id: int
) -> None:
    metrics = live.services.metrics
    before = (metrics.compiled_operations, metrics.response_cache_hits,
              metrics.response_cache_misses, metrics.response_cache_stores)  # fmt: skip
    async with httpx.AsyncClient(base_url=live.url, trust_env=False) as client:
        for _ in range(2):
            response = await client.post(
                "/graphql",
                json={"query": TRANSACTIONS},
                headers={"authorization": f"Bearer {live.token(tenant_id)}"},
            )
            assert response.status_code == 400
            error = response.json()["errors"][0]
            assert error["extensions"] == {"code": "BAD_REQUEST"}
            assert "/graphql/stream" in error["message"]
    after = (metrics.compiled_operations, metrics.response_cache_hits,
             metrics.response_cache_misses, metrics.response_cache_stores)  # fmt: skip
    assert after == before
    assert live.broker.fanout.subscriber_count(tenant_id) == 0


def test_the_compiled_planner_and_the_response_cache_never_take_a_subscription() -> None:
    document = parse(TRANSACTIONS)
    compiled = CompiledOperations(
        schema._schema, rules=[], max_page_size=100, fetch_json=_never_called
    )
    assert compiled.plan(TRANSACTIONS, document, None) is None
    assert _cacheable_digest(schema._schema, TRANSACTIONS, None) is None
    # (the same document as a query would be taken by both: the refusal is the operation type)
    as_query = TRANSACTIONS.replace("subscription Posted {\n  ledgerTransactionPosted",
                                    "query Posted {\n  ledgerTransaction(id: \"x\")")  # fmt: skip
    assert compiled.plan(as_query, parse(as_query), None) is not None
    assert _cacheable_digest(schema._schema, as_query, None) is not None


async def _never_called(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("no SQL for a subscription")
