from __future__ import annotations

from adapters.migrate import pending_schema_changes, upgrade_to_head
from tests.fixtures.database import Database


async def test_migrations_match_the_table_definitions(database: Database) -> None:
    assert await pending_schema_changes(database.engine) == []


async def test_upgrading_twice_changes_nothing(database: Database) -> None:
    await upgrade_to_head(database.engine)
    assert await pending_schema_changes(database.engine) == []
