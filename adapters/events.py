"""Ledger events: published after a posting commits, fanned out to this process's subscribers.

A posting (adapters/ledger/posting.py) publishes one small `LedgerEvent` after its database
transaction committed: which tenant, which transaction, which accounts changed and their new
`lock_version`. Nothing of GraphQL travels: subscribers load what they show through the normal
read path, so scopes and masking apply as to any read.

Two brokers with one contract, picked like the cache (REDIS_URL):

- `MemoryEventBroker` (embedded default): publishing delivers to this process's `Fanout`.
- `RedisEventBroker`: publishing is a Redis PUBLISH on the tenant's channel
  (`<prefix>:ledger-events:<tenant id>`); each process listens to every tenant's channel
  (one PSUBSCRIBE connection) and delivers to its own `Fanout`, so a posting through one
  gateway process reaches subscribers on all of them.

Delivery is at most once: an event published while Redis is unreachable is logged and lost,
and a subscriber that connects later does not get earlier events. `Fanout` never blocks the
publisher: each subscriber has a bounded queue, and a subscriber whose queue is full is dropped
(its `on_overflow` callback runs; the transport closes the connection) while the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
from redis import asyncio as redis_asyncio
from redis.exceptions import RedisError

__all__ = [
    "EventBroker",
    "EventPublisher",
    "EventQueue",
    "Fanout",
    "LedgerEvent",
    "MemoryEventBroker",
    "RedisEventBroker",
]

logger = logging.getLogger("adapters.events")

# What a posting did, as LedgerEvent.action.
ACTIONS = frozenset({"post", "post_pending", "void", "reverse"})


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One committed ledger write of one tenant.

    `account_versions` pairs each changed account id with its `lock_version` after the write
    (ascending account id): a subscriber can tell an event it already reflects.
    """

    tenant_id: int
    transaction_id: int
    action: str
    account_versions: tuple[tuple[int, int], ...]

    @property
    def account_ids(self) -> frozenset[int]:
        return frozenset(account_id for account_id, _ in self.account_versions)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "tenant": self.tenant_id,
                "transaction": self.transaction_id,
                "action": self.action,
                "accounts": [list(pair) for pair in self.account_versions],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> LedgerEvent:
        """Raises ValueError for anything but an event this module wrote."""
        try:
            body = orjson.loads(raw)
            event = cls(
                tenant_id=_positive(body["tenant"]),
                transaction_id=_positive(body["transaction"]),
                action=str(body["action"]),
                account_versions=tuple(
                    (_positive(account), _positive(version))
                    for account, version in body["accounts"]
                ),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a ledger event: {error}") from None
        if event.action not in ACTIONS:
            raise ValueError(f"not a ledger event: unknown action {event.action!r}")
        return event


def _positive(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


class EventPublisher(Protocol):
    """What the posting service needs: publish one committed write. Never raises."""

    async def publish(self, event: LedgerEvent) -> None: ...


class EventQueue:
    """One subscriber's bounded queue of its tenant's events; iterate it to receive them.

    Iteration ends when the queue is closed: by `close()`, by the fanout shutting down, or by
    overflow (then `overflowed` is True).
    """

    __slots__ = ("_fanout", "_queue", "overflowed", "tenant_id")

    _END = None

    def __init__(self, fanout: Fanout, tenant_id: int, max_queued: int) -> None:
        self._fanout = fanout
        self.tenant_id = tenant_id
        # One slot more than the bound, kept for the end marker.
        self._queue: asyncio.Queue[LedgerEvent | None] = asyncio.Queue(max_queued + 1)
        self.overflowed = False

    def _offer(self, event: LedgerEvent) -> bool:
        """Queue `event` without waiting; False when the queue is at its bound."""
        if self._queue.qsize() >= self._queue.maxsize - 1:
            return False
        self._queue.put_nowait(event)
        return True

    def _end(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(self._END)

    def close(self) -> None:
        """Stop receiving events; iteration ends after the ones already queued."""
        self._fanout._remove(self)
        self._end()

    def __aiter__(self) -> AsyncIterator[LedgerEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[LedgerEvent]:
        while True:
            event = await self._queue.get()
            if event is None:
                return
            yield event


class Fanout:
    """This process's subscribers by tenant; delivery never waits for any of them."""

    def __init__(self) -> None:
        self._queues: dict[int, dict[EventQueue, Callable[[], None]]] = {}
        self._closed = False
        self.delivered = 0
        self.overflowed = 0

    def subscribe(
        self, tenant_id: int, *, max_queued: int, on_overflow: Callable[[], None]
    ) -> EventQueue:
        """A queue of `tenant_id`'s events from now on. When more than `max_queued` events wait
        in it, it is dropped and `on_overflow` runs (synchronously, in the publishing task:
        it must only schedule the disconnection)."""
        queue = EventQueue(self, tenant_id, max_queued)
        if self._closed:
            queue._end()
            return queue
        self._queues.setdefault(tenant_id, {})[queue] = on_overflow
        return queue

    def subscriber_count(self, tenant_id: int | None = None) -> int:
        if tenant_id is not None:
            return len(self._queues.get(tenant_id, {}))
        return sum(len(queues) for queues in self._queues.values())

    def deliver(self, event: LedgerEvent) -> None:
        """Offer `event` to each subscriber of its tenant; drop those that are full."""
        for queue, on_overflow in list(self._queues.get(event.tenant_id, {}).items()):
            if queue._offer(event):
                self.delivered += 1
                continue
            self.overflowed += 1
            queue.overflowed = True
            queue.close()
            on_overflow()

    def _remove(self, queue: EventQueue) -> None:
        queues = self._queues.get(queue.tenant_id)
        if queues is not None:
            queues.pop(queue, None)
            if not queues:
                del self._queues[queue.tenant_id]

    def close(self) -> None:
        """End every subscriber's iteration (shutdown); later subscriptions end at once."""
        self._closed = True
        for queues in list(self._queues.values()):
            for queue in list(queues):
                queue.close()


class EventBroker(EventPublisher, Protocol):
    """Publishes events and delivers every tenant's events to this process's `fanout`."""

    fanout: Fanout

    async def start(self) -> None:
        """Be listening before this returns (events published afterwards are delivered)."""
        ...

    async def close(self) -> None: ...


class MemoryEventBroker:
    """The embedded default: one process, events delivered in the publishing call."""

    def __init__(self) -> None:
        self.fanout = Fanout()

    async def start(self) -> None:
        return None

    async def publish(self, event: LedgerEvent) -> None:
        self.fanout.deliver(event)

    async def close(self) -> None:
        self.fanout.close()


class RedisEventBroker:
    """Redis pub/sub: a channel per tenant, one pattern subscription per process."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout_seconds: float = 0.5,
        reconnect_seconds: float = 1.0,
    ) -> None:
        self.fanout = Fanout()
        self._redis = redis_asyncio.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        # The listener blocks on its connection between messages: no read timeout there.
        self._listening = redis_asyncio.Redis.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout_seconds
        )
        self._prefix = f"{prefix}:ledger-events:"
        self._reconnect = reconnect_seconds
        self._task: asyncio.Task[None] | None = None
        self._pubsub: redis_asyncio.client.PubSub | None = None

    def channel(self, tenant_id: int) -> str:
        return f"{self._prefix}{tenant_id}"

    async def publish(self, event: LedgerEvent) -> None:
        try:
            await self._redis.publish(self.channel(event.tenant_id), event.to_json())
        except (RedisError, OSError) as error:
            logger.warning(
                "ledger event of transaction %s not published (%s): subscribers miss it",
                event.transaction_id,
                type(error).__name__,
            )

    async def start(self) -> None:
        """Listening when this returns, or (Redis unreachable: logged) retrying every
        `reconnect_seconds` in the background; a gateway starts either way."""
        pubsub = self._pubsub = self._listening.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe(self._prefix + "*")
        except (RedisError, OSError) as error:
            logger.warning("ledger events listener cannot reach Redis (%s); retrying",
                           type(error).__name__)  # fmt: skip
        self._task = asyncio.create_task(self._listen(pubsub), name="ledger-events")

    @property
    def is_listening(self) -> bool:
        return self._pubsub is not None and self._pubsub.subscribed

    async def _listen(self, pubsub: redis_asyncio.client.PubSub) -> None:
        while True:
            self._pubsub = pubsub
            try:
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    try:
                        event = LedgerEvent.from_json(message["data"])
                    except ValueError as error:
                        logger.warning("ignored a message on the ledger events channel: %s", error)
                        continue
                    if message["channel"].decode() != self.channel(event.tenant_id):
                        logger.warning("ignored a ledger event on another tenant's channel")
                        continue
                    self.fanout.deliver(event)
            except (RedisError, OSError) as error:
                logger.warning("ledger events listener lost Redis (%s); reconnecting",
                               type(error).__name__)  # fmt: skip
            await asyncio.sleep(self._reconnect)
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            pubsub = self._listening.pubsub(ignore_subscribe_messages=True)
            with contextlib.suppress(RedisError, OSError):
                await pubsub.psubscribe(self._prefix + "*")

    async def close(self) -> None:
        self.fanout.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()
        await self._listening.aclose()
