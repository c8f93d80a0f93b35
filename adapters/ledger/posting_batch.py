"""Many postings in one database transaction: the posting service's rules, fewer statements.

For bulk bookers (reconciliation books a month of processor movements). Each NewTransaction
is validated and fingerprinted as `PostingService.post_transaction` does it. In one write
transaction: the touched accounts are locked once in ascending id order; then keys already in
the ledger replay (same body) or answer IdempotencyMismatch, without writing; every other
transaction is checked in order against the running counters (account, currency, ISO exponent,
BIGINT bounds, overdraft guards) and a failing one is left out with its error while the rest
go on; then one INSERT of the transactions, one of the entries, one UPDATE per touched account
(its final counters, lock_version + one per change) and one INSERT of the version rows (one per
transaction and touched account, in order, with the counters after that transaction), and the
data version bumped last. So a batch costs a fixed number of statements plus one per account,
whatever its size, and leaves the same rows as posting its transactions one by one.

A batch that loses a key race to a concurrent writer (unique idempotency key) is rolled back
and run again once: the winner's keys then replay. No audit event is written: batches are the
gateway's own bookings, not a caller's request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ARRAY, Row, String, any_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.errors import (
    AdapterError,
    Conflict,
    CurrencyMismatch,
    IdempotencyMismatch,
    NotFound,
)
from adapters.ledger.data_versions import bump_data_version
from adapters.ledger.engine import WRITE_OPTION
from adapters.ledger.posting_balances import (
    COUNTERS,
    Deltas,
    add_change,
    check_limits,
    lock_accounts,
)
from adapters.ledger.posting_requests import (
    DEFAULT_EFFECTIVE_WINDOW,
    EffectiveWindow,
    NewTransaction,
    check_effective_at,
    transaction_fingerprint,
    validate_new_transaction,
)
from adapters.ledger.tables import (
    ledger_account_versions,
    ledger_accounts,
    ledger_entries,
    ledger_transactions,
)
from adapters.money import currency_exponent
from adapters.records import TransactionStatus

__all__ = ["BatchOutcome", "post_batch"]

_KEY_CHUNK = 500
_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What became of one transaction of a batch: its id (written now or replayed), or why
    it was not written."""

    idempotency_key: str
    transaction_id: int | None
    replayed: bool
    error: AdapterError | None


class _Running:
    """An account's counters as the batch changes them (read like a locked row)."""

    def __init__(self, row: Row[Any]) -> None:
        self._mapping = dict(row._mapping)
        self.debits_must_not_exceed_credits = row.debits_must_not_exceed_credits
        self.credits_must_not_exceed_debits = row.credits_must_not_exceed_debits
        self.currency = row.currency
        self.currency_exponent = int(row.currency_exponent)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def post_batch(
    engine: AsyncEngine,
    tenant_id: int,
    batch: Sequence[NewTransaction],
    *,
    effective_window: EffectiveWindow = DEFAULT_EFFECTIVE_WINDOW,
    clock: Callable[[], dt.datetime] = _utc_now,
) -> list[BatchOutcome]:
    """Post `batch` in one transaction; one outcome per transaction, in order."""
    checked: list[tuple[NewTransaction, str] | BatchOutcome] = []
    now = clock()
    for new in batch:
        try:
            validate_new_transaction(new)
        except AdapterError as error:
            checked.append(BatchOutcome(new.idempotency_key, None, False, error))
        else:
            checked.append((new, transaction_fingerprint(new)))
    writer = engine.execution_options(**{WRITE_OPTION: True})
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            async with writer.begin() as connection:
                return await _write(connection, tenant_id, checked, now, effective_window)
        except IntegrityError as error:
            if "idempotency_key" not in str(error.orig):
                raise
            if attempt == _ATTEMPTS:
                raise Conflict(
                    "concurrent writers interfered with this batch; retry", field="idempotency_key"
                ) from error
    raise AssertionError("unreachable")  # pragma: no cover


async def _existing(
    connection: AsyncConnection, tenant_id: int, keys: list[str]
) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    t = ledger_transactions.c
    postgres = connection.dialect.name == "postgresql"
    for start in range(0, len(keys), _KEY_CHUNK):
        chunk = keys[start : start + _KEY_CHUNK]
        # On PostgreSQL one array parameter: a prepared statement's generic plan for 500 IN
        # parameters may filter every row of the tenant against each (seconds per batch),
        # `= ANY($1)` keeps the unique index.
        matches = (
            t.idempotency_key == any_(bindparam("keys", chunk, type_=ARRAY(String)))
            if postgres
            else t.idempotency_key.in_(chunk)
        )
        rows = await connection.execute(
            select(t.idempotency_key, t.id, t.request_fingerprint).where(
                t.tenant_id == tenant_id, matches
            )
        )
        found.update((row.idempotency_key, (int(row.id), row.request_fingerprint)) for row in rows)
    return found


def _mismatch(key: str) -> BatchOutcome:
    error = IdempotencyMismatch(
        "this idempotency key was already used with a different request", field="idempotency_key"
    )
    return BatchOutcome(key, None, False, error)


