"""The posting service rule by rule, on both backends; every refusal leaves the ledger as is."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable

import pytest
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
from adapters.ledger.posting import NewEntry, NewTransaction, PostingResult, PostingService
from adapters.ledger.tables import (
    ledger_account_versions,
    ledger_accounts,
    ledger_entries,
    ledger_transactions,
)
from adapters.records import Direction, TransactionStatus
from tests.factories import make_account, make_tenant

DEBIT, CREDIT = Direction.DEBIT, Direction.CREDIT
PENDING, POSTED, VOIDED = (
    TransactionStatus.PENDING,
    TransactionStatus.POSTED,
    TransactionStatus.VOIDED,
)
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
MISSING_ID = 2**62


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: int = 60) -> None:
        self.now += dt.timedelta(seconds=seconds)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Everything the posting service may change for one tenant."""

    accounts: dict[int, tuple[int, int, int, int, int]]  # 4 counters + lock_version
    transactions: list[tuple[int, str]]
    entries: list[tuple[int, str]]
    versions: list[tuple[int, int]]


async def snapshot(engine: AsyncEngine, tenant_id: int) -> Snapshot:
    a, t, e, v = (
        ledger_accounts.c,
        ledger_transactions.c,
        ledger_entries.c,
        ledger_account_versions.c,
    )
    async with engine.connect() as connection:
        accounts = await connection.execute(
            select(a.id, a.posted_debits, a.posted_credits, a.pending_debits, a.pending_credits)
            .add_columns(a.lock_version)
            .where(a.tenant_id == tenant_id)
        )
        transactions = await connection.execute(
            select(t.id, t.status).where(t.tenant_id == tenant_id).order_by(t.id)
        )
        entries = await connection.execute(
            select(e.id, e.status).where(e.tenant_id == tenant_id).order_by(e.id)
        )
        versions = await connection.execute(
            select(v.account_id, v.lock_version)
            .join(ledger_accounts, ledger_accounts.c.id == v.account_id)
            .where(a.tenant_id == tenant_id)
            .order_by(v.account_id, v.lock_version)
        )
        return Snapshot(
            accounts={row[0]: tuple(row[1:]) for row in accounts},
            transactions=[tuple(row) for row in transactions],
            entries=[tuple(row) for row in entries],
            versions=[tuple(row) for row in versions],
        )


async def counters(engine: AsyncEngine, account_id: int) -> tuple[int, int, int, int, int]:
    """posted_debits, posted_credits, pending_debits, pending_credits, lock_version."""
    a = ledger_accounts.c
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(a.posted_debits, a.posted_credits, a.pending_debits, a.pending_credits)
                .add_columns(a.lock_version)
                .where(a.id == account_id)
            )
        ).one()
    return (row[0], row[1], row[2], row[3], row[4])


async def version_rows(engine: AsyncEngine, account_id: int) -> list[tuple[object, ...]]:
    v = ledger_account_versions.c
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(
                v.lock_version,
                v.transaction_id,
                v.posted_debits,
                v.posted_credits,
                v.pending_debits,
                v.pending_credits,
                v.effective_at,
            )
            .where(v.account_id == account_id)
            .order_by(v.lock_version)
        )
        return [tuple(row) for row in rows]


def entry(account_id: int, direction: Direction, amount: int, currency: str = "USD") -> NewEntry:
    return NewEntry(account_id=account_id, direction=direction, amount=amount, currency=currency)


