"""Link seeded customers to banking sandbox items, so `gateway seed` data has bank data.

Each customer of the tenant without a banking link gets the sandbox item
``seed-<tenant>-<customer>`` (its data derives from that id, see adapters.sandbox.banking_app),
with the item's access token sealed like any other. Idempotent: linked customers are skipped.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.links import create_bank_link
from adapters.crypto import SecretBox, SecretText
from adapters.providers.queries import unlinked_customer_ids
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
    customer_ids = await unlinked_customer_ids(engine, tenant_id, "banking", limit=limit)
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
