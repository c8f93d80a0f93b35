"""AdyenStore: a payment's row depends on the set of its events, not on their arrival order
or on how they were split into deliveries; duplicates change nothing."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.cards.adyen_store import AdyenStore
from adapters.cards.adyen_tables import adyen_payments
from adapters.cards.adyen_webhooks import parse_item
from adapters.sandbox.adyen_app import AdyenSandbox
from tests.factories import make_tenant

LIVES = [
    ("AUTHORISATION", "CAPTURE", "REFUND", "NOTIFICATION_OF_CHARGEBACK", "CHARGEBACK",
     "CHARGEBACK_REVERSED", "REFUND_FAILED"),
    ("AUTHORISATION", "CAPTURE", "CAPTURE_FAILED", "CANCELLATION"),
    ("AUTHORISATION", "CAPTURE", "CHARGEBACK", "SECOND_CHARGEBACK", "REFUND"),
]  # fmt: skip


async def _row(engine: AsyncEngine, tenant_id: int) -> list[dict[str, Any]]:
    query = select(adyen_payments).where(adyen_payments.c.tenant_id == tenant_id)
    async with engine.connect() as connection:
        rows = [dict(r) for r in (await connection.execute(query)).mappings()]
    return [{k: v for k, v in row.items() if k not in ("tenant_id", "updated_at")} for row in rows]


async def test_every_arrival_order_and_split_gives_the_same_rows(engine: AsyncEngine) -> None:
    sandbox = AdyenSandbox()
    notifications = []
    for number, life in enumerate(LIVES):
        notifications += [parse_item(i) for i in sandbox.payment(f"s{number}", events=life)[1]]
    store = AdyenStore(engine)
    reference_tenant = await make_tenant(engine)
    result = await store.ingest([(reference_tenant, n) for n in notifications])
    assert (result.stored, result.duplicates, result.payments) == (len(notifications), 0, 3)
    expected = await _row(engine, reference_tenant)
    assert {r["status"] for r in expected} == {"succeeded", "canceled"}

    rng = random.Random(5)
    for _ in range(6):
        tenant = await make_tenant(engine)
        shuffled = notifications + rng.sample(notifications, 4)  # some arrive twice
        rng.shuffle(shuffled)
        start = 0
        while start < len(shuffled):
            size = rng.randint(1, 4)
            await store.ingest([(tenant, n) for n in shuffled[start : start + size]])
            start += size
        assert await _row(engine, tenant) == expected


async def test_a_refund_after_a_lost_chargeback_and_disputes_take_the_latest_stage(
    engine: AsyncEngine,
) -> None:
    sandbox = AdyenSandbox()
    psp, items = sandbox.payment("s", amount=700, events=LIVES[2])
    tenant = await make_tenant(engine)
    await AdyenStore(engine).ingest([(tenant, parse_item(i)) for i in reversed(items)])
    [row] = await _row(engine, tenant)
    assert row["psp_reference"] == psp
    assert (row["status"], row["amount_captured"], row["amount_refunded"]) == (
        "succeeded",
        700,
        700,
    )
    assert row["dispute_status"] == "lost"
    assert row["dispute_evidence_due_by"] is None
    assert row["event_count"] == 5