def transfer(
    debit: int,
    credit: int,
    amount: int,
    *,
    key: str,
    currency: str = "USD",
    status: TransactionStatus = POSTED,
    effective_at: dt.datetime | None = None,
    description: str | None = None,
) -> NewTransaction:
    return NewTransaction(
        idempotency_key=key,
        entries=(entry(debit, DEBIT, amount, currency), entry(credit, CREDIT, amount, currency)),
        description=description,
        effective_at=effective_at,
        status=status,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(engine: AsyncEngine, clock: Clock) -> PostingService:
    return PostingService(engine, clock=clock)


@dataclasses.dataclass(frozen=True)
class Accounts:
    cash: int  # USD, debit-normal
    revenue: int  # USD, credit-normal
    wallet: int  # USD, credit-normal, debits must not exceed credits
    euro: int  # EUR
    euro_other: int  # EUR


@pytest.fixture
async def accounts(engine: AsyncEngine, tenant_id: int) -> Accounts:
    return Accounts(
        cash=await make_account(engine, tenant_id),
        revenue=await make_account(engine, tenant_id, normal_balance="credit"),
        wallet=await make_account(
            engine, tenant_id, normal_balance="credit", debits_must_not_exceed_credits=True
        ),
        euro=await make_account(engine, tenant_id, currency="EUR"),
        euro_other=await make_account(engine, tenant_id, currency="EUR", normal_balance="credit"),
    )


# --- posting --------------------------------------------------------------------------------


async def test_posted_transaction_updates_counters_versions_and_returns_records(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    result = await service.post_transaction(
        tenant_id,
        transfer(accounts.cash, accounts.revenue, 1250, key="k-1", description="sale"),
    )

    transaction = result.transaction
    assert result.replayed is False
    assert (transaction.tenant_id, transaction.idempotency_key, transaction.description) == (
        tenant_id,
        "k-1",
        "sale",
    )
    assert (transaction.status, transaction.effective_at, transaction.posted_at) == (
        POSTED,
        START,
        START,
    )
    assert transaction.reverses_transaction_id is None
    assert [
        (e.account_id, e.direction, e.amount, e.currency, e.currency_exponent, e.status)
        for e in result.entries
    ] == [
        (accounts.cash, DEBIT, 1250, "USD", 2, POSTED),
        (accounts.revenue, CREDIT, 1250, "USD", 2, POSTED),
    ]
    assert {(e.tenant_id, e.transaction_id, e.effective_at) for e in result.entries} == {
        (tenant_id, transaction.id, START)
    }
    assert await counters(engine, accounts.cash) == (1250, 0, 0, 0, 1)
    assert await counters(engine, accounts.revenue) == (0, 1250, 0, 0, 1)
    assert await version_rows(engine, accounts.cash) == [(1, transaction.id, 1250, 0, 0, 0, START)]
    assert await version_rows(engine, accounts.revenue) == [
        (1, transaction.id, 0, 1250, 0, 0, START)
    ]


async def test_pending_transaction_touches_only_pending_counters(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    result = await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.revenue, 700, key="p-1", status=PENDING)
    )

    assert (result.transaction.status, result.transaction.posted_at) == (PENDING, None)
    assert {e.status for e in result.entries} == {PENDING}
    assert await counters(engine, accounts.cash) == (0, 0, 700, 0, 1)
    assert await counters(engine, accounts.revenue) == (0, 0, 0, 700, 1)


async def test_account_in_several_entries_gets_one_version_per_transaction(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    new = NewTransaction(
        idempotency_key="split",
        entries=(
            entry(accounts.cash, DEBIT, 100),
            entry(accounts.cash, DEBIT, 50),
            entry(accounts.revenue, CREDIT, 150),
            entry(accounts.cash, CREDIT, 30),
            entry(accounts.revenue, DEBIT, 30),
        ),
    )
    result = await service.post_transaction(tenant_id, new)

    assert [e.amount for e in result.entries] == [100, 50, 150, 30, 30]
    assert [e.id for e in result.entries] == sorted(e.id for e in result.entries)
    assert await counters(engine, accounts.cash) == (150, 30, 0, 0, 1)
    assert await counters(engine, accounts.revenue) == (30, 150, 0, 0, 1)
    assert await version_rows(engine, accounts.cash) == [
        (1, result.transaction.id, 150, 30, 0, 0, START)
    ]


async def test_transaction_may_balance_in_several_currencies(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    new = NewTransaction(
        idempotency_key="fx",
        entries=(
            entry(accounts.cash, DEBIT, 1000),
            entry(accounts.euro_other, CREDIT, 900, "EUR"),
            entry(accounts.euro, DEBIT, 900, "EUR"),
            entry(accounts.revenue, CREDIT, 1000),
        ),
    )
    await service.post_transaction(tenant_id, new)

    assert await counters(engine, accounts.euro) == (900, 0, 0, 0, 1)
    assert await counters(engine, accounts.euro_other) == (0, 900, 0, 0, 1)


@pytest.mark.parametrize(("currency", "exponent"), [("JPY", 0), ("BHD", 3)])
async def test_currencies_with_other_exponents(
    engine: AsyncEngine,
    service: PostingService,
    tenant_id: int,
    currency: str,
    exponent: int,
) -> None:
    debit = await make_account(engine, tenant_id, currency=currency)
    credit = await make_account(engine, tenant_id, currency=currency, normal_balance="credit")

    result = await service.post_transaction(
        tenant_id, transfer(debit, credit, 123456, key=currency, currency=currency)
    )

    assert [(e.currency, e.currency_exponent, e.amount) for e in result.entries] == [
        (currency, exponent, 123456),
        (currency, exponent, 123456),
    ]
    assert await counters(engine, debit) == (123456, 0, 0, 0, 1)


async def test_effective_at_is_stored_in_utc(
    service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    sent = dt.datetime(2025, 12, 31, 23, 30, 15, 123456, tzinfo=tokyo)

    result = await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.revenue, 5, key="tz", effective_at=sent)
    )

    expected = dt.datetime(2025, 12, 31, 14, 30, 15, 123456, tzinfo=dt.UTC)
    assert result.transaction.effective_at == expected
    assert result.transaction.effective_at.tzinfo == dt.UTC
    assert {e.effective_at for e in result.entries} == {expected}
    assert result.transaction.posted_at == START


async def test_limits_at_their_boundaries_are_accepted(
    service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    new = transfer(
        accounts.cash, accounts.revenue, 2**63 - 1, key="k" * 255, description="d" * 1000
    )

    result = await service.post_transaction(tenant_id, new)

    assert result.transaction.idempotency_key == "k" * 255
    assert [e.amount for e in result.entries] == [2**63 - 1, 2**63 - 1]


# --- refusals -------------------------------------------------------------------------------

Build = Callable[[Accounts], NewTransaction]


def _with(accounts: Accounts, **changes: object) -> NewTransaction:
    return dataclasses.replace(transfer(accounts.cash, accounts.revenue, 100, key="r"), **changes)  # type: ignore[arg-type]


REFUSALS: list[tuple[str, Build, type[AdapterError], str, str | None]] = [
    ("no_entries", lambda a: _with(a, entries=()), Unbalanced, "UNBALANCED_TRANSACTION", "entries"),
    (
        "only_debits",
        lambda a: _with(a, entries=(entry(a.cash, DEBIT, 5), entry(a.revenue, DEBIT, 5))),
        Unbalanced,
        "UNBALANCED_TRANSACTION",
        "entries",
    ),
    (
        "debits_differ_from_credits",
        lambda a: _with(a, entries=(entry(a.cash, DEBIT, 5), entry(a.revenue, CREDIT, 4))),
        Unbalanced,
        "UNBALANCED_TRANSACTION",
        "entries",
    ),
    (
        "balanced_only_across_currencies",
        lambda a: _with(
            a, entries=(entry(a.cash, DEBIT, 5), entry(a.euro_other, CREDIT, 5, "EUR"))
        ),
        Unbalanced,
        "UNBALANCED_TRANSACTION",
        "entries",
    ),
    (
        "zero_amount",
        lambda a: _with(a, entries=(entry(a.cash, DEBIT, 0), entry(a.revenue, CREDIT, 0))),
        InvalidInput,
        "BAD_USER_INPUT",
        "entries.0.amount",
    ),
    (
        "negative_amount",
        lambda a: _with(a, entries=(entry(a.cash, DEBIT, 5), entry(a.revenue, CREDIT, -5))),
        InvalidInput,
        "BAD_USER_INPUT",
        "entries.1.amount",
    ),
    (
        "amount_past_bigint",
        lambda a: _with(a, entries=(entry(a.cash, DEBIT, 2**63), entry(a.revenue, CREDIT, 2**63))),
        InvalidInput,
        "BAD_USER_INPUT",
        "entries.0.amount",
    ),
    (
        "unknown_currency",
        lambda a: _with(a, entries=(entry(a.cash, DEBIT, 5), entry(a.revenue, CREDIT, 5, "XYZ"))),
        InvalidInput,
        "BAD_USER_INPUT",
        "entries.1.currency",
    ),
    (
        "lowercase_currency",
        lambda a: _with(
            a, entries=(entry(a.cash, DEBIT, 5, "usd"), entry(a.revenue, CREDIT, 5, "usd"))
        ),
        InvalidInput,
        "BAD_USER_INPUT",
        "entries.0.currency",
    ),
    (
        "boolean_amount",
        lambda a: _with(a, entries=(entry(a.cash, DEBIT, 1), entry(a.revenue, CREDIT, True))),
        InvalidInput,
        "BAD_USER_INPUT",
        "entries.1.amount",
    ),
    (
        "entry_currency_differs_from_account",
        lambda a: _with(
            a,
            entries=(entry(a.euro, DEBIT, 5, "EUR"), entry(a.revenue, CREDIT, 5, "EUR")),
        ),
        CurrencyMismatch,
        "CURRENCY_MISMATCH",
        "entries.1.currency",
    ),
    (
        "unknown_account",
        lambda a: _with(a, entries=(entry(a.cash, DEBIT, 5), entry(MISSING_ID, CREDIT, 5))),
        NotFound,
        "NOT_FOUND",
        "entries.1.account_id",
    ),
    (
        "account_id_past_bigint",
        lambda a: _with(a, entries=(entry(2**64, DEBIT, 5), entry(a.revenue, CREDIT, 5))),
        NotFound,
        "NOT_FOUND",
        "entries.0.account_id",
    ),
    (
        "empty_key",
        lambda a: _with(a, idempotency_key=""),
        InvalidInput,
        "BAD_USER_INPUT",
        "idempotency_key",
    ),
    (
        "key_too_long",
        lambda a: _with(a, idempotency_key="k" * 256),
        InvalidInput,
        "BAD_USER_INPUT",
        "idempotency_key",
    ),
    ("voided_status", lambda a: _with(a, status=VOIDED), InvalidInput, "BAD_USER_INPUT", "status"),
    (
        "description_too_long",
        lambda a: _with(a, description="d" * 1001),
        InvalidInput,
        "BAD_USER_INPUT",
        "description",
    ),
    (
        "naive_effective_at",
        lambda a: _with(a, effective_at=dt.datetime(2026, 1, 1)),  # noqa: DTZ001
        InvalidInput,
        "BAD_USER_INPUT",
        "effective_at",
    ),
    (
        "guarded_account_overdrawn",
        lambda a: _with(a, entries=(entry(a.wallet, DEBIT, 1), entry(a.revenue, CREDIT, 1))),
        InsufficientFunds,
        "INSUFFICIENT_FUNDS",
        "entries.0.amount",
    ),
]


@pytest.mark.parametrize(
    ("build", "error", "code", "field"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSALS],
)
async def test_refused_requests_change_nothing(
    engine: AsyncEngine,
    service: PostingService,
    accounts: Accounts,
    tenant_id: int,
    build: Build,
    error: type[AdapterError],
    code: str,
    field: str | None,
) -> None:
    await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.revenue, 10, key="before")
    )
    before = await snapshot(engine, tenant_id)

    with pytest.raises(error) as raised:
        await service.post_transaction(tenant_id, build(accounts))

    assert type(raised.value) is error
    assert (raised.value.code, raised.value.field) == (code, field)
    assert raised.value.message
    assert await snapshot(engine, tenant_id) == before


async def test_another_tenants_account_reads_like_a_missing_one(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    other_tenant = await make_tenant(engine)
    foreign = await make_account(engine, other_tenant, normal_balance="credit")
    before, before_other = await snapshot(engine, tenant_id), await snapshot(engine, other_tenant)

    with pytest.raises(NotFound) as foreign_error:
        await service.post_transaction(tenant_id, transfer(accounts.cash, foreign, 5, key="x"))
    with pytest.raises(NotFound) as missing_error:
        await service.post_transaction(tenant_id, transfer(accounts.cash, MISSING_ID, 5, key="x"))

    assert (foreign_error.value.message, foreign_error.value.field) == (
        missing_error.value.message,
        missing_error.value.field,
    )
    assert foreign_error.value.field == "entries.1.account_id"
    assert await snapshot(engine, tenant_id) == before
    assert await snapshot(engine, other_tenant) == before_other


async def test_counters_may_not_pass_bigint(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.revenue, 2**63 - 1, key="full")
    )
    before = await snapshot(engine, tenant_id)

    with pytest.raises(InvalidInput) as raised:
        await service.post_transaction(
            tenant_id,
            transfer(accounts.cash, accounts.revenue, 1, key="over", status=PENDING),
        )

    assert raised.value.field == "entries.0.amount"
    assert await snapshot(engine, tenant_id) == before


async def test_guards_count_pending_debits_until_voided(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.wallet, 100, key="fund")
    )
    hold = await service.post_transaction(
        tenant_id, transfer(accounts.wallet, accounts.revenue, 80, key="hold", status=PENDING)
    )
    before = await snapshot(engine, tenant_id)

    with pytest.raises(InsufficientFunds) as raised:
        await service.post_transaction(
            tenant_id, transfer(accounts.wallet, accounts.revenue, 30, key="spend")
        )
    assert raised.value.field == "entries.0.amount"
    assert await snapshot(engine, tenant_id) == before

    await service.void_pending(tenant_id, hold.transaction.id)
    await service.post_transaction(
        tenant_id, transfer(accounts.wallet, accounts.revenue, 30, key="spend")
    )
    assert await counters(engine, accounts.wallet) == (30, 100, 0, 0, 4)


