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


async def seed_adyen_sandbox_payments(
    engine: AsyncEngine, tenant_id: int, *, customers: int = 10
) -> int:
    """Give the first `customers` card-linked customers an Adyen shopper (`shopper_<id>`) and a
    few payment lives from the Adyen sandbox, stored as its notifications would store them.
    Idempotent (linked customers are skipped); returns how many customers were linked."""
    import datetime as dt

    from sqlalchemy import select

    from adapters.cards.adyen_store import AdyenStore
    from adapters.cards.adyen_webhooks import parse_item
    from adapters.sandbox.adyen_app import AdyenSandbox

    table = provider_links
    async with engine.connect() as connection:
        linked = set(
            await connection.scalars(
                select(table.c.customer_id).where(
                    table.c.tenant_id == tenant_id, table.c.provider == "adyen"
                )
            )
        )
        candidates = list(
            await connection.scalars(
                select(table.c.customer_id)
                .where(table.c.tenant_id == tenant_id, table.c.kind == "cards")
                .order_by(table.c.customer_id)
                .limit(customers)
            )
        )
    wanted = [c for c in candidates if c not in linked]
    if not wanted:
        return 0
    rows = [
        {"tenant_id": tenant_id, "customer_id": customer_id, "provider": "adyen",
         "kind": "cards", "external_id": f"shopper_{customer_id}"}
        for customer_id in wanted
    ]  # fmt: skip
    async with engine.connect() as connection:
        writer = await connection.execution_options(**{WRITE_OPTION: True})
        async with writer.begin():
            await writer.execute(insert(provider_links), rows)
    sandbox = AdyenSandbox(sequence=tenant_id * 1_000_000)  # pspReferences of its own
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    lives = (
        ("AUTHORISATION", "CAPTURE"),
        ("AUTHORISATION", "CAPTURE", "REFUND"),
        ("AUTHORISATION", "CAPTURE", "CHARGEBACK"),
        ("AUTHORISATION", "CANCELLATION"),
    )
    items = []
    for customer_id in wanted:
        for number, life in enumerate(lives):
            _, life_items = sandbox.payment(
                f"shopper_{customer_id}", amount=1000 + 250 * number, events=life,
                created=now - dt.timedelta(days=3 * number + customer_id % 3),
            )  # fmt: skip
            items += [(tenant_id, parse_item(item)) for item in life_items]
    await AdyenStore(engine).ingest(items)
    return len(wanted)
