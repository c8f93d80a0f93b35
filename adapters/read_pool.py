"""Single-statement reads on PostgreSQL through a small pool of asyncpg connections.

Hot read paths (the dataloader batches, compiled operations, API-key lookups) send one
statement each, outside any transaction. Through SQLAlchemy, every such read also pays for a
Connection object, pool checkout events and greenlet switches, which together cost several
times the indexed query itself (profiled under load: ~1.5 ms against ~0.45 ms per read).
asyncpg's own `Pool` is lighter but still costs, per statement, an acquire context, a queue
`get`, a proxy object and a release through `asyncio.shield` (a new task each time): about a
seventh of a one-row query's CPU in the gateway process under load (bench/README.md). A read
needs none of that, so this pool keeps idle connections in a list and hands one over without
awaiting when one is idle. Writes, migrations and SQLite stay on SQLAlchemy.

What a read leaves behind is safe to reuse: a statement stopped by its timeout or by the
task's cancellation has its cancel request sent by asyncpg, which makes the connection's next
statement wait until PostgreSQL has answered it; a connection that was closed (the server
restarted, the backend was terminated) is dropped when it comes back or is found idle, and the
next read that needs one opens a new one. Connections open on first use, in the running event
loop, up to `size`; readers past that wait their turn in order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["ReadPool"]


class ReadPool:
    """At most `size` asyncpg connections to one PostgreSQL database URL (SQLAlchemy form)."""

    def __init__(self, url: str, *, size: int) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        self._idle: list[asyncpg.Connection] = []
        # Readers waiting for a connection: each future gets one, or None to open its own.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._count = 0  # connections open or being opened
        self._closed = False

    @classmethod
    def for_engine(cls, engine: AsyncEngine, *, size: int = 10) -> ReadPool:
        """A read pool on the database of a PostgreSQL engine."""
        return cls(engine.url.render_as_string(hide_password=False), size=size)

    async def _acquire(self) -> asyncpg.Connection:
        while True:
            if self._closed:
                raise RuntimeError("the read pool is closed")
            while self._idle:
                connection = self._idle.pop()  # the most recently used: warm caches
                if not connection.is_closed():
                    return connection
                self._forget(connection)
            if self._count < self._size:
                self._count += 1
                try:
                    return await asyncpg.connect(self._dsn)
                except BaseException:
                    self._count -= 1
                    self._hand_over(None)  # a waiter may open one instead
                    raise
            waiter: asyncio.Future[asyncpg.Connection | None]
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release(waiter.result())  # handed over as we were cancelled
                else:
                    self._waiters.remove(waiter)
                raise
            if handed is not None:
                return handed

    def _release(self, connection: asyncpg.Connection | None) -> None:
        if connection is None:
            self._hand_over(None)
        elif connection.is_closed() or self._closed:
            self._forget(connection)
        elif not self._hand_over(connection):
            self._idle.append(connection)

    def _forget(self, connection: asyncpg.Connection) -> None:
        self._count -= 1
        connection.terminate()  # a no-op on a closed one; frees its transport at once
        self._hand_over(None)  # the first waiter opens a new one

    def _hand_over(self, connection: asyncpg.Connection | None) -> bool:
        """Give `connection` (or None: leave to open one) to the first waiter, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    async def fetch(
        self,
        sql: str,
        *arguments: Any,
        timeout: float | None = None,  # noqa: ASYNC109 asyncpg's
    ) -> Sequence[Sequence[Any]]:
        """The rows of one statement. With `timeout` (seconds), asyncpg cancels the statement
        on the server when it runs longer and raises TimeoutError."""
        connection = await self._acquire()
        try:
            rows: Sequence[Sequence[Any]] = await connection.fetch(sql, *arguments, timeout=timeout)
            return rows
        finally:
            self._release(connection)

    async def fetchval(
        self,
        sql: str,
        *arguments: Any,
        timeout: float | None = None,  # noqa: ASYNC109 asyncpg's
    ) -> Any:
        """The first column of the first row (one statement, outside any transaction)."""
        connection = await self._acquire()
        try:
            return await connection.fetchval(sql, *arguments, timeout=timeout)
        finally:
            self._release(connection)

    async def close(self) -> None:
        """Close the idle connections; those in use close when their read returns."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._count -= 1
            try:
                await connection.close(timeout=5)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                connection.terminate()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the read pool is closed"))
        self._waiters.clear()
