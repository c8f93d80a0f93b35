"""The demo/benchmark seed writes consistent ledgers, deterministically, on both backends.

The database is shared by the whole run, so every check is scoped to the seeded tenant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.engine import create_ledger_engine
from adapters.ledger.seed import SeedSummary, is_empty, seed_ledger
from adapters.migrate import pending_schema_changes, upgrade_to_head
from tests.factories import make_customer
from tests.fixtures.database import Database, _create_postgres_database, _drop_postgres_database

CUSTOMERS = 20
AS_OF = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
async def seeded(database: Database) -> SeedSummary:
    return await seed_ledger(database.engine, customers=CUSTOMERS, seed=7, as_of=AS_OF)


async def _rows(engine: AsyncEngine, sql: str, tenant_id: int) -> Sequence[Any]:
    async with engine.connect() as connection:
        return (await connection.execute(text(sql), {"tenant_id": tenant_id})).all()


async def test_counts_follow_the_customer_count(seeded: SeedSummary, engine: AsyncEngine) -> None:
    per_customer = await _rows(
        engine,
        "select c.id, count(a.id) from customers c join ledger_accounts a on a.customer_id = c.id"
        " where c.tenant_id = :tenant_id group by c.id",
        seeded.tenant_id,
    )
    totals = await _rows(
        engine,
        "select (select count(*) from ledger_transactions where tenant_id = :tenant_id),"
        " (select count(*) from ledger_entries where tenant_id = :tenant_id)",
        seeded.tenant_id,
    )

    assert [count for _id, count in per_customer] == [3] * CUSTOMERS
    assert (seeded.customers, seeded.ledger_accounts) == (CUSTOMERS, 3 * CUSTOMERS)
    assert tuple(totals[0]) == (50 * CUSTOMERS, 100 * CUSTOMERS)
    assert (seeded.ledger_transactions, seeded.ledger_entries) == (50 * CUSTOMERS, 100 * CUSTOMERS)


async def test_statuses_mix_posted_pending_and_voided(
    seeded: SeedSummary, engine: AsyncEngine
) -> None:
    statuses = dict(
        await _rows(
            engine,
            "select status, count(*) from ledger_transactions where tenant_id = :tenant_id"
            " group by status",
            seeded.tenant_id,
        )
    )

    assert set(statuses) == {"posted", "pending", "voided"}
    assert statuses["posted"] > 0.9 * seeded.ledger_transactions


async def test_every_transaction_balances_in_its_accounts_currency(
    seeded: SeedSummary, engine: AsyncEngine
) -> None:
    unbalanced = await _rows(
        engine,
        "select t.id from ledger_transactions t join ledger_entries e on e.transaction_id = t.id"
        " join ledger_accounts a on a.id = e.account_id"
        " where t.tenant_id = :tenant_id group by t.id"
        " having sum(case when e.direction = 'debit' then e.amount else -e.amount end) <> 0"
        " or count(*) <> 2 or sum(case when e.direction = 'debit' then 1 else 0 end) <> 1"
        " or count(distinct e.currency) <> 1 or count(distinct a.currency) <> 1"
        " or max(e.currency) <> max(a.currency) or max(a.tenant_id) <> t.tenant_id"
        " or min(a.tenant_id) <> t.tenant_id or max(e.tenant_id) <> t.tenant_id"
        " or max(e.status) <> t.status or min(e.status) <> t.status"
        " or max(e.effective_at) <> t.effective_at or min(e.amount) <= 0",
        seeded.tenant_id,
    )

    assert unbalanced == []


async def test_counters_equal_entry_sums_by_status(
    seeded: SeedSummary, engine: AsyncEngine
) -> None:
    mismatched = await _rows(
        engine,
        "select a.id from ledger_accounts a left join ledger_entries e on e.account_id = a.id"
        " where a.tenant_id = :tenant_id group by a.id, a.posted_debits, a.posted_credits,"
        " a.pending_debits, a.pending_credits having"
        " a.posted_debits <> coalesce(sum(case when e.status = 'posted' and e.direction = 'debit'"
        "   then e.amount end), 0)"
        " or a.posted_credits <> coalesce(sum(case when e.status = 'posted'"
        "   and e.direction = 'credit' then e.amount end), 0)"
        " or a.pending_debits <> coalesce(sum(case when e.status = 'pending'"
        "   and e.direction = 'debit' then e.amount end), 0)"
        " or a.pending_credits <> coalesce(sum(case when e.status = 'pending'"
        "   and e.direction = 'credit' then e.amount end), 0)",
        seeded.tenant_id,
    )

    assert mismatched == []


async def test_versions_are_gap_free_and_end_at_the_counters(
    seeded: SeedSummary, engine: AsyncEngine
) -> None:
    accounts = await _rows(
        engine,
        "select id, lock_version, posted_debits, posted_credits, pending_debits, pending_credits"
        " from ledger_accounts where tenant_id = :tenant_id order by id",
        seeded.tenant_id,
    )
    versions = await _rows(
        engine,
        "select v.account_id, v.lock_version, v.posted_debits, v.posted_credits,"
        " v.pending_debits, v.pending_credits, v.recorded_at from ledger_account_versions v"
        " join ledger_accounts a on a.id = v.account_id where a.tenant_id = :tenant_id"
        " order by v.account_id, v.lock_version",
        seeded.tenant_id,
    )
    by_account: dict[int, list[Any]] = {}
    for row in versions:
        by_account.setdefault(row[0], []).append(row)

    assert len(versions) == seeded.ledger_account_versions
    for account_id, lock_version, *counters in accounts:
        history = by_account.get(account_id, [])
        assert [row[1] for row in history] == list(range(1, lock_version + 1))
        times = [row[6] for row in history]
        assert times == sorted(times)
        if history:
            assert list(history[-1][2:6]) == counters
        else:
            assert counters == [0, 0, 0, 0]


async def test_each_balance_change_has_a_version_row(
    seeded: SeedSummary, engine: AsyncEngine
) -> None:
    # One change per entry when created; pending entries that were later posted or voided
    # changed their account a second time. So versions >= entries, and every version row
    # points at a transaction that touched that account.
    stray = await _rows(
        engine,
        "select v.account_id, v.lock_version from ledger_account_versions v"
        " join ledger_accounts a on a.id = v.account_id where a.tenant_id = :tenant_id"
        " and not exists (select 1 from ledger_entries e where e.transaction_id = v.transaction_id"
        " and e.account_id = v.account_id)",
        seeded.tenant_id,
    )

    assert stray == []
    assert seeded.ledger_account_versions >= seeded.ledger_entries


async def test_per_currency_debits_equal_credits_and_guards_hold(
    seeded: SeedSummary, engine: AsyncEngine
) -> None:
    totals = await _rows(
        engine,
        "select currency, sum(posted_debits) - sum(posted_credits),"
        " sum(pending_debits) - sum(pending_credits) from ledger_accounts"
        " where tenant_id = :tenant_id group by currency",
        seeded.tenant_id,
    )
    overdrawn = await _rows(
        engine,
        "select id from ledger_accounts where tenant_id = :tenant_id"
        " and debits_must_not_exceed_credits"
        " and pending_debits + posted_debits > posted_credits",
        seeded.tenant_id,
    )

    assert "USD" in {row[0] for row in totals}
    assert [(row[1], row[2]) for row in totals] == [(0, 0)] * len(totals)
    assert overdrawn == []


_SNAPSHOT = {
    "customers": "select id, kind, display_name, email, created_at from customers"
    " where tenant_id = :tenant_id order by id",
    "accounts": "select id, customer_id, name, currency, currency_exponent, normal_balance,"
    " posted_debits, posted_credits, pending_debits, pending_credits, lock_version,"
    " debits_must_not_exceed_credits from ledger_accounts where tenant_id = :tenant_id"
    " order by id",
    "transactions": "select id, idempotency_key, request_fingerprint, description, status,"
    " effective_at, posted_at from ledger_transactions where tenant_id = :tenant_id order by id",
    "entries": "select id, transaction_id, account_id, direction, amount, currency, status,"
    " effective_at from ledger_entries where tenant_id = :tenant_id order by id",
    "versions": "select v.account_id, v.lock_version, v.transaction_id, v.posted_debits,"
    " v.posted_credits, v.pending_debits, v.pending_credits, v.effective_at"
    " from ledger_account_versions v join ledger_accounts a on a.id = v.account_id"
    " where a.tenant_id = :tenant_id order by v.account_id, v.lock_version",
}
# which columns hold ids of which table, to compare two seeds modulo their ids
_ID_COLUMNS = {
    "customers": {0: "customers"},
    "accounts": {0: "accounts", 1: "customers"},
    "transactions": {0: "transactions"},
    "entries": {0: "entries", 1: "transactions", 2: "accounts"},
    "versions": {0: "accounts", 2: "transactions"},
}


async def _snapshot(engine: AsyncEngine, tenant_id: int) -> dict[str, list[tuple[Any, ...]]]:
    raw = {name: await _rows(engine, sql, tenant_id) for name, sql in _SNAPSHOT.items()}
    first_id = {
        name: min(row[0] for row in raw[name]) for name in _ID_COLUMNS if name != "versions"
    }
    return {
        name: [
            tuple(
                value - first_id[_ID_COLUMNS[name][i]] if i in _ID_COLUMNS[name] else value
                for i, value in enumerate(row)
            )
            for row in rows
        ]
        for name, rows in raw.items()
    }


async def test_same_seed_gives_same_data_modulo_ids(engine: AsyncEngine) -> None:
    first = await seed_ledger(engine, customers=5, seed=11, tenant_name="one", as_of=AS_OF)
    second = await seed_ledger(engine, customers=5, seed=11, tenant_name="two", as_of=AS_OF)
    other = await seed_ledger(engine, customers=5, seed=12, tenant_name="three", as_of=AS_OF)

    assert second.tenant_id != first.tenant_id
    assert await _snapshot(engine, first.tenant_id) == await _snapshot(engine, second.tenant_id)
    assert await _snapshot(engine, first.tenant_id) != await _snapshot(engine, other.tenant_id)


async def test_times_lie_in_the_year_before_as_of(seeded: SeedSummary, engine: AsyncEngine) -> None:
    span = await _rows(
        engine,
        "select min(effective_at), max(effective_at), max(posted_at) from ledger_transactions"
        " where tenant_id = :tenant_id",
        seeded.tenant_id,
    )
    earliest, latest, latest_posting = span[0]

    # SQLite hands back naive UTC through text(); compare as UTC
    def utc(value: Any) -> dt.datetime:
        parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

    assert AS_OF - dt.timedelta(days=366) <= utc(earliest) < utc(latest) < AS_OF
    assert utc(latest_posting) < AS_OF


async def test_ids_after_the_seed_are_free(seeded: SeedSummary, engine: AsyncEngine) -> None:
    customer_id = await make_customer(engine, seeded.tenant_id)

    highest = await _rows(
        engine, "select max(id) from customers where tenant_id = :tenant_id", seeded.tenant_id
    )
    assert customer_id == highest[0][0]


async def test_is_empty_until_a_tenant_exists(tmp_path: Path) -> None:
    engine = create_ledger_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    try:
        await upgrade_to_head(engine)
        assert await is_empty(engine)
        await seed_ledger(engine, customers=1, as_of=AS_OF)
        assert not await is_empty(engine)
    finally:
        await engine.dispose()


async def test_schema_is_intact_after_a_bulk_load(seeded: SeedSummary, engine: AsyncEngine) -> None:
    # Loading into empty tables drops and rebuilds indexes and constraints; none may be lost.
    assert await pending_schema_changes(engine) == []


async def test_a_bulk_load_into_a_new_postgres_database_keeps_every_constraint(
    postgres: Database,
) -> None:
    # The shared database already holds rows, so the drop-and-rebuild path runs only here: on a
    # fresh database, where the unique keys must come back before the foreign keys using them.
    url = await _create_postgres_database()
    engine = create_ledger_engine(url)
    try:
        await upgrade_to_head(engine)
        before = await _constraints(engine)
        await seed_ledger(engine, customers=3, seed=3, as_of=AS_OF)
        assert await _constraints(engine) == before
        assert await pending_schema_changes(engine) == []
    finally:
        await engine.dispose()
        await _drop_postgres_database(url)


async def _constraints(engine: AsyncEngine) -> set[tuple[str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "select conname, pg_get_constraintdef(oid) from pg_constraint"
                " where connamespace = 'public'::regnamespace"
                " union all select indexname, indexdef from pg_indexes where schemaname = 'public'"
            )
        )
        return {(str(name), str(definition)) for name, definition in rows}
