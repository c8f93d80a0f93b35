"""Deterministic demo and benchmark data for one tenant (DESIGN.md, "Canonical benchmark").

`seed_ledger(engine, customers=10_000)` writes one tenant with 10,000 customers, 30,000 ledger
accounts, about 500,000 two-entry transactions (1,000,000 entries) and about 1,100,000
account-version rows, in a few minutes on PostgreSQL and SQLite alike.

The data is what the posting service would have left behind: a timeline of balance changes
(create a transaction as pending or posted; later post or void some pending ones) is replayed in
Python, so each account's counters equal its entry sums by status, `lock_version` counts its
balance changes, its version rows are gap-free with the running counters, and the Savings
accounts' overdraft guard held at every step. Everything comes from `random.Random(seed)` and
`as_of`, never from the ids the database hands out, so two seeds with the same arguments give
identical data apart from ids and tenant.

Rows are generated with ids assigned here (after the current maximum, under a table lock) and
written in bulk: COPY through asyncpg on PostgreSQL (then the id sequences are moved past them),
large `executemany` batches in one transaction on SQLite.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, exists, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.ledger.data_versions import bump_data_version
from adapters.ledger.engine import WRITE_OPTION, is_sqlite
from adapters.ledger.tables import (
    customers as customers_table,
)
from adapters.ledger.tables import (
    ledger_account_versions,
    ledger_accounts,
    ledger_entries,
    ledger_transactions,
    tenants,
)
from adapters.money import currency_exponent

__all__ = ["SeedSummary", "is_empty", "seed_ledger"]

logger = logging.getLogger(__name__)

TRANSACTIONS_PER_CUSTOMER = 50
ACCOUNTS_PER_CUSTOMER = 3
HOT_CUSTOMERS = 100  # every 10th transaction touches one of their USD accounts (Q2 statements)

# name, normal balance, debits_must_not_exceed_credits (overdraft guard)
_ACCOUNT_KINDS = (
    ("Checking", "credit", False),
    ("Savings", "credit", True),
    ("Card", "debit", False),
)
_CURRENCIES = (("USD", 0.90), ("EUR", 0.07), ("JPY", 0.03))
_FIRST = (  # noqa: SIM905
    "Ada Alan Amara Ben Carmen Chen Dara Elena Farid Grace Hana Ivan Jonas Kofi "
    "Lena Mateo Mei Nadia Omar Priya Quinn Rosa Sam Tariq Uma Vera Wen Yusuf Zoe"
).split()
_LAST = (  # noqa: SIM905
    "Adeyemi Baker Costa Dubois Evans Fischer Garcia Haddad Ito Jensen Kim Larsen Moreau "
    "Novak Okafor Patel Quispe Rossi Silva Tanaka Ueda Varga Weber Xu Yilmaz Zhang"
).split()
_BUSINESS = ("Logistics", "Bakery", "Studio", "Labs", "Trading", "Consulting", "Foods", "Motors")
_DESCRIPTIONS = (
    "Card payment",
    "Transfer",
    "Payroll",
    "Rent",
    "Refund",
    "Subscription",
    "Invoice payment",
    "ATM withdrawal",
    "Interest",
    "Top-up",
)
_YEAR_US = 365 * 24 * 3600 * 1_000_000
_HOUR_US = 3600 * 1_000_000
_MONTH_US = 30 * 24 * _HOUR_US
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_BATCH = 50_000

_CREATE, _POST, _VOID = 0, 1, 2


@dataclass(frozen=True, slots=True)
class SeedSummary:
    """What `seed_ledger` wrote: the new tenant and its row counts."""

    tenant_id: int
    customers: int
    ledger_accounts: int
    ledger_transactions: int
    ledger_entries: int
    ledger_account_versions: int
    seconds: float


@dataclass(slots=True)
class _Account:
    id: int
    currency: str
    is_guarded: bool
    posted_debits: int = 0
    posted_credits: int = 0
    pending_debits: int = 0
    pending_credits: int = 0
    lock_version: int = 0

    def can_debit(self, amount: int) -> bool:
        available = self.posted_credits - self.posted_debits - self.pending_debits
        return not self.is_guarded or amount <= available


@dataclass(slots=True)
class _Rows:
    customers: list[tuple[Any, ...]] = field(default_factory=list)
    accounts: list[tuple[Any, ...]] = field(default_factory=list)
    transactions: list[tuple[Any, ...]] = field(default_factory=list)
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    versions: list[tuple[Any, ...]] = field(default_factory=list)


async def is_empty(engine: AsyncEngine) -> bool:
    """True when the database has no tenant at all (the CLI seeds demo data then)."""
    async with engine.connect() as connection:
        return not (await connection.scalar(select(exists().select_from(tenants))))


async def seed_ledger(
    engine: AsyncEngine,
    *,
    customers: int,
    seed: int = 42,
    tenant_name: str = "Demo tenant",
    as_of: dt.datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> SeedSummary:
    """Create one tenant with `customers` customers and their ledger history; return counts.

    Each customer gets 3 accounts (Checking, Savings with an overdraft guard, Card; mostly USD,
    some EUR or JPY) and the tenant about 50 two-entry transactions per customer, spread over
    the year before `as_of` (default: today 00:00 UTC): ~97 % posted, ~2 % pending, ~1 % voided.
    Progress goes to `progress` (and this module's logger). The write is one database
    transaction: on failure nothing is left behind.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    started = time.monotonic()

    def report(message: str) -> None:
        logger.info("seed: %s", message)
        if progress is not None:
            progress(message)

    until = as_of or dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    until_us = (until.astimezone(dt.UTC) - _EPOCH) // dt.timedelta(microseconds=1)
    sqlite = is_sqlite(engine)
    async with engine.connect() as connection:
        connection = await connection.execution_options(**{WRITE_OPTION: True})
        async with connection.begin():
            if not sqlite:
                await connection.execute(
                    text(
                        "lock table tenants, customers, ledger_accounts, ledger_transactions,"
                        " ledger_entries, ledger_account_versions in exclusive mode"
                    )
                )
            tenant_id = int(
                (
                    await connection.execute(
                        insert(tenants)
                        .values(name=tenant_name, created_at=_at(until_us - _YEAR_US - _MONTH_US))
                        .returning(tenants.c.id)
                    )
                ).scalar_one()
            )
            bases = [await _max_id(connection, table, sqlite) for table in _ID_TABLES]
            report(f"generating {customers} customers (seed {seed})")
            rows = _generate(
                customers, seed, tenant_id, until_us, bases, _sqlite_time if sqlite else _at
            )
            report(
                f"writing {len(rows.transactions)} transactions, {len(rows.entries)} entries,"
                f" {len(rows.versions)} account versions"
            )
            if sqlite:
                await _write_sqlite(connection, rows, bases, report)
            else:
                await _write_postgres(connection, rows, bases, report)
            await bump_data_version(connection, tenant_id)
    if not sqlite:
        report("analyze")
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("analyze"))
    summary = SeedSummary(
        tenant_id=tenant_id,
        customers=len(rows.customers),
        ledger_accounts=len(rows.accounts),
        ledger_transactions=len(rows.transactions),
        ledger_entries=len(rows.entries),
        ledger_account_versions=len(rows.versions),
        seconds=round(time.monotonic() - started, 3),
    )
    report(f"done in {summary.seconds:.1f} s")
    return summary


