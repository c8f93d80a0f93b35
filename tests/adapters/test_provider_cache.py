"""The read-through cache over both Cache backends: batching, tenancy, stale-on-error,
single-flight in and across processes, invalidation and a cache that is down."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from adapters.cache import Cache, RedisCache
from adapters.errors import ProviderRejected, ProviderUnavailable
from adapters.provider_cache import CachedKind, ReadThroughCache, StaleRead

KIND: CachedKind[tuple[str, ...]] = CachedKind(
    name="acme.things", provider="acme", value_type=tuple[str, ...], ttl_seconds=30,
    stale_ttl_seconds=600, jitter=0.1,
)  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Provider:
    """The outside world: answers `fetch` calls, counting them; can fail or hold."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def fetch(self, keys: list[str]) -> Mapping[str, tuple[str, ...] | None]:
        self.calls.append(list(keys))
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return {key: (f"value-of-{key}",) for key in keys if key != "absent"}


async def until_fetching(provider: Provider) -> None:
    """Wait (bounded) until a fetch is in progress at the provider."""
    for _ in range(1000):
        if provider.calls:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("no fetch started")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reads(cache: Cache, clock: Clock) -> ReadThroughCache:
    return ReadThroughCache(cache, clock=clock, jitter=lambda: 0.0, poll_seconds=0.005)


async def test_cold_batch_fetches_once_and_warm_batch_not_at_all(reads: ReadThroughCache) -> None:
    provider = Provider()
    cold = await reads.load_many(KIND, 1, ["a", "b", "absent"], provider.fetch)
    assert cold == [("value-of-a",), ("value-of-b",), None]
    warm = await reads.load_many(KIND, 1, ["b", "a"], provider.fetch)
    assert warm == [("value-of-b",), ("value-of-a",)]
    assert provider.calls == [["a", "b", "absent"]]
    assert (reads.hits, reads.misses) == (2, 3)


async def test_keys_are_scoped_by_tenant(reads: ReadThroughCache) -> None:
    provider = Provider()
    await reads.load_many(KIND, 1, ["a"], provider.fetch)
    await reads.load_many(KIND, 2, ["a"], provider.fetch)
    assert provider.calls == [["a"], ["a"]]
    assert reads.key(KIND, 2, "a") == "v1:t:2:acme.things:a"


async def test_an_expired_entry_is_refetched(reads: ReadThroughCache, clock: Clock) -> None:
    provider = Provider()
    await reads.load_many(KIND, 1, ["a"], provider.fetch)
    clock.now += 31
    await reads.load_many(KIND, 1, ["a"], provider.fetch)
    assert provider.calls == [["a"], ["a"]]


async def test_stale_value_is_served_and_reported_when_the_provider_fails(
    reads: ReadThroughCache, clock: Clock
) -> None:
    provider = Provider()
    await reads.load_many(KIND, 1, ["a"], provider.fetch)
    clock.now += 45
    provider.failure = ProviderUnavailable("acme is unavailable", provider="acme")
    reported: list[StaleRead] = []
    values = await reads.load_many(KIND, 1, ["a", "b"], provider.fetch, reported.append)
    assert values[0] == ("value-of-a",)
    assert isinstance(values[1], ProviderUnavailable)  # nothing stale to serve for b
    assert reported == [StaleRead("acme", "acme.things", 45.0, "PROVIDER_UNAVAILABLE")]


async def test_terminal_errors_and_too_old_copies_are_not_served_stale(
    reads: ReadThroughCache, clock: Clock
) -> None:
    provider = Provider()
    await reads.load_many(KIND, 1, ["a"], provider.fetch)
    clock.now += 45
    provider.failure = ProviderRejected("acme refused the request", provider="acme")
    reported: list[StaleRead] = []
    [value] = await reads.load_many(KIND, 1, ["a"], provider.fetch, reported.append)
    assert isinstance(value, ProviderRejected)
    clock.now += 600
    provider.failure = ProviderUnavailable("acme is unavailable", provider="acme")
    [value] = await reads.load_many(KIND, 1, ["a"], provider.fetch, reported.append)
    assert isinstance(value, ProviderUnavailable)
    assert reported == []


