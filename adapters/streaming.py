"""Reading a long, ordered result in batches with memory bounded by the batch size.

Exports (adapters/ledger/exports.py, adapters/banking/exports.py) read up to millions of rows.
`export_snapshot` opens one read-only transaction (REPEATABLE READ on PostgreSQL; a SQLite read
transaction is a snapshot already) so that every statement of an export sees the same data.
`stream_batches` then reads a statement in key order:

- PostgreSQL: one statement through a server-side cursor (`AsyncConnection.stream`), fetched
  `batch_size` rows at a time;
- SQLite: keyset pages of `batch_size` rows (`WHERE key > last key ORDER BY key LIMIT n`), each
  from the ordering index, in the same transaction.

Either way at most one batch of rows is held in memory.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["DEFAULT_BATCH_ROWS", "export_snapshot", "stream_batches"]

DEFAULT_BATCH_ROWS = 2_000
K = TypeVar("K")


@asynccontextmanager
async def export_snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in one read-only transaction that sees one snapshot of the database."""
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection = await connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        async with connection.begin():
            yield connection


async def stream_batches(
    connection: AsyncConnection,
    statement: Callable[[K | None], Select[Any]],
    key: Callable[[Sequence[Any]], K],
    *,
    batch_size: int = DEFAULT_BATCH_ROWS,
) -> AsyncGenerator[Sequence[Sequence[Any]]]:
    """The rows of `statement(None)` in batches of at most `batch_size`.

    `statement(after)` must order by a unique key and, given the key of a row (`key(row)`),
    select only the rows after it: SQLite pages by keyset with it; PostgreSQL reads
    `statement(None)` once through a server-side cursor.
    """
    if connection.dialect.name == "postgresql":
        result = await connection.stream(statement(None).execution_options(yield_per=batch_size))
        try:
            async for partition in result.partitions(batch_size):
                yield partition
        finally:
            await result.close()
        return
    after: K | None = None
    while True:
        rows = (await connection.execute(statement(after).limit(batch_size))).all()
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        after = key(rows[-1])
