"""Webhook routes: verified on the raw body, deduplicated, answered fast, acted on after.

Forged, stale and replayed deliveries change nothing: the card cache stays warm (no upstream
call on the next read) and no bank sync happens.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Route

from adapters.banking.links import bank_links_for_item, set_link_status
from adapters.banking.records import ConnectionStatus
from adapters.cache import Cache
from adapters.cards.risk import RiskStore
from adapters.cards.webhooks import stripe_signature_header
from adapters.providers.tables import provider_links
from adapters.sandbox.banking_app import BankingSandbox
from adapters.sandbox.cards_app import DEFAULT_WEBHOOK_SECRET
from gateway.app import create_app
from gateway.lifespan import Services
from gateway.settings import Settings
from gateway.webhooks import PLAID_DEDUP_SECONDS, WebhookHandlers
from tests.factories import make_customer
from tests.fixtures.providers import Clock, ProviderWorld

PAYMENTS = "{ customers(first: 1) { edges { node { cardPayments(first: 3) { edges { node {"
PAYMENTS += " processorId status } } } } } } }"
ACCOUNTS = "{ customers(first: 1) { edges { node { bankAccounts { name connectionStatus"
ACCOUNTS += " transactions(first: 100) { edges { node { name } } } } } } } }"


@pytest.fixture
async def webhook_client(
    settings: Settings, services: Services, providers: ProviderWorld, cache: Cache
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, dataclasses.replace(services, providers=providers.runtime,
                                                   cache=cache))  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


@pytest.fixture
async def timed_client(providers: ProviderWorld) -> AsyncIterator[tuple[httpx.AsyncClient, Clock]]:
    """The webhook routes on a clock the test moves (signature ages are checked against it)."""
    clock = Clock()
    handlers = WebhookHandlers(
        providers.runtime,
        dedup_seconds=providers.runtime.settings.webhook_dedup_seconds,
        clock=clock,
    )
    routes = [
        Route("/webhooks/stripe", handlers.stripe, methods=["POST"]),
        Route("/webhooks/plaid", handlers.plaid, methods=["POST"]),
    ]
    transport = httpx.ASGITransport(app=Starlette(routes=routes))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client, clock


async def _card_customer(providers: ProviderWorld, engine: AsyncEngine, tenant_id: int) -> str:
    customer_id = await make_customer(engine, tenant_id)
    await providers.link_card_customer(tenant_id, customer_id, "cus_1")
    await providers.execute(PAYMENTS, tenant_id=tenant_id)  # warm the cache
    providers.cards.reset()
    return providers.cards.data.payment_intent_ids("cus_1")[0]


async def _post_stripe(
    client: httpx.AsyncClient, payload: bytes, *, secret: str = DEFAULT_WEBHOOK_SECRET,
    signed_at: int | None = None,
) -> httpx.Response:  # fmt: skip
    timestamp = int(time.time()) if signed_at is None else signed_at
    header = stripe_signature_header(payload, [secret], timestamp)
    return await client.post("/webhooks/stripe", content=payload,
                             headers={"Stripe-Signature": header,
                                      "Content-Type": "application/json"})  # fmt: skip


async def test_a_stripe_event_drops_the_customers_cached_payments_once(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int,
    webhook_client: httpx.AsyncClient,
) -> None:  # fmt: skip
    payment_id = await _card_customer(providers, engine, tenant_id)
    payload = orjson.dumps(providers.cards.build_event("payment_intent.succeeded", payment_id))

    response = await _post_stripe(webhook_client, payload)
    await providers.runtime.drain()

    assert (response.status_code, response.json()) == (200, {"received": True})
    await providers.execute(PAYMENTS, tenant_id=tenant_id)
    assert providers.cards.total_calls == 1  # refetched after the invalidation

    replay = await _post_stripe(webhook_client, payload)
    await providers.runtime.drain()
    assert (replay.status_code, replay.json()) == (200, {"received": True, "duplicate": True})
    await providers.execute(PAYMENTS, tenant_id=tenant_id)
    assert providers.cards.total_calls == 1  # the duplicate invalidated nothing


@pytest.mark.parametrize(
    ("secret", "age_seconds"),
    [("whsec_forged", 0), (DEFAULT_WEBHOOK_SECRET, 3600)],
    ids=["forged_case", "stale_case"],
)
async def test_forged_or_stale_stripe_events_are_refused_and_change_nothing(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int,
    webhook_client: httpx.AsyncClient, secret: str, age_seconds: int,
) -> None:  # fmt: skip
    payment_id = await _card_customer(providers, engine, tenant_id)
    payload = orjson.dumps(providers.cards.build_event("payment_intent.succeeded", payment_id))

    response = await _post_stripe(
        webhook_client, payload, secret=secret, signed_at=int(time.time()) - age_seconds
    )
    await providers.runtime.drain()

    assert (response.status_code, response.json()) == (
        400,
        {"error": "signature verification failed"},
    )
    await providers.execute(PAYMENTS, tenant_id=tenant_id)
    assert providers.cards.total_calls == 0


async def test_a_stripe_event_with_a_tampered_body_is_refused(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int,
    webhook_client: httpx.AsyncClient,
) -> None:  # fmt: skip
    payment_id = await _card_customer(providers, engine, tenant_id)
    payload = orjson.dumps(providers.cards.build_event("payment_intent.succeeded", payment_id))
    header = stripe_signature_header(payload, [DEFAULT_WEBHOOK_SECRET], int(time.time()))
    response = await webhook_client.post(
        "/webhooks/stripe", content=payload + b" ", headers={"Stripe-Signature": header}
    )
    assert response.status_code == 400


async def _bank_customer(providers: ProviderWorld, engine: AsyncEngine, tenant_id: int) -> str:
    customer_id = await make_customer(engine, tenant_id)
    item_id = await providers.link_bank(tenant_id, customer_id, transactions=2)
    await providers.execute(ACCOUNTS, tenant_id=tenant_id)  # first sync
    providers.banking.calls.clear()
    return item_id


async def test_a_plaid_sync_webhook_syncs_the_item_once(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int,
    webhook_client: httpx.AsyncClient,
) -> None:  # fmt: skip
    item_id = await _bank_customer(providers, engine, tenant_id)
    providers.banking.add_transaction(item_id, name="Webhook coffee", amount="3.50")
    body = providers.banking.webhook_body(item_id, "TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")
    headers = {"Plaid-Verification": providers.banking.sign_webhook(body)}

    response = await webhook_client.post("/webhooks/plaid", content=body, headers=headers)
    await providers.runtime.drain()

    assert (response.status_code, response.json()) == (200, {"received": True})
    assert providers.banking.calls["/transactions/sync"] == 1
    result = await providers.execute(ACCOUNTS, tenant_id=tenant_id)
    names = [
        edge["node"]["name"]
        for account in result["data"]["customers"]["edges"][0]["node"]["bankAccounts"]
        for edge in account["transactions"]["edges"]
    ]
    assert names[0] == "WEBHOOK COFFEE"  # the sandbox upper-cases names, as banks do

    replay = await webhook_client.post("/webhooks/plaid", content=body, headers=headers)
    await providers.runtime.drain()
    assert replay.json() == {"received": True, "duplicate": True}
    assert providers.banking.calls["/transactions/sync"] == 1


async def test_forged_and_stale_plaid_webhooks_are_refused(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int,
    webhook_client: httpx.AsyncClient,
) -> None:  # fmt: skip
    item_id = await _bank_customer(providers, engine, tenant_id)
    body = providers.banking.webhook_body(item_id, "TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")
    forger = BankingSandbox()
    an_hour_ago = int(time.time()) - 3600
    cases = [
        {"Plaid-Verification": forger.sign_webhook(body)},
        {"Plaid-Verification": providers.banking.sign_webhook(body, issued_at=an_hour_ago)},
        {},
    ]
    for headers in cases:
        response = await webhook_client.post("/webhooks/plaid", content=body, headers=headers)
        assert (response.status_code, response.json()) == (400, {"error": "verification failed"})
    await providers.runtime.drain()
    assert providers.banking.calls.get("/transactions/sync", 0) == 0


async def test_a_plaid_login_required_webhook_marks_the_connection(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int,
    webhook_client: httpx.AsyncClient,
) -> None:  # fmt: skip
    item_id = await _bank_customer(providers, engine, tenant_id)
    body = providers.banking.webhook_body(item_id, "ITEM", "ERROR")
    headers = {"Plaid-Verification": providers.banking.sign_webhook(body)}

    response = await webhook_client.post("/webhooks/plaid", content=body, headers=headers)
    await providers.runtime.drain()

    assert response.status_code == 200
    result = await providers.execute(ACCOUNTS, tenant_id=tenant_id)
    statuses = {
        account["connectionStatus"]
        for account in result["data"]["customers"]["edges"][0]["node"]["bankAccounts"]
    }
    assert statuses == {"LOGIN_REQUIRED"}


def _transaction_names(result: dict[str, object]) -> list[str]:
    data = result["data"]
    assert isinstance(data, dict)
    return [
        edge["node"]["name"]
        for account in data["customers"]["edges"][0]["node"]["bankAccounts"]
        for edge in account["transactions"]["edges"]
    ]


async def test_genuine_plaid_deliveries_minutes_apart_each_sync_and_replays_do_not(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int,
    timed_client: tuple[httpx.AsyncClient, Clock],
) -> None:  # fmt: skip
    """SYNC_UPDATES_AVAILABLE bodies carry no id: every one for an item is the same bytes."""
    client, clock = timed_client
    item_id = await _bank_customer(providers, engine, tenant_id)
    body = providers.banking.webhook_body(item_id, "TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")

    providers.banking.add_transaction(item_id, name="Morning coffee", amount="3.50")
    first = {"Plaid-Verification": providers.banking.sign_webhook(body, issued_at=int(clock.now))}
    response = await client.post("/webhooks/plaid", content=body, headers=first)
    await providers.runtime.drain()
    assert (response.status_code, response.json()) == (200, {"received": True})
    assert providers.banking.calls["/transactions/sync"] == 1

    clock.now += 180  # three minutes later the bank has news again: the same body, newly signed
    providers.banking.add_transaction(item_id, name="Lunch", amount="12.00")
    second = {"Plaid-Verification": providers.banking.sign_webhook(body, issued_at=int(clock.now))}
    response = await client.post("/webhooks/plaid", content=body, headers=second)
    await providers.runtime.drain()
    assert (response.status_code, response.json()) == (200, {"received": True})
    assert providers.banking.calls["/transactions/sync"] == 2
    names = _transaction_names(await providers.execute(ACCOUNTS, tenant_id=tenant_id))
    assert {"MORNING COFFEE", "LUNCH"} <= set(names)

    # A replay of either delivery while its JWT is still accepted is a duplicate...
    for headers in (first, second):
        replay = await client.post("/webhooks/plaid", content=body, headers=headers)
        assert (replay.status_code, replay.json()) == (200, {"received": True, "duplicate": True})
    # ...and once the dedup window is over, the verifier refuses it as stale.
    clock.now += PLAID_DEDUP_SECONDS
    late = await client.post("/webhooks/plaid", content=body, headers=second)
    assert (late.status_code, late.json()) == (400, {"error": "verification failed"})
    await providers.runtime.drain()
    assert providers.banking.calls["/transactions/sync"] == 2


async def test_a_second_plaid_login_required_minutes_later_marks_the_connection_again(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int,
    timed_client: tuple[httpx.AsyncClient, Clock],
) -> None:  # fmt: skip
    client, clock = timed_client
    item_id = await _bank_customer(providers, engine, tenant_id)
    body = providers.banking.webhook_body(item_id, "ITEM", "ERROR")
    [link] = await bank_links_for_item(engine, "plaid", item_id)

    for _ in range(2):
        signed = providers.banking.sign_webhook(body, issued_at=int(clock.now))
        headers = {"Plaid-Verification": signed}
        response = await client.post("/webhooks/plaid", content=body, headers=headers)
        await providers.runtime.drain()
        assert (response.status_code, response.json()) == (200, {"received": True})
        [marked] = await bank_links_for_item(engine, "plaid", item_id)
        assert marked.status is ConnectionStatus.LOGIN_REQUIRED
        # The customer logs in again; minutes later the bank asks for it once more.
        await set_link_status(engine, tenant_id=tenant_id, link_id=link.id,
                              status=ConnectionStatus.ACTIVE)  # fmt: skip
        clock.now += 240


async def test_a_stripe_retry_of_an_event_is_a_duplicate_hours_later(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int,
    timed_client: tuple[httpx.AsyncClient, Clock],
) -> None:  # fmt: skip
    """Stripe's retries are new deliveries (new signature time) of the same event id, which
    is what Stripe's deduplication keys on, for days."""
    client, clock = timed_client
    payment_id = await _card_customer(providers, engine, tenant_id)
    payload = orjson.dumps(providers.cards.build_event("payment_intent.succeeded", payment_id))
    first = await _post_stripe(client, payload, signed_at=int(clock.now))
    assert first.json() == {"received": True}
    clock.now += 6 * 3600
    retry = await _post_stripe(client, payload, signed_at=int(clock.now))
    assert (retry.status_code, retry.json()) == (200, {"received": True, "duplicate": True})


