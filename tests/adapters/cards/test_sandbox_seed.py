from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.cards.sandbox_seed import link_seeded_card_customers
from adapters.providers.tables import provider_links
from tests.factories import make_customer


async def test_seeded_customers_are_linked_once_to_sandbox_card_customers(
    engine: AsyncEngine, tenant_id: int
) -> None:
    first = await make_customer(engine, tenant_id)
    second = await make_customer(engine, tenant_id)

    assert await link_seeded_card_customers(engine, tenant_id, limit=1) == 1
    assert await link_seeded_card_customers(engine, tenant_id) == 1
    assert await link_seeded_card_customers(engine, tenant_id) == 0

    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(provider_links.c.customer_id, provider_links.c.provider,
                       provider_links.c.kind, provider_links.c.external_id)
                .where(provider_links.c.tenant_id == tenant_id)
                .order_by(provider_links.c.customer_id)
            )
        ).all()  # fmt: skip
    assert [tuple(row) for row in rows] == [
        (first, "stripe", "cards", f"cus_{first}"),
        (second, "stripe", "cards", f"cus_{second}"),
    ]


async def test_the_demo_seed_stores_adyen_payments_for_card_linked_customers_once(
    engine: AsyncEngine, tenant_id: int
) -> None:
    from adapters.cards.adyen_store import AdyenStore
    from adapters.cards.sandbox_seed import seed_adyen_sandbox_payments

    customer = await make_customer(engine, tenant_id)
    await link_seeded_card_customers(engine, tenant_id)

    assert await seed_adyen_sandbox_payments(engine, tenant_id) == 1
    assert await seed_adyen_sandbox_payments(engine, tenant_id) == 0

    pages = await AdyenStore(engine).payments_by_shoppers(
        tenant_id, [f"shopper_{customer}"], limit=10
    )
    statuses = sorted(p.status.value for p in pages[f"shopper_{customer}"])
    assert statuses == ["canceled", "succeeded", "succeeded", "succeeded"]
