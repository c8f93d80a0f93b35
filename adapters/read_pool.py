"""Single-statement reads on PostgreSQL through asyncpg's own pool.

Hot read paths (the dataloader batches) send one statement each, outside any transaction.
Through SQLAlchemy, every such read also pays for a Connection object, pool checkout events
and greenlet switches, which together cost several times the indexed query itself (profiled
under load: ~1.5 ms against ~0.45 ms per read). Writes, migrations and SQLite stay on
SQLAlchemy. The pool is opened on first use, in the running event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["ReadPool"]


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Nothing to reset on release: reads run no SET, LISTEN or transaction."""


class ReadPool:
    """A fixed-size asyncpg pool for one PostgreSQL database URL (SQLAlchemy form)."""

    def __init__(self, url: str, *, size: int) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    @classmethod
    def for_engine(cls, engine: AsyncEngine, *, size: int = 10) -> ReadPool:
        """A read pool on the database of a PostgreSQL engine."""
        return cls(engine.url.render_as_string(hide_password=False), size=size)

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn, min_size=1, max_size=self._size, reset=_keep_session
                )
        return self._pool

    async def fetch(
        self,
        sql: str,
        *arguments: Any,
        timeout: float | None = None,  # noqa: ASYNC109 asyncpg's
    ) -> Sequence[Sequence[Any]]:
        """The rows of one statement. With `timeout` (seconds), asyncpg cancels the statement
        on the server when it runs longer and raises TimeoutError."""
        pool = self._pool or await self._open()
        rows: Sequence[Sequence[Any]] = await pool.fetch(sql, *arguments, timeout=timeout)
        return rows

    async def fetchval(
        self,
        sql: str,
        *arguments: Any,
        timeout: float | None = None,  # noqa: ASYNC109 asyncpg's
    ) -> Any:
        """The first column of the first row (one statement, outside any transaction)."""
        pool = self._pool or await self._open()
        return await pool.fetchval(sql, *arguments, timeout=timeout)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
