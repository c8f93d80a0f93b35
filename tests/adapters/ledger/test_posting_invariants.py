"""DESIGN.md invariants 1-10 under random sequences of valid and invalid posting operations.

A hypothesis state machine drives the posting service against a small in-memory model; after
every step the database must equal the model and satisfy the invariants, checked from the rows
alone by `assert_ledger_invariants` (the concurrency test reuses it). The machine runs in a
worker thread with its own event loop and engine: the test's loop is already running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
from collections import Counter, defaultdict
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.errors import (
    AdapterError,
    CurrencyMismatch,
    IdempotencyMismatch,
    InsufficientFunds,
    InvalidInput,
    InvalidTransition,
    NotFound,
    Unbalanced,
)
from adapters.ledger.engine import create_ledger_engine
from adapters.ledger.posting import NewEntry, NewTransaction, PostingResult, PostingService
from adapters.ledger.posting_requests import EffectiveWindow
from adapters.ledger.tables import (
    ledger_account_versions,
    ledger_accounts,
    ledger_entries,
    ledger_transactions,
)
from adapters.records import Direction, TransactionStatus
from tests.factories import make_account, make_tenant
from tests.fixtures.database import Database

__all__ = ["assert_ledger_invariants"]

DEBIT, CREDIT = Direction.DEBIT, Direction.CREDIT
PENDING, POSTED, VOIDED = (
    TransactionStatus.PENDING,
    TransactionStatus.POSTED,
    TransactionStatus.VOIDED,
)
COUNTERS = ("posted_debits", "posted_credits", "pending_debits", "pending_credits")
MISSING_ID = 2**62
BASE = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
EFFECTIVE_TIMES = [
    None,
    BASE - dt.timedelta(days=1),
    BASE + dt.timedelta(seconds=30, microseconds=500),
    BASE + dt.timedelta(days=1),
]
T = TypeVar("T")


# --- invariants from the rows alone -----------------------------------------------------------


def _counter(status: str, direction: str) -> str:
    return f"{status}_{direction}s"


@dataclasses.dataclass(frozen=True)
class LedgerRows:
    """One tenant's ledger rows, read in one connection."""

    accounts: dict[int, Any]
    transactions: dict[int, Any]
    entries: list[Any]
    versions: list[Any]


async def load_ledger(engine: AsyncEngine, tenant_id: int) -> LedgerRows:
    a, t, e = ledger_accounts.c, ledger_transactions.c, ledger_entries.c
    v = ledger_account_versions.c
    async with engine.connect() as connection:
        accounts = {
            row.id: row
            for row in await connection.execute(
                select(ledger_accounts).where(a.tenant_id == tenant_id)
            )
        }
        transactions = {
            row.id: row
            for row in await connection.execute(
                select(ledger_transactions).where(t.tenant_id == tenant_id)
            )
        }
        entries = (
            await connection.execute(
                select(ledger_entries)
                .join(ledger_transactions, t.id == e.transaction_id)
                .where(t.tenant_id == tenant_id)
                .order_by(e.id)
            )
        ).all()
        versions = (
            await connection.execute(
                select(ledger_account_versions)
                .join(ledger_accounts, a.id == v.account_id)
                .where(a.tenant_id == tenant_id)
                .order_by(v.account_id, v.lock_version)
            )
        ).all()
    return LedgerRows(accounts, transactions, list(entries), list(versions))


async def assert_ledger_invariants(engine: AsyncEngine, tenant_id: int) -> None:
    """Assert invariants 1-5 and 8-10 for one tenant's rows (6 and 7 need history)."""
    check_ledger_invariants(await load_ledger(engine, tenant_id), tenant_id)


