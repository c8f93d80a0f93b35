"""No card number anywhere (PCI DSS requirement 3): after demo data is seeded and the card
flows have run (processor reads through the cache, webhooks, bank syncs), no column of any
table and no key or value of the test's cache holds anything that looks like a card number.
The scanner itself is shown to catch a planted one (tests/adapters/privacy/test_pan.py, and
below for the cache)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.sandbox_seed import link_seeded_customers
from adapters.cache import Cache
from adapters.cards.records import PaymentCard
from adapters.cards.sandbox_seed import link_seeded_card_customers
from adapters.cards.webhooks import stripe_signature_header
from adapters.ledger.seed import seed_ledger
from adapters.privacy.pan import scan_database, scan_value
from adapters.sandbox.cards_app import DEFAULT_WEBHOOK_SECRET
from gateway.app import create_app
from gateway.lifespan import Services
from gateway.settings import Settings
from tests.fixtures.cache import cache_items
from tests.fixtures.providers import ProviderWorld

CARDS = (
    "{ customers(first: 5) { edges { node { id cardPayments(first: 5) { edges { node { "
    "processorId description card { brand last4 expMonth expYear funding wallet } "
    "refunds { processorId } dispute { processorId } } } } "
    "bankAccounts { name mask transactions(first: 5) { edges { node { name } } } } } } } }"
)
# What a card may be reduced to here; funding and wallet are product attributes, not data
# that identifies the card. Anything more (a number, a CVC, a holder's name) fails.
ALLOWED_CARD_FIELDS = {"brand", "last4", "exp_month", "exp_year", "fingerprint", "funding",
                       "wallet"}  # fmt: skip


@pytest.fixture
async def app_client(
    settings: Settings, services: Services, providers: ProviderWorld, cache: Cache
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, dataclasses.replace(services, providers=providers.runtime,
                                                   cache=cache))  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


def test_the_card_record_holds_no_more_than_brand_last4_expiry_and_fingerprint() -> None:
    fields = {field.name for field in dataclasses.fields(PaymentCard)}
    assert fields <= ALLOWED_CARD_FIELDS


async def _cache_findings(cache: Cache) -> list[tuple[str, list[str]]]:
    return [
        (key, scan_value(key) + scan_value(value))
        for key, value in (await cache_items(cache)).items()
        if scan_value(key) or scan_value(value)
    ]


async def test_no_table_or_cache_entry_holds_a_card_number(
    providers: ProviderWorld, engine: AsyncEngine, cache: Cache, app_client: httpx.AsyncClient
) -> None:
    summary = await seed_ledger(engine, customers=5, seed=11)
    tenant_id = summary.tenant_id
    assert await link_seeded_card_customers(engine, tenant_id) == 5
    assert providers.runtime.secret_box is not None
    await link_seeded_customers(engine, tenant_id, providers.runtime.secret_box, limit=2)
    # Card reads through the cache (and bank syncs), then a webhook that drops and a read
    # that refills the cached pages.
    first = await providers.execute(CARDS, tenant_id=tenant_id)
    assert "errors" not in first, first
    payments = [
        edge["node"]
        for customer in first["data"]["customers"]["edges"]
        for edge in customer["node"]["cardPayments"]["edges"]
    ]
    assert payments
    assert all(p["card"] is None or len(p["card"]["last4"]) == 4 for p in payments)
    event = providers.cards.build_event("payment_intent.succeeded", payments[0]["processorId"])
    payload = orjson.dumps(event)
    header = stripe_signature_header(payload, [DEFAULT_WEBHOOK_SECRET], int(time.time()))
    response = await app_client.post("/webhooks/stripe", content=payload, headers={
        "Stripe-Signature": header, "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 200
    await providers.runtime.drain()
    await providers.execute(CARDS, tenant_id=tenant_id)
    items = await cache_items(cache)
    assert any(b"last4" in value for value in items.values())  # card data is there to scan

    async with engine.connect() as connection:
        assert await scan_database(connection) == []
    assert await _cache_findings(cache) == []


async def test_the_cache_scan_catches_a_planted_card_number(cache: Cache) -> None:
    await cache.set_many({"planted:value": b'{"pan": "5555 5555 5555 4444"}',
                          "planted:4111111111111111": b"key"}, ttl_seconds=30)  # fmt: skip
    try:
        found = {
            key.rsplit("planted:", 1)[-1]: masked for key, masked in await _cache_findings(cache)
        }
        assert found == {"value": ["555555******4444"], "4111111111111111": ["411111******1111"]}
    finally:
        await cache.delete("planted:value", "planted:4111111111111111")