async def test_pending_credits_do_not_cover_a_guarded_account(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.wallet, 100, key="incoming", status=PENDING)
    )
    before = await snapshot(engine, tenant_id)

    with pytest.raises(InsufficientFunds):
        await service.post_transaction(
            tenant_id, transfer(accounts.wallet, accounts.revenue, 1, key="spend")
        )
    assert await snapshot(engine, tenant_id) == before


async def test_credit_guard_names_the_credit_entry(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    guarded = await make_account(engine, tenant_id, credits_must_not_exceed_debits=True)
    await service.post_transaction(tenant_id, transfer(guarded, accounts.revenue, 50, key="in"))
    new = NewTransaction(
        idempotency_key="out",
        entries=(
            entry(accounts.cash, DEBIT, 60),
            entry(accounts.revenue, CREDIT, 5),
            entry(guarded, CREDIT, 55),
        ),
    )
    before = await snapshot(engine, tenant_id)

    with pytest.raises(InsufficientFunds) as raised:
        await service.post_transaction(tenant_id, new)

    assert raised.value.field == "entries.2.amount"
    assert await snapshot(engine, tenant_id) == before


# --- idempotency ----------------------------------------------------------------------------


async def test_same_key_and_body_replays_the_first_result(
    engine: AsyncEngine,
    service: PostingService,
    clock: Clock,
    accounts: Accounts,
    tenant_id: int,
) -> None:
    new = transfer(accounts.cash, accounts.revenue, 300, key="once")
    first = await service.post_transaction(tenant_id, new)
    after_first = await snapshot(engine, tenant_id)
    clock.advance()  # effective_at None: a later retry must still be the same request

    replay = await service.post_transaction(tenant_id, new)

    assert replay == dataclasses.replace(first, replayed=True)
    assert await snapshot(engine, tenant_id) == after_first


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda n: dataclasses.replace(n, description="other"), id="description"),
        pytest.param(lambda n: dataclasses.replace(n, status=PENDING), id="status"),
        pytest.param(lambda n: dataclasses.replace(n, entries=n.entries[::-1]), id="entry_order"),
        pytest.param(lambda n: dataclasses.replace(n, effective_at=START), id="effective_at"),
        pytest.param(
            lambda n: dataclasses.replace(
                n, entries=tuple(dataclasses.replace(e, amount=301) for e in n.entries)
            ),
            id="amount",
        ),
    ],
)
async def test_same_key_with_another_body_is_refused_without_writing(
    engine: AsyncEngine,
    service: PostingService,
    accounts: Accounts,
    tenant_id: int,
    change: Callable[[NewTransaction], NewTransaction],
) -> None:
    new = transfer(accounts.cash, accounts.revenue, 300, key="once")
    await service.post_transaction(tenant_id, new)
    before = await snapshot(engine, tenant_id)

    with pytest.raises(IdempotencyMismatch) as raised:
        await service.post_transaction(tenant_id, change(new))

    assert (raised.value.code, raised.value.field) == ("IDEMPOTENCY_KEY_REUSED", "idempotency_key")
    assert await snapshot(engine, tenant_id) == before


