"""The database itself refuses a row that points into another tenant (composite keys), and
every write statement of the posting service names the tenant as well as the row."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Table, event, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.links import create_bank_link
from adapters.banking.tables import bank_accounts, bank_transactions
from adapters.crypto import DEV_SECRET_KEYRING, SecretBox, SecretText
from adapters.errors import NotFound
from adapters.ledger.posting import PostingService
from adapters.ledger.tables import (
    ledger_account_versions,
    ledger_accounts,
    ledger_entries,
    ledger_transactions,
)
from adapters.providers.tables import provider_links
from adapters.records import TransactionStatus
from tests.factories import make_account, make_customer, make_tenant, post_transfer
from tests.fixtures.database import Database

BOX = SecretBox.from_keyring(DEV_SECRET_KEYRING)
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Rows:
    """One tenant's rows of every kind that other rows refer to."""

    tenant_id: int
    customer_id: int
    account_id: int
    transaction_id: int
    link_id: int
    bank_account_id: int


async def _rows(engine: AsyncEngine) -> Rows:
    tenant_id = await make_tenant(engine)
    customer_id = await make_customer(engine, tenant_id)
    account_id = await make_account(engine, tenant_id, customer_id=customer_id)
    other = await make_account(engine, tenant_id)
    posted = await post_transfer(engine, tenant_id, debit=account_id, credit=other, amount=100)
    async with engine.begin() as connection:
        link_id = (
            await connection.execute(
                insert(provider_links)
                .values(tenant_id=tenant_id, customer_id=customer_id, provider="plaid",
                        kind="banking", external_id=f"item-keys-{tenant_id}")
                .returning(provider_links.c.id)
            )
        ).scalar_one()  # fmt: skip
        bank_account_id = (
            await connection.execute(
                insert(bank_accounts)
                .values(tenant_id=tenant_id, provider_link_id=link_id, customer_id=customer_id,
                        provider_account_id="acc-1", name="Checking", type="depository",
                        currency="USD", currency_exponent=2, balances_as_of=NOW)
                .returning(bank_accounts.c.id)
            )
        ).scalar_one()  # fmt: skip
    return Rows(tenant_id, customer_id, account_id, posted.transaction.id, link_id, bank_account_id)


# Each case: a table and the row a tenant `own` writes, pointing at `target`'s rows where the
# reference under test is, and at its own rows everywhere else.
Case = Callable[[Rows, Rows], dict[str, Any]]


def _entry(field: str) -> Case:
    def row(own: Rows, target: Rows) -> dict[str, Any]:
        refs = {"transaction_id": own.transaction_id, "account_id": own.account_id}
        refs[field] = getattr(target, field)
        return {"tenant_id": own.tenant_id, **refs, "direction": "debit", "amount": 1,
                "currency": "USD", "status": "posted", "effective_at": NOW}  # fmt: skip

    return row


def _version(field: str) -> Case:
    def row(own: Rows, target: Rows) -> dict[str, Any]:
        refs = {"transaction_id": own.transaction_id, "account_id": own.account_id}
        refs[field] = getattr(target, field)
        return {"tenant_id": own.tenant_id, **refs, "lock_version": 10**6, "posted_debits": 0,
                "posted_credits": 0, "pending_debits": 0, "pending_credits": 0,
                "effective_at": NOW}  # fmt: skip

    return row


def _bank_transaction(field: str) -> Case:
    def row(own: Rows, target: Rows) -> dict[str, Any]:
        refs = {"provider_link_id": own.link_id, "customer_id": own.customer_id,
                "bank_account_id": own.bank_account_id}  # fmt: skip
        refs[field] = {"provider_link_id": target.link_id, "customer_id": target.customer_id,
                       "bank_account_id": target.bank_account_id}[field]  # fmt: skip
        return {"tenant_id": own.tenant_id, **refs, "provider_transaction_id": "tx-1",
                "amount": -100, "currency": "USD", "currency_exponent": 2,
                "date": NOW.date(), "name": "Coffee", "is_pending": False}  # fmt: skip

    return row


