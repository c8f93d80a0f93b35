"""Which database failures are transient, and the retryable error the gateway answers for them.

A lost connection (the backend was terminated, the server restarted, the socket reset), a
database that cannot be reached, a pool that had no connection free in time, a serialization
failure or a deadlock say nothing about the request: the same request may succeed a moment
later. They answer `SERVICE_UNAVAILABLE` with `retryable: true` instead of being masked as
unexpected. Everything else (a bad statement, a constraint the code did not expect) stays
unexpected.

The exception is looked for along its chain: SQLAlchemy wraps the driver's error (`orig`,
`__cause__`), and asyncpg's own errors reach the gateway unwrapped from the read pool.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc

from adapters.errors import AdapterError

__all__ = ["DatabaseUnavailable", "is_transient_database_error"]

# SQLSTATE classes and codes that mean "try again": connection exceptions (08), serialization
# failure and deadlock (40001, 40P01), shutdown and start-up (57P01-57P03), too many
# connections (53300).
_TRANSIENT_SQLSTATE_CLASSES = ("08",)
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})
# SQLite's transient OperationalErrors (it has no SQLSTATE).
_TRANSIENT_SQLITE_MESSAGES = ("database is locked", "unable to open database file", "disk i/o")
_ASYNCPG_TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
)
# OSErrors that are about files, not sockets, are not the database going away.
_FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


class DatabaseUnavailable(AdapterError):
    """The database could not answer now (lost connection, pool timeout, serialization
    failure, deadlock); the same request may succeed if sent again."""

    code = "SERVICE_UNAVAILABLE"
    retryable = True


def _chain(error: BaseException) -> list[BaseException]:
    """`error`, then the errors it wraps (DBAPI `orig`, explicit causes), without cycles.

    Implicit contexts are not followed: a bug raised while handling a lost connection is
    still a bug."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        for inner in (getattr(current, "orig", None), current.__cause__):
            if isinstance(inner, BaseException):
                pending.append(inner)
    return seen


def _is_transient_one(error: BaseException) -> bool:
    if isinstance(error, DatabaseUnavailable):
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection free in time
        return True
    if isinstance(error, _ASYNCPG_TRANSIENT):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and (
        sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith(_TRANSIENT_SQLSTATE_CLASSES)
    ):
        return True
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        text = str(error.orig if error.orig is not None else error).lower()
        if any(message in text for message in _TRANSIENT_SQLITE_MESSAGES):
            return True
        if "connection" in text and ("closed" in text or "lost" in text or "reset" in text):
            return True
    # Refused, reset, unreachable, DNS, timed out (TimeoutError is an OSError).
    return isinstance(error, OSError) and not isinstance(error, _FILE_ERRORS)


def is_transient_database_error(error: BaseException) -> bool:
    """True when `error` (or an error it wraps) means the database could not answer now."""
    return any(_is_transient_one(inner) for inner in _chain(error))
