"""POST /webhooks/adyen: Basic auth, HMAC per item (rotating keys), `[accepted]`, dedup,
out-of-order delivery, persistence in our tables, tenant mapping, sandbox fault knobs, and
the Checkout API asked only for the card details a notification lacks.

Every delivered body is checked against Adyen's Webhooks spec, every Checkout exchange against
the Checkout API 72 spec.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Route

from adapters.cache import Cache
from adapters.cards.adyen_checkout import AdyenCheckout
from adapters.cards.adyen_store import AdyenStore
from adapters.cards.adyen_tables import adyen_notifications, adyen_payments
from adapters.cards.adyen_webhooks import decode_hmac_key
from adapters.providers.tables import provider_links
from adapters.sandbox.adyen_app import (
    SANDBOX_API_KEY,
    SANDBOX_CHECKOUT_URL,
    SANDBOX_HMAC_KEY,
    SANDBOX_MERCHANT_ACCOUNT,
    SANDBOX_WEBHOOK_PASSWORD,
    SANDBOX_WEBHOOK_USERNAME,
    AdyenSandbox,
    AdyenSandboxFaults,
)
from gateway.app import create_app
from gateway.lifespan import Services
from gateway.provider_settings import load_provider_settings
from gateway.providers import AdyenWiring
from gateway.settings import Settings
from gateway.webhooks import WebhookHandlers
from tests.factories import make_tenant
from tests.fixtures.adyen_spec import check_checkout_exchange, check_notification_body
from tests.fixtures.providers import ProviderWorld

URL = "http://gateway.test/webhooks/adyen"
NEW_KEY = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"
SECOND_ACCOUNT = "FinanceGatewaySecond"


@dataclasses.dataclass
class AdyenWorld:
    client: httpx.AsyncClient
    sandbox: AdyenSandbox
    engine: AsyncEngine
    tenant_id: int
    other_tenant_id: int
    providers: ProviderWorld
    checkout_exchanges: list[str]

    async def deliver(self, items: list[dict[str, Any]], **kw: Any) -> list[httpx.Response]:
        responses = await self.sandbox.deliver(self.client, URL, items, **kw)
        await self.providers.runtime.drain()
        return responses

    async def payments(self, tenant_id: int | None = None) -> list[dict[str, Any]]:
        query = (
            select(adyen_payments)
            .where(adyen_payments.c.tenant_id == (tenant_id or self.tenant_id))
            .order_by(adyen_payments.c.psp_reference)
        )
        async with self.engine.connect() as connection:
            return [dict(row) for row in (await connection.execute(query)).mappings()]

    async def event_count(self, tenant_id: int | None = None) -> int:
        query = select(func.count()).where(
            adyen_notifications.c.tenant_id == (tenant_id or self.tenant_id)
        )
        async with self.engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())


@pytest.fixture
async def adyen(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> AsyncIterator[AdyenWorld]:
    other = await make_tenant(engine)
    sandbox = AdyenSandbox()
    exchanges: list[str] = []

    async def check(response: httpx.Response) -> None:
        await response.aread()
        check_checkout_exchange(response.request, response)
        exchanges.append(f"{response.request.method} {response.request.url.path}")

    checkout_client = httpx.AsyncClient(
        transport=sandbox.transport(), event_hooks={"response": [check]}
    )
    providers.runtime.adyen = AdyenWiring(
        store=AdyenStore(engine),
        hmac_keys=(decode_hmac_key(NEW_KEY), decode_hmac_key(SANDBOX_HMAC_KEY)),
        username=SANDBOX_WEBHOOK_USERNAME,
        password=SANDBOX_WEBHOOK_PASSWORD,
        merchant_tenants={SANDBOX_MERCHANT_ACCOUNT: tenant_id, SECOND_ACCOUNT: other},
        checkout=AdyenCheckout(
            client=checkout_client, base_url=SANDBOX_CHECKOUT_URL, api_key=SANDBOX_API_KEY
        ),
    )
    handlers = WebhookHandlers(providers.runtime, dedup_seconds=60)
    app = Starlette(routes=[Route("/webhooks/adyen", handlers.adyen, methods=["POST"])])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        yield AdyenWorld(client, sandbox, engine, tenant_id, other, providers, exchanges)
    await checkout_client.aclose()
    providers.runtime.adyen = None
    for body in sandbox.delivered:
        check_notification_body(body)


LIFE = ("AUTHORISATION", "CAPTURE", "REFUND", "CHARGEBACK")


async def test_a_signed_batch_is_accepted_and_stored_as_events_and_payment_state(
    adyen: AdyenWorld,
) -> None:
    psp, items = adyen.sandbox.payment("shopper-1", amount=5000, events=LIFE)

    responses = await adyen.deliver(items)

    assert [(r.status_code, r.text) for r in responses] == [(200, "[accepted]")]
    assert await adyen.event_count() == 4
    [payment] = await adyen.payments()
    assert payment["psp_reference"] == psp
    assert payment["shopper_reference"] == "shopper-1"
    assert (payment["amount"], payment["currency"], payment["exponent"]) == (5000, "EUR", 2)
    assert (payment["amount_captured"], payment["amount_refunded"]) == (5000, 5000)
    assert payment["status"] == "succeeded"
    assert payment["dispute_status"] == "needs_response"
    assert payment["dispute_reason"] == "fraudulent"
    assert (payment["card_last4"], payment["card_exp_month"], payment["card_exp_year"]) == (
        "1111", 3, 2030,
    )  # fmt: skip
    assert adyen.checkout_exchanges == []  # nothing was missing: no Checkout call


async def test_wrong_basic_auth_is_refused_and_nothing_is_stored(adyen: AdyenWorld) -> None:
    _, items = adyen.sandbox.payment("shopper-1")
    adyen.sandbox.password = "wrong"

    responses = await adyen.deliver(items)

    assert [r.status_code for r in responses] == [401]
    assert await adyen.event_count() == 0


async def test_a_batch_with_a_bad_signature_is_refused_whole_and_its_retry_is_accepted(
    adyen: AdyenWorld,
) -> None:
    _, items = adyen.sandbox.payment("shopper-1", events=LIFE)
    adyen.sandbox.faults = AdyenSandboxFaults(bad_signature_rate=0.3, seed=3)

    refused = await adyen.deliver(items, batch_size=2)

    assert 401 in [r.status_code for r in refused]
    stored_after_faults = await adyen.event_count()
    assert stored_after_faults < 4
    # Adyen retries: the same items correctly signed are accepted, nothing twice
    adyen.sandbox.faults = AdyenSandboxFaults()
    retried = await adyen.deliver(items, batch_size=2)
    assert {r.text for r in retried} == {"[accepted]"}
    assert await adyen.event_count() == 4


async def test_items_signed_with_the_new_key_during_rotation_are_accepted(
    adyen: AdyenWorld,
) -> None:
    adyen.sandbox.hmac_key = NEW_KEY
    _, items = adyen.sandbox.payment("shopper-1")
    assert {r.text for r in await adyen.deliver(items)} == {"[accepted]"}
    adyen.sandbox.hmac_key = "FF" * 32  # a key the gateway does not hold
    _, forged = adyen.sandbox.payment("shopper-1")
    assert [r.status_code for r in await adyen.deliver(forged)] == [401]
    assert await adyen.event_count() == 2


async def test_duplicates_are_stored_once(adyen: AdyenWorld) -> None:
    items = []
    for number in range(5):
        items += adyen.sandbox.payment(f"shopper-{number}", events=LIFE)[1]
    adyen.sandbox.faults = AdyenSandboxFaults(duplicate_rate=1.0)

    responses = await adyen.deliver(items, batch_size=7)
    again = await adyen.deliver(items[:3])  # a whole batch delivered again later

    assert {r.text for r in responses + again} == {"[accepted]"}
    assert len(adyen.sandbox.delivered) > 3
    assert await adyen.event_count() == 20
    assert {p["event_count"] for p in await adyen.payments()} == {4}


@pytest.mark.parametrize(
    "events",
    [
        ("AUTHORISATION", "CAPTURE", "REFUND"),
        ("AUTHORISATION", "CAPTURE", "CHARGEBACK", "REFUND"),
        ("AUTHORISATION", "CAPTURE", "NOTIFICATION_OF_CHARGEBACK", "CHARGEBACK",
         "CHARGEBACK_REVERSED"),
        ("AUTHORISATION", "CANCELLATION"),
        ("AUTHORISATION", "CAPTURE", "REFUND", "REFUND_FAILED"),
    ],
)  # fmt: skip
async def test_any_arrival_order_gives_the_same_payment(
    adyen: AdyenWorld, events: tuple[str, ...]
) -> None:
    # Given one payment's life, delivered in order to one merchant account ...
    _, items = adyen.sandbox.payment("shopper-9", events=events)
    await adyen.deliver(items, batch_size=1)
    in_order = await adyen.payments()
    # ... and in reverse (a CAPTURE before its AUTHORISATION, a REFUND after a CHARGEBACK)
    # to the other merchant account, one item per delivery
    mirrored = [
        adyen.sandbox.resign(item, merchantAccountCode=SECOND_ACCOUNT) for item in reversed(items)
    ]
    first_only = await adyen.deliver(mirrored[:1], batch_size=1)
    assert first_only[0].text == "[accepted]"
    partial = await adyen.payments(adyen.other_tenant_id)
    await adyen.deliver(mirrored[1:], batch_size=1)
    reversed_order = await adyen.payments(adyen.other_tenant_id)

    # Then the state is the same whatever the order; only tenant, account and time differ
    def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ignored = ("tenant_id", "merchant_account", "updated_at")
        return [{k: v for k, v in row.items() if k not in ignored} for row in rows]

    assert comparable(reversed_order) == comparable(in_order)
    # and isolation: each tenant sees only its own merchant account's payment
    assert len(in_order) == len(partial) == 1
    assert in_order[0]["merchant_account"] == SANDBOX_MERCHANT_ACCOUNT
    assert reversed_order[0]["merchant_account"] == SECOND_ACCOUNT


async def test_a_burst_of_reordered_duplicated_batches_converges(adyen: AdyenWorld) -> None:
    expected: dict[str, str] = {}
    items = []
    for number in range(30):
        events = LIFE if number % 3 else ("AUTHORISATION", "CANCELLATION")
        psp, life = adyen.sandbox.payment(f"shopper-{number % 7}", events=events)
        expected[psp] = "succeeded" if number % 3 else "canceled"
        items += life
    adyen.sandbox.faults = AdyenSandboxFaults(duplicate_rate=0.3, reorder=True, burst=True, seed=11)

    responses = await adyen.deliver(items, batch_size=5)

    assert {r.text for r in responses} == {"[accepted]"}
    assert len(responses) > len(items) // 5
    payments = await adyen.payments()
    assert {p["psp_reference"]: p["status"] for p in payments} == expected
    assert await adyen.event_count() == len(items)


async def test_an_unconfigured_merchant_account_is_acknowledged_and_dropped(
    adyen: AdyenWorld,
) -> None:
    adyen.sandbox.merchant_account = "SomebodyElse"
    _, items = adyen.sandbox.payment("shopper-1")

    assert [r.text for r in await adyen.deliver(items)] == ["[accepted]"]
    assert await adyen.event_count() == 0
    assert await adyen.event_count(adyen.other_tenant_id) == 0


async def test_malformed_bodies_are_refused(adyen: AdyenWorld) -> None:
    auth = (SANDBOX_WEBHOOK_USERNAME, SANDBOX_WEBHOOK_PASSWORD)
    for body in (b"[]", b"not json", b'{"notificationItems": [1]}'):
        response = await adyen.client.post(URL, content=body, auth=auth)
        assert response.status_code == 400


async def test_card_details_missing_from_notifications_come_from_the_checkout_api(
    adyen: AdyenWorld,
) -> None:
    adyen.sandbox.omit_card_details = True
    items = []
    for number in range(3):
        items += adyen.sandbox.payment(f"shopper-{number}", last4=f"42{number}2")[1]

    await adyen.deliver(items)

    payments = await adyen.payments()
    assert sorted(p["card_last4"] for p in payments) == ["4202", "4212", "4222"]
    assert {(p["card_exp_month"], p["card_exp_year"]) for p in payments} == {(3, 2030)}
    # one call per payment that lacked its card, each checked against the Checkout spec
    assert adyen.checkout_exchanges == ["GET /v72/storedPaymentMethods"] * 3
    # captures later change nothing about the card and ask nothing more
    assert all(p["status"] == "succeeded" for p in payments)


def test_settings_fail_closed_outside_development() -> None:
    accounts = {"ADYEN_MERCHANT_ACCOUNTS": f"{SANDBOX_MERCHANT_ACCOUNT}=1"}
    with pytest.raises(ValueError, match="ADYEN_HMAC_KEYS"):
        load_provider_settings(accounts, environment="production")
    with pytest.raises(ValueError, match="hexadecimal"):
        load_provider_settings({"ADYEN_HMAC_KEYS": "xyz"}, environment="production")
    with pytest.raises(ValueError, match="MerchantAccount=tenant_id"):
        load_provider_settings({"ADYEN_MERCHANT_ACCOUNTS": "NoTenant"}, environment="production")
    settings = load_provider_settings(
        {**accounts, "ADYEN_HMAC_KEYS": f"{NEW_KEY}, {SANDBOX_HMAC_KEY}",
         "ADYEN_WEBHOOK_USERNAME": "u", "ADYEN_WEBHOOK_PASSWORD": "p"},
        environment="production",
    )  # fmt: skip
    assert settings.adyen_merchant_accounts == ((SANDBOX_MERCHANT_ACCOUNT, 1),)
    assert len(settings.adyen_hmac_keys) == 2
    assert NEW_KEY not in repr(settings)  # secrets never print


async def test_the_app_serves_the_route_and_answers_404_without_adyen(
    settings: Settings, services: Services, providers: ProviderWorld, cache: Cache
) -> None:
    app = create_app(settings, dataclasses.replace(services, providers=providers.runtime,
                                                   cache=cache))  # fmt: skip
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        _, items = AdyenSandbox().payment("shopper-1")
        missing = await AdyenSandbox().deliver(client, URL, items)
        assert [r.status_code for r in missing] == [404]


async def test_the_apps_route_accepts_a_delivery_end_to_end(
    settings: Settings, services: Services, providers: ProviderWorld, cache: Cache,
    adyen: AdyenWorld,
) -> None:  # fmt: skip
    app = create_app(settings, dataclasses.replace(services, providers=providers.runtime,
                                                   cache=cache))  # fmt: skip
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        _, items = adyen.sandbox.payment("shopper-1")
        responses = await adyen.sandbox.deliver(client, URL, items)
    assert [(r.status_code, r.text) for r in responses] == [(200, "[accepted]")]
    assert responses[0].headers["content-type"].startswith("text/plain")
    assert await adyen.event_count() == 2


async def test_linked_shoppers_payments_become_risk_facts_after_the_answer(
    adyen: AdyenWorld,
) -> None:
    from adapters.cards.risk import card_risk_facts
    from tests.factories import make_customer

    customer = await make_customer(adyen.engine, adyen.tenant_id)
    async with adyen.engine.begin() as connection:
        await connection.execute(
            provider_links.insert().values(
                tenant_id=adyen.tenant_id, customer_id=customer, provider="adyen",
                kind="cards", external_id="shopper-risk",
            )
        )  # fmt: skip
    disputed, items = adyen.sandbox.payment("shopper-risk", events=LIFE)
    refused, more = adyen.sandbox.payment("shopper-risk", refused_reason="Refused")
    _, unlinked = adyen.sandbox.payment("shopper-nobody")

    await adyen.deliver(items + more + unlinked)

    query = select(card_risk_facts).where(card_risk_facts.c.tenant_id == adyen.tenant_id)
    async with adyen.engine.connect() as connection:
        facts = {r["payment_id"]: r for r in (await connection.execute(query)).mappings()}
    assert set(facts) == {disputed, refused}
    assert facts[disputed]["provider"] == "adyen"
    assert facts[disputed]["customer_id"] == customer
    assert (facts[disputed]["outcome"], facts[disputed]["disputed"]) == ("succeeded", True)
    assert facts[refused]["outcome"] == "declined"
