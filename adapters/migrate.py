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
import adapters.banking.tables  # bank accounts and transactions
import adapters.ledger.data_versions  # per-tenant data versions (response cache)
import adapters.ledger.tables
import adapters.providers.tables  # noqa: F401  (provider links)
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

    Each domain may add its own branch of revisions; "heads" upgrades all of them.
    """
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(_config(sync), "heads"))


async def pending_schema_changes(engine: AsyncEngine) -> list[Any]:
    """Differences between the migrated database and `tables.metadata` (empty when in sync)."""

    def compare(sync: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(sync), metadata))

    async with engine.connect() as connection:
        return await connection.run_sync(compare)
