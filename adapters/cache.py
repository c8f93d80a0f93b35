"""Shared cache behind the loaders, persisted queries and counters: Redis or in-process.

Both implementations satisfy the `Cache` protocol and pass the same contract tests. Keys are
namespaced by the cache's prefix (one per deployment, or per test run); callers add tenant and
version segments themselves (`cache_key`). Values are bytes: callers choose the serializer.

Redis being down makes the gateway slower, never broken: RedisCache turns every Redis error
into a miss (reads) or a no-op (writes), logs it, and stops trying for a short back-off so that
requests do not each wait for a timeout.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Protocol

from redis import asyncio as redis_asyncio
from redis.exceptions import RedisError

__all__ = ["Cache", "MemoryCache", "RedisCache", "cache_key", "glob_escape"]

logger = logging.getLogger("adapters.cache")


def cache_key(*segments: str | int) -> str:
    """Join key segments with ':' (segments must not contain ':' themselves)."""
    parts = [str(segment) for segment in segments]
    if any(":" in part or not part for part in parts):
        raise ValueError(f"cache key segments must be non-empty and free of ':': {parts!r}")
    return ":".join(parts)


def glob_escape(text: str) -> str:
    """`text` with the pattern characters of `Cache.delete_matching` escaped."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A Redis-style glob (`*`, `?`, backslash escapes; no classes) as a compiled regex."""
    parts: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


class Cache(Protocol):
    """A shared key-value store with TTLs. Every method is safe when the backend is down."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """One round trip (MGET); None for each missing key."""
        ...

    async def set_many(self, items: Mapping[str, bytes], ttl_seconds: float) -> None:
        """Write all items with one TTL in one round trip (a pipeline)."""
        ...

    async def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        """Set only when absent (SET NX); True when this call set it. Used as a lock."""
        ...

    async def delete(self, *keys: str) -> None: ...

    async def delete_matching(self, pattern: str) -> int:
        """Delete every key matching the glob `pattern` (`*`, `?`, backslash escapes; see
        `glob_escape`); returns how many were deleted. A walk of the keyspace (SCAN): for rare
        purges such as a data-subject erasure, never on the request path."""
        ...

    async def increment(self, key: str, ttl_seconds: float) -> int | None:
        """Add one and return the new value; the TTL starts with the first increment.

        None when the backend is unavailable (callers decide whether to fail open).
        """
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryCache:
    """In-process, bounded (least recently used first out), TTL per entry.

    The embedded default's cache; not shared between processes.
    """

    def __init__(self, *, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_entries = max_entries
        self._now = time.monotonic

    def _live(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at <= self._now():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def _put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self._entries[key] = (self._now() + ttl_seconds, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._live(key) for key in keys]

    async def set_many(self, items: Mapping[str, bytes], ttl_seconds: float) -> None:
        for key, value in items.items():
            self._put(key, value, ttl_seconds)

    async def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, value, ttl_seconds)
        return True

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)

    async def delete_matching(self, pattern: str) -> int:
        regex = _glob_regex(pattern)
        doomed = [key for key in self._entries if regex.fullmatch(key)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    async def increment(self, key: str, ttl_seconds: float) -> int | None:
        current = self._live(key)
        if current is None:
            self._put(key, b"1", ttl_seconds)
            return 1
        value = int(current) + 1
        expires_at, _ = self._entries[key]
        self._entries[key] = (expires_at, str(value).encode())
        return value

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()


_SCAN_COUNT = 500  # keys per SCAN step and per DEL of a purge


class RedisCache:
    """Redis-backed cache under `prefix`; Redis errors degrade to misses and no-ops."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout_seconds: float = 0.25,
        backoff_seconds: float = 1.0,
        max_connections: int = 50,
    ) -> None:
        self._redis = redis_asyncio.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            max_connections=max_connections,
        )
        self._prefix = prefix + ":"
        self._backoff = backoff_seconds
        self._down_until = 0.0

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, operation: str, error: RedisError) -> None:
        self._down_until = time.monotonic() + self._backoff
        logger.warning("redis %s failed (%s); treating as a miss for %.1fs",
                       operation, type(error).__name__, self._backoff)  # fmt: skip

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys or not self._available():
            return [None] * len(keys)
        try:
            values = await self._redis.mget([self._key(key) for key in keys])
        except RedisError as error:
            self._failed("MGET", error)
            return [None] * len(keys)
        return [value.encode() if isinstance(value, str) else value for value in values]

    async def set_many(self, items: Mapping[str, bytes], ttl_seconds: float) -> None:
        if not items or not self._available():
            return
        milliseconds = max(1, int(ttl_seconds * 1000))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(self._key(key), value, px=milliseconds)
                await pipe.execute()
        except RedisError as error:
            self._failed("SET pipeline", error)

    async def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        if not self._available():
            return False
        try:
            result = await self._redis.set(
                self._key(key), value, px=max(1, int(ttl_seconds * 1000)), nx=True
            )
        except RedisError as error:
            self._failed("SET NX", error)
            return False
        return bool(result)

    async def delete(self, *keys: str) -> None:
        if not keys or not self._available():
            return
        try:
            await self._redis.delete(*(self._key(key) for key in keys))
        except RedisError as error:
            self._failed("DEL", error)

    async def delete_matching(self, pattern: str) -> int:
        """SCAN the prefix's keys matching `pattern` and DEL them in batches. Unlike the other
        methods, a Redis failure raises: a purge that silently did nothing would leave the data
        it was asked to remove."""
        deleted = 0
        batch: list[bytes | str] = []
        async for key in self._redis.scan_iter(
            match=glob_escape(self._prefix) + pattern, count=_SCAN_COUNT
        ):
            batch.append(key)
            if len(batch) >= _SCAN_COUNT:
                deleted += int(await self._redis.delete(*batch))
                batch = []
        if batch:
            deleted += int(await self._redis.delete(*batch))
        return deleted

    async def increment(self, key: str, ttl_seconds: float) -> int | None:
        if not self._available():
            return None
        full = self._key(key)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(full)
                pipe.pexpire(full, max(1, int(ttl_seconds * 1000)), nx=True)
                value, _ = await pipe.execute()
        except RedisError as error:
            self._failed("INCR", error)
            return None
        return int(value)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def close(self) -> None:
        await self._redis.aclose()