async def test_effective_at_in_another_zone_is_the_same_request(
    service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    utc = dt.datetime(2026, 2, 1, 8, 0, tzinfo=dt.UTC)
    new = transfer(accounts.cash, accounts.revenue, 1, key="tz", effective_at=utc)
    first = await service.post_transaction(tenant_id, new)

    paris = utc.astimezone(dt.timezone(dt.timedelta(hours=1)))
    replay = await service.post_transaction(tenant_id, dataclasses.replace(new, effective_at=paris))

    assert (replay.replayed, replay.transaction) == (True, first.transaction)


async def test_idempotency_keys_are_scoped_to_the_tenant(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    other_tenant = await make_tenant(engine)
    debit = await make_account(engine, other_tenant)
    credit = await make_account(engine, other_tenant, normal_balance="credit")
    mine = await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.revenue, 1, key="shared")
    )

    theirs = await service.post_transaction(other_tenant, transfer(debit, credit, 2, key="shared"))

    assert theirs.replayed is False
    assert theirs.transaction.id != mine.transaction.id


async def test_concurrent_identical_requests_write_once(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    new = transfer(accounts.cash, accounts.revenue, 42, key="burst")

    results = await asyncio.gather(*(service.post_transaction(tenant_id, new) for _ in range(8)))

    assert sorted(r.replayed for r in results) == [False] + [True] * 7
    assert {(r.transaction, r.entries) for r in results} == {
        (results[0].transaction, results[0].entries)
    }
    assert await counters(engine, accounts.cash) == (42, 0, 0, 0, 1)
    assert len((await snapshot(engine, tenant_id)).transactions) == 1


# --- two-phase ------------------------------------------------------------------------------


async def test_post_pending_moves_amounts_to_posted(
    engine: AsyncEngine,
    service: PostingService,
    clock: Clock,
    accounts: Accounts,
    tenant_id: int,
) -> None:
    pending = await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.revenue, 700, key="p", status=PENDING)
    )
    clock.advance()

    result = await service.post_pending(tenant_id, pending.transaction.id)

    assert result.replayed is False
    assert result.transaction == dataclasses.replace(
        pending.transaction, status=POSTED, posted_at=clock.now
    )
    assert result.entries == tuple(dataclasses.replace(e, status=POSTED) for e in pending.entries)
    assert await counters(engine, accounts.cash) == (700, 0, 0, 0, 2)
    assert await counters(engine, accounts.revenue) == (0, 700, 0, 0, 2)
    assert await version_rows(engine, accounts.cash) == [
        (1, pending.transaction.id, 0, 0, 700, 0, START),
        (2, pending.transaction.id, 700, 0, 0, 0, START),
    ]


