"""Cost-weighted rate-limit counters: GCRA (generic cell rate algorithm) on Redis or in-process.

GCRA keeps one number per key, the theoretical arrival time (TAT): a budget of `limit` points
per `period` refills continuously at `limit / period` points per second, and a request of
`cost` points is allowed when the budget holds them (bursts up to `limit`). On Redis it is one
Lua script, one round trip, atomic, and timed by Redis's own clock (`TIME`), so every process
sharing the Redis shares one budget whatever their clocks say. `MemoryGcra` is its in-process
twin with the same arithmetic, for the embedded default and for when Redis is down.

Knows nothing of GraphQL or HTTP: keys, costs and limits only.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from redis import asyncio as redis_asyncio

__all__ = ["GcraResult", "GcraStore", "MemoryGcra", "RedisGcra"]


# (allowed, remaining, reset_seconds, retry_after_seconds): `remaining` points now;
# `reset_seconds` until the budget is whole again; `retry_after_seconds` until a refused
# request would fit (0 when allowed). A plain tuple: one is made per request.
GcraResult = tuple[bool, int, float, float]


class GcraStore(Protocol):
    async def charge(self, key: str, *, cost: int, limit: int, period: float) -> GcraResult: ...

    async def close(self) -> None: ...


class MemoryGcra:
    """GCRA in this process only (bounded: expired keys are dropped when it grows)."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._tats: dict[str, float] = {}
        self._max_keys = max_keys

    async def charge(self, key: str, *, cost: int, limit: int, period: float) -> GcraResult:
        return self.charge_now(key, cost, limit, period)

    def charge_now(self, key: str, cost: int, limit: int, period: float) -> GcraResult:
        """`charge` without a coroutine (nothing here waits), arguments by position: the
        arithmetic of the Lua script below, in milliseconds, written out in one function (it
        runs on every request; comparisons rather than min/max, which parse keyword
        arguments on every call). In milliseconds, not seconds: a budget's interval is then
        often a whole number, and adding it to a time is exact (in seconds, 0.6 s added to
        the clock rounds, and 99 points left read as 98)."""
        now = time.monotonic() * 1000
        tats = self._tats
        tat = tats.get(key, now)
        period *= 1000
        interval = period / limit
        if tat < now:
            tat = now
        new_tat = tat + cost * interval
        allow_at = new_tat - period
        if allow_at > now:  # refused: the TAT stays
            remaining = math.floor((period - (tat - now)) / interval)
            return (
                False,
                remaining if remaining > 0 else 0,
                (tat - now) / 1000,
                (allow_at - now) / 1000,
            )
        tats[key] = new_tat
        if len(tats) > self._max_keys:
            self._tats = {k: v for k, v in tats.items() if v > now}
        remaining = math.floor((period - (new_tat - now)) / interval)
        return (True, remaining if remaining > 0 else 0, (new_tat - now) / 1000, 0.0)

    async def close(self) -> None:
        self._tats.clear()


# KEYS[1]: the key; ARGV: cost, limit, period (ms). Returns allowed (0/1), remaining,
# reset (ms), retry after (ms). Redis 5+ replicates a script's effects, so TIME is allowed.
_SCRIPT = """
local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - period
if allow_at > now then
  local remaining = math.floor((period - (tat - now)) / interval)
  return {0, remaining, math.ceil(tat - now), math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1)
return {1, math.floor((period - (new_tat - now)) / interval), math.ceil(new_tat - now), 0}
"""


class RedisGcra:
    """GCRA on Redis under `prefix`. Redis errors propagate (redis.exceptions.RedisError):
    the caller decides what an outage means."""

    def __init__(self, url: str, *, prefix: str, timeout_seconds: float = 0.1) -> None:
        self._redis = redis_asyncio.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._script = self._redis.register_script(_SCRIPT)
        self._prefix = prefix + ":"

    async def charge(self, key: str, *, cost: int, limit: int, period: float) -> GcraResult:
        allowed, remaining, reset_ms, retry_ms = await self._script(
            keys=[self._prefix + key], args=[cost, limit, int(period * 1000)]
        )
        return (bool(allowed), max(int(remaining), 0), int(reset_ms) / 1000, int(retry_ms) / 1000)

    async def close(self) -> None:
        await self._redis.aclose()
