"""Batched, tenant-scoped reads of synced bank data: one statement per batch of keys.

Every method takes `tenant_id` and filters by it, so a key of another tenant reads exactly like
a missing one. Batch methods return one result per key, in key order, ready to back a
dataloader. Removed transactions are never returned. Transactions are listed newest first
(date, then id) and paged by keyset: the cursor is the (date, id) of the last one seen.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.records import BankAccount, BankBalances, BankTransaction, ConnectionStatus
from adapters.banking.tables import bank_accounts, bank_transactions
from adapters.providers.tables import provider_links
from adapters.records import Page

__all__ = ["BankReader", "BankTransactionCursor"]

# The (date, id) of the last transaction of a page.
BankTransactionCursor = tuple[dt.date, int]

_ACCOUNT_COLUMNS = (
    *(
        bank_accounts.c[name]
        for name in (
            "id", "customer_id", "provider_link_id", "provider_account_id", "name",
            "official_name", "mask", "type", "subtype", "currency", "currency_exponent",
            "current_balance", "available_balance", "credit_limit", "balances_as_of",
            "institution_id", "institution_name",
        )
    ),
    provider_links.c.provider,
    provider_links.c.status,
)  # fmt: skip
_TRANSACTION_COLUMNS = tuple(
    bank_transactions.c[name]
    for name in (
        "id", "customer_id", "provider_link_id", "bank_account_id", "provider_transaction_id",
        "amount", "currency", "currency_exponent", "date", "authorized_date", "name",
        "merchant_name", "category_primary", "category_detailed", "is_pending",
        "pending_transaction_id", "reference",
    )
)  # fmt: skip


def _account(row: RowMapping) -> BankAccount:
    return BankAccount(
        provider_account_id=row["provider_account_id"],
        name=row["name"],
        official_name=row["official_name"],
        mask=row["mask"],
        type=row["type"],
        subtype=row["subtype"],
        balances=BankBalances(
            current=row["current_balance"],
            available=row["available_balance"],
            limit=row["credit_limit"],
            currency=row["currency"],
            exponent=row["currency_exponent"],
        ),
        as_of=row["balances_as_of"],
        connection_status=ConnectionStatus(row["status"]),
        id=row["id"],
        customer_id=row["customer_id"],
        provider_link_id=row["provider_link_id"],
        provider=row["provider"],
        institution_id=row["institution_id"],
        institution_name=row["institution_name"],
    )


def _transaction(row: RowMapping, provider_account_id: str) -> BankTransaction:
    category = tuple(
        part for part in (row["category_primary"], row["category_detailed"]) if part is not None
    )
    return BankTransaction(
        provider_transaction_id=row["provider_transaction_id"],
        provider_account_id=provider_account_id,
        amount=row["amount"],
        currency=row["currency"],
        exponent=row["currency_exponent"],
        date=row["date"],
        authorized_date=row["authorized_date"],
        name=row["name"],
        merchant_name=row["merchant_name"],
        category=category,
        is_pending=bool(row["is_pending"]),
        pending_transaction_id=row["pending_transaction_id"],
        reference=row["reference"],
        id=row["id"],
        bank_account_id=row["bank_account_id"],
        customer_id=row["customer_id"],
        provider_link_id=row["provider_link_id"],
    )


class BankReader:
    """Reads for the banking loaders; each method issues exactly one SQL statement."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _rows(self, statement: Any) -> list[RowMapping]:
        async with self._engine.connect() as connection:
            return list((await connection.execute(statement)).mappings())

    def _accounts_query(self, tenant_id: int) -> Any:
        return (
            select(*_ACCOUNT_COLUMNS)
            .join(provider_links, provider_links.c.id == bank_accounts.c.provider_link_id)
            .where(bank_accounts.c.tenant_id == tenant_id)
        )

    async def accounts_by_customer_ids(
        self, tenant_id: int, customer_ids: Sequence[int]
    ) -> list[list[BankAccount]]:
        """Each customer's bank accounts (ordered by id), one list per customer id."""
        if not customer_ids:
            return []
        rows = await self._rows(
            self._accounts_query(tenant_id)
            .where(bank_accounts.c.customer_id.in_(list(customer_ids)))
            .order_by(bank_accounts.c.customer_id, bank_accounts.c.id)
        )
        by_customer: dict[int, list[BankAccount]] = defaultdict(list)
        for row in rows:
            by_customer[row["customer_id"]].append(_account(row))
        return [by_customer.get(customer_id, []) for customer_id in customer_ids]

    async def accounts_by_ids(
        self, tenant_id: int, account_ids: Sequence[int]
    ) -> list[BankAccount | None]:
        """Bank accounts by our ids (None for a missing id or one of another tenant)."""
        if not account_ids:
            return []
        rows = await self._rows(
            self._accounts_query(tenant_id).where(bank_accounts.c.id.in_(list(account_ids)))
        )
        by_id = {row["id"]: _account(row) for row in rows}
        return [by_id.get(account_id) for account_id in account_ids]

    async def transactions_by_account_ids(
        self,
        tenant_id: int,
        account_ids: Sequence[int],
        *,
        first: int,
        after: BankTransactionCursor | None = None,
        since: dt.date | None = None,
        until: dt.date | None = None,
    ) -> list[Page[BankTransaction]]:
        """A page of each account's transactions, newest first, dated within
        [since, until] (both inclusive, each optional), after the keyset cursor `after`."""
        if first < 1:
            raise ValueError("first must be at least 1")
        if not account_ids:
            return []
        conditions = [
            bank_transactions.c.tenant_id == tenant_id,
            bank_transactions.c.bank_account_id.in_(list(account_ids)),
            bank_transactions.c.removed_at.is_(None),
        ]
        if since is not None:
            conditions.append(bank_transactions.c.date >= since)
        if until is not None:
            conditions.append(bank_transactions.c.date <= until)
        if after is not None:
            after_date, after_id = after
            conditions.append(
                or_(
                    bank_transactions.c.date < after_date,
                    and_(bank_transactions.c.date == after_date, bank_transactions.c.id < after_id),
                )
            )
        position = (
            func.row_number()
            .over(
                partition_by=bank_transactions.c.bank_account_id,
                order_by=(bank_transactions.c.date.desc(), bank_transactions.c.id.desc()),
            )
            .label("position")
        )
        ranked = (
            select(*_TRANSACTION_COLUMNS, bank_accounts.c.provider_account_id, position)
            .join(bank_accounts, bank_accounts.c.id == bank_transactions.c.bank_account_id)
            .where(*conditions)
            .subquery()
        )
        rows = await self._rows(
            select(ranked)
            .where(ranked.c.position <= first + 1)
            .order_by(ranked.c.bank_account_id, ranked.c.position)
        )
        by_account: dict[int, list[BankTransaction]] = defaultdict(list)
        for row in rows:
            by_account[row["bank_account_id"]].append(_transaction(row, row["provider_account_id"]))
        pages = []
        for account_id in account_ids:
            items = by_account.get(account_id, [])
            pages.append(Page(items=items[:first], has_next_page=len(items) > first))
        return pages