async def test_concurrent_misses_in_one_process_fetch_once(reads: ReadThroughCache) -> None:
    provider = Provider()
    provider.gate = asyncio.Event()
    first = asyncio.create_task(reads.load_many(KIND, 1, ["a", "b"], provider.fetch))
    await until_fetching(provider)
    second = asyncio.create_task(reads.load_many(KIND, 1, ["b", "a", "c"], provider.fetch))
    for _ in range(1000):
        if len(provider.calls) == 2:
            break
        await asyncio.sleep(0.001)
    provider.gate.set()
    assert await first == [("value-of-a",), ("value-of-b",)]
    assert await second == [("value-of-b",), ("value-of-a",), ("value-of-c",)]
    assert sorted(map(sorted, provider.calls)) == [["a", "b"], ["c"]]
    assert reads.coalesced == 2


async def test_concurrent_misses_across_processes_fetch_once(cache: Cache, clock: Clock) -> None:
    """Two ReadThroughCache instances over one shared cache stand for two processes."""
    process_a = ReadThroughCache(cache, clock=clock, poll_seconds=0.005)
    process_b = ReadThroughCache(cache, clock=clock, poll_seconds=0.005)
    provider = Provider()
    provider.gate = asyncio.Event()
    first = asyncio.create_task(process_a.load_many(KIND, 1, ["a"], provider.fetch))
    await until_fetching(provider)
    second = asyncio.create_task(process_b.load_many(KIND, 1, ["a"], provider.fetch))
    await asyncio.sleep(0.02)  # process b polls while a holds the lock
    provider.gate.set()
    assert await first == await second == [("value-of-a",)]
    assert provider.calls == [["a"]]


async def test_a_failed_fetch_wakes_in_process_waiters_with_the_error(
    reads: ReadThroughCache,
) -> None:
    provider = Provider()
    provider.gate = asyncio.Event()
    provider.failure = ProviderUnavailable("acme is unavailable", provider="acme")
    first = asyncio.create_task(reads.load_many(KIND, 1, ["a"], provider.fetch))
    await until_fetching(provider)
    second = asyncio.create_task(reads.load_many(KIND, 1, ["a"], provider.fetch))
    for _ in range(1000):
        if reads.coalesced:
            break
        await asyncio.sleep(0.001)
    provider.gate.set()
    [one], [two] = await first, await second
    assert isinstance(one, ProviderUnavailable)
    assert isinstance(two, ProviderUnavailable)
    assert len(provider.calls) == 1
    assert reads.coalesced == 1


async def test_invalidate_forces_a_refetch(reads: ReadThroughCache) -> None:
    provider = Provider()
    await reads.load_many(KIND, 1, ["a", "b"], provider.fetch)
    await reads.invalidate(KIND, 1, ["a"])
    await reads.load_many(KIND, 1, ["a", "b"], provider.fetch)
    assert provider.calls == [["a", "b"], ["a"]]


async def test_fresh_ttls_get_jitter_within_bounds(cache: Cache, clock: Clock) -> None:
    reads = ReadThroughCache(cache, clock=clock, jitter=lambda: 1.0)
    provider = Provider()
    await reads.load_many(KIND, 1, ["a"], provider.fetch)
    clock.now += 32  # past ttl, inside ttl * (1 + jitter)
    await reads.load_many(KIND, 1, ["a"], provider.fetch)
    clock.now += 2
    await reads.load_many(KIND, 1, ["a"], provider.fetch)
    assert provider.calls == [["a"], ["a"]]


async def test_a_cache_that_is_down_means_every_read_fetches(clock: Clock) -> None:
    down = RedisCache("redis://127.0.0.1:1/0", prefix="nowhere", timeout_seconds=0.05)
    reads = ReadThroughCache(down, clock=clock, lock_wait_seconds=5)
    provider = Provider()
    try:
        for _ in range(2):
            assert await reads.load_many(KIND, 1, ["a"], provider.fetch) == [("value-of-a",)]
    finally:
        await down.close()
    assert provider.calls == [["a"], ["a"]]
