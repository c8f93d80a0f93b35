"""Link seeded customers to card-sandbox customers, so `gateway seed` data has card payments.

Each customer of the tenant without a cards link gets the Stripe-shaped customer
``cus_<customer id>``, whose payments the cards sandbox derives from that id. Idempotent:
linked customers are skipped. One statement to find them, one to link them all.
"""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.engine import WRITE_OPTION
from adapters.providers.queries import unlinked_customer_ids
from adapters.providers.tables import provider_links

__all__ = ["link_seeded_card_customers"]


async def link_seeded_card_customers(
    engine: AsyncEngine, tenant_id: int, *, limit: int | None = None, provider: str = "stripe"
) -> int:
    """Link up to `limit` unlinked customers (lowest ids first); returns how many were linked."""
    customer_ids = await unlinked_customer_ids(engine, tenant_id, "cards", limit=limit)
    if not customer_ids:
        return 0
    rows = [
        {"tenant_id": tenant_id, "customer_id": customer_id, "provider": provider,
         "kind": "cards", "external_id": f"cus_{customer_id}"}
        for customer_id in customer_ids
    ]  # fmt: skip
    async with engine.connect() as connection:
        writer = await connection.execution_options(**{WRITE_OPTION: True})
        async with writer.begin():
            await writer.execute(insert(provider_links), rows)
    return len(customer_ids)
