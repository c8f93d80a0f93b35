"""The GCRA on Redis with leases: a charge takes its cost and at most half of what is left
beyond it (up to `extra`), gives an earlier lease's unspent points back first, and keeps a
refund even when it refuses. Real Redis, a key prefix of its own per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from adapters.rate_limiter import RedisGcra
from tests.fixtures.cache import reachable_gcra

LIMIT = 100
PERIOD = 36_000.0  # 360 s a point: nothing refills while a test runs
POINT_MS = PERIOD * 1000 / LIMIT


@pytest.fixture
async def gcra() -> AsyncIterator[RedisGcra]:
    store = await reachable_gcra(f"fg-test-gcra-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    yield store
    await store.close()


async def test_a_lease_is_at_most_half_of_what_is_left_after_the_cost(gcra: RedisGcra) -> None:
    granted, remaining, reset_seconds, retry_seconds = await gcra.take(
        "k", cost=10, extra=20, limit=LIMIT, period=PERIOD
    )
    assert (granted, remaining, retry_seconds) == (30, 70, 0.0)
    assert reset_seconds == pytest.approx(30 * POINT_MS / 1000, abs=1)
    # 70 left, 60 after the cost: half of it, 30, not the 50 asked for.
    assert (await gcra.take("k", cost=10, extra=50, limit=LIMIT, period=PERIOD))[:2] == (40, 30)
    assert (await gcra.take("k", cost=10, extra=50, limit=LIMIT, period=PERIOD))[:2] == (20, 10)
    assert (await gcra.take("k", cost=9, extra=50, limit=LIMIT, period=PERIOD))[:2] == (9, 1)
    assert (await gcra.take("k", cost=1, extra=50, limit=LIMIT, period=PERIOD))[:2] == (1, 0)
    granted, remaining, _, retry_seconds = await gcra.take(
        "k", cost=1, extra=50, limit=LIMIT, period=PERIOD
    )
    assert (granted, remaining) == (0, 0)
    assert retry_seconds == pytest.approx(POINT_MS / 1000, abs=1)


async def test_a_refund_gives_unspent_points_back_never_more_than_a_whole_budget(
    gcra: RedisGcra,
) -> None:
    assert (await gcra.take("r", cost=10, extra=40, limit=LIMIT, period=PERIOD))[:2] == (50, 50)
    # 30 points of that lease were not spent: back before the next charge.
    taken = await gcra.take("r", cost=5, refund_ms=30 * POINT_MS, limit=LIMIT, period=PERIOD)
    assert taken[:2] == (5, 75)
    # However much is given back, the budget is at most whole.
    taken = await gcra.take("r", cost=1, refund_ms=10**12, limit=LIMIT, period=PERIOD)
    assert taken[:2] == (1, 99)


async def test_a_refused_charge_keeps_its_refund(gcra: RedisGcra) -> None:
    assert (await gcra.take("f", cost=100, limit=LIMIT, period=PERIOD))[:2] == (100, 0)
    refused = await gcra.take("f", cost=50, refund_ms=20 * POINT_MS, limit=LIMIT, period=PERIOD)
    assert refused[:2] == (0, 20)
    assert (await gcra.take("f", cost=20, limit=LIMIT, period=PERIOD))[:2] == (20, 0)
