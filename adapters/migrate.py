"""Schema migrations (Alembic), run programmatically on the gateway's database.

Every table module must be imported here, so that `pending_schema_changes` sees all tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import adapters.access.tables  # API clients and persisted documents
import adapters.audit.tables  # the audit trail
import adapters.banking.tables  # bank accounts and transactions
import adapters.cards.adyen_tables  # Adyen notifications and payments
import adapters.cards.risk  # card payment risk facts
import adapters.ledger.data_versions  # per-tenant data versions (response cache)
import adapters.ledger.tables
import adapters.providers.tables  # provider links
import adapters.reconciliation.tables  # noqa: F401  (settlement accounts, results)
from adapters.db import metadata

__all__ = ["metadata", "pending_schema_changes", "upgrade_to_head"]

_SCRIPTS = Path(__file__).with_name("migrations")


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the database to the newest revision of every branch (idempotent).

    Each domain may add its own branch of revisions; "heads" upgrades all of them. On SQLite,
    foreign keys are not enforced during the upgrade (batch mode rebuilds a table by copying,
    dropping and renaming it, which enforcement would refuse while other tables refer to it)
    and every key is checked before the upgrade commits instead.
    """
    async with engine.connect() as connection:
        await connection.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _sqlite_pragma(connection, "foreign_keys = OFF")  # only takes effect outside BEGIN
    try:
        with connection.begin():
            command.upgrade(_config(connection), "heads")
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
    finally:
        if sqlite:
            _sqlite_pragma(connection, "foreign_keys = ON")


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    """Run a PRAGMA on the driver connection, outside any transaction SQLAlchemy would begin."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


async def pending_schema_changes(engine: AsyncEngine) -> list[Any]:
    """Differences between the migrated database and `tables.metadata` (empty when in sync)."""

    def compare(sync: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(sync), metadata))

    async with engine.connect() as connection:
        return await connection.run_sync(compare)
