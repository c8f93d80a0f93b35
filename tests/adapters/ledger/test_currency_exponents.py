"""One source of truth for an amount's scale: the account's stored `currency_exponent`.

An account keeps the exponent its amounts were written with. Reads take it from there (never
from the live ISO 4217 table, which may change under stored data: ISK went from 2 to 0), and
the posting service refuses amounts scaled by an exponent other than the account's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.errors import CurrencyMismatch
from adapters.ledger.history import LedgerHistory
from adapters.ledger.posting import PostingService
from adapters.ledger.queries import LedgerReader
from adapters.ledger.tables import ledger_accounts, ledger_entries, ledger_transactions
from adapters.money import currency_exponent
from adapters.records import TransactionStatus
from tests.factories import make_account, post_transfer
from tests.fixtures.database import Database

AT = dt.datetime(2026, 2, 1, 9, 30, tzinfo=dt.UTC)
STORED = 3  # what these accounts were created with; ISO 4217 says 2 for USD
assert currency_exponent("USD") != STORED


async def _store_exponent(engine: AsyncEngine, *account_ids: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(ledger_accounts)
            .where(ledger_accounts.c.id.in_(account_ids))
            .values(currency_exponent=STORED)
        )


@pytest.fixture
async def reader(database: Database) -> AsyncIterator[LedgerReader]:
    reader = LedgerReader(database.engine)
    yield reader
    await reader.aclose()


async def test_reads_scale_entries_by_their_accounts_stored_exponent(
    database: Database, tenant_id: int, reader: LedgerReader
) -> None:
    engine = database.engine
    debit, credit = await make_account(engine, tenant_id), await make_account(engine, tenant_id)
    await _store_exponent(engine, debit, credit)
    async with engine.begin() as connection:  # written as it was, in the account's scale
        transaction_id = (
            await connection.execute(
                insert(ledger_transactions)
                .values(tenant_id=tenant_id, idempotency_key="scale", request_fingerprint="f",
                        status="posted", effective_at=AT, posted_at=AT, metadata={})
                .returning(ledger_transactions.c.id)
            )
        ).scalar_one()  # fmt: skip
        entry_ids = (
            await connection.execute(
                insert(ledger_entries).returning(ledger_entries.c.id),
                [
                    {
                        "tenant_id": tenant_id,
                        "transaction_id": transaction_id,
                        "account_id": a,
                        "direction": d,
                        "amount": 1234,
                        "currency": "USD",
                        "status": "posted",
                        "effective_at": AT,
                    }
                    for a, d in ((debit, "debit"), (credit, "credit"))
                ],
            )
        ).scalars()
        entry_ids = list(entry_ids)

    by_ids = await reader.entries_by_ids(tenant_id, entry_ids)
    (statement,) = await LedgerHistory(engine).statement_entries(
        tenant_id, [debit], AT.date(), AT.date(), first=10, after=None
    )
    (by_transaction,) = await reader.entries_by_transaction_ids(tenant_id, [transaction_id])
    (page,) = await reader.entries_by_account_ids(tenant_id, [debit], first=10, before=None)
    (account,) = await reader.accounts_by_ids(tenant_id, [debit])

    assert account is not None
    assert account.currency_exponent == STORED
    assert len(statement.items) == 1
    for entry in [*by_ids, *by_transaction, *page.items, *statement.items]:
        assert entry is not None
        assert entry.currency_exponent == STORED, entry


async def test_settled_and_replayed_results_use_the_stored_exponent(
    database: Database, tenant_id: int
) -> None:
    engine = database.engine
    debit, credit = await make_account(engine, tenant_id), await make_account(engine, tenant_id)
    pending = await post_transfer(
        engine, tenant_id, debit=debit, credit=credit, amount=500, key="held",
        status=TransactionStatus.PENDING,
    )  # fmt: skip
    await _store_exponent(engine, debit, credit)

    settled = await PostingService(engine).post_pending(tenant_id, pending.transaction.id)
    replayed = await post_transfer(
        engine, tenant_id, debit=debit, credit=credit, amount=500, key="held",
        status=TransactionStatus.PENDING,
    )  # fmt: skip

    assert replayed.replayed
    for entry in (*settled.entries, *replayed.entries):
        assert entry.currency_exponent == STORED


async def test_posting_refuses_amounts_scaled_unlike_the_account(
    database: Database, tenant_id: int
) -> None:
    engine = database.engine
    debit, credit = await make_account(engine, tenant_id), await make_account(engine, tenant_id)
    await _store_exponent(engine, credit)

    with pytest.raises(CurrencyMismatch) as refused:
        await post_transfer(engine, tenant_id, debit=debit, credit=credit, amount=100)
    assert refused.value.field == "entries.1.currency"