async def test_void_pending_releases_amounts(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    pending = await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.revenue, 700, key="p", status=PENDING)
    )

    result = await service.void_pending(tenant_id, pending.transaction.id)

    assert result.transaction == dataclasses.replace(pending.transaction, status=VOIDED)
    assert {e.status for e in result.entries} == {VOIDED}
    assert await counters(engine, accounts.cash) == (0, 0, 0, 0, 2)
    assert await counters(engine, accounts.revenue) == (0, 0, 0, 0, 2)
    assert [row[4:6] for row in await version_rows(engine, accounts.revenue)] == [(0, 700), (0, 0)]


@pytest.mark.parametrize(
    ("first", "second", "status_after"),
    [
        pytest.param("post", "post", POSTED, id="post_twice"),
        pytest.param("post", "void", POSTED, id="void_after_post"),
        pytest.param("void", "post", VOIDED, id="post_after_void"),
        pytest.param("void", "void", VOIDED, id="void_twice"),
    ],
)
async def test_terminal_transactions_never_change(
    engine: AsyncEngine,
    service: PostingService,
    accounts: Accounts,
    tenant_id: int,
    first: str,
    second: str,
    status_after: TransactionStatus,
) -> None:
    pending = await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.revenue, 700, key="p", status=PENDING)
    )
    settle = {"post": service.post_pending, "void": service.void_pending}
    await settle[first](tenant_id, pending.transaction.id)
    before = await snapshot(engine, tenant_id)

    with pytest.raises(InvalidTransition) as raised:
        await settle[second](tenant_id, pending.transaction.id)

    assert (raised.value.code, raised.value.field) == (
        "INVALID_STATE_TRANSITION",
        "transaction_id",
    )
    assert str(status_after) in raised.value.message
    assert await snapshot(engine, tenant_id) == before


