"""The posting service under concurrent load on PostgreSQL (row locks; SQLite runs skip these).

Many postings race over a few shared accounts, including duplicate idempotency keys and an
overdraft-guarded wallet that would go negative if a guard were checked before locking.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.errors import InsufficientFunds, InvalidTransition
from adapters.ledger.posting import NewEntry, NewTransaction, PostingResult, PostingService
from adapters.ledger.tables import ledger_accounts, ledger_transactions
from adapters.records import Direction, TransactionStatus
from tests.adapters.ledger.test_posting_invariants import assert_ledger_invariants
from tests.factories import make_account
from tests.fixtures.database import Database

DEBIT, CREDIT = Direction.DEBIT, Direction.CREDIT
PENDING, POSTED, VOIDED = (
    TransactionStatus.PENDING,
    TransactionStatus.POSTED,
    TransactionStatus.VOIDED,
)


def entry(account_id: int, direction: Direction, amount: int) -> NewEntry:
    return NewEntry(account_id=account_id, direction=direction, amount=amount, currency="USD")


async def wallet_counters(engine: AsyncEngine, account_id: int) -> tuple[int, int, int, int]:
    a = ledger_accounts.c
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(
                    a.posted_debits, a.posted_credits, a.pending_debits, a.pending_credits
                ).where(a.id == account_id)
            )
        ).one()
    return (row[0], row[1], row[2], row[3])


async def rows_per_key(engine: AsyncEngine, tenant_id: int) -> dict[str, int]:
    t = ledger_transactions.c
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(t.idempotency_key, func.count())
            .where(t.tenant_id == tenant_id)
            .group_by(t.idempotency_key)
        )
        return {str(key): int(count) for key, count in rows}


async def test_concurrent_postings_write_each_key_once_and_never_overdraw(
    postgres: Database, tenant_id: int
) -> None:
    engine = postgres.engine
    service = PostingService(engine)
    funding = await make_account(engine, tenant_id)
    wallet = await make_account(
        engine, tenant_id, normal_balance="credit", debits_must_not_exceed_credits=True
    )
    merchant = await make_account(engine, tenant_id, normal_balance="credit")
    fees = await make_account(engine, tenant_id, normal_balance="credit")
    await service.post_transaction(
        tenant_id,
        NewTransaction("fund", (entry(funding, DEBIT, 1000), entry(wallet, CREDIT, 1000))),
    )

    # Wallet debits ask for 30 * 70 + 8 * 40 = 2420 against 1000 + 5 * 50 = 1250 of credits.
    spends = [
        NewTransaction(
            f"spend-{i}",
            (entry(merchant, CREDIT, 60), entry(wallet, DEBIT, 70), entry(fees, CREDIT, 10)),
        )
        for i in range(30)
    ]
    holds = [
        NewTransaction(
            f"hold-{i}", (entry(wallet, DEBIT, 40), entry(merchant, CREDIT, 40)), status=PENDING
        )
        for i in range(8)
    ]
    top_ups = [
        NewTransaction(f"top-up-{i}", (entry(wallet, CREDIT, 50), entry(funding, DEBIT, 50)))
        for i in range(5)
    ]
    duplicates = [
        NewTransaction(
            f"duplicate-{group}",
            (entry(fees, DEBIT, 3 + group), entry(funding, CREDIT, 3 + group)),
            description=f"group {group}",
        )
        for group in range(6)
        for _ in range(4)
    ]
    requests = [*spends, *holds, *top_ups, *duplicates]
    random.Random(20260601).shuffle(requests)

    outcomes = await asyncio.gather(
        *(service.post_transaction(tenant_id, request) for request in requests),
        return_exceptions=True,
    )

    # Only wallet debits may be refused, and only for insufficient funds.
    results: dict[str, list[PostingResult]] = defaultdict(list)
    refused: list[str] = []
    for request, outcome in zip(requests, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, InsufficientFunds), repr(outcome)
            # Refused by the check after locking (naming the wallet entry), not by the CHECK
            # constraint backstop, which can only say "entries".
            expected_field = (
                "entries.1.amount" if "spend" in request.idempotency_key else ("entries.0.amount")
            )
            assert request.idempotency_key.startswith(("spend-", "hold-"))
            assert outcome.field == expected_field
            refused.append(request.idempotency_key)
        else:
            results[request.idempotency_key].append(outcome)
    assert len(requests) == 67
    assert refused, "2420 of debits against 1250 of credits: some must be refused"

    # Each key is written exactly once; duplicates all receive the same answer.
    assert await rows_per_key(engine, tenant_id) == {"fund": 1} | dict.fromkeys(results, 1)
    for key, answers in results.items():
        assert sorted(answer.replayed for answer in answers) == [False] + [True] * (
            len(answers) - 1
        ), key
        assert {(answer.transaction, answer.entries) for answer in answers} == {
            (answers[0].transaction, answers[0].entries)
        }, key
    assert sum(len(answers) for key, answers in results.items() if "duplicate" in key) == 24

    # The wallet never went negative, and funds were refused only when truly short.
    posted_debits, posted_credits, pending_debits, pending_credits = await wallet_counters(
        engine, wallet
    )
    spent = sum(70 for key in results if key.startswith("spend-"))
    held = sum(40 for key in results if key.startswith("hold-"))
    assert (posted_debits, posted_credits, pending_debits, pending_credits) == (
        spent,
        1250,
        held,
        0,
    )
    assert spent + held <= 1250
    assert spent + held > 1000 - 70  # the last refusal saw less than one spend left
    await assert_ledger_invariants(engine, tenant_id)


async def test_concurrent_post_and_void_of_one_pending_transaction_have_one_winner(
    postgres: Database, tenant_id: int
) -> None:
    engine = postgres.engine
    service = PostingService(engine)
    wallet = await make_account(
        engine, tenant_id, normal_balance="credit", debits_must_not_exceed_credits=True
    )
    funding = await make_account(engine, tenant_id)
    await service.post_transaction(
        tenant_id,
        NewTransaction("fund", (entry(funding, DEBIT, 500), entry(wallet, CREDIT, 500))),
    )
    pending = [
        await service.post_transaction(
            tenant_id,
            NewTransaction(
                f"hold-{i}", (entry(wallet, DEBIT, 25), entry(funding, CREDIT, 25)), status=PENDING
            ),
        )
        for i in range(12)
    ]
    ids = [result.transaction.id for result in pending]

    calls = []
    for index, transaction_id in enumerate(ids):
        pair = [
            ("post", service.post_pending(tenant_id, transaction_id)),
            ("void", service.void_pending(tenant_id, transaction_id)),
        ]
        calls.extend(pair if index % 2 else pair[::-1])
    outcomes = await asyncio.gather(*(call for _, call in calls), return_exceptions=True)

    winners: dict[int, TransactionStatus] = {}
    for (operation, _), outcome, transaction_id in zip(
        calls, outcomes, [i for i in ids for _ in range(2)], strict=True
    ):
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, InvalidTransition), repr(outcome)
            continue
        assert transaction_id not in winners, f"{transaction_id} settled twice"
        winners[transaction_id] = outcome.transaction.status
        assert outcome.transaction.status == (POSTED if operation == "post" else VOIDED)
    assert set(winners) == set(ids)

    t = ledger_transactions.c
    async with engine.connect() as connection:
        stored = dict((await connection.execute(select(t.id, t.status).where(t.id.in_(ids)))).all())
    assert stored == {i: str(status) for i, status in winners.items()}
    posted = sum(25 for status in winners.values() if status == POSTED)
    assert await wallet_counters(engine, wallet) == (posted, 500, 0, 0)
    await assert_ledger_invariants(engine, tenant_id)


async def test_concurrent_reversals_happen_once(postgres: Database, tenant_id: int) -> None:
    engine = postgres.engine
    service = PostingService(engine)
    debit = await make_account(engine, tenant_id)
    credit = await make_account(engine, tenant_id, normal_balance="credit")
    original = await service.post_transaction(
        tenant_id, NewTransaction("original", (entry(debit, DEBIT, 90), entry(credit, CREDIT, 90)))
    )
    keys = ["same"] * 5 + [f"other-{i}" for i in range(5)]

    outcomes = await asyncio.gather(
        *(service.reverse_transaction(tenant_id, original.transaction.id, key) for key in keys),
        return_exceptions=True,
    )

    successes = [o for o in outcomes if isinstance(o, PostingResult)]
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(failure, InvalidTransition) for failure in failures), failures
    assert len({result.transaction.id for result in successes}) == 1
    assert [result.replayed for result in successes].count(False) == 1
    winner = next(result for result in successes if not result.replayed)
    # Replays only for the winner's key; every other key is refused.
    assert len(successes) == keys.count(winner.transaction.idempotency_key)
    assert await wallet_counters(engine, debit) == (90, 90, 0, 0)
    await assert_ledger_invariants(engine, tenant_id)