def check_ledger_invariants(rows: LedgerRows, tenant_id: int) -> None:
    accounts, transactions = rows.accounts, rows.transactions
    entries, versions = rows.entries, rows.versions
    by_transaction: dict[int, list[Any]] = defaultdict(list)
    for row in entries:
        by_transaction[row.transaction_id].append(row)
        # 2. positive amounts, the account's currency, the tenant's accounts and rows
        assert row.amount > 0
        assert row.tenant_id == tenant_id
        assert row.account_id in accounts, "entry on another tenant's account"
        assert row.currency == accounts[row.account_id].currency
        transaction = transactions[row.transaction_id]
        assert (row.status, row.effective_at) == (transaction.status, transaction.effective_at)

    # 1. every transaction balances per currency, with a debit and a credit
    for transaction_id in transactions:
        legs = by_transaction[transaction_id]
        assert {row.direction for row in legs} == {"debit", "credit"}, transaction_id
        sums: Counter[tuple[str, str]] = Counter()
        for row in legs:
            sums[row.currency, row.direction] += row.amount
        for currency in {row.currency for row in legs}:
            assert sums[currency, "debit"] == sums[currency, "credit"], transaction_id

    # 3. per currency over all accounts: debits equal credits, posted and pending
    totals: Counter[tuple[str, str]] = Counter()
    for account in accounts.values():
        for counter in COUNTERS:
            totals[account.currency, counter] += getattr(account, counter)
    for currency in {account.currency for account in accounts.values()}:
        assert totals[currency, "posted_debits"] == totals[currency, "posted_credits"]
        assert totals[currency, "pending_debits"] == totals[currency, "pending_credits"]

    # 4. counters equal entry sums by status and the latest version row
    sums_by_account: dict[int, Counter[str]] = defaultdict(Counter)
    for row in entries:
        if row.status != VOIDED:
            sums_by_account[row.account_id][_counter(row.status, row.direction)] += row.amount
    chains: dict[int, list[Any]] = defaultdict(list)
    for row in versions:
        chains[row.account_id].append(row)
    for account_id, account in accounts.items():
        current = {counter: getattr(account, counter) for counter in COUNTERS}
        assert current == {c: sums_by_account[account_id][c] for c in COUNTERS}, account_id
        chain = chains[account_id]
        # 5. lock_version rises by one per change, without gaps
        assert [row.lock_version for row in chain] == list(range(1, len(chain) + 1))
        assert account.lock_version == len(chain)
        if chain:
            assert {c: getattr(chain[-1], c) for c in COUNTERS} == current, account_id
        else:
            assert set(current.values()) == {0}
        previous = dict.fromkeys(COUNTERS, 0)
        per_transaction: dict[int, Counter[str]] = defaultdict(Counter)
        for row in chain:
            after = {c: getattr(row, c) for c in COUNTERS}
            for c in COUNTERS:
                per_transaction[row.transaction_id][c] += after[c] - previous[c]
            previous = after
            # 8. the guards held after every change, not only now
            if account.debits_must_not_exceed_credits:
                assert after["posted_debits"] + after["pending_debits"] <= after["posted_credits"]
            if account.credits_must_not_exceed_debits:
                assert after["posted_credits"] + after["pending_credits"] <= after["posted_debits"]
            assert transactions[row.transaction_id].effective_at == row.effective_at
        # each transaction's version deltas are exactly its entries on this account
        for transaction_id, change in per_transaction.items():
            expected: Counter[str] = Counter()
            for row in by_transaction[transaction_id]:
                if row.account_id == account_id and row.status != VOIDED:
                    expected[_counter(row.status, row.direction)] += row.amount
            assert {c: change[c] for c in COUNTERS} == {c: expected[c] for c in COUNTERS}

        # 9. the balance at time T is the sum of entries effective before T, via version rows
        moments = sorted({row.effective_at for row in chain})
        for moment in [*moments, moments[-1] + dt.timedelta(microseconds=1)] if moments else []:
            from_entries: Counter[str] = Counter()
            for row in entries:
                if (
                    row.account_id == account_id
                    and row.status != VOIDED
                    and row.effective_at < moment
                ):
                    from_entries[_counter(row.status, row.direction)] += row.amount
            from_versions: Counter[str] = Counter()
            previous = dict.fromkeys(COUNTERS, 0)
            for row in chain:
                after = {c: getattr(row, c) for c in COUNTERS}
                if row.effective_at < moment:
                    for c in COUNTERS:
                        from_versions[c] += after[c] - previous[c]
                previous = after
            assert {c: from_versions[c] for c in COUNTERS} == {
                c: from_entries[c] for c in COUNTERS
            }, (account_id, moment)

    # 10. a reversal flips a posted original, nets it to zero, and happens at most once
    reversed_ids = [row.reverses_transaction_id for row in transactions.values()]
    reversed_ids = [i for i in reversed_ids if i is not None]
    assert len(reversed_ids) == len(set(reversed_ids))
    for transaction in transactions.values():
        if transaction.reverses_transaction_id is None:
            continue
        original = transactions[transaction.reverses_transaction_id]
        assert (original.status, transaction.status) == (POSTED, POSTED)
        net: Counter[tuple[int, str]] = Counter()
        for row in by_transaction[original.id]:
            net[row.account_id, row.currency] += (
                row.amount if row.direction == "debit" else -row.amount
            )
        for row in by_transaction[transaction.id]:
            net[row.account_id, row.currency] += (
                row.amount if row.direction == "debit" else -row.amount
            )
        assert set(net.values()) == {0}
        assert sorted(
            (r.account_id, r.amount, r.direction) for r in by_transaction[transaction.id]
        ) == sorted(
            (r.account_id, r.amount, "credit" if r.direction == "debit" else "debit")
            for r in by_transaction[original.id]
        )