async def _write(
    connection: AsyncConnection,
    tenant_id: int,
    checked: list[tuple[NewTransaction, str] | BatchOutcome],
    now: dt.datetime,
    effective_window: EffectiveWindow,
) -> list[BatchOutcome]:
    valid = [item for item in checked if not isinstance(item, BatchOutcome)]
    locked = await lock_accounts(
        connection, tenant_id, {e.account_id for new, _ in valid for e in new.entries}
    )
    running = {account_id: _Running(row) for account_id, row in locked.items()}
    earlier = await _existing(
        connection, tenant_id, list({new.idempotency_key for new, _ in valid})
    )
    outcomes: list[BatchOutcome | None] = []
    writes: list[tuple[int, NewTransaction, str, Deltas]] = []  # (position, new, print, deltas)
    claimed: dict[str, str] = {}
    for item in checked:
        if isinstance(item, BatchOutcome):
            outcomes.append(item)
            continue
        new, fingerprint = item
        key = new.idempotency_key
        if key in earlier or key in claimed:
            same = (earlier[key][1] if key in earlier else claimed[key]) == fingerprint
            outcomes.append(
                BatchOutcome(key, earlier[key][0] if key in earlier else None, True, None)
                if same
                else _mismatch(key)
            )
            continue
        try:
            # Like the posting service: only new postings must lie in the window (a replay
            # answers its first result even after the window moved on).
            check_effective_at(new.effective_at, now, effective_window)
            deltas = _apply(running, new)
        except AdapterError as error:
            outcomes.append(BatchOutcome(key, None, False, error))
            continue
        claimed[key] = fingerprint
        writes.append((len(outcomes), new, fingerprint, deltas))
        outcomes.append(None)
    if writes:
        await _insert(connection, tenant_id, writes, locked, now, outcomes)
    # Replays of keys this batch wrote take the id it gave them.
    ids = {o.idempotency_key: o.transaction_id for o in outcomes if o and not o.replayed}
    return [
        BatchOutcome(o.idempotency_key, ids.get(o.idempotency_key), True, None)
        if o is not None and o.replayed and o.transaction_id is None
        else cast(BatchOutcome, o)
        for o in outcomes
    ]


def _apply(running: dict[int, _Running], new: NewTransaction) -> Deltas:
    """The transaction's changes, checked against and applied to the running counters."""
    for index, entry in enumerate(new.entries):
        account = running.get(entry.account_id)
        if account is None:
            raise NotFound("ledger account not found", field=f"entries.{index}.account_id")
        if account.currency != entry.currency:
            raise CurrencyMismatch(
                f"entry currency {entry.currency} differs from the account's {account.currency}",
                field=f"entries.{index}.currency",
            )
        if account.currency_exponent != currency_exponent(entry.currency):
            raise CurrencyMismatch(
                f"the account keeps {account.currency} with {account.currency_exponent}"
                " decimals, ISO 4217 now says otherwise; amounts cannot be converted",
                field=f"entries.{index}.currency",
            )
    status = TransactionStatus(new.status)
    deltas: Deltas = {}
    for entry in new.entries:
        add_change(deltas, entry.account_id, f"{status}_{entry.direction}s", entry.amount)
    check_limits(cast("dict[int, Row[Any]]", running), deltas, new.entries)
    for account_id, changes in deltas.items():
        counters = running[account_id]._mapping
        for counter in COUNTERS:
            counters[counter] += changes[counter]
    return deltas


async def _insert(
    connection: AsyncConnection,
    tenant_id: int,
    writes: list[tuple[int, NewTransaction, str, Deltas]],
    locked: dict[int, Row[Any]],
    now: dt.datetime,
    outcomes: list[BatchOutcome | None],
) -> None:
    rows = await connection.execute(
        insert(ledger_transactions).returning(
            ledger_transactions.c.id, ledger_transactions.c.effective_at,
            sort_by_parameter_order=True,
        ),
        [
            {
                "tenant_id": tenant_id,
                "idempotency_key": new.idempotency_key,
                "request_fingerprint": fingerprint,
                "description": new.description,
                "status": str(new.status),
                "effective_at": now if new.effective_at is None else new.effective_at,
                "posted_at": now if new.status == TransactionStatus.POSTED else None,
                "reverses_transaction_id": None,
                "metadata": {},
            }
            for _, new, fingerprint, _ in writes
        ],
    )  # fmt: skip
    inserted = [(int(row.id), row.effective_at) for row in rows]
    entries: list[dict[str, Any]] = []
    versions: list[dict[str, Any]] = []
    counters = {
        account_id: {c: int(row._mapping[c]) for c in COUNTERS}
        for account_id, row in locked.items()
    }
    lock_versions = {account_id: int(row.lock_version) for account_id, row in locked.items()}
    for (position, new, _, deltas), (transaction_id, effective_at) in zip(
        writes, inserted, strict=True
    ):
        outcomes[position] = BatchOutcome(new.idempotency_key, transaction_id, False, None)
        entries.extend(
            {
                "tenant_id": tenant_id, "transaction_id": transaction_id,
                "account_id": entry.account_id, "direction": str(entry.direction),
                "amount": entry.amount, "currency": entry.currency, "status": str(new.status),
                "effective_at": effective_at,
            }
            for entry in new.entries
        )  # fmt: skip
        for account_id, changes in sorted(deltas.items()):
            for counter in COUNTERS:
                counters[account_id][counter] += changes[counter]
            lock_versions[account_id] += 1
            versions.append(
                {
                    "account_id": account_id, "tenant_id": tenant_id,
                    "transaction_id": transaction_id, "effective_at": effective_at,
                    "lock_version": lock_versions[account_id], **counters[account_id],
                }
            )  # fmt: skip
    await connection.execute(insert(ledger_entries), entries)
    columns = ledger_accounts.c
    for account_id in sorted({v["account_id"] for v in versions}):
        await connection.execute(
            update(ledger_accounts)
            .where(columns.tenant_id == tenant_id, columns.id == account_id)
            .values(**counters[account_id], lock_version=lock_versions[account_id])
        )
    await connection.execute(insert(ledger_account_versions), versions)
    await bump_data_version(connection, tenant_id)  # last: its row lock is held briefly
