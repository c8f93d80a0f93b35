"""Link seeded customers to banking sandbox items, so `gateway seed` data has bank data.

Each customer of the tenant without a banking link gets the sandbox item
``seed-<tenant>-<customer>`` (its data derives from that id, see adapters.sandbox.banking_app),
with the item's access token sealed like any other. Idempotent: linked customers are skipped.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.links import create_bank_link
from adapters.crypto import SecretBox, SecretText
from adapters.ledger.tables import customers
from adapters.providers.tables import provider_links
from adapters.sandbox.banking_app import access_token_for_item

__all__ = ["link_seeded_customers", "seeded_item_id"]


def seeded_item_id(tenant_id: int, customer_id: int) -> str:
    return f"seed-{tenant_id}-{customer_id}"


async def link_seeded_customers(
    engine: AsyncEngine,
    tenant_id: int,
    box: SecretBox,
    *,
    limit: int | None = None,
    provider: str = "plaid",
) -> int:
    """Link up to `limit` unlinked customers (lowest ids first); returns how many were linked."""
    linked = select(provider_links.c.customer_id).where(
        provider_links.c.tenant_id == tenant_id, provider_links.c.kind == "banking"
    )
    query = (
        select(customers.c.id)
        .where(customers.c.tenant_id == tenant_id, customers.c.id.not_in(linked))
        .order_by(customers.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    async with engine.connect() as connection:
        customer_ids = list((await connection.execute(query)).scalars())
    for customer_id in customer_ids:
        item_id = seeded_item_id(tenant_id, customer_id)
        await create_bank_link(
            engine,
            box,
            tenant_id=tenant_id,
            customer_id=customer_id,
            provider=provider,
            item_id=item_id,
            access_token=SecretText(access_token_for_item(item_id)),
        )
    return len(customer_ids)
