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
