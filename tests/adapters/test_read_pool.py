"""The read pool (adapters.read_pool) on a real PostgreSQL: its bound, its order, and what it
does with connections that broke or readers that gave up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from adapters.read_pool import ReadPool
from tests.fixtures.database import Database


@pytest.fixture
async def admin(postgres: Database) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own beside the pool, to watch and terminate its backends."""
    connection = await asyncpg.connect(postgres.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        yield connection
    finally:
        await connection.close()


async def _backends(admin: asyncpg.Connection, marker: str) -> int:
    count: int = await admin.fetchval(
        "select count(*) from pg_stat_activity where state = 'active' and query like $1",
        f"%{marker}%",
    )
    return count


async def test_no_more_connections_than_its_size_and_every_reader_is_answered(
    postgres: Database, admin: asyncpg.Connection
) -> None:
    pool = ReadPool(postgres.url, size=2)
    try:
        readers = [
            asyncio.create_task(pool.fetchval(f"select {n} from pg_sleep(0.2) -- bound-test"))
            for n in range(6)
        ]
        await asyncio.sleep(0.1)
        assert await _backends(admin, "bound-test") == 2  # the other four wait their turn
        assert await asyncio.gather(*readers) == list(range(6))
        assert pool._count == 2  # two opened, both idle again
        assert len(pool._idle) == 2
    finally:
        await pool.close()


async def test_a_terminated_backend_is_replaced_and_the_next_read_succeeds(
    postgres: Database, admin: asyncpg.Connection
) -> None:
    pool = ReadPool(postgres.url, size=1)
    try:
        pid = await pool.fetchval("select pg_backend_pid()")
        assert await admin.fetchval("select pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.2)  # the server closes the socket; the idle connection sees it
        # The pool finds the idle connection closed and opens a new one: no failed read.
        value = await pool.fetchval("select 1")
        assert value == 1
        assert await pool.fetchval("select pg_backend_pid()") != pid
        assert pool._count == 1
    finally:
        await pool.close()


async def test_a_reader_cancelled_while_waiting_leaves_nothing_behind(postgres: Database) -> None:
    pool = ReadPool(postgres.url, size=1)
    try:
        holder = asyncio.create_task(pool.fetchval("select 1 from pg_sleep(0.3)"))
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(pool.fetchval("select 2"))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await holder == 1
        assert await pool.fetchval("select 3") == 3  # the one connection came back
        assert (pool._count, len(pool._idle), len(pool._waiters)) == (1, 1, 0)
    finally:
        await pool.close()


async def test_a_statement_error_keeps_the_connection(postgres: Database) -> None:
    pool = ReadPool(postgres.url, size=1)
    try:
        pid = await pool.fetchval("select pg_backend_pid()")
        with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
            await pool.fetchval("select 1 / 0")
        assert await pool.fetchval("select pg_backend_pid()") == pid
    finally:
        await pool.close()


async def test_an_unreachable_database_fails_the_read_and_frees_its_place() -> None:
    pool = ReadPool("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", size=1)
    try:
        for _ in range(2):  # the failed open gave its place back: the second one tries again
            with pytest.raises(ConnectionRefusedError):
                await pool.fetchval("select 1")
        assert pool._count == 0
    finally:
        await pool.close()


async def test_a_closed_pool_refuses_reads(postgres: Database) -> None:
    pool = ReadPool(postgres.url, size=1)
    assert await pool.fetchval("select 1") == 1
    await pool.close()
    assert pool._count == 0
    with pytest.raises(RuntimeError, match="closed"):
        await pool.fetchval("select 1")
