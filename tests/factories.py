"""Factories with defaults: each inserts one row through SQLAlchemy Core and returns its id.

Rows that reads answer with bump the tenant's data version in the same transaction, as every
real writer does, so that cached responses never outlive them.
"""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.data_versions import bump_data_version
from adapters.ledger.posting import NewEntry, NewTransaction, PostingResult, PostingService
from adapters.ledger.tables import customers, ledger_accounts, tenants
from adapters.money import currency_exponent
from adapters.records import Direction, TransactionStatus

__all__ = ["make_account", "make_customer", "make_tenant", "post_transfer"]

_sequence = itertools.count(1)


async def make_tenant(engine: AsyncEngine, name: str | None = None) -> int:
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(tenants).values(name=name or f"tenant-{next(_sequence)}").returning(tenants.c.id)
        )
        return int(result.scalar_one())


async def make_customer(
    engine: AsyncEngine,
    tenant_id: int,
    *,
    display_name: str | None = None,
    kind: str = "individual",
    created_at: dt.datetime | None = None,
) -> int:
    values: dict[str, object] = {
        "tenant_id": tenant_id,
        "kind": kind,
        "display_name": display_name or f"Customer {next(_sequence)}",
        "email": None,
        "metadata": {},
    }
    if created_at is not None:
        values["created_at"] = created_at
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(customers).values(**values).returning(customers.c.id)
        )
        await bump_data_version(connection, tenant_id)
        return int(result.scalar_one())


async def make_account(
    engine: AsyncEngine,
    tenant_id: int,
    *,
    customer_id: int | None = None,
    name: str | None = None,
    currency: str = "USD",
    normal_balance: str = "debit",
    debits_must_not_exceed_credits: bool = False,
    credits_must_not_exceed_debits: bool = False,
) -> int:
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(ledger_accounts)
            .values(
                tenant_id=tenant_id,
                customer_id=customer_id,
                name=name or f"Account {next(_sequence)}",
                currency=currency,
                currency_exponent=currency_exponent(currency),
                normal_balance=normal_balance,
                debits_must_not_exceed_credits=debits_must_not_exceed_credits,
                credits_must_not_exceed_debits=credits_must_not_exceed_debits,
            )
            .returning(ledger_accounts.c.id)
        )
        await bump_data_version(connection, tenant_id)
        return int(result.scalar_one())


async def post_transfer(
    engine: AsyncEngine,
    tenant_id: int,
    *,
    debit: int,
    credit: int,
    amount: int,
    currency: str = "USD",
    key: str | None = None,
    status: TransactionStatus = TransactionStatus.POSTED,
    description: str | None = None,
    effective_at: dt.datetime | None = None,
) -> PostingResult:
    """Post one two-entry transaction through the real posting service."""
    return await PostingService(engine).post_transaction(
        tenant_id,
        NewTransaction(
            idempotency_key=key or f"transfer-{next(_sequence)}",
            entries=(
                NewEntry(debit, Direction.DEBIT, amount, currency),
                NewEntry(credit, Direction.CREDIT, amount, currency),
            ),
            description=description,
            effective_at=effective_at,
            status=status,
        ),
    )