async def test_charge_and_dispute_events_become_risk_facts_read_without_the_processor(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int,
    webhook_client: httpx.AsyncClient,
) -> None:  # fmt: skip
    payment_id = await _card_customer(providers, engine, tenant_id)
    intent = providers.cards.data.get(payment_id)
    assert intent is not None
    charge_id = intent["latest_charge"]
    charge = providers.cards.data.get(charge_id)
    assert charge is not None

    response = await _post_stripe(
        webhook_client, orjson.dumps(providers.cards.build_event("charge.succeeded", charge_id))
    )
    await providers.runtime.drain()
    assert response.status_code == 200

    store = RiskStore(engine)
    (recorded,) = await store.signals(tenant_id, [("stripe", payment_id)])
    assert recorded is not None
    assert recorded.reasons == ()  # a first payment: nothing to compare with
    summary = (await store.customer_summaries(tenant_id, [await _linked(engine, tenant_id)],
                                              window_days=3650))[0]  # fmt: skip
    assert (summary.payments, summary.distinct_cards, summary.disputes) == (1, 1, 0)

    # A dispute on that payment marks its fact; reading the signals calls no processor.
    disputes = [d for d in providers.cards.data.disputes() if d.get("payment_intent") == payment_id]
    if disputes:
        await _post_stripe(webhook_client, orjson.dumps(
            providers.cards.build_event("charge.dispute.created", disputes[0]["id"])))  # fmt: skip
        await providers.runtime.drain()
        summary = (await store.customer_summaries(tenant_id, [await _linked(engine, tenant_id)],
                                                  window_days=3650))[0]  # fmt: skip
        assert summary.disputes == 1
    providers.cards.reset()
    body = await providers.execute(RISK, tenant_id=tenant_id)
    assert "errors" not in body, body
    node = body["data"]["customers"]["edges"][0]["node"]
    signals = {p["node"]["processorId"]: p["node"]["riskSignals"]
               for p in node["cardPayments"]["edges"]}  # fmt: skip
    assert signals[payment_id] == {"level": "NONE", "reasons": []}
    # (the sandbox's charge may be older than the largest window: compare with the store)
    year = await store.customer_summaries(tenant_id, [await _linked(engine, tenant_id)],
                                          window_days=365)  # fmt: skip
    assert node["riskSummary"] == {"payments": year[0].payments, "level": "NONE"}
    assert providers.cards.total_calls <= 1  # the page itself, never a call per payment


RISK = "{ customers(first: 1) { edges { node { riskSummary(windowDays: 365) { payments level }"
RISK += " cardPayments(first: 20) { edges { node { processorId"
RISK += " riskSignals { level reasons { code } } } } } } } } }"


async def _linked(engine: AsyncEngine, tenant_id: int) -> int:
    async with engine.connect() as connection:
        found = await connection.scalar(
            select(provider_links.c.customer_id).where(
                provider_links.c.tenant_id == tenant_id, provider_links.c.provider == "stripe"
            )
        )
    assert found is not None
    return int(found)