# --- the model --------------------------------------------------------------------------------


@dataclasses.dataclass
class ModelTransaction:
    request: NewTransaction | int  # the request, or the id a reversal reverses
    entries: list[NewEntry]
    status: TransactionStatus
    result: PostingResult  # the latest state the service returned
    reversed: bool = False


class StepClock:
    """Moves one second on every reading, so each write gets its own time."""

    def __init__(self) -> None:
        self.now = BASE

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


ACCOUNT_SPECS: dict[str, dict[str, Any]] = {
    "usd_cash": {"currency": "USD"},
    "usd_revenue": {"currency": "USD", "normal_balance": "credit"},
    "usd_wallet": {
        "currency": "USD",
        "normal_balance": "credit",
        "debits_must_not_exceed_credits": True,
    },
    "eur_cash": {"currency": "EUR"},
    "eur_guarded": {"currency": "EUR", "credits_must_not_exceed_debits": True},
}
BY_CURRENCY = {"USD": ["usd_cash", "usd_revenue", "usd_wallet"], "EUR": ["eur_cash", "eur_guarded"]}

legs_strategy = st.lists(
    st.tuples(
        st.sampled_from(sorted(BY_CURRENCY)),
        st.integers(0, 2),
        st.integers(0, 2),
        st.integers(1, 150),
    ),
    min_size=1,
    max_size=3,
)
INVALID_KINDS = [
    "unbalanced",
    "one_sided",
    "cross_currency",
    "currency_mismatch",
    "unknown_account",
    "foreign_account",
    "zero_amount",
]


