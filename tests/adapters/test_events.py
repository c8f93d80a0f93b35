"""Ledger events: the fanout's bounded queues, both brokers, and publishing after commit."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.errors import InsufficientFunds
from adapters.events import (
    EventBroker,
    Fanout,
    LedgerEvent,
    MemoryEventBroker,
    RedisEventBroker,
)
from adapters.ledger.posting import NewEntry, NewTransaction, PostingService
from adapters.ledger.tables import ledger_accounts, ledger_transactions
from adapters.records import Direction, TransactionStatus
from tests.factories import make_account
from tests.fixtures.cache import REDIS_URL
from tests.fixtures.database import services_required


def _event(tenant_id: int, transaction_id: int = 1) -> LedgerEvent:
    return LedgerEvent(tenant_id, transaction_id, "post", ((10, 2), (11, 5)))


async def _drain(queue: AsyncIterator[LedgerEvent], count: int) -> list[LedgerEvent]:
    received = []
    async with asyncio.timeout(5):
        for _ in range(count):
            received.append(await anext(queue))
    return received


def test_an_event_round_trips_through_json_and_refuses_anything_else() -> None:
    event = _event(3, 7)
    assert LedgerEvent.from_json(event.to_json()) == event
    assert event.account_ids == frozenset({10, 11})
    for raw in (b"nope", b"{}", b'{"tenant": 0, "transaction": 1, "action": "post", '
                b'"accounts": []}', b'{"tenant": 1, "transaction": 1, "action": "drop", '
                b'"accounts": []}'):  # fmt: skip
        with pytest.raises(ValueError, match="not a ledger event"):
            LedgerEvent.from_json(raw)


async def test_a_full_queue_drops_only_its_subscriber_and_never_blocks_delivery() -> None:
    """Given a subscriber that reads nothing and one that reads everything, when more events
    arrive than the queue holds, the slow one is dropped (its callback runs once) and the fast
    one receives every event; other tenants' subscribers see none of them."""
    fanout = Fanout()
    dropped: list[str] = []
    slow = fanout.subscribe(1, max_queued=3, on_overflow=lambda: dropped.append("slow"))
    fast = fanout.subscribe(1, max_queued=3, on_overflow=lambda: dropped.append("fast"))
    other = fanout.subscribe(2, max_queued=3, on_overflow=lambda: dropped.append("other"))
    fast_events = aiter(fast)
    received = []
    for number in range(1, 11):
        fanout.deliver(_event(1, number))  # synchronous: it cannot wait for anyone
        received += await _drain(fast_events, 1)

    assert dropped == ["slow"]
    assert slow.overflowed
    assert not fast.overflowed
    assert [event.transaction_id for event in received] == list(range(1, 11))
    assert fanout.subscriber_count(1) == 1
    # The slow subscriber still gets what was queued before it overflowed, then the end.
    assert [event.transaction_id async for event in slow] == [1, 2, 3]
    other.close()
    assert [event async for event in other] == []
    assert fanout.subscriber_count() == 1


async def test_closing_the_fanout_ends_every_subscription() -> None:
    fanout = Fanout()
    queue = fanout.subscribe(1, max_queued=5, on_overflow=lambda: None)
    fanout.deliver(_event(1))
    fanout.close()
    assert [event.transaction_id async for event in queue] == [1]
    late = fanout.subscribe(1, max_queued=5, on_overflow=lambda: None)
    assert [event async for event in late] == []


async def _redis_broker(prefix: str) -> RedisEventBroker:
    broker = RedisEventBroker(REDIS_URL, prefix=prefix)
    await broker.start()
    if not broker.is_listening:
        await broker.close()
        if services_required():
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return broker


@pytest.fixture(params=["memory", "redis"])
async def brokers(request: pytest.FixtureRequest) -> AsyncIterator[tuple[EventBroker, ...]]:
    """A publishing broker and a listening one: the same one in-process, two Redis clients
    (as two gateway processes would have) sharing a prefix."""
    if request.param == "memory":
        memory = MemoryEventBroker()
        yield memory, memory
        await memory.close()
        return
    prefix = f"fg-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    publisher = await _redis_broker(prefix)
    listener = await _redis_broker(prefix)
    yield publisher, listener
    await publisher.close()
    await listener.close()


