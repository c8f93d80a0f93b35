"""One contract for every Cache implementation."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import RedisError

from adapters.cache import Cache, MemoryCache, RedisCache, cache_key, glob_escape


async def test_get_many_returns_values_in_key_order_and_none_for_misses(cache: Cache) -> None:
    await cache.set_many({"a": b"1", "c": b"3"}, ttl_seconds=30)
    assert await cache.get_many(["a", "b", "c"]) == [b"1", None, b"3"]
    assert await cache.get_many([]) == []


async def test_entries_expire_after_their_ttl(cache: Cache) -> None:
    await cache.set_many({"short": b"x"}, ttl_seconds=0.05)
    await cache.set_many({"long": b"y"}, ttl_seconds=30)
    await asyncio.sleep(0.1)  # the TTL itself is what is tested
    assert await cache.get_many(["short", "long"]) == [None, b"y"]


async def test_add_sets_only_when_absent(cache: Cache) -> None:
    assert await cache.add("lock", b"me", ttl_seconds=30) is True
    assert await cache.add("lock", b"you", ttl_seconds=30) is False
    assert await cache.get_many(["lock"]) == [b"me"]
    await cache.delete("lock")
    assert await cache.add("lock", b"you", ttl_seconds=30) is True


async def test_increment_counts_from_one(cache: Cache) -> None:
    assert [await cache.increment("hits", ttl_seconds=30) for _ in range(3)] == [1, 2, 3]


async def test_delete_removes_several_keys(cache: Cache) -> None:
    await cache.set_many({"x": b"1", "y": b"2"}, ttl_seconds=30)
    await cache.delete("x", "y", "never-set")
    assert await cache.get_many(["x", "y"]) == [None, None]


async def test_delete_matching_deletes_exactly_the_keys_that_match(cache: Cache) -> None:
    keys = ["v1:t:7:cards:cus_1", "v1:t:7:cards:cus_1~5~", "v1:t:7:cards:cus_10",
            "v1:t:8:cards:cus_1", "v1:t:7:cards:a*b", "v1:t:7:cards:axb"]  # fmt: skip
    await cache.set_many(dict.fromkeys(keys, b"x"), ttl_seconds=30)

    assert await cache.delete_matching("v1:t:7:cards:cus_1~*") == 1
    assert await cache.delete_matching("v1:t:7:cards:cus_1") == 1  # no wildcard: that key only
    assert await cache.delete_matching("v1:t:7:cards:" + glob_escape("a*b")) == 1  # literal *
    assert await cache.delete_matching("v1:t:?:nothing*") == 0

    left = await cache.get_many(keys)
    assert [key for key, value in zip(keys, left, strict=True) if value] == [
        "v1:t:7:cards:cus_10", "v1:t:8:cards:cus_1", "v1:t:7:cards:axb",
    ]  # fmt: skip


async def test_a_purge_on_an_unreachable_redis_raises_instead_of_pretending() -> None:
    down = RedisCache("redis://127.0.0.1:1/0", prefix="nowhere", timeout_seconds=0.05)
    try:
        with pytest.raises(RedisError):
            await down.delete_matching("*")
    finally:
        await down.close()


async def test_memory_cache_is_bounded_least_recently_used_first_out() -> None:
    memory = MemoryCache(max_entries=2)
    await memory.set_many({"a": b"1", "b": b"2"}, ttl_seconds=30)
    await memory.get_many(["a"])  # a is now the most recently used
    await memory.set_many({"c": b"3"}, ttl_seconds=30)
    assert await memory.get_many(["a", "b", "c"]) == [b"1", None, b"3"]


async def test_redis_down_means_misses_and_no_ops_not_errors() -> None:
    down = RedisCache("redis://127.0.0.1:1/0", prefix="nowhere", timeout_seconds=0.05)
    try:
        assert await down.get_many(["a"]) == [None]
        await down.set_many({"a": b"1"}, ttl_seconds=30)
        assert await down.add("a", b"1", ttl_seconds=30) is False
        assert await down.increment("a", ttl_seconds=30) is None
        assert await down.ping() is False
    finally:
        await down.close()


@pytest.mark.parametrize("segments", [("a:b",), ("",), ("tenant", "")])
def test_cache_key_segments_cannot_collide(segments: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="segments"):
        cache_key(*segments)


def test_cache_key_joins_segments() -> None:
    assert cache_key("v1", "tenant", 42, "card") == "v1:tenant:42:card"