class PostingMachine(RuleBasedStateMachine):
    def __init__(self, loop: asyncio.AbstractEventLoop, engine: AsyncEngine) -> None:
        super().__init__()
        self.loop = loop
        self.engine = engine
        self.clock = StepClock()
        # Effective times up to a day after the clock: the window itself is tested elsewhere.
        window = EffectiveWindow(max_future_skew=dt.timedelta(days=2))
        self.service = PostingService(engine, clock=self.clock, effective_window=window)
        self.keys = itertools.count()
        self.tenant_id = 0
        self.accounts: dict[str, int] = {}
        self.specs: dict[int, dict[str, Any]] = {}
        self.counters: dict[int, dict[str, int]] = {}
        self.versions: dict[int, int] = {}
        self.transactions: dict[int, ModelTransaction] = {}
        self.by_key: dict[str, int] = {}
        self.foreign_account = 0
        self.unknown_transactions: list[int] = []

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    @initialize()
    def create_tenant(self) -> None:
        self.tenant_id = self.run(make_tenant(self.engine))
        for name, spec in ACCOUNT_SPECS.items():
            account_id = self.run(make_account(self.engine, self.tenant_id, **spec))
            self.accounts[name] = account_id
            self.specs[account_id] = spec
            self.counters[account_id] = dict.fromkeys(COUNTERS, 0)
            self.versions[account_id] = 0
        other_tenant = self.run(make_tenant(self.engine))
        self.foreign_account = self.run(make_account(self.engine, other_tenant))
        foreign_credit = self.run(make_account(self.engine, other_tenant, normal_balance="credit"))
        foreign = NewTransaction(
            "foreign",
            (
                NewEntry(self.foreign_account, DEBIT, 5, "USD"),
                NewEntry(foreign_credit, CREDIT, 5, "USD"),
            ),
            status=PENDING,
        )
        # Another tenant's pending transaction: reads like a missing one to this tenant.
        self.unknown_transactions = [
            MISSING_ID,
            self.run(self.service.post_transaction(other_tenant, foreign)).transaction.id,
        ]

    # -- helpers

    def fresh_key(self) -> str:
        return f"key-{next(self.keys)}"

    def entries_from(
        self, legs: list[tuple[str, int, int, int]], interleave: bool
    ) -> list[NewEntry]:
        debits, credits = [], []
        for currency, debit, credit, amount in legs:
            names = BY_CURRENCY[currency]
            debits.append(
                NewEntry(self.accounts[names[debit % len(names)]], DEBIT, amount, currency)
            )
            credits.append(
                NewEntry(self.accounts[names[credit % len(names)]], CREDIT, amount, currency)
            )
        if interleave:
            return [e for pair in zip(debits, credits, strict=True) for e in pair]
        return [*credits, *debits]

    def expected_refusal(
        self, changes: dict[int, dict[str, int]], entries: list[NewEntry]
    ) -> str | None:
        """The field the service names when a guard refuses `changes`, else None."""
        for account_id in sorted(changes):
            after = {c: self.counters[account_id][c] + changes[account_id][c] for c in COUNTERS}
            spec = self.specs[account_id]
            debits = after["posted_debits"] + after["pending_debits"]
            credits = after["posted_credits"] + after["pending_credits"]
            for flag, total, cover, direction in (
                ("debits_must_not_exceed_credits", debits, after["posted_credits"], DEBIT),
                ("credits_must_not_exceed_debits", credits, after["posted_debits"], CREDIT),
            ):
                if spec.get(flag) and total > cover:
                    index = next(
                        i
                        for i, e in enumerate(entries)
                        if (e.account_id, e.direction) == (account_id, direction)
                    )
                    return f"entries.{index}.amount"
        return None

    def apply(self, changes: dict[int, dict[str, int]]) -> None:
        for account_id, change in changes.items():
            for counter in COUNTERS:
                self.counters[account_id][counter] += change[counter]
            self.versions[account_id] += 1

    @staticmethod
    def changes_for(entries: list[NewEntry], *moves: tuple[str, int]) -> dict[int, dict[str, int]]:
        """Counter changes: for each (status, sign) move, sign * amount on that status."""
        changes: dict[int, dict[str, int]] = {}
        for entry in entries:
            change = changes.setdefault(entry.account_id, dict.fromkeys(COUNTERS, 0))
            for status, sign in moves:
                change[_counter(status, entry.direction)] += sign * entry.amount
        return changes

    def expect_error(
        self, error: type[AdapterError], field: str | None, coroutine: Coroutine[Any, Any, Any]
    ) -> None:
        with pytest.raises(error) as raised:
            self.run(coroutine)
        assert type(raised.value) is error
        assert raised.value.field == field

    def record(
        self, request: NewTransaction | int, entries: list[NewEntry], result: PostingResult
    ) -> None:
        transaction = result.transaction
        assert result.replayed is False
        assert transaction.id not in self.transactions
        assert [(e.account_id, e.direction, e.amount, e.currency) for e in result.entries] == [
            (e.account_id, e.direction, e.amount, e.currency) for e in entries
        ]
        self.transactions[transaction.id] = ModelTransaction(
            request, entries, transaction.status, result
        )
        self.by_key[transaction.idempotency_key] = transaction.id

    # -- rules

    @rule(
        legs=legs_strategy,
        interleave=st.booleans(),
        status=st.sampled_from([PENDING, POSTED]),
        effective_at=st.sampled_from(EFFECTIVE_TIMES),
    )
    def post(
        self,
        legs: list[tuple[str, int, int, int]],
        interleave: bool,
        status: TransactionStatus,
        effective_at: dt.datetime | None,
        names: tuple[str, str] | None = None,
    ) -> None:
        entries = self.entries_from(legs, interleave)
        if names is not None:
            debit, credit = (self.accounts[name] for name in names)
            entries = [
                dataclasses.replace(e, account_id=debit if e.direction == DEBIT else credit)
                for e in entries
            ]
        new = NewTransaction(self.fresh_key(), tuple(entries), None, effective_at, status)
        changes = self.changes_for(entries, (status, 1))
        refused_field = self.expected_refusal(changes, entries)
        if refused_field is not None:
            self.expect_error(
                InsufficientFunds, refused_field, self.service.post_transaction(self.tenant_id, new)
            )
            return
        result = self.run(self.service.post_transaction(self.tenant_id, new))
        assert result.transaction.status == status
        assert result.transaction.effective_at == (effective_at or self.clock.now)
        self.apply(changes)
        self.record(new, entries, result)

    @precondition(lambda self: bool(self.by_key))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.by_key)))
        model = self.transactions[self.by_key[key]]
        if isinstance(model.request, NewTransaction):
            result = self.run(self.service.post_transaction(self.tenant_id, model.request))
        else:
            result = self.run(self.service.reverse_transaction(self.tenant_id, model.request, key))
        assert result == dataclasses.replace(model.result, replayed=True)

    @precondition(lambda self: bool(self.by_key))
    @rule(data=st.data(), description=st.text(max_size=5))
    def reuse_key_with_another_body(self, data: st.DataObject, description: str) -> None:
        key = data.draw(st.sampled_from(sorted(self.by_key)))
        model = self.transactions[self.by_key[key]]
        if isinstance(model.request, NewTransaction):
            other = dataclasses.replace(model.request, description=f"other {description}")
        else:
            other = NewTransaction(key, tuple(model.entries))
        self.expect_error(
            IdempotencyMismatch,
            "idempotency_key",
            self.service.post_transaction(self.tenant_id, other),
        )

    @rule(kind=st.sampled_from(INVALID_KINDS), amount=st.integers(1, 50))
    def post_invalid(self, kind: str, amount: int) -> None:
        usd, usd_other = self.accounts["usd_cash"], self.accounts["usd_revenue"]
        eur = self.accounts["eur_cash"]
        expected: tuple[type[AdapterError], str] = (Unbalanced, "entries")
        if kind == "unbalanced":
            entries = [
                NewEntry(usd, DEBIT, amount, "USD"),
                NewEntry(usd_other, CREDIT, amount + 1, "USD"),
            ]
        elif kind == "one_sided":
            entries = [
                NewEntry(usd, DEBIT, amount, "USD"),
                NewEntry(usd_other, DEBIT, amount, "USD"),
            ]
        elif kind == "cross_currency":
            entries = [NewEntry(usd, DEBIT, amount, "USD"), NewEntry(eur, CREDIT, amount, "EUR")]
        elif kind == "currency_mismatch":
            entries = [NewEntry(eur, DEBIT, amount, "EUR"), NewEntry(usd, CREDIT, amount, "EUR")]
            expected = (CurrencyMismatch, "entries.1.currency")
        elif kind == "zero_amount":
            entries = [NewEntry(usd, DEBIT, 0, "USD"), NewEntry(usd_other, CREDIT, 0, "USD")]
            expected = (InvalidInput, "entries.0.amount")
        else:
            missing = MISSING_ID if kind == "unknown_account" else self.foreign_account
            entries = [
                NewEntry(usd, DEBIT, amount, "USD"),
                NewEntry(missing, CREDIT, amount, "USD"),
            ]
            expected = (NotFound, "entries.1.account_id")
        new = NewTransaction(self.fresh_key(), tuple(entries))
        self.expect_error(*expected, self.service.post_transaction(self.tenant_id, new))

    @rule(
        transfer=st.tuples(st.sampled_from(sorted(BY_CURRENCY)), st.integers(1, 60)),
        status=st.sampled_from([PENDING, POSTED]),
    )
    def post_transfer(self, transfer: tuple[str, int], status: TransactionStatus) -> None:
        """A plain transfer from an unguarded account into a guarded one (funds the guards)."""
        currency, amount = transfer
        source, target = BY_CURRENCY[currency][0], BY_CURRENCY[currency][-1]
        if currency == "EUR":  # the EUR guard wants debits first
            source, target = target, source
        self.post([(currency, 0, 0, amount)], True, status, None, (source, target))

    @rule(
        data=st.data(),
        operation=st.sampled_from(["post", "void", "reverse"]),
    )
    def act_on_unknown_transaction(self, data: st.DataObject, operation: str) -> None:
        transaction_id = data.draw(st.sampled_from(self.unknown_transactions))
        if operation == "reverse":
            call = self.service.reverse_transaction(self.tenant_id, transaction_id, "r")
        elif operation == "post":
            call = self.service.post_pending(self.tenant_id, transaction_id)
        else:
            call = self.service.void_pending(self.tenant_id, transaction_id)
        self.expect_error(NotFound, "transaction_id", call)

    @precondition(lambda self: bool(self.transactions))
    @rule(data=st.data(), post=st.booleans())
    def settle(self, data: st.DataObject, post: bool) -> None:
        transaction_id = data.draw(st.sampled_from(sorted(self.transactions)))
        call = self.service.post_pending if post else self.service.void_pending
        model = self.transactions[transaction_id]
        if model.status != PENDING:
            self.expect_error(
                InvalidTransition, "transaction_id", call(self.tenant_id, transaction_id)
            )
            return
        result = self.run(call(self.tenant_id, transaction_id))
        target = POSTED if post else VOIDED
        moves = [(str(PENDING), -1)] + ([(str(POSTED), 1)] if post else [])
        self.apply(self.changes_for(model.entries, *moves))
        assert result.transaction.status == target
        assert result.transaction.id == transaction_id
        assert result.entries == tuple(
            dataclasses.replace(e, status=target) for e in model.result.entries
        )
        model.status, model.result = target, result

    @precondition(lambda self: bool(self.transactions))
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        transaction_id = data.draw(st.sampled_from(sorted(self.transactions)))
        key = self.fresh_key()
        call = self.service.reverse_transaction(self.tenant_id, transaction_id, key)
        model = self.transactions[transaction_id]
        if model.status != POSTED or model.reversed:
            self.expect_error(InvalidTransition, "transaction_id", call)
            return
        flip = {DEBIT: CREDIT, CREDIT: DEBIT}
        entries = [dataclasses.replace(e, direction=flip[e.direction]) for e in model.entries]
        changes = self.changes_for(entries, (str(POSTED), 1))
        refused_field = self.expected_refusal(changes, entries)
        if refused_field is not None:
            self.expect_error(InsufficientFunds, refused_field, call)
            return
        result = self.run(call)
        assert result.transaction.reverses_transaction_id == transaction_id
        self.apply(changes)
        self.record(transaction_id, entries, result)
        model.reversed = True

    # -- invariants

    @invariant()
    def database_matches_model_and_invariants(self) -> None:
        if not self.tenant_id:
            return
        rows = self.run(load_ledger(self.engine, self.tenant_id))
        check_ledger_invariants(rows, self.tenant_id)
        # 4/5: counters and versions exactly as the model predicts; refusals changed nothing
        assert {
            account_id: ({c: getattr(row, c) for c in COUNTERS}, row.lock_version)
            for account_id, row in rows.accounts.items()
        } == {i: (self.counters[i], self.versions[i]) for i in self.counters}
        # 6/7: statuses as the model says (terminal ones never moved); one row per key
        assert {
            (row.id, row.status, row.idempotency_key) for row in rows.transactions.values()
        } == {
            (i, m.status, m.result.transaction.idempotency_key)
            for i, m in self.transactions.items()
        }


def _run_machine(url: str) -> None:
    loop = asyncio.new_event_loop()
    engine = create_ledger_engine(url)
    try:

        class BoundMachine(PostingMachine):
            def __init__(self) -> None:
                super().__init__(loop, engine)

        run_state_machine_as_test(
            BoundMachine,
            settings=settings(
                max_examples=30,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()


async def test_random_operations_keep_the_ledger_invariants(database: Database) -> None:
    await asyncio.to_thread(_run_machine, database.url)
