"""Read-through cache of provider records under the per-request loaders.

For one batch of keys of one kind (`CachedKind`): one MGET; the misses fetched from the
provider in one batch call; written back in one pipeline. Keys are namespaced by cache
version and tenant: `v1:t:<tenant>:<kind>:<key>`. The ledger never goes through here.

Each entry is `fetched_at | fresh_until | orjson payload`, kept for the kind's *stale* TTL
(longer than its fresh TTL, which gets random jitter so entries written together do not all
expire together). A fresh entry is a hit. An expired one is refetched, and kept as a fallback:
when the provider fails with a retryable ProviderError, the stale value is served and
reported (`StaleRead`, which the request turns into response `extensions`); without one, the
error is returned for that key, so only that key's fields are null.

Concurrent misses of the same key are fetched once: within the process through a map of
in-flight futures, and across processes through a short `Cache.add` lock per key, whose
holders others poll (bounded) before fetching themselves. When the shared cache is down, the
locks are never held and reads miss: every request fetches, slower but correct.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from adapters import record_codec
from adapters.cache import Cache, cache_key, glob_escape
from adapters.errors import ProviderError

__all__ = ["CACHE_VERSION", "CachedKind", "ReadThroughCache", "StaleRead"]

logger = logging.getLogger("adapters.provider_cache")

CACHE_VERSION = "v1"
_HEADER = struct.Struct("<dd")  # fetched_at, fresh_until (epoch seconds)
_LOCK_BATCH = 32  # concurrent SET NX calls per batch

V = TypeVar("V")
Fetch = Callable[[list[str]], Awaitable[Mapping[str, V | None]]]


@dataclass(frozen=True, slots=True)
class CachedKind(Generic[V]):
    """One kind of cached provider value: its key segment, record type and lifetimes.

    `value_type` is what `adapters.record_codec` decodes (`CardPage[CardPayment]`).
    """

    name: str
    provider: str
    value_type: Any
    ttl_seconds: float
    stale_ttl_seconds: float
    jitter: float = 0.1


@dataclass(frozen=True, slots=True)
class StaleRead:
    """A value served past its freshness because its provider failed."""

    provider: str
    kind: str
    age_seconds: float
    code: str


@dataclass(slots=True)
class _Entry:
    fetched_at: float
    fresh_until: float
    payload: bytes


def _unpack(raw: bytes | None) -> _Entry | None:
    if raw is None or len(raw) < _HEADER.size:
        return None
    fetched_at, fresh_until = _HEADER.unpack_from(raw)
    return _Entry(fetched_at, fresh_until, raw[_HEADER.size :])


class ReadThroughCache:
    """Process-wide (shared by requests); the loaders of each request call `load_many`."""

    def __init__(
        self,
        cache: Cache,
        *,
        version: str = CACHE_VERSION,
        lock_ttl_seconds: float = 5.0,
        lock_wait_seconds: float = 1.0,
        poll_seconds: float = 0.02,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.cache = cache
        self._version = version
        self._lock_ttl = lock_ttl_seconds
        self._lock_wait = lock_wait_seconds
        self._poll = poll_seconds
        self._clock = clock
        self._jitter = jitter
        self._in_flight: dict[str, asyncio.Future[bytes | None]] = {}
        self.hits = 0
        self.misses = 0
        self.coalesced = 0  # misses that joined another request's fetch in this process

    def key(self, kind: CachedKind[Any], tenant_id: int, key: str) -> str:
        return cache_key(self._version, "t", tenant_id, kind.name, key)

    async def invalidate(self, kind: CachedKind[Any], tenant_id: int, keys: Sequence[str]) -> None:
        """Drop entries (fresh and stale) so the next read refetches; one DEL."""
        if keys:
            await self.cache.delete(*(self.key(kind, tenant_id, key) for key in keys))

    async def purge(
        self, kind: CachedKind[Any], tenant_id: int, key: str, *, as_prefix: bool = False
    ) -> int:
        """Drop the entry of `key` (or every entry whose key starts with it) and return how
        many went. Unlike `invalidate`, a cache that cannot be reached raises: for purges
        that must not silently fail (an erasure). A keyspace walk, not for the request path."""
        pattern = self.key(kind, tenant_id, glob_escape(key))
        return await self.cache.delete_matching(pattern + "*" if as_prefix else pattern)

    async def load_many(
        self,
        kind: CachedKind[V],
        tenant_id: int,
        keys: Sequence[str],
        fetch: Fetch[V],
        on_stale: Callable[[StaleRead], None] | None = None,
    ) -> list[V | ProviderError | None]:
        """Values for `keys` in order: cached, fetched, stale, None (the provider has none),
        or the ProviderError that stands for that key (no stale copy to serve).

        `fetch(keys)` must return a mapping covering the keys it was given (missing = None)
        and raise only ProviderError for provider trouble.
        """
        full = [self.key(kind, tenant_id, key) for key in keys]
        raw_values = await self.cache.get_many(full)
        now = self._clock()
        decode = record_codec.decoder(kind.value_type)
        results: list[V | ProviderError | None] = [None] * len(keys)
        stale: dict[int, _Entry] = {}
        missing: list[int] = []
        for index, raw in enumerate(raw_values):
            entry = _unpack(raw)
            if entry is not None and entry.fresh_until > now:
                results[index] = _value(entry.payload, decode)
                continue
            if entry is not None:
                stale[index] = entry
            missing.append(index)
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if not missing:
            return results

        futures: dict[str, asyncio.Future[bytes | None]] = {}
        owned: dict[str, int] = {}
        for index in missing:
            key = full[index]
            if key in futures or key in owned:
                continue  # asked twice in one batch
            future = self._in_flight.get(key)
            if future is not None:
                futures[key] = future
                self.coalesced += 1
            else:
                owned[key] = index
        if owned:
            loop = asyncio.get_running_loop()
            mine = {key: loop.create_future() for key in owned}
            self._in_flight.update(mine)
            futures.update(mine)
            try:
                await self._fill(kind, keys, owned, mine, fetch)
            finally:
                for key, future in mine.items():
                    self._in_flight.pop(key, None)
                    if not future.done():
                        future.cancel()
        for index in missing:
            try:
                payload = await asyncio.shield(futures[full[index]])
            except ProviderError as error:
                results[index] = self._stale_or(error, kind, stale.get(index), on_stale)
                continue
            results[index] = None if payload is None else _value(payload, decode)
        return results

    def _stale_or(
        self,
        error: ProviderError,
        kind: CachedKind[Any],
        entry: _Entry | None,
        on_stale: Callable[[StaleRead], None] | None,
    ) -> Any:
        age = None if entry is None else self._clock() - entry.fetched_at
        if entry is None or age is None or not error.retryable or age > kind.stale_ttl_seconds:
            return error
        if on_stale is not None:
            on_stale(StaleRead(kind.provider, kind.name, round(age, 3), error.code))
        return _value(entry.payload, record_codec.decoder(kind.value_type))

    async def _fill(
        self,
        kind: CachedKind[V],
        keys: Sequence[str],
        owned: dict[str, int],
        futures: dict[str, asyncio.Future[bytes | None]],
        fetch: Fetch[V],
    ) -> None:
        """Fetch the owned keys (after other processes had their bounded chance) and store."""
        to_fetch = await self._after_other_processes(list(owned), futures)
        if not to_fetch:
            return
        locks = [_lock_key(key) for key in to_fetch]
        by_full = {key: keys[owned[key]] for key in to_fetch}
        try:
            try:
                fetched = await fetch(list(by_full.values()))
            except ProviderError as error:
                for key in to_fetch:
                    _settle_error(futures[key], error)
                return
            except Exception as error:
                for key in to_fetch:
                    _settle_error(futures[key], error)
                raise
            now = self._clock()
            items: dict[str, bytes] = {}
            for key in to_fetch:
                value = fetched.get(by_full[key])
                if value is None:
                    futures[key].set_result(None)
                    continue
                fresh = kind.ttl_seconds * (1 + kind.jitter * self._jitter())
                payload = record_codec.encode(value)
                items[key] = _HEADER.pack(now, now + fresh) + payload
                futures[key].set_result(items[key][_HEADER.size :])
            await self.cache.set_many(items, kind.stale_ttl_seconds)
        finally:
            await self.cache.delete(*locks)

    async def _after_other_processes(
        self, keys: list[str], futures: dict[str, asyncio.Future[bytes | None]]
    ) -> list[str]:
        """Take the cross-process lock of each key; for keys another process holds, poll the
        cache until it writes them or lets go (at most `lock_wait_seconds`). Returns the keys
        this call must fetch; the others' futures are already resolved."""
        acquired: list[str] = []
        held: list[str] = []
        for start in range(0, len(keys), _LOCK_BATCH):
            chunk = keys[start : start + _LOCK_BATCH]
            got = await asyncio.gather(
                *(self.cache.add(_lock_key(key), b"1", self._lock_ttl) for key in chunk)
            )
            for key, is_mine in zip(chunk, got, strict=True):
                (acquired if is_mine else held).append(key)
        deadline = time.monotonic() + self._lock_wait
        while held:
            raw = await self.cache.get_many(held + [_lock_key(key) for key in held])
            values, lock_values = raw[: len(held)], raw[len(held) :]
            still: list[str] = []
            now = self._clock()
            for key, value, lock in zip(held, values, lock_values, strict=True):
                entry = _unpack(value)
                if entry is not None and entry.fresh_until > now:
                    futures[key].set_result(entry.payload)
                elif lock is None:
                    acquired.append(key)  # released without a value, or the cache is down
                else:
                    still.append(key)
            held = still
            if held and time.monotonic() >= deadline:
                logger.info("waited %.2fs for %d keys another process is fetching; fetching",
                            self._lock_wait, len(held))  # fmt: skip
                acquired.extend(held)
                break
            if held:
                await asyncio.sleep(self._poll)
        return acquired


def _lock_key(key: str) -> str:
    return key + ":lock"


def _settle_error(future: asyncio.Future[bytes | None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
        future.exception()  # retrieved here: waiters re-raise it; nobody waiting is fine too


def _value(payload: bytes, decode: Callable[[Any], Any]) -> Any:
    return decode(orjson.loads(payload))