async def test_transactions_posted_directly_cannot_be_settled(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    posted = await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.revenue, 5, key="direct")
    )
    before = await snapshot(engine, tenant_id)

    for settle in (service.post_pending, service.void_pending):
        with pytest.raises(InvalidTransition):
            await settle(tenant_id, posted.transaction.id)

    assert await snapshot(engine, tenant_id) == before


@pytest.mark.parametrize("operation", ["post", "void", "reverse"])
async def test_missing_and_foreign_transactions_are_not_found(
    engine: AsyncEngine,
    service: PostingService,
    accounts: Accounts,
    tenant_id: int,
    operation: str,
) -> None:
    other_tenant = await make_tenant(engine)
    debit = await make_account(engine, other_tenant)
    credit = await make_account(engine, other_tenant, normal_balance="credit")
    status = POSTED if operation == "reverse" else PENDING
    foreign = await service.post_transaction(
        other_tenant, transfer(debit, credit, 5, key="f", status=status)
    )
    before_other = await snapshot(engine, other_tenant)

    async def run(transaction_id: int) -> PostingResult:
        if operation == "post":
            return await service.post_pending(tenant_id, transaction_id)
        if operation == "void":
            return await service.void_pending(tenant_id, transaction_id)
        return await service.reverse_transaction(tenant_id, transaction_id, "rev")

    errors = []
    for transaction_id in (foreign.transaction.id, MISSING_ID, 0, 2**63):
        with pytest.raises(NotFound) as raised:
            await run(transaction_id)
        errors.append((raised.value.message, raised.value.field))

    assert set(errors) == {("ledger transaction not found", "transaction_id")}
    assert await snapshot(engine, other_tenant) == before_other
    assert (await snapshot(engine, tenant_id)).transactions == []


