from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.engine import create_ledger_engine
from adapters.migrate import _config, pending_schema_changes, upgrade_to_head
from tests.fixtures.database import (
    BACKENDS,
    Database,
    _create_postgres_database,
    _drop_postgres_database,
)


async def test_migrations_match_the_table_definitions(database: Database) -> None:
    assert await pending_schema_changes(database.engine) == []


async def test_upgrading_twice_changes_nothing(database: Database) -> None:
    await upgrade_to_head(database.engine)
    assert await pending_schema_changes(database.engine) == []


async def _at_revisions(engine: AsyncEngine, *revisions: str) -> None:
    def upgrade(connection: Connection) -> None:
        for revision in revisions:
            command.upgrade(_config(connection), revision)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


@pytest.fixture(params=BACKENDS)
async def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """A database of its own, not migrated."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    else:
        url = await _create_postgres_database()
    engine = create_ledger_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()
        if request.param == "postgresql":
            await _drop_postgres_database(url)


async def test_tenant_keys_upgrade_a_database_holding_rows(empty_engine: AsyncEngine) -> None:
    """0004 rebuilds referenced tables on SQLite and fills version rows' tenant from their
    account; the keys hold for the rows already there."""
    await _at_revisions(empty_engine, "0003_banking", "0003_access")
    statements = [
        "insert into tenants (id, name) values (7, 'old')",
        "insert into customers (id, tenant_id, kind, display_name, metadata)"
        " values (70, 7, 'individual', 'Old customer', '{}')",
        *(
            "insert into ledger_accounts (id, tenant_id, customer_id, name, currency,"
            " currency_exponent, normal_balance, posted_debits, posted_credits, pending_debits,"
            " pending_credits, lock_version, debits_must_not_exceed_credits,"
            f" credits_must_not_exceed_debits) values ({i}, 7, 70, 'A{i}', 'USD', 2, 'debit',"
            f" {5 if i == 700 else 0}, {5 if i == 701 else 0}, 0, 0, 1, false, false)"
            for i in (700, 701)
        ),
        "insert into ledger_transactions (id, tenant_id, idempotency_key, request_fingerprint,"
        " status, effective_at, metadata) values (7000, 7, 'k', 'f', 'posted',"
        " '2026-01-01 00:00:00', '{}')",
        *(
            "insert into ledger_entries (tenant_id, transaction_id, account_id, direction,"
            f" amount, currency, status, effective_at) values (7, 7000, {a}, '{d}', 5, 'USD',"
            " 'posted', '2026-01-01 00:00:00')"
            for a, d in ((700, "debit"), (701, "credit"))
        ),
        *(
            "insert into ledger_account_versions (account_id, lock_version, transaction_id,"
            " posted_debits, posted_credits, pending_debits, pending_credits, effective_at)"
            f" values ({a}, 1, 7000, {5 if a == 700 else 0}, {5 if a == 701 else 0}, 0, 0,"
            " '2026-01-01 00:00:00')"
            for a in (700, 701)
        ),
    ]
    async with empty_engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))

    await upgrade_to_head(empty_engine)

    assert await pending_schema_changes(empty_engine) == []
    async with empty_engine.connect() as connection:
        versions = await connection.execute(
            text("select account_id, tenant_id from ledger_account_versions order by 1")
        )
        assert versions.all() == [(700, 7), (701, 7)]
        entries = await connection.scalar(text("select count(*) from ledger_entries"))
        assert entries == 2
