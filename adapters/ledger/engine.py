"""Engine construction for the ledger database: SQLite (aiosqlite) or PostgreSQL (asyncpg)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

__all__ = ["WRITE_OPTION", "StatementTimer", "create_ledger_engine", "is_sqlite"]

StatementTimer = Callable[[str, int, int, bool], None]
"""Called after each statement: its SQL text, start and end (`time.time_ns()`), and whether it
failed. The gateway turns it into a duration histogram and a trace span."""
_STARTED = "fgw_statement_started_ns"

# Execution option for connections that will write: on SQLite they take the write lock at
# BEGIN (BEGIN IMMEDIATE) so that concurrent writers queue instead of failing half way.
WRITE_OPTION = "ledger_write"


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_ledger_engine(
    url: str,
    *,
    pool_size: int = 10,
    on_statement: Callable[[], None] | None = None,
    on_statement_timed: StatementTimer | None = None,
) -> AsyncEngine:
    """Create the async engine for `url`.

    `on_statement` is called once per SQL statement sent to the database; the gateway counts
    statements per request with it (tests and the benchmark read those counts).
    `on_statement_timed` is called when each statement has finished (see StatementTimer).
    """
    parsed = make_url(url)
    # Statement parameters (emails, account numbers, key hashes) never appear in the text of
    # an exception or a log line.
    kwargs: dict[str, Any] = {"hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        # One file, many readers, one writer at a time: WAL plus a generous busy timeout.
        kwargs["connect_args"] = {"timeout": 30}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = NullPool
    else:
        # A fixed pool: under load, requests wait for a connection rather than open and close
        # overflow connections (each a new backend process, TLS negotiation and login).
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = 0
        kwargs["pool_timeout"] = 30
        kwargs["pool_pre_ping"] = False
        # Read-only statements leave no session state to reset, but a failed transaction does:
        # keep SQLAlchemy's rollback-on-return.
    engine = create_async_engine(parsed, **kwargs)

    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            immediate = connection.get_execution_options().get(WRITE_OPTION, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    if on_statement is not None:
        callback = on_statement

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if not statement.startswith("BEGIN"):  # SQLite's explicit BEGIN is not a query
                callback()

    if on_statement_timed is not None:
        _listen_timed(engine, on_statement_timed)

    return engine


def _listen_timed(engine: AsyncEngine, timer: StatementTimer) -> None:
    """Time each statement on its connection (one statement at a time per connection)."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _start(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        conn.info[_STARTED] = time.time_ns()

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _end(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        started = conn.info.pop(_STARTED, None)
        if started is not None and not statement.startswith("BEGIN"):
            timer(statement, started, time.time_ns(), False)

    @event.listens_for(engine.sync_engine, "handle_error")
    def _failed(context: Any) -> None:
        conn = context.connection
        started = None if conn is None else conn.info.pop(_STARTED, None)
        if started is not None and context.statement:
            timer(context.statement, started, time.time_ns(), True)
