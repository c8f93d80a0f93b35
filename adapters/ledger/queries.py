"""Batched, tenant-scoped reads of the ledger: one statement per batch of keys.

Every method takes `tenant_id` and filters by it, so a key of another tenant reads exactly like
a missing one. Batch methods return one result per key, in key order (None or an empty page
for a missing key), ready to back a dataloader. Paged reads fetch one row more than asked to
tell whether a next page exists.

PostgreSQL pages each key with a LATERAL join over an array parameter (one prepared statement
whatever the batch size); SQLite, which has no LATERAL, ranks rows with a window function.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ARRAY, BigInteger, TextClause, bindparam, func, select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.db import UtcDateTime
from adapters.ledger.tables import (
    customers,
    ledger_accounts,
    ledger_entries,
    ledger_transactions,
)
from adapters.money import currency_exponent
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

__all__ = ["EntryCursor", "LedgerReader"]

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


def _customer(row: Row[Any]) -> Customer:
    return Customer(
        row.id, row.tenant_id, CustomerKind(row.kind), row.display_name, row.email, row.created_at
    )


def _account(row: Row[Any]) -> LedgerAccount:
    return LedgerAccount(
        row.id,
        row.tenant_id,
        row.customer_id,
        row.name,
        row.currency,
        row.currency_exponent,
        Direction(row.normal_balance),
        row.posted_debits,
        row.posted_credits,
        row.pending_debits,
        row.pending_credits,
        row.lock_version,
        bool(row.debits_must_not_exceed_credits),
        bool(row.credits_must_not_exceed_debits),
        row.created_at,
    )


def _transaction(row: Row[Any]) -> LedgerTransaction:
    return LedgerTransaction(
        row.id,
        row.tenant_id,
        row.idempotency_key,
        row.description,
        TransactionStatus(row.status),
        row.effective_at,
        row.posted_at,
        row.reverses_transaction_id,
        row.created_at,
    )


def _entry(row: Row[Any]) -> LedgerEntry:
    return LedgerEntry(
        row.id,
        row.tenant_id,
        row.transaction_id,
        row.account_id,
        Direction(row.direction),
        row.amount,
        row.currency,
        currency_exponent(row.currency),
        TransactionStatus(row.status),
        row.effective_at,
        row.created_at,
    )


def _typed(sql: str, columns: Sequence[Any]) -> TextClause:
    """A text statement whose result columns keep their table types (UTC datetimes)."""
    return text(sql).columns(*columns)  # type: ignore[return-value]


_IDS = bindparam("ids", type_=ARRAY(BigInteger))
_BEFORE_AT = bindparam("before_at", type_=UtcDateTime())

# PostgreSQL: one LATERAL probe per key, each using the (parent, order) index.
_PG_ACCOUNTS_BY_CUSTOMER = _typed(
    f"""select a.* from unnest(cast(:ids as bigint[])) as k(customer_id)
    cross join lateral (
      select {_names(_ACCOUNT_COLUMNS)} from ledger_accounts
      where tenant_id = :tenant_id and customer_id = k.customer_id and id > :after
      order by id limit :limit) as a""",
    _ACCOUNT_COLUMNS,
).bindparams(_IDS)
_PG_ENTRIES_BY_ACCOUNT = _typed(
    f"""select e.* from unnest(cast(:ids as bigint[])) as k(account_id)
    cross join lateral (
      select {_names(_ENTRY_COLUMNS)} from ledger_entries
      where tenant_id = :tenant_id and account_id = k.account_id
        and (effective_at, id) < (:before_at, :before_id)
      order by effective_at desc, id desc limit :limit) as e""",
    _ENTRY_COLUMNS,
).bindparams(_IDS, _BEFORE_AT)

# SQLite: rank rows per key with a window function, keep the first `limit` of each.
_SQLITE_ACCOUNTS_BY_CUSTOMER = _typed(
    f"""select {_names(_ACCOUNT_COLUMNS)} from (
      select *, row_number() over (partition by customer_id order by id) as position
      from ledger_accounts
      where tenant_id = :tenant_id and customer_id in :ids and id > :after)
    where position <= :limit order by customer_id, id""",
    _ACCOUNT_COLUMNS,
).bindparams(bindparam("ids", expanding=True))
_SQLITE_ENTRIES_BY_ACCOUNT = _typed(
    f"""select {_names(_ENTRY_COLUMNS)} from (
      select *, row_number() over (
        partition by account_id order by effective_at desc, id desc) as position
      from ledger_entries
      where tenant_id = :tenant_id and account_id in :ids
        and (effective_at, id) < (:before_at, :before_id))
    where position <= :limit order by account_id, effective_at desc, id desc""",
    _ENTRY_COLUMNS,
).bindparams(bindparam("ids", expanding=True), _BEFORE_AT)

# Later than any stored effective_at: the start of a newest-first listing.
_END_OF_TIME = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
_BIGGEST_ID = 2**63 - 1


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
    """Read side of the ledger for one engine. Safe to share across requests."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._is_postgres = engine.dialect.name == "postgresql"

    async def _rows(self, statement: Any, parameters: dict[str, Any] | None = None) -> list[Any]:
        async with self._engine.connect() as connection:
            result = await connection.execute(statement, parameters or {})
            return list(result.all())

    # -- customers ------------------------------------------------------------------------

    async def customers_by_ids(self, tenant_id: int, ids: Sequence[int]) -> list[Customer | None]:
        rows = await self._rows(
            select(*_CUSTOMER_COLUMNS).where(
                customers.c.tenant_id == tenant_id, customers.c.id.in_(ids)
            )
        )
        return _in_key_order(ids, [_customer(row) for row in rows], lambda c: c.id)

    async def customers_page(self, tenant_id: int, *, first: int, after_id: int) -> Page[Customer]:
        rows = await self._rows(
            select(*_CUSTOMER_COLUMNS)
            .where(customers.c.tenant_id == tenant_id, customers.c.id > after_id)
            .order_by(customers.c.id)
            .limit(first + 1)
        )
        items = [_customer(row) for row in rows]
        return Page(items[:first], len(items) > first)

    async def count_customers(self, tenant_id: int) -> int:
        rows = await self._rows(
            select(func.count()).select_from(customers).where(customers.c.tenant_id == tenant_id)
        )
        return int(rows[0][0])

    # -- accounts -------------------------------------------------------------------------

    async def accounts_by_ids(
        self, tenant_id: int, ids: Sequence[int]
    ) -> list[LedgerAccount | None]:
        rows = await self._rows(
            select(*_ACCOUNT_COLUMNS).where(
                ledger_accounts.c.tenant_id == tenant_id, ledger_accounts.c.id.in_(ids)
            )
        )
        return _in_key_order(ids, [_account(row) for row in rows], lambda a: a.id)

    async def accounts_by_customer_ids(
        self, tenant_id: int, customer_ids: Sequence[int], *, first: int, after_id: int
    ) -> list[Page[LedgerAccount]]:
        statement = _PG_ACCOUNTS_BY_CUSTOMER if self._is_postgres else _SQLITE_ACCOUNTS_BY_CUSTOMER
        rows = await self._rows(
            statement,
            {"ids": list(customer_ids), "tenant_id": tenant_id, "after": after_id,
             "limit": first + 1},
        )  # fmt: skip
        accounts = [_account(row) for row in rows]
        return _pages(customer_ids, accounts, lambda a: a.customer_id or 0, first)

    async def count_accounts_by_customer_ids(
        self, tenant_id: int, customer_ids: Sequence[int]
    ) -> list[int]:
        rows = await self._rows(
            select(ledger_accounts.c.customer_id, func.count())
            .where(
                ledger_accounts.c.tenant_id == tenant_id,
                ledger_accounts.c.customer_id.in_(customer_ids),
            )
            .group_by(ledger_accounts.c.customer_id)
        )
        counts = {row[0]: int(row[1]) for row in rows}
        return [counts.get(i, 0) for i in customer_ids]

    # -- transactions and entries ---------------------------------------------------------

    async def transactions_by_ids(
        self, tenant_id: int, ids: Sequence[int]
    ) -> list[LedgerTransaction | None]:
        rows = await self._rows(
            select(*_TRANSACTION_COLUMNS).where(
                ledger_transactions.c.tenant_id == tenant_id, ledger_transactions.c.id.in_(ids)
            )
        )
        return _in_key_order(ids, [_transaction(row) for row in rows], lambda t: t.id)

    async def entries_by_ids(self, tenant_id: int, ids: Sequence[int]) -> list[LedgerEntry | None]:
        rows = await self._rows(
            select(*_ENTRY_COLUMNS).where(
                ledger_entries.c.tenant_id == tenant_id, ledger_entries.c.id.in_(ids)
            )
        )
        return _in_key_order(ids, [_entry(row) for row in rows], lambda e: e.id)

    async def entries_by_transaction_ids(
        self, tenant_id: int, transaction_ids: Sequence[int]
    ) -> list[list[LedgerEntry]]:
        rows = await self._rows(
            select(*_ENTRY_COLUMNS)
            .where(
                ledger_entries.c.tenant_id == tenant_id,
                ledger_entries.c.transaction_id.in_(transaction_ids),
            )
            .order_by(ledger_entries.c.id)
        )
        grouped: dict[int, list[LedgerEntry]] = {i: [] for i in transaction_ids}
        for row in rows:
            grouped[row.transaction_id].append(_entry(row))
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
        before_at, before_id = before or (_END_OF_TIME, _BIGGEST_ID)
        statement = _PG_ENTRIES_BY_ACCOUNT if self._is_postgres else _SQLITE_ENTRIES_BY_ACCOUNT
        rows = await self._rows(
            statement,
            {"ids": list(account_ids), "tenant_id": tenant_id, "before_at": before_at,
             "before_id": before_id, "limit": first + 1},
        )  # fmt: skip
        entries = [_entry(row) for row in rows]
        return _pages(account_ids, entries, lambda e: e.account_id, first)
