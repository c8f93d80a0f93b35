"""Balances back in time from the version log agree with the entries, back-dating included."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.engine import create_ledger_engine
from adapters.ledger.history import COUNTERS, Counters, LedgerHistory
from adapters.ledger.periods import Interval, periods
from adapters.ledger.posting import PostingService
from adapters.ledger.tables import ledger_entries
from adapters.records import TransactionStatus
from tests.factories import make_account, make_tenant, post_transfer
from tests.fixtures.database import Database

BASE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


async def _entry_counters(engine: AsyncEngine, account_id: int, before: dt.datetime) -> Counters:
    """The reference: entries effective before `before`, by current status and direction."""
    e = ledger_entries.c
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(e.status, e.direction, e.amount).where(
                    e.account_id == account_id, e.effective_at < before
                )
            )
        ).all()
    sums: Counter[str] = Counter()
    for status, direction, amount in rows:
        if status != "voided":
            sums[f"{status}_{direction}s"] += amount
    return Counters(*(sums[name] for name in COUNTERS))


# One operation: post (posted or pending) at an offset in hours from BASE — any order, so later
# postings are often back-dated before earlier ones — then maybe settle it (post or void).
operations = st.lists(
    st.tuples(
        st.integers(0, 24 * 70),
        st.integers(1, 10_000),
        st.booleans(),
        st.sampled_from(["keep", "post", "void"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


async def _replay(engine: AsyncEngine, ops: list[Any]) -> tuple[int, int, int]:
    tenant_id = await make_tenant(engine)
    cash = await make_account(engine, tenant_id)
    revenue = await make_account(engine, tenant_id, normal_balance="credit")
    service = PostingService(engine)
    for hours, amount, pending, settle, inward in ops:
        result = await post_transfer(
            engine, tenant_id,
            debit=cash if inward else revenue, credit=revenue if inward else cash,
            amount=amount, effective_at=BASE + dt.timedelta(hours=hours),
            status=TransactionStatus.PENDING if pending else TransactionStatus.POSTED,
        )  # fmt: skip
        if pending and settle == "post":
            await service.post_pending(tenant_id, result.transaction.id)
        elif pending and settle == "void":
            await service.void_pending(tenant_id, result.transaction.id)
    return tenant_id, cash, revenue


def _check_history(url: str) -> None:
    loop = asyncio.new_event_loop()
    engine = create_ledger_engine(url)
    history = LedgerHistory(engine)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=operations, probes=st.lists(st.integers(-24, 24 * 72), min_size=1, max_size=5))
    def check(ops: list[Any], probes: list[int]) -> None:
        async def run() -> None:
            tenant_id, cash, revenue = await _replay(engine, ops)
            # a probe at an entry's exact effective time, and around the others
            moments = [BASE + dt.timedelta(hours=ops[0][0])]
            moments += [BASE + dt.timedelta(hours=h, microseconds=-1) for h in probes]
            for at in moments:
                got = await history.counters_as_of(tenant_id, [cash, revenue], at)
                want = [
                    await _entry_counters(engine, account, at + dt.timedelta(microseconds=1))
                    for account in (cash, revenue)
                ]
                assert got == want, at
            # daily history: each close equals the entries before the next day
            first, last = BASE.date() - DAY, BASE.date() + 71 * DAY
            [points, _] = await history.balance_history(
                tenant_id, [cash, revenue], first, last, Interval.WEEK
            )
            assert points is not None
            for span, closing in points:
                end = dt.datetime.combine(span.last + DAY, dt.time(), dt.UTC)
                assert closing == await _entry_counters(engine, cash, end), span

        loop.run_until_complete(run())

    try:
        check()
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()


async def test_balance_as_of_and_history_equal_the_entries_with_back_dating(
    database: Database,
) -> None:
    await asyncio.to_thread(_check_history, database.url)


async def test_latest_version_row_is_not_the_balance_when_back_dated(
    engine: AsyncEngine, tenant_id: int
) -> None:
    """The rule that a naive read gets wrong: a posting back-dated before an earlier one."""
    cash = await make_account(engine, tenant_id)
    revenue = await make_account(engine, tenant_id, normal_balance="credit")
    await post_transfer(engine, tenant_id, debit=cash, credit=revenue, amount=500,
                        effective_at=BASE + 10 * DAY)  # fmt: skip
    await post_transfer(engine, tenant_id, debit=cash, credit=revenue, amount=70,
                        effective_at=BASE + 2 * DAY)  # fmt: skip
    history = LedgerHistory(engine)
    [at_five] = await history.counters_as_of(tenant_id, [cash], BASE + 5 * DAY)
    assert at_five == Counters(posted_debits=70)
    [at_ten] = await history.counters_as_of(tenant_id, [cash], BASE + 10 * DAY)
    assert at_ten == Counters(posted_debits=570)
    [before] = await history.counters_as_of(tenant_id, [cash], BASE)
    assert before == Counters()


async def test_other_tenants_accounts_read_as_missing(engine: AsyncEngine, tenant_id: int) -> None:
    other = await make_tenant(engine)
    theirs = await make_account(engine, other)
    mine = await make_account(engine, tenant_id)
    history = LedgerHistory(engine)
    assert await history.counters_as_of(tenant_id, [theirs, mine], BASE) == [None, Counters()]
    assert await history.balance_history(
        tenant_id, [theirs], BASE.date(), BASE.date(), Interval.DAY
    ) == [None]
    assert await history.statement_totals(tenant_id, [theirs], BASE.date(), BASE.date()) == [None]


def test_periods_clip_the_range_and_weeks_start_on_monday() -> None:
    spans = periods(dt.date(2026, 3, 4), dt.date(2026, 3, 18), Interval.WEEK)  # a Wednesday
    assert [(s.first, s.last, s.natural_start) for s in spans] == [
        (dt.date(2026, 3, 4), dt.date(2026, 3, 8), dt.date(2026, 3, 2)),
        (dt.date(2026, 3, 9), dt.date(2026, 3, 15), dt.date(2026, 3, 9)),
        (dt.date(2026, 3, 16), dt.date(2026, 3, 18), dt.date(2026, 3, 16)),
    ]
    months = periods(dt.date(2025, 12, 15), dt.date(2026, 2, 1), Interval.MONTH)
    assert [(s.first, s.last) for s in months] == [
        (dt.date(2025, 12, 15), dt.date(2025, 12, 31)),
        (dt.date(2026, 1, 1), dt.date(2026, 1, 31)),
        (dt.date(2026, 2, 1), dt.date(2026, 2, 1)),
    ]


def _check_statements(url: str) -> None:
    loop = asyncio.new_event_loop()
    engine = create_ledger_engine(url)
    history = LedgerHistory(engine)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=operations, start=st.integers(-2, 72), days=st.integers(0, 40),
           page=st.integers(1, 4))  # fmt: skip
    def check(ops: list[Any], start: int, days: int, page: int) -> None:
        async def run() -> None:
            tenant_id, cash, revenue = await _replay(engine, ops)
            first = BASE.date() + start * DAY
            last = first + days * DAY
            totals = await history.statement_totals(tenant_id, [cash, revenue], first, last)
            for account, statement in zip((cash, revenue), totals, strict=True):
                assert statement is not None
                # every entry of the period, page by page (the entries table)
                listed: Counter[str] = Counter()
                after = None
                while True:
                    [entries] = await history.statement_entries(
                        tenant_id, [account], first, last, first=page, after=after
                    )
                    for entry in entries.items:
                        listed[f"{entry.status}_{entry.direction}s"] += entry.amount
                    if not entries.has_next_page:
                        break
                    after = (entries.items[-1].effective_at, entries.items[-1].id)
                # opening + the listed entries = closing (the version log)
                movements = Counters(*(listed[name] for name in COUNTERS))
                assert statement.movements == movements
                assert statement.opening + movements == statement.closing
                # and both ends equal the entries on either side of the period
                start_at = dt.datetime.combine(first, dt.time(), dt.UTC)
                end_at = dt.datetime.combine(last + DAY, dt.time(), dt.UTC)
                assert statement.opening == await _entry_counters(engine, account, start_at)
                assert statement.closing == await _entry_counters(engine, account, end_at)

        loop.run_until_complete(run())

    try:
        check()
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()


async def test_statement_opening_plus_entries_is_closing(database: Database) -> None:
    await asyncio.to_thread(_check_statements, database.url)
