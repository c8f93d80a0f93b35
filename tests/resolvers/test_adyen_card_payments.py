"""Customer.cardPayments across two processors: Stripe (read through) and Adyen (our tables).

One connection, newest first by (created, provider, id), cursors that continue each source
exactly; batching across customers (one Adyen statement and the usual Stripe searches per
batch); partial data with an error when one processor fails; tenant isolation.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.cards.adyen_store import AdyenStore
from adapters.cards.adyen_webhooks import parse_item
from adapters.providers.tables import provider_links
from adapters.sandbox.adyen_app import SANDBOX_HMAC_KEY, AdyenSandbox
from adapters.sandbox.cards_app import CardsSandboxFaults
from gateway.providers import AdyenWiring
from tests.factories import make_customer, make_tenant
from tests.fixtures.providers import ProviderWorld

PAGE = """query Page($first: Int!, $after: String) { customers(first: 20) { edges { node {
  cardPayments(first: $first, after: $after) {
    edges { cursor node { processorId provider createdAt status amount { amount currency }
                          card { brand last4 } } }
    pageInfo { hasNextPage endCursor } } } } } }"""


_SANDBOX = AdyenSandbox()


class Counting(AdyenStore):
    calls = 0

    async def payments_by_shoppers(self, *args: Any, **kwargs: Any) -> Any:
        type(self).calls += 1
        return await super().payments_by_shoppers(*args, **kwargs)


@pytest.fixture
def store(providers: ProviderWorld, engine: AsyncEngine) -> Counting:
    Counting.calls = 0
    store = Counting(engine)
    providers.runtime.adyen = AdyenWiring(
        store=store, hmac_keys=(bytes.fromhex(SANDBOX_HMAC_KEY),), username=None,
        password=None, merchant_tenants={}, checkout=None,
    )  # fmt: skip
    return store


async def _link(engine: AsyncEngine, tenant_id: int, customer_id: int, provider: str,
                external_id: str) -> None:  # fmt: skip
    async with engine.begin() as connection:
        await connection.execute(
            insert(provider_links).values(
                tenant_id=tenant_id, customer_id=customer_id, provider=provider, kind="cards",
                external_id=external_id,
            )
        )  # fmt: skip


async def _adyen_payments(
    store: AdyenStore, tenant_id: int, shopper: str, times: list[dt.datetime]
) -> list[str]:
    sandbox = _SANDBOX  # one sequence of pspReferences for every payment of the module
    psps, items = [], []
    for when in times:
        psp, life = sandbox.payment(shopper, created=when)
        psps.append(psp)
        items += [(tenant_id, parse_item(item)) for item in life]
    await store.ingest(items)
    return psps


async def _walk(
    providers: ProviderWorld, tenant_id: int, first: int
) -> tuple[list[dict[str, Any]], int]:
    seen: list[dict[str, Any]] = []
    after, pages = None, 0
    while True:
        body = await providers.execute(PAGE, {"first": first, "after": after}, tenant_id=tenant_id)
        assert "errors" not in body, body["errors"]
        connection = body["data"]["customers"]["edges"][0]["node"]["cardPayments"]
        seen += [edge["node"] for edge in connection["edges"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            return seen, pages
        after = connection["pageInfo"]["endCursor"]


def _order(node: dict[str, Any]) -> tuple[str, str, str]:
    return (node["createdAt"], node["provider"], node["processorId"])


async def test_one_connection_merges_both_processors_newest_first_with_stable_cursors(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int, store: Counting
) -> None:
    customer = await make_customer(engine, tenant_id)
    await _link(engine, tenant_id, customer, "stripe", "cus_4")
    await _link(engine, tenant_id, customer, "adyen", "shopper-4")
    stripe_times = [
        dt.datetime.fromtimestamp(p["created"], dt.UTC)
        for p in providers.cards.data.payment_intents("cus_4")
    ]
    # Adyen payments interleaved with Stripe's: a second after some, one at the same second
    times = [t + dt.timedelta(seconds=1) for t in stripe_times[::3]] + [stripe_times[1]]
    adyen_ids = await _adyen_payments(store, tenant_id, "shopper-4", times)
    expected = len(stripe_times) + len(adyen_ids)

    whole, _ = await _walk(providers, tenant_id, 100)
    paged, pages = await _walk(providers, tenant_id, 3)

    assert len(whole) == expected
    assert whole == sorted(whole, key=_order, reverse=True)
    assert {n["provider"] for n in whole} == {"stripe", "adyen"}
    assert paged == whole  # every payment once, in the same order, across pages
    assert pages == -(-expected // 3)
    adyen_nodes = [n for n in whole if n["provider"] == "adyen"]
    assert sorted(n["processorId"] for n in adyen_nodes) == sorted(adyen_ids)
    assert {n["status"] for n in adyen_nodes} == {"SUCCEEDED"}
    assert all(n["card"]["last4"] == "1111" for n in adyen_nodes)


async def test_a_cursor_survives_a_new_payment_arriving_meanwhile(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int, store: Counting
) -> None:
    customer = await make_customer(engine, tenant_id)
    await _link(engine, tenant_id, customer, "adyen", "shopper-1")
    base = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    ids = await _adyen_payments(
        store, tenant_id, "shopper-1", [base + dt.timedelta(hours=h) for h in range(6)]
    )
    first = await providers.execute(PAGE, {"first": 2}, tenant_id=tenant_id)
    connection = first["data"]["customers"]["edges"][0]["node"]["cardPayments"]
    # a newer payment arrives between the two pages
    await _adyen_payments(store, tenant_id, "shopper-1", [base + dt.timedelta(days=3)])

    after = connection["pageInfo"]["endCursor"]
    second = await providers.execute(PAGE, {"first": 2, "after": after}, tenant_id=tenant_id)

    later = second["data"]["customers"]["edges"][0]["node"]["cardPayments"]["edges"]
    assert [e["node"]["processorId"] for e in later] == [ids[3], ids[2]]


async def test_a_page_of_customers_costs_one_adyen_statement_and_the_usual_stripe_searches(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int, store: Counting
) -> None:
    base = dt.datetime.now(dt.UTC).replace(microsecond=0)  # newer than the Stripe sandbox's
    for number in range(1, 21):
        customer = await make_customer(engine, tenant_id)
        await _link(engine, tenant_id, customer, "stripe", f"cus_{number}")
        await _link(engine, tenant_id, customer, "adyen", f"shopper-{number}")
        await _adyen_payments(store, tenant_id, f"shopper-{number}", [base, base])
    providers.cards.reset()
    Counting.calls = 0

    body = await providers.execute(PAGE, {"first": 5}, tenant_id=tenant_id)

    assert "errors" not in body
    assert len(body["data"]["customers"]["edges"]) == 20
    assert Counting.calls == 1
    assert dict(providers.cards.calls) == {"GET /v1/payment_intents/search": 2}
    for edge in body["data"]["customers"]["edges"]:
        providers_seen = {e["node"]["provider"] for e in edge["node"]["cardPayments"]["edges"]}
        assert "adyen" in providers_seen


async def test_when_stripe_fails_adyen_payments_still_arrive_with_the_stripe_error(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int, store: Counting
) -> None:
    customer = await make_customer(engine, tenant_id)
    await _link(engine, tenant_id, customer, "stripe", "cus_2")
    await _link(engine, tenant_id, customer, "adyen", "shopper-2")
    await _adyen_payments(store, tenant_id, "shopper-2", [dt.datetime(2026, 11, 1, tzinfo=dt.UTC)])
    providers.cards.faults = CardsSandboxFaults(fail_status=503)

    body = await providers.execute(PAGE, {"first": 5}, tenant_id=tenant_id)

    connection = body["data"]["customers"]["edges"][0]["node"]["cardPayments"]
    assert [e["node"]["provider"] for e in connection["edges"]] == ["adyen"]
    [error] = body["errors"]
    assert error["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
    assert error["extensions"]["provider"] == "stripe"
    assert error["path"] == ["customers", "edges", 0, "node", "cardPayments"]


async def test_another_tenants_payments_never_appear(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int, store: Counting
) -> None:
    other = await make_tenant(engine)
    mine = await make_customer(engine, tenant_id)
    theirs = await make_customer(engine, other)
    await _link(engine, tenant_id, mine, "adyen", "shopper-same")
    await _link(engine, other, theirs, "adyen", "shopper-same")
    when = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    [their_payment] = await _adyen_payments(store, other, "shopper-same", [when])

    body = await providers.execute(PAGE, {"first": 5}, tenant_id=tenant_id)
    theirs_body = await providers.execute(PAGE, {"first": 5}, tenant_id=other)

    assert body["data"]["customers"]["edges"][0]["node"]["cardPayments"]["edges"] == []
    their_edges = theirs_body["data"]["customers"]["edges"][0]["node"]["cardPayments"]["edges"]
    assert [e["node"]["processorId"] for e in their_edges] == [their_payment]
