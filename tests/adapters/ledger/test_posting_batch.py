"""Batch postings leave the rows one-by-one postings leave (counters, lock versions, version
rows, entries), replay known keys, refuse a reused key with another body, leave out what
fails (guards hold on the running counters) and, raced by concurrent batches, write once."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.errors import (
    CurrencyMismatch,
    IdempotencyMismatch,
    InsufficientFunds,
    InvalidInput,
    NotFound,
)
from adapters.ledger.posting import PostingService
from adapters.ledger.posting_batch import post_batch
from adapters.ledger.posting_requests import EffectiveWindow, NewEntry, NewTransaction
from adapters.ledger.tables import ledger_account_versions, ledger_accounts, ledger_entries
from adapters.records import Direction, TransactionStatus
from tests.factories import make_account

AT = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)


def _transfer(key: str, debit: int, credit: int, amount: int, **more: Any) -> NewTransaction:
    return NewTransaction(
        idempotency_key=key,
        entries=(
            NewEntry(debit, Direction.DEBIT, amount, more.pop("currency", "USD")),
            NewEntry(credit, Direction.CREDIT, amount, "USD"),
        ),
        effective_at=AT,
        **more,
    )


async def _state(
    engine: AsyncEngine, accounts: list[int]
) -> tuple[list[Any], list[Any], list[Any]]:
    """Counters, version rows and entries of `accounts`, without ids that differ per run."""
    a, v, e = ledger_accounts.c, ledger_account_versions.c, ledger_entries.c
    async with engine.connect() as connection:
        counters = (
            await connection.execute(
                select(a.posted_debits, a.posted_credits, a.pending_debits, a.pending_credits,
                       a.lock_version).where(a.id.in_(accounts)).order_by(a.id)
            )
        ).all()  # fmt: skip
        versions = (
            await connection.execute(
                select(v.account_id, v.lock_version, v.posted_debits, v.posted_credits,
                       v.pending_debits, v.pending_credits, v.effective_at)
                .where(v.account_id.in_(accounts)).order_by(v.account_id, v.lock_version)
            )
        ).all()  # fmt: skip
        entries = (
            await connection.execute(
                select(e.account_id, e.direction, e.amount, e.status, e.effective_at)
                .where(e.account_id.in_(accounts)).order_by(e.id)
            )
        ).all()  # fmt: skip
    index = {account: n for n, account in enumerate(accounts)}
    return (
        [tuple(row) for row in counters],
        [(index[r[0]], *r[1:]) for r in versions],
        [(index[r[0]], *r[1:]) for r in entries],
    )


async def test_a_batch_writes_what_posting_one_by_one_writes(
    engine: AsyncEngine, tenant_id: int
) -> None:
    def plan(cash: int, sales: int, fees: int) -> list[NewTransaction]:
        return [
            _transfer("t1", cash, sales, 1000),
            _transfer("t2", fees, cash, 30),
            _transfer("t3", cash, sales, 250, status=TransactionStatus.PENDING),
            _transfer("t4", sales, cash, 400),
        ]

    one = [await make_account(engine, tenant_id, name=n) for n in ("cash", "sales", "fees")]
    two = [await make_account(engine, tenant_id, name=n) for n in ("cash", "sales", "fees")]
    service = PostingService(engine)
    for new in plan(*one):
        await service.post_transaction(tenant_id, new)
    # the same keys once more in another tenant's sense: prefix them for the batch
    batch = [
        NewTransaction(f"b-{n.idempotency_key}", n.entries, n.description, n.effective_at, n.status)
        for n in plan(*two)
    ]
    outcomes = await post_batch(engine, tenant_id, batch)
    assert [(o.replayed, o.error) for o in outcomes] == [(False, None)] * 4
    assert all(o.transaction_id for o in outcomes)
    assert await _state(engine, one) == await _state(engine, two)

    again = await post_batch(engine, tenant_id, batch)
    assert [(o.transaction_id, o.replayed) for o in again] == [
        (o.transaction_id, True) for o in outcomes
    ]
    assert await _state(engine, one) == await _state(engine, two)


async def test_failures_are_left_out_and_the_rest_is_written(
    engine: AsyncEngine, tenant_id: int
) -> None:
    wallet = await make_account(
        engine, tenant_id, name="wallet", debits_must_not_exceed_credits=True
    )
    income = await make_account(engine, tenant_id, name="income", normal_balance="credit")
    euros = await make_account(engine, tenant_id, name="euros", currency="EUR")
    await PostingService(engine).post_transaction(tenant_id, _transfer("used", income, wallet, 5))
    outcomes = await post_batch(
        engine,
        tenant_id,
        [
            _transfer("fund", income, wallet, 100),
            _transfer("spend", wallet, income, 80),
            _transfer("overdraw", wallet, income, 50),  # 20 + 5 left: refused
            _transfer("used", income, wallet, 6),  # another body under a used key
            _transfer("euro", euros, income, 1),
            _transfer("ghost", 10**12, income, 1),
            _transfer("spend", wallet, income, 80),  # the same again in the batch: a replay
            _transfer("last", wallet, income, 25),
        ],
    )
    errors = {o.idempotency_key: type(o.error) for o in outcomes if o.error is not None}
    assert errors == {
        "overdraw": InsufficientFunds, "used": IdempotencyMismatch,
        "euro": CurrencyMismatch, "ghost": NotFound,
    }  # fmt: skip
    assert outcomes[6].replayed
    assert outcomes[6].transaction_id == outcomes[1].transaction_id
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(ledger_accounts.c.posted_debits, ledger_accounts.c.posted_credits,
                       ledger_accounts.c.lock_version).where(ledger_accounts.c.id == wallet)
            )
        ).one()  # fmt: skip
    assert tuple(row) == (80 + 25, 5 + 100, 4)


async def test_racing_batches_write_each_key_once(engine: AsyncEngine, tenant_id: int) -> None:
    cash = await make_account(engine, tenant_id, name="cash")
    sales = await make_account(engine, tenant_id, name="sales", normal_balance="credit")
    batch = [_transfer(f"race-{n}", cash, sales, n + 1) for n in range(50)]
    results = await asyncio.gather(*(post_batch(engine, tenant_id, batch) for _ in range(4)))
    ids = {tuple(o.transaction_id for o in outcomes) for outcomes in results}
    assert len(ids) == 1
    assert sum(not o.replayed for outcomes in results for o in outcomes) == 50
    async with engine.connect() as connection:
        debits, version = (
            await connection.execute(
                select(ledger_accounts.c.posted_debits, ledger_accounts.c.lock_version)
                .where(ledger_accounts.c.id == cash)
            )
        ).one()  # fmt: skip
    assert (debits, version) == (sum(range(1, 51)), 50)


async def test_only_new_postings_must_lie_in_the_effective_window(
    engine: AsyncEngine, tenant_id: int
) -> None:
    cash = await make_account(engine, tenant_id, name="cash")
    sales = await make_account(engine, tenant_id, name="sales", normal_balance="credit")
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    booked = NewTransaction("old", _transfer("x", cash, sales, 1).entries, effective_at=old)
    wide = EffectiveWindow(max_backdate=dt.timedelta(days=3650))
    (first,) = await post_batch(engine, tenant_id, [booked], effective_window=wide)
    assert first.error is None
    newer = NewTransaction("older", booked.entries, effective_at=old)
    replay, refused = await post_batch(engine, tenant_id, [booked, newer])
    assert (replay.transaction_id, replay.replayed) == (first.transaction_id, True)
    assert isinstance(refused.error, InvalidInput)
    assert refused.error.field == "effective_at"
