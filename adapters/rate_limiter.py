"""Cost-weighted rate-limit counters: GCRA (generic cell rate algorithm) on Redis or in-process.

GCRA keeps one number per key, the theoretical arrival time (TAT): a budget of `limit` points
per `period` refills continuously at `limit / period` points per second, and a request of
`cost` points is allowed when the budget holds them (bursts up to `limit`). On Redis it is one
Lua script, one round trip, atomic, and timed by Redis's own clock (`TIME`), so every process
sharing the Redis shares one budget whatever their clocks say. `MemoryGcra` is its in-process
twin with the same arithmetic, for the embedded default and for when Redis is down.

On Redis a charge can also take a lease: up to `extra` points beyond its cost, which the
caller spends on its next charges without a round trip (gateway.rate_limits), and can give
back unspent with its next call (`refund_ms`). A lease takes at most half of what the budget
holds after the charge, so the last points of a budget are not all held by one process.

Knows nothing of GraphQL or HTTP: keys, costs and limits only.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from redis import asyncio as redis_asyncio

__all__ = ["GcraGrant", "GcraResult", "GcraStore", "MemoryGcra", "RedisGcra"]


# (allowed, remaining, reset_seconds, retry_after_seconds): `remaining` points now;
# `reset_seconds` until the budget is whole again; `retry_after_seconds` until a refused
# request would fit (0 when allowed). A plain tuple: one is made per request.
GcraResult = tuple[bool, int, float, float]

# (granted, remaining, reset_seconds, retry_after_seconds): `granted` points taken, the cost
# and the lease beyond it (0: refused, nothing taken); the rest as in GcraResult, with the
# lease counted as spent.
GcraGrant = tuple[int, int, float, float]


class GcraStore(Protocol):
    async def take(
        self,
        key: str,
        *,
        cost: int,
        extra: int = 0,
        refund_ms: float = 0.0,
        limit: int,
        period: float,
    ) -> GcraGrant: ...

    async def close(self) -> None: ...


class MemoryGcra:
    """GCRA in this process only (bounded: expired keys are dropped when it grows)."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._tats: dict[str, float] = {}
        self._max_keys = max_keys

    def charge_now(self, key: str, cost: int, limit: int, period: float) -> GcraResult:
        """Charge `cost` points (arguments by position, no coroutine: nothing here waits):
        the arithmetic of the Lua script below without a lease, in milliseconds, written out
        in one function (it runs on every request; comparisons rather than min/max, which
        parse keyword arguments on every call). In milliseconds, not seconds: a budget's
        interval is then often a whole number, and adding it to a time is exact (in seconds,
        0.6 s added to the clock rounds, and 99 points left read as 98)."""
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


# KEYS[1]: the key; ARGV: cost, extra (the most a lease may take beyond the cost), refund (ms
# of TAT given back: an earlier lease's unspent points), limit, period (ms). Returns granted (0:
# refused), remaining, reset (us), retry after (us): microseconds, so that a lease's figures
# (gateway.rate_limits) keep a large budget's points. Redis 5+ replicates a script's effects,
# so TIME is allowed.
_SCRIPT = """
local cost = tonumber(ARGV[1])
local extra = tonumber(ARGV[2])
local refund = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local period = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now) - refund
if tat < now then tat = now end
local allow_at = tat + cost * interval - period
if allow_at > now then
  if refund > 0 then
    redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1)
  end
  local remaining = math.floor((period - (tat - now)) / interval)
  return {0, remaining, math.ceil((tat - now) * 1000), math.ceil((allow_at - now) * 1000)}
end
local room = math.floor((now - allow_at) / interval)
local granted = cost + math.min(extra, math.floor(room / 2))
local new_tat = tat + granted * interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1)
local remaining = math.floor((period - (new_tat - now)) / interval)
return {granted, remaining, math.ceil((new_tat - now) * 1000), 0}
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

    async def take(
        self,
        key: str,
        *,
        cost: int,
        extra: int = 0,
        refund_ms: float = 0.0,
        limit: int,
        period: float,
    ) -> GcraGrant:
        """Charge `cost` points and take up to `extra` more as a lease (at most half of what
        is left after the cost), after giving back `refund_ms` of an earlier lease."""
        granted, remaining, reset_us, retry_us = await self._script(
            keys=[self._prefix + key],
            args=[cost, extra, repr(float(refund_ms)), limit, int(period * 1000)],
        )
        return (int(granted), max(int(remaining), 0), int(reset_us) / 1e6, int(retry_us) / 1e6)

    async def close(self) -> None:
        await self._redis.aclose()