# --- reversal -------------------------------------------------------------------------------


async def test_reversal_nets_the_original_to_zero_once(
    engine: AsyncEngine,
    service: PostingService,
    clock: Clock,
    accounts: Accounts,
    tenant_id: int,
) -> None:
    original = await service.post_transaction(
        tenant_id,
        NewTransaction(
            idempotency_key="orig",
            entries=(
                entry(accounts.cash, DEBIT, 100),
                entry(accounts.revenue, CREDIT, 60),
                entry(accounts.wallet, CREDIT, 40),
            ),
        ),
    )
    clock.advance()

    reversal = await service.reverse_transaction(tenant_id, original.transaction.id, "rev-1")

    assert reversal.replayed is False
    assert reversal.transaction.reverses_transaction_id == original.transaction.id
    assert (reversal.transaction.status, reversal.transaction.effective_at) == (POSTED, clock.now)
    assert [(e.account_id, e.direction, e.amount) for e in reversal.entries] == [
        (accounts.cash, CREDIT, 100),
        (accounts.revenue, DEBIT, 60),
        (accounts.wallet, DEBIT, 40),
    ]
    assert await counters(engine, accounts.cash) == (100, 100, 0, 0, 2)
    assert await counters(engine, accounts.revenue) == (60, 60, 0, 0, 2)
    assert await counters(engine, accounts.wallet) == (40, 40, 0, 0, 2)

    after = await snapshot(engine, tenant_id)
    replay = await service.reverse_transaction(tenant_id, original.transaction.id, "rev-1")
    assert replay == dataclasses.replace(reversal, replayed=True)
    with pytest.raises(InvalidTransition) as raised:
        await service.reverse_transaction(tenant_id, original.transaction.id, "rev-2")
    assert raised.value.field == "transaction_id"
    assert await snapshot(engine, tenant_id) == after


