"""effective_at is bounded: back-dated at most the window, in the future at most the skew.

An entry dated outside every statement (after 9999 in UTC, or decades back) would count in
balances while no page of entries shows it. The window is measured from the service's clock
(injected here), for new postings only: a replay answers its first result even after the
window moved on.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.errors import InvalidInput
from adapters.ledger.posting import NewEntry, NewTransaction, PostingService
from adapters.ledger.posting_requests import EffectiveWindow, check_effective_at
from adapters.ledger.tables import ledger_transactions
from adapters.records import Direction
from gateway.lifespan import effective_window
from gateway.settings import load_settings
from tests.factories import make_account

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


async def _new(engine: AsyncEngine, tenant_id: int, key: str, at: dt.datetime) -> NewTransaction:
    cash = await make_account(engine, tenant_id)
    revenue = await make_account(engine, tenant_id, normal_balance="credit")
    return NewTransaction(
        idempotency_key=key,
        entries=(NewEntry(cash, Direction.DEBIT, 100, "USD"),
                 NewEntry(revenue, Direction.CREDIT, 100, "USD")),
        effective_at=at,
    )  # fmt: skip


async def _count(engine: AsyncEngine, tenant_id: int) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).select_from(ledger_transactions)
            .where(ledger_transactions.c.tenant_id == tenant_id)
        )  # fmt: skip
    return int(count or 0)


@pytest.mark.parametrize(
    ("at", "accepted"),
    [
        pytest.param(NOW, True, id="now"),
        pytest.param(NOW - 365 * DAY, True, id="oldest_allowed"),
        pytest.param(NOW - 365 * DAY - SECOND, False, id="older"),
        pytest.param(dt.datetime(1970, 1, 1, tzinfo=dt.UTC), False, id="epoch"),
        pytest.param(NOW + 300 * SECOND, True, id="latest_allowed"),
        pytest.param(NOW + 301 * SECOND, False, id="later"),
        pytest.param(dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC), False, id="year_9999"),
        pytest.param(
            dt.datetime(2026, 11, 30, 12, 4, tzinfo=dt.timezone(dt.timedelta(hours=-1))),
            False, id="another_zone_past_the_skew",
        ),
    ],
)  # fmt: skip
async def test_the_default_window_bounds_effective_at(
    engine: AsyncEngine, tenant_id: int, at: dt.datetime, accepted: bool
) -> None:
    service = PostingService(engine, clock=Clock())
    new = await _new(engine, tenant_id, "window", at)
    if accepted:
        result = await service.post_transaction(tenant_id, new)
        assert result.transaction.effective_at == at
        assert await _count(engine, tenant_id) == 1
        return
    with pytest.raises(InvalidInput) as raised:
        await service.post_transaction(tenant_id, new)
    assert raised.value.field == "effective_at"
    assert await _count(engine, tenant_id) == 0


async def test_the_window_is_configurable(engine: AsyncEngine, tenant_id: int) -> None:
    window = EffectiveWindow(max_backdate=7 * DAY, max_future_skew=dt.timedelta(0))
    service = PostingService(engine, clock=Clock(), effective_window=window)
    with pytest.raises(InvalidInput, match="at most 7 days in the past"):
        await service.post_transaction(tenant_id, await _new(engine, tenant_id, "a", NOW - 8 * DAY))
    with pytest.raises(InvalidInput, match="at most 0 seconds in the future"):
        await service.post_transaction(tenant_id, await _new(engine, tenant_id, "b", NOW + SECOND))
    await service.post_transaction(tenant_id, await _new(engine, tenant_id, "c", NOW - 7 * DAY))


async def test_a_replay_answers_even_after_the_window_moved_on(
    engine: AsyncEngine, tenant_id: int
) -> None:
    clock = Clock()
    service = PostingService(engine, clock=clock)
    new = await _new(engine, tenant_id, "late-replay", NOW - 364 * DAY)
    first = await service.post_transaction(tenant_id, new)
    clock.now += 2 * DAY
    replay = await service.post_transaction(tenant_id, new)
    assert (replay.replayed, replay.transaction.id) == (True, first.transaction.id)


def test_no_window_overflows() -> None:
    huge = EffectiveWindow(max_backdate=dt.timedelta(days=999_999_999),
                           max_future_skew=dt.timedelta(days=999_999_999))  # fmt: skip
    check_effective_at(dt.datetime(1, 1, 1, tzinfo=dt.UTC), NOW, huge)
    check_effective_at(dt.datetime(9999, 12, 31, tzinfo=dt.UTC), NOW, huge)


def test_the_window_comes_from_the_environment() -> None:
    assert effective_window(load_settings({})) == EffectiveWindow(
        max_backdate=365 * DAY, max_future_skew=300 * SECOND
    )
    settings = load_settings(
        {"LEDGER_MAX_BACKDATE_DAYS": "30", "LEDGER_MAX_FUTURE_SKEW_SECONDS": "60"}
    )
    assert effective_window(settings) == EffectiveWindow(
        max_backdate=30 * DAY, max_future_skew=60 * SECOND
    )
    with pytest.raises(ValueError, match="LEDGER_MAX_BACKDATE_DAYS"):
        load_settings({"LEDGER_MAX_BACKDATE_DAYS": "-1"})