async def test_an_event_published_by_one_broker_reaches_the_other_brokers_subscribers(
    brokers: tuple[EventBroker, EventBroker],
) -> None:
    publisher, listener = brokers
    mine = listener.fanout.subscribe(1, max_queued=10, on_overflow=lambda: None)
    theirs = listener.fanout.subscribe(2, max_queued=10, on_overflow=lambda: None)

    await publisher.publish(_event(2, 20))
    await publisher.publish(_event(1, 10))
    await publisher.publish(_event(1, 11))

    assert [e.transaction_id for e in await _drain(aiter(mine), 2)] == [10, 11]
    assert [e.transaction_id for e in await _drain(aiter(theirs), 1)] == [20]


async def test_an_unreachable_redis_neither_stops_start_up_nor_fails_a_publish() -> None:
    broker = RedisEventBroker("redis://127.0.0.1:1/0", prefix="unreachable", timeout_seconds=0.2)
    await broker.start()  # logged; the listener keeps retrying in the background
    assert not broker.is_listening
    await broker.publish(_event(1))  # logged, not raised: the posting had committed
    await broker.close()


class _CommitProbe:
    """An EventPublisher that, when called, reads from another connection whether the
    transaction it announces is visible there (committed) and at which account versions."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.seen: list[tuple[LedgerEvent, str | None, dict[int, int]]] = []

    async def publish(self, event: LedgerEvent) -> None:
        async with self._engine.connect() as connection:
            status = await connection.scalar(
                select(ledger_transactions.c.status).where(
                    ledger_transactions.c.id == event.transaction_id
                )
            )
            rows = await connection.execute(
                select(ledger_accounts.c.id, ledger_accounts.c.lock_version).where(
                    ledger_accounts.c.id.in_(event.account_ids)
                )
            )
            self.seen.append((event, status, {int(r.id): int(r.lock_version) for r in rows}))


async def test_a_posting_publishes_once_after_it_committed_and_never_for_a_replay_or_refusal(
    engine: AsyncEngine, tenant_id: int
) -> None:
    probe = _CommitProbe(engine)
    posting = PostingService(engine, events=probe)
    cash = await make_account(engine, tenant_id)
    guarded = await make_account(engine, tenant_id, debits_must_not_exceed_credits=True)
    new = NewTransaction(
        idempotency_key="evt-1",
        entries=(
            NewEntry(cash, Direction.DEBIT, 500, "USD"),
            NewEntry(guarded, Direction.CREDIT, 500, "USD"),
        ),
        status=TransactionStatus.PENDING,
    )

    pending = await posting.post_transaction(tenant_id, new)
    await posting.post_transaction(tenant_id, new)  # a replay: nothing written, nothing sent
    await posting.post_pending(tenant_id, pending.transaction.id)
    reversal = await posting.reverse_transaction(tenant_id, pending.transaction.id, "evt-rev")
    overdraft = NewTransaction(
        idempotency_key="evt-2",
        entries=(
            NewEntry(guarded, Direction.DEBIT, 10_000, "USD"),
            NewEntry(cash, Direction.CREDIT, 10_000, "USD"),
        ),
    )
    with pytest.raises(InsufficientFunds):
        await posting.post_transaction(tenant_id, overdraft)

    transaction_ids = [pending.transaction.id, pending.transaction.id, reversal.transaction.id]
    assert [(event.action, event.transaction_id) for event, _, _ in probe.seen] == list(
        zip(["post", "post_pending", "reverse"], transaction_ids, strict=True)
    )
    # Each was visible, at the versions it names, from another connection when published.
    assert [status for _, status, _ in probe.seen] == ["pending", "posted", "posted"]
    for event, _, versions in probe.seen:
        assert event.tenant_id == tenant_id
        assert dict(event.account_versions) == versions
    assert [dict(e.account_versions) for e, _, _ in probe.seen] == [
        {cash: 1, guarded: 1}, {cash: 2, guarded: 2}, {cash: 3, guarded: 3},
    ]  # fmt: skip
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).where(ledger_transactions.c.tenant_id == tenant_id)
        )
    assert count == 2  # the refused overdraft wrote nothing