@pytest.mark.parametrize("settle", ["keep_pending", "void"])
async def test_only_posted_transactions_can_be_reversed(
    engine: AsyncEngine,
    service: PostingService,
    accounts: Accounts,
    tenant_id: int,
    settle: str,
) -> None:
    pending = await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.revenue, 5, key="p", status=PENDING)
    )
    if settle == "void":
        await service.void_pending(tenant_id, pending.transaction.id)
    before = await snapshot(engine, tenant_id)

    with pytest.raises(InvalidTransition):
        await service.reverse_transaction(tenant_id, pending.transaction.id, "rev")

    assert await snapshot(engine, tenant_id) == before


async def test_reversal_key_taken_by_another_request_is_refused(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    original = await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.revenue, 5, key="orig")
    )
    before = await snapshot(engine, tenant_id)

    with pytest.raises(IdempotencyMismatch):
        await service.reverse_transaction(tenant_id, original.transaction.id, "orig")
    with pytest.raises(InvalidInput) as raised:
        await service.reverse_transaction(tenant_id, original.transaction.id, "")

    assert raised.value.field == "idempotency_key"
    assert await snapshot(engine, tenant_id) == before


async def test_reversal_refused_by_a_guard_changes_nothing(
    engine: AsyncEngine, service: PostingService, accounts: Accounts, tenant_id: int
) -> None:
    funding = await service.post_transaction(
        tenant_id, transfer(accounts.cash, accounts.wallet, 100, key="fund")
    )
    await service.post_transaction(
        tenant_id, transfer(accounts.wallet, accounts.revenue, 70, key="spend")
    )
    before = await snapshot(engine, tenant_id)

    with pytest.raises(InsufficientFunds) as raised:
        await service.reverse_transaction(tenant_id, funding.transaction.id, "unfund")

    assert raised.value.field == "entries.1.amount"
    assert await snapshot(engine, tenant_id) == before