CASES: dict[str, tuple[Table, Case]] = {
    "entry->account": (ledger_entries, _entry("account_id")),
    "entry->transaction": (ledger_entries, _entry("transaction_id")),
    "version->account": (ledger_account_versions, _version("account_id")),
    "version->transaction": (ledger_account_versions, _version("transaction_id")),
    "account->customer": (
        ledger_accounts,
        lambda own, target: {
            "tenant_id": own.tenant_id,
            "customer_id": target.customer_id,
            "name": "Stray",
            "currency": "USD",
            "currency_exponent": 2,
            "normal_balance": "debit",
        },
    ),
    "transaction->reversed transaction": (
        ledger_transactions,
        lambda own, target: {
            "tenant_id": own.tenant_id,
            "idempotency_key": "stray",
            "request_fingerprint": "0" * 64,
            "status": "posted",
            "effective_at": NOW,
            "reverses_transaction_id": target.transaction_id,
        },
    ),
    "provider link->customer": (
        provider_links,
        lambda own, target: {
            "tenant_id": own.tenant_id,
            "customer_id": target.customer_id,
            "provider": "plaid",
            "kind": "banking",
            "external_id": f"stray-{own.tenant_id}",
        },
    ),
    "bank account->link": (
        bank_accounts,
        lambda own, target: {
            "tenant_id": own.tenant_id,
            "provider_link_id": target.link_id,
            "customer_id": own.customer_id,
            "provider_account_id": "acc-2",
            "name": "Savings",
            "type": "depository",
            "currency": "USD",
            "currency_exponent": 2,
            "balances_as_of": NOW,
        },
    ),
    "bank account->customer": (
        bank_accounts,
        lambda own, target: {
            "tenant_id": own.tenant_id,
            "provider_link_id": own.link_id,
            "customer_id": target.customer_id,
            "provider_account_id": "acc-3",
            "name": "Savings",
            "type": "depository",
            "currency": "USD",
            "currency_exponent": 2,
            "balances_as_of": NOW,
        },
    ),
    "bank transaction->link": (bank_transactions, _bank_transaction("provider_link_id")),
    "bank transaction->customer": (bank_transactions, _bank_transaction("customer_id")),
    "bank transaction->bank account": (bank_transactions, _bank_transaction("bank_account_id")),
}


async def _insert(engine: AsyncEngine, table: Table, row: dict[str, Any]) -> None:
    """Insert one row and roll it back (the tenants stay reusable)."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            await connection.execute(insert(table).values(**row))
        finally:
            await transaction.rollback()


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_row_pointing_into_another_tenant_is_refused_by_the_database(
    database: Database, case: str
) -> None:
    table, row = CASES[case]
    own, other = await _rows(database.engine), await _rows(database.engine)

    await _insert(database.engine, table, row(own, own))  # the same row in-tenant is accepted
    with pytest.raises(IntegrityError):
        await _insert(database.engine, table, row(own, other))


async def test_a_bank_link_for_another_tenants_customer_is_not_found(database: Database) -> None:
    engine = database.engine
    own, other = await make_tenant(engine), await make_tenant(engine)
    strangers_customer = await make_customer(engine, other)

    with pytest.raises(NotFound) as refused:
        await create_bank_link(
            engine, BOX, tenant_id=own, customer_id=strangers_customer, provider="plaid",
            item_id=f"item-stray-{own}", access_token=SecretText("access-sandbox-stray"),
        )  # fmt: skip
    assert refused.value.field == "customer_id"
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).where(provider_links.c.customer_id == strangers_customer)
        )
    assert count == 0


_WRITE = re.compile(r"^\s*(update|delete|insert)\b", re.IGNORECASE)
_WHERE = re.compile(r"\bwhere\b(?P<condition>.*?)(\breturning\b|$)", re.IGNORECASE | re.DOTALL)


@contextmanager
def _writes(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if _WRITE.match(statement):
            seen.append(" ".join(statement.split()))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_every_posting_write_names_the_tenant(database: Database, tenant_id: int) -> None:
    engine = database.engine
    cash, revenue = await make_account(engine, tenant_id), await make_account(engine, tenant_id)
    service = PostingService(engine)
    with _writes(engine) as statements:
        pending = await post_transfer(
            engine, tenant_id, debit=cash, credit=revenue, amount=500,
            status=TransactionStatus.PENDING,
        )  # fmt: skip
        await service.post_pending(tenant_id, pending.transaction.id)
        voided = await post_transfer(
            engine, tenant_id, debit=cash, credit=revenue, amount=300,
            status=TransactionStatus.PENDING,
        )  # fmt: skip
        await service.void_pending(tenant_id, voided.transaction.id)
        await service.reverse_transaction(tenant_id, pending.transaction.id, "undo-keys")

    assert {s.split()[0].lower() for s in statements} >= {"insert", "update"}
    for statement in statements:
        if statement.lower().startswith("insert"):
            columns = statement.split("(", 1)[1].split(")", 1)[0]
            assert "tenant_id" in columns, statement
        else:
            where = _WHERE.search(statement)
            assert where is not None, statement
            assert "tenant_id" in where["condition"], statement