_ID_TABLES: tuple[Table, ...] = (
    customers_table,
    ledger_accounts,
    ledger_transactions,
    ledger_entries,
)


async def _max_id(connection: AsyncConnection, table: Table, sqlite: bool) -> int:
    """The id after which this seed's rows go: past every row and every id already handed out."""
    highest = int(
        await connection.scalar(text(f"select coalesce(max(id), 0) from {table.name}")) or 0  # noqa: S608
    )
    if sqlite:
        return highest
    name = await connection.scalar(
        text("select pg_get_serial_sequence(:table, 'id')"), {"table": table.name}
    )
    sequence = await connection.execute(
        text(f"select last_value, is_called from {name}")  # noqa: S608 (a catalog name)
    )
    last_value, is_called = sequence.one()
    return max(highest, int(last_value) if is_called else int(last_value) - 1)


def _at(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


def _sqlite_time(us: int) -> str:
    # What SQLAlchemy's SQLite DATETIME stores for a naive UTC datetime.
    return (
        (_EPOCH + dt.timedelta(microseconds=us)).replace(tzinfo=None).isoformat(" ", "microseconds")
    )


def _pick_currency(rng: random.Random) -> str:
    draw = rng.random()
    for code, share in _CURRENCIES:
        if draw < share:
            return code
        draw -= share
    return "USD"


def _pick(items: Sequence[int] | Sequence[str], draw: float) -> Any:
    return items[int(draw * len(items))]


def _generate(
    count: int,
    seed: int,
    tenant_id: int,
    until_us: int,
    bases: Sequence[int],
    when: Callable[[int], Any],
) -> _Rows:
    rng = random.Random(seed)  # noqa: S311 (demo data, reproducible by design)
    customer_base, account_base, transaction_base, entry_base = bases
    rows = _Rows()
    start_us = until_us - _YEAR_US
    accounts: list[_Account] = []
    pools: dict[str, list[int]] = {}  # currency -> account indexes
    unguarded: dict[str, list[int]] = {}
    hot: list[int] = []
    for index in range(count):
        customer_id = customer_base + index + 1
        created = when(start_us - _MONTH_US + index * (_MONTH_US // count))
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        if rng.random() < 0.2:
            kind, name = "business", f"{last} {rng.choice(_BUSINESS)}"
        else:
            kind, name = "individual", f"{first} {last}"
        email = f"customer{index + 1:05d}@example.com"
        metadata = json.dumps({"segment": rng.randrange(7)})
        rows.customers.append((customer_id, tenant_id, kind, name, email, created, metadata))
        currency = "USD" if index == 0 else _pick_currency(rng)
        for account_name, normal, guarded in _ACCOUNT_KINDS:
            position = len(accounts)
            account = _Account(account_base + position + 1, currency, guarded)
            accounts.append(account)
            pools.setdefault(currency, []).append(position)
            if not guarded:
                unguarded.setdefault(currency, []).append(position)
            if index < HOT_CUSTOMERS and currency == "USD":
                hot.append(position)
            rows.accounts.append((account_name, normal, created, customer_id))

    total = count * TRANSACTIONS_PER_CUSTOMER
    step = _YEAR_US // total
    debit_of = [0] * total
    credit_of = [0] * total
    amount_of = [0] * total
    effective_of = [0] * total
    settlements: list[tuple[int, int, int]] = []  # (time, transaction index, _POST or _VOID)

    def change(position: int, transaction_id: int, effective: Any, recorded: Any) -> None:
        # As the posting service does: a version row carries its transaction's effective
        # time, and the time of the change itself as recorded_at.
        account = accounts[position]
        account.lock_version += 1
        rows.versions.append(
            (
                account.id,
                account.lock_version,
                tenant_id,
                transaction_id,
                account.posted_debits,
                account.posted_credits,
                account.pending_debits,
                account.pending_credits,
                effective,
                recorded,
            )
        )

    def settle(until: int) -> None:
        while settlements and settlements[0][0] <= until:
            at_us, k, action = heapq.heappop(settlements)
            debit, credit, amount = accounts[debit_of[k]], accounts[credit_of[k]], amount_of[k]
            debit.pending_debits -= amount
            credit.pending_credits -= amount
            if action == _POST:
                debit.posted_debits += amount
                credit.posted_credits += amount
            effective, recorded = when(effective_of[k]), when(at_us)
            change(debit_of[k], transaction_base + k + 1, effective, recorded)
            change(credit_of[k], transaction_base + k + 1, effective, recorded)

    uniform = rng.random  # rng.choice and randrange cost ~3x more per draw
    low, span = math.log(100), math.log(500_000) - math.log(100)  # log-uniform 1.00-5,000.00
    for k in range(total):
        at_us = start_us + k * step + int(uniform() * step * 0.9)
        settle(at_us)
        amount = int(math.exp(low + uniform() * span))
        if uniform() < 0.1 and hot:
            debit, credit = int(uniform() * len(accounts)), _pick(hot, uniform())
            if accounts[debit].currency != "USD":
                debit = _pick(pools["USD"], uniform())
            if uniform() < 0.5:
                debit, credit = credit, debit
        else:
            debit = int(uniform() * len(accounts))
            credit = _pick(pools[accounts[debit].currency], uniform())
        if debit == credit:
            pool = pools[accounts[debit].currency]
            credit = pool[(pool.index(debit) + 1) % len(pool)]
        if not accounts[debit].can_debit(amount):
            debit, credit = credit, debit
            if not accounts[debit].can_debit(amount):
                debit = _pick(unguarded[accounts[debit].currency], uniform())
        draw = uniform()
        delay = _HOUR_US + int(uniform() * 71 * _HOUR_US)
        if draw < 0.02 or (draw < 0.13 and at_us + delay >= until_us):
            status, final_us = "pending", None
        elif draw < 0.03:
            status, final_us = "voided", at_us + delay
        elif draw < 0.13:
            status, final_us = "posted", at_us + delay
        else:
            status, final_us = "posted", at_us
        debit_of[k], credit_of[k], amount_of[k] = debit, credit, amount
        effective_of[k] = at_us
        transaction_id = transaction_base + k + 1
        debit_account, credit_account = accounts[debit], accounts[credit]
        if final_us == at_us:
            debit_account.posted_debits += amount
            credit_account.posted_credits += amount
        else:
            debit_account.pending_debits += amount
            credit_account.pending_credits += amount
            if final_us is not None:
                action = _VOID if status == "voided" else _POST
                heapq.heappush(settlements, (final_us, k, action))
        at = when(at_us)
        change(debit, transaction_id, at, at)
        change(credit, transaction_id, at, at)
        description = f"{_pick(_DESCRIPTIONS, uniform())} #{k + 1}"
        currency = debit_account.currency
        fingerprint = hashlib.sha256(
            f"{debit}|{credit}|{amount}|{currency}|{description}".encode()
        ).hexdigest()
        posted_at = when(final_us) if status == "posted" and final_us is not None else None
        rows.transactions.append(
            (
                transaction_id,
                tenant_id,
                f"seed-{seed}-{k + 1:07d}",
                fingerprint,
                description,
                status,
                at,
                posted_at,
                None,
                at,
                "{}",
            )
        )
        entry_id = entry_base + 2 * k
        rows.entries.append(
            (entry_id + 1, tenant_id, transaction_id, debit_account.id, "debit", amount,
             currency, status, at, at)
        )  # fmt: skip
        rows.entries.append(
            (entry_id + 2, tenant_id, transaction_id, credit_account.id, "credit", amount,
             currency, status, at, at)
        )  # fmt: skip
    settle(until_us)

    exponents = {code: currency_exponent(code) for code, _share in _CURRENCIES}
    rows.accounts = [
        (
            account.id,
            tenant_id,
            customer_id,
            name,
            account.currency,
            exponents[account.currency],
            normal,
            account.posted_debits,
            account.posted_credits,
            account.pending_debits,
            account.pending_credits,
            account.lock_version,
            account.is_guarded,
            False,
            created,
        )
        for account, (name, normal, created, customer_id) in zip(
            accounts, rows.accounts, strict=True
        )
    ]
    return rows


_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("id", "tenant_id", "kind", "display_name", "email", "created_at", "metadata"),
    "ledger_accounts": (
        "id", "tenant_id", "customer_id", "name", "currency", "currency_exponent",
        "normal_balance", "posted_debits", "posted_credits", "pending_debits", "pending_credits",
        "lock_version", "debits_must_not_exceed_credits", "credits_must_not_exceed_debits",
        "created_at",
    ),
    "ledger_transactions": (
        "id", "tenant_id", "idempotency_key", "request_fingerprint", "description", "status",
        "effective_at", "posted_at", "reverses_transaction_id", "created_at", "metadata",
    ),
    "ledger_entries": (
        "id", "tenant_id", "transaction_id", "account_id", "direction", "amount", "currency",
        "status", "effective_at", "created_at",
    ),
    "ledger_account_versions": (
        "account_id", "lock_version", "tenant_id", "transaction_id", "posted_debits",
        "posted_credits", "pending_debits", "pending_credits", "effective_at", "recorded_at",
    ),
}  # fmt: skip


# The big tables: when they are empty, their secondary indexes (and on PostgreSQL their foreign
# keys and unique constraints) are dropped before the load and rebuilt after it, in the same
# transaction, which is several times faster than checking and indexing row by row.
_DEFERRABLE = ("ledger_transactions", "ledger_entries", "ledger_account_versions")


def _tables(rows: _Rows) -> tuple[tuple[Table, list[tuple[Any, ...]]], ...]:
    return (
        (customers_table, rows.customers),
        (ledger_accounts, rows.accounts),
        (ledger_transactions, rows.transactions),
        (ledger_entries, rows.entries),
        (ledger_account_versions, rows.versions),
    )


async def _write_sqlite(
    connection: AsyncConnection, rows: _Rows, bases: Sequence[int], report: Callable[[str], None]
) -> None:
    # A bigger page cache for this connection: index inserts at random keys thrash the 2 MB
    # default.
    await connection.exec_driver_sql("pragma cache_size = -262144")
    rebuild: list[str] = []
    if bases[2] == 0 and bases[3] == 0:
        result = await connection.exec_driver_sql(
            "select name, sql from sqlite_master where type = 'index' and sql is not null"
            " and tbl_name in (?, ?, ?) order by name",
            _DEFERRABLE,
        )
        found: Sequence[Any] = result.all()
        indexes = [(str(name), str(sql)) for name, sql in found]
        for name, _sql in indexes:
            await connection.exec_driver_sql(f'drop index "{name}"')
        rebuild = [sql for _name, sql in indexes]
    for table, table_rows in _tables(rows):
        columns = _COLUMNS[table.name]
        statement = (
            f"insert into {table.name} ({', '.join(columns)})"  # noqa: S608 (our own names)
            f" values ({', '.join('?' * len(columns))})"
        )
        for offset in range(0, len(table_rows), _BATCH):
            await connection.exec_driver_sql(statement, table_rows[offset : offset + _BATCH])
        report(f"{table.name}: {len(table_rows)} rows")
    if rebuild:
        report(f"rebuilding {len(rebuild)} indexes")
        for statement in rebuild:
            await connection.exec_driver_sql(statement)


async def _write_postgres(
    connection: AsyncConnection, rows: _Rows, bases: Sequence[int], report: Callable[[str], None]
) -> None:
    await connection.execute(text("set local maintenance_work_mem = '512MB'"))
    rebuild: list[str] = []
    if bases[2] == 0 and bases[3] == 0:
        rebuild = await _drop_constraints_and_indexes(connection)
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    for table, table_rows in _tables(rows):
        for offset in range(0, len(table_rows), _BATCH * 4):
            await driver.copy_records_to_table(
                table.name,
                records=table_rows[offset : offset + _BATCH * 4],
                columns=_COLUMNS[table.name],
            )
        report(f"{table.name}: {len(table_rows)} rows")
    if rebuild:
        report(f"rebuilding {len(rebuild)} indexes and constraints")
        for statement in rebuild:
            await connection.exec_driver_sql(statement)
    for table, base in zip(_ID_TABLES, bases, strict=True):
        last = base + len(dict(_tables(rows))[table])
        await connection.execute(
            text("select setval(pg_get_serial_sequence(:table, 'id'), :last, true)"),
            {"table": table.name, "last": max(last, 1)},
        )


async def _drop_constraints_and_indexes(connection: AsyncConnection) -> list[str]:
    """Drop the big tables' FKs, unique constraints and secondary indexes if they hold no rows.

    Returns the statements that recreate them exactly as the migrations made them (read from
    the catalog, so the seed needs no copy of the schema).
    """
    for name in _DEFERRABLE:
        if await connection.scalar(text(f"select exists (select 1 from {name})")):  # noqa: S608
            return []
    constraints = (
        await connection.execute(
            text(
                "select conrelid::regclass::text, conname, contype::text, pg_get_constraintdef(oid)"
                " from pg_constraint where conrelid = any(cast(:tables as regclass[]))"
                " and contype in ('f', 'u') order by contype, conname"
            ),
            {"tables": list(_DEFERRABLE)},
        )
    ).all()
    indexes = (
        await connection.execute(
            text(
                "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)"
                " from pg_index i where i.indrelid = any(cast(:tables as regclass[]))"
                " and not i.indisprimary and not exists (select 1 from pg_constraint c"
                " where c.conindid = i.indexrelid and c.contype = 'u') order by 1"
            ),
            {"tables": list(_DEFERRABLE)},
        )
    ).all()
    for table, name, _kind, _definition in constraints:
        await connection.exec_driver_sql(f'alter table {table} drop constraint "{name}"')
    for name, _definition in indexes:
        await connection.exec_driver_sql(f"drop index {name}")
    rebuild = [definition for _name, definition in indexes]
    # unique constraints before the foreign keys that may lean on them
    rebuild += [
        f'alter table {table} add constraint "{name}" {definition}'
        for table, name, _kind, definition in sorted(constraints, key=lambda row: row[2] != "u")
    ]
    return rebuild
