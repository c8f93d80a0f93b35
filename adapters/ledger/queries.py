"""Batched, tenant-scoped reads of the ledger: one statement per batch of keys.

Every method takes `tenant_id` and filters by it, so a key of another tenant reads exactly like
a missing one. Batch methods return one result per key, in key order (None or an empty page
for a missing key), ready to back a dataloader. Paged reads fetch one row more than asked to
tell whether a next page exists.

PostgreSQL pages each key with a LATERAL join over an array parameter (one prepared statement
whatever the batch size); SQLite, which has no LATERAL, ranks rows with a window function.

An entry's currency exponent is its account's stored `currency_exponent` (what its amounts
were written with), joined in the same statement; the ISO 4217 table is never consulted on
reads, so a later change to the table cannot rescale stored amounts.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.db import UtcDateTime
from adapters.errors import DeadlineExceeded
from adapters.ledger.engine import StatementTimer
from adapters.ledger.tables import (
    customers,
    ledger_accounts,
    ledger_entries,
    ledger_transactions,
)
from adapters.read_pool import ReadPool
from adapters.records import (
    Customer,
    CustomerKind,
    Direction,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Page,
    TransactionStatus,
)

__all__ = ["ENTRIES_START", "EntryCursor", "LedgerReader"]

R = TypeVar("R")
# Entries are listed newest first; a cursor is the (effective_at, id) of the last one seen.
EntryCursor = tuple[dt.datetime, int]

_CUSTOMER_COLUMNS = [
    customers.c.id,
    customers.c.tenant_id,
    customers.c.kind,
    customers.c.display_name,
    customers.c.email,
    customers.c.created_at,
]
_ACCOUNT_COLUMNS = [
    ledger_accounts.c[name]
    for name in (
        "id", "tenant_id", "customer_id", "name", "currency", "currency_exponent",
        "normal_balance", "posted_debits", "posted_credits", "pending_debits", "pending_credits",
        "lock_version", "debits_must_not_exceed_credits", "credits_must_not_exceed_debits",
        "created_at",
    )
]  # fmt: skip
_TRANSACTION_COLUMNS = [
    ledger_transactions.c[name]
    for name in (
        "id", "tenant_id", "idempotency_key", "description", "status", "effective_at",
        "posted_at", "reverses_transaction_id", "created_at",
    )
]  # fmt: skip
_ENTRY_COLUMNS = [
    ledger_entries.c[name]
    for name in (
        "id", "tenant_id", "transaction_id", "account_id", "direction", "amount", "currency",
        "status", "effective_at", "created_at",
    )
]  # fmt: skip


def _names(columns: Sequence[Any]) -> str:
    return ", ".join(column.name for column in columns)


def _customer(row: Sequence[Any]) -> Customer:
    return Customer(row[0], row[1], CustomerKind(row[2]), row[3], row[4], row[5])


def _account(row: Sequence[Any]) -> LedgerAccount:
    return LedgerAccount(
        row[0], row[1], row[2], row[3], row[4], row[5], Direction(row[6]), row[7], row[8],
        row[9], row[10], row[11], bool(row[12]), bool(row[13]), row[14],
    )  # fmt: skip


def _transaction(row: Sequence[Any]) -> LedgerTransaction:
    return LedgerTransaction(
        row[0], row[1], row[2], row[3], TransactionStatus(row[4]), row[5], row[6], row[7], row[8]
    )


def _entry(row: Sequence[Any]) -> LedgerEntry:
    # The last column is the account's currency_exponent (_ENTRY_SELECT).
    return LedgerEntry(
        row[0], row[1], row[2], row[3], Direction(row[4]), row[5], row[6],
        row[10], TransactionStatus(row[7]), row[8], row[9],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Statement:
    """One read in both dialects: asyncpg text ($n parameters, arrays for key lists) and a
    SQLAlchemy text clause for SQLite (:name parameters, expanding IN for key lists)."""

    postgres: str
    parameters: tuple[str, ...]  # names, in $1..$n order
    sqlite: TextClause


def _statement(
    postgres: str, parameters: tuple[str, ...], sqlite: str, columns: Sequence[Any]
) -> _Statement:
    clause = text(sqlite).columns(*columns)
    if ":ids" in sqlite:
        clause = clause.bindparams(bindparam("ids", expanding=True))
    if ":before_at" in sqlite:
        clause = clause.bindparams(bindparam("before_at", type_=UtcDateTime()))
    return _Statement(postgres, parameters, clause)  # type: ignore[arg-type]


def _by_ids(table: str, columns: Sequence[Any]) -> _Statement:
    names = _names(columns)
    return _statement(
        f"select {names} from {table} where tenant_id = $1 and id = any($2::bigint[])",
        ("tenant_id", "ids"),
        f"select {names} from {table} where tenant_id = :tenant_id and id in :ids",
        columns,
    )


_CUSTOMERS_BY_IDS = _by_ids("customers", _CUSTOMER_COLUMNS)
_ACCOUNTS_BY_IDS = _by_ids("ledger_accounts", _ACCOUNT_COLUMNS)
_TRANSACTIONS_BY_IDS = _by_ids("ledger_transactions", _TRANSACTION_COLUMNS)
# Entries with their account's exponent: `e` and `a` in every entry statement.
_ENTRY_RESULT = [*_ENTRY_COLUMNS, ledger_accounts.c.currency_exponent]
_ENTRY_SELECT = ", ".join([*(f"e.{c.name}" for c in _ENTRY_COLUMNS), "a.currency_exponent"])
_ENTRY_JOIN = "join ledger_accounts a on a.tenant_id = e.tenant_id and a.id = e.account_id"
_ENTRIES_BY_IDS = _statement(
    f"""select {_ENTRY_SELECT} from ledger_entries e {_ENTRY_JOIN}
    where e.tenant_id = $1 and e.id = any($2::bigint[])""",
    ("tenant_id", "ids"),
    f"""select {_ENTRY_SELECT} from ledger_entries e {_ENTRY_JOIN}
    where e.tenant_id = :tenant_id and e.id in :ids""",
    _ENTRY_RESULT,
)

_CUSTOMERS_PAGE = _statement(
    f"""select {_names(_CUSTOMER_COLUMNS)} from customers
    where tenant_id = $1 and id > $2 order by id limit $3""",
    ("tenant_id", "after", "limit"),
    f"""select {_names(_CUSTOMER_COLUMNS)} from customers
    where tenant_id = :tenant_id and id > :after order by id limit :limit""",
    _CUSTOMER_COLUMNS,
)
_COUNT_CUSTOMERS = _statement(
    "select count(*) from customers where tenant_id = $1",
    ("tenant_id",),
    "select count(*) from customers where tenant_id = :tenant_id",
    [],
)
_COUNT_ACCOUNTS_BY_CUSTOMER = _statement(
    """select customer_id, count(*) from ledger_accounts
    where tenant_id = $1 and customer_id = any($2::bigint[]) group by customer_id""",
    ("tenant_id", "ids"),
    """select customer_id, count(*) from ledger_accounts
    where tenant_id = :tenant_id and customer_id in :ids group by customer_id""",
    [],
)
_ENTRIES_BY_TRANSACTION = _statement(
    f"""select {_ENTRY_SELECT} from ledger_entries e {_ENTRY_JOIN}
    where e.tenant_id = $1 and e.transaction_id = any($2::bigint[]) order by e.id""",
    ("tenant_id", "ids"),
    f"""select {_ENTRY_SELECT} from ledger_entries e {_ENTRY_JOIN}
    where e.tenant_id = :tenant_id and e.transaction_id in :ids order by e.id""",
    _ENTRY_RESULT,
)
# PostgreSQL pages each key with one LATERAL probe on its (parent, order) index; SQLite, which
# has no LATERAL, ranks the rows of every key with a window function.
_ACCOUNTS_BY_CUSTOMER = _statement(
    f"""select a.* from unnest($2::bigint[]) as k(customer_id)
    cross join lateral (
      select {_names(_ACCOUNT_COLUMNS)} from ledger_accounts
      where tenant_id = $1 and customer_id = k.customer_id and id > $3
      order by id limit $4) as a""",
    ("tenant_id", "ids", "after", "limit"),
    f"""select {_names(_ACCOUNT_COLUMNS)} from (
      select *, row_number() over (partition by customer_id order by id) as position
      from ledger_accounts
      where tenant_id = :tenant_id and customer_id in :ids and id > :after)
    where position <= :limit order by customer_id, id""",
    _ACCOUNT_COLUMNS,
)
_ENTRIES_BY_ACCOUNT = _statement(
    f"""select e.*, a.currency_exponent from unnest($2::bigint[]) as k(account_id)
    join ledger_accounts a on a.tenant_id = $1 and a.id = k.account_id
    cross join lateral (
      select {_names(_ENTRY_COLUMNS)} from ledger_entries
      where tenant_id = $1 and account_id = k.account_id and (effective_at, id) < ($3, $4)
      order by effective_at desc, id desc limit $5) as e""",
    ("tenant_id", "ids", "before_at", "before_id", "limit"),
    f"""select {_ENTRY_SELECT} from (
      select *, row_number() over (
        partition by account_id order by effective_at desc, id desc) as position
      from ledger_entries
      where tenant_id = :tenant_id and account_id in :ids
        and (effective_at, id) < (:before_at, :before_id)) as e {_ENTRY_JOIN}
    where e.position <= :limit order by e.account_id, e.effective_at desc, e.id desc""",
    _ENTRY_RESULT,
)

_DATA_VERSIONS = _statement(
    "select tenant_id, version from tenant_data_versions where tenant_id = any($1::bigint[])",
    ("ids",),
    "select tenant_id, version from tenant_data_versions where tenant_id in :ids",
    [],
)

# Later than any stored entry: the position before the first of a newest-first listing.
ENTRIES_START: EntryCursor = (dt.datetime(9999, 12, 31, tzinfo=dt.UTC), 2**63 - 1)


def _in_key_order(ids: Sequence[int], rows: Sequence[R], key: Callable[[R], int]) -> list[R | None]:
    found = {key(row): row for row in rows}
    return [found.get(i) for i in ids]


def _pages(
    ids: Sequence[int], items: Sequence[R], key: Callable[[R], int], first: int
) -> list[Page[R]]:
    grouped: dict[int, list[R]] = {i: [] for i in ids}
    for item in items:
        grouped[key(item)].append(item)
    return [Page(group[:first], len(group) > first) for group in (grouped[i] for i in ids)]


class LedgerReader:
    """Read side of the ledger for one engine. Safe to share across requests.

    On PostgreSQL each read is one statement on a pool of asyncpg connections
    (adapters.read_pool), outside any transaction; SQLite reads go through SQLAlchemy Core.
    `on_statement` counts the PostgreSQL statements (SQLite's are counted by the engine's own
    hook), and `on_statement_timed` times them (SQLite's: the engine's `on_statement_timed`).
    Close with `aclose()`.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        on_statement: Callable[[], None] | None = None,
        reads: ReadPool | None = None,
        on_statement_timed: StatementTimer | None = None,
    ) -> None:
        """On PostgreSQL, `reads` is the shared read pool (one of its own when not given)."""
        self._engine = engine
        self._owns_pool = reads is None and engine.dialect.name == "postgresql"
        self._pool = ReadPool.for_engine(engine) if self._owns_pool else reads
        self._on_statement = on_statement or (lambda: None)
        self._timed = on_statement_timed
        # Absolute time on the event loop's clock after which reads are refused (bounded()).
        self._deadline: float | None = None

    def bounded(self, deadline: float | None) -> LedgerReader:
        """A view of this reader whose statements stop at `deadline` (event-loop clock):
        asyncpg gets what is left as its `timeout=` and cancels the statement on the server;
        a read that runs out raises DeadlineExceeded. Shares the pool; cheap per request."""
        view = copy.copy(self)
        view._owns_pool = False
        view._deadline = deadline
        return view

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        left = self._deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise DeadlineExceeded("the operation's deadline passed before this read")
        return left

    async def aclose(self) -> None:
        """Close the read pool this reader opened itself (a shared one is its owner's)."""
        if self._owns_pool and self._pool is not None:
            await self._pool.close()

    async def _rows(self, statement: _Statement, **parameters: Any) -> Sequence[Sequence[Any]]:
        timeout = self._remaining()
        try:
            if self._pool is not None:
                self._on_statement()
                arguments = [parameters[name] for name in statement.parameters]
                started = time.time_ns()
                failed = True
                try:
                    rows = await self._pool.fetch(statement.postgres, *arguments, timeout=timeout)
                    failed = False
                    return rows
                finally:
                    self._timed_since(statement.postgres, started, failed)
            async with asyncio.timeout(timeout), self._engine.connect() as connection:
                result = await connection.execute(statement.sqlite, parameters)
                return list(result.all())
        except TimeoutError:
            raise DeadlineExceeded("the read ran past the operation's deadline") from None

    @property
    def engine(self) -> AsyncEngine:
        """The engine this reader reads (history and aggregates build their reads on it)."""
        return self._engine

    @property
    def builds_json(self) -> bool:
        """True on PostgreSQL, where `fetch_json` runs statements of adapters.ledger.json_sql."""
        return self._pool is not None

    async def fetch_json(
        self,
        statement: str,
        *arguments: Any,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> str:
        """Run one statement of adapters.ledger.json_sql: the response's JSON text.

        `timeout` (seconds; default: what is left of this view's deadline) cancels it on the
        server when it runs longer, raising DeadlineExceeded.
        """
        if self._pool is None:
            raise RuntimeError("JSON-building statements need PostgreSQL")
        if timeout is None:
            timeout = self._remaining()
        elif timeout <= 0:
            raise DeadlineExceeded("the operation's deadline passed before this read")
        self._on_statement()
        started = time.time_ns()
        failed = True
        try:
            text: str = await self._pool.fetchval(statement, *arguments, timeout=timeout)
            failed = False
            return text
        except TimeoutError:
            raise DeadlineExceeded("the statement ran past the operation's deadline") from None
        finally:
            self._timed_since(statement, started, failed)

    def _timed_since(self, sql: str, started_ns: int, failed: bool) -> None:
        """Report a statement that began at `started_ns` to `on_statement_timed`, if set.
        (Timed inline by its caller, not through a wrapping coroutine: one less per read.)"""
        if self._timed is not None:
            self._timed(sql, started_ns, time.time_ns(), failed)

    async def data_versions(self, tenant_ids: Sequence[int]) -> dict[int, int]:
        """The tenants' data versions (adapters.ledger.data_versions); 0 before any write.

        One statement on the primary, outside any transaction, never cached: it sees every
        write committed before it started.
        """
        rows = await self._rows(_DATA_VERSIONS, ids=list(tenant_ids))
        versions = dict.fromkeys(tenant_ids, 0)
        versions.update((int(tenant), int(version)) for tenant, version in rows)
        return versions

    async def data_version(self, tenant_id: int) -> int:
        """One tenant's data version (`data_versions`)."""
        return (await self.data_versions([tenant_id]))[tenant_id]

    # -- customers ------------------------------------------------------------------------

    async def customers_by_ids(self, tenant_id: int, ids: Sequence[int]) -> list[Customer | None]:
        rows = await self._rows(_CUSTOMERS_BY_IDS, tenant_id=tenant_id, ids=list(ids))
        return _in_key_order(ids, [_customer(row) for row in rows], lambda c: c.id)

    async def customers_page(self, tenant_id: int, *, first: int, after_id: int) -> Page[Customer]:
        rows = await self._rows(
            _CUSTOMERS_PAGE, tenant_id=tenant_id, after=after_id, limit=first + 1
        )
        items = [_customer(row) for row in rows]
        return Page(items[:first], len(items) > first)

    async def count_customers(self, tenant_id: int) -> int:
        rows = await self._rows(_COUNT_CUSTOMERS, tenant_id=tenant_id)
        return int(rows[0][0])

    # -- accounts -------------------------------------------------------------------------

    async def accounts_by_ids(
        self, tenant_id: int, ids: Sequence[int]
    ) -> list[LedgerAccount | None]:
        rows = await self._rows(_ACCOUNTS_BY_IDS, tenant_id=tenant_id, ids=list(ids))
        return _in_key_order(ids, [_account(row) for row in rows], lambda a: a.id)

    async def accounts_by_customer_ids(
        self, tenant_id: int, customer_ids: Sequence[int], *, first: int, after_id: int
    ) -> list[Page[LedgerAccount]]:
        rows = await self._rows(
            _ACCOUNTS_BY_CUSTOMER,
            tenant_id=tenant_id, ids=list(customer_ids), after=after_id, limit=first + 1,
        )  # fmt: skip
        accounts = [_account(row) for row in rows]
        return _pages(customer_ids, accounts, lambda a: a.customer_id or 0, first)

    async def count_accounts_by_customer_ids(
        self, tenant_id: int, customer_ids: Sequence[int]
    ) -> list[int]:
        rows = await self._rows(
            _COUNT_ACCOUNTS_BY_CUSTOMER, tenant_id=tenant_id, ids=list(customer_ids)
        )
        counts = {row[0]: int(row[1]) for row in rows}
        return [counts.get(i, 0) for i in customer_ids]

    # -- transactions and entries ---------------------------------------------------------

    async def transactions_by_ids(
        self, tenant_id: int, ids: Sequence[int]
    ) -> list[LedgerTransaction | None]:
        rows = await self._rows(_TRANSACTIONS_BY_IDS, tenant_id=tenant_id, ids=list(ids))
        return _in_key_order(ids, [_transaction(row) for row in rows], lambda t: t.id)

    async def entries_by_ids(self, tenant_id: int, ids: Sequence[int]) -> list[LedgerEntry | None]:
        rows = await self._rows(_ENTRIES_BY_IDS, tenant_id=tenant_id, ids=list(ids))
        return _in_key_order(ids, [_entry(row) for row in rows], lambda e: e.id)

    async def entries_by_transaction_ids(
        self, tenant_id: int, transaction_ids: Sequence[int]
    ) -> list[list[LedgerEntry]]:
        rows = await self._rows(
            _ENTRIES_BY_TRANSACTION, tenant_id=tenant_id, ids=list(transaction_ids)
        )
        grouped: dict[int, list[LedgerEntry]] = {i: [] for i in transaction_ids}
        for row in rows:
            entry = _entry(row)
            grouped[entry.transaction_id].append(entry)
        return [grouped[i] for i in transaction_ids]

    async def entries_by_account_ids(
        self,
        tenant_id: int,
        account_ids: Sequence[int],
        *,
        first: int,
        before: EntryCursor | None,
    ) -> list[Page[LedgerEntry]]:
        """Each account's entries, newest first (effective_at, then id), after `before`."""
        before_at, before_id = before or ENTRIES_START
        rows = await self._rows(
            _ENTRIES_BY_ACCOUNT,
            tenant_id=tenant_id, ids=list(account_ids), before_at=before_at,
            before_id=before_id, limit=first + 1,
        )  # fmt: skip
        entries = [_entry(row) for row in rows]
        return _pages(account_ids, entries, lambda e: e.account_id, first)
