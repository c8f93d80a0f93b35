"""The posting service: balanced transactions written atomically and idempotently.

DESIGN.md, "Core ledger model": each call is one database transaction. The idempotency key is
checked first; touched accounts are locked in ascending id order (SELECT ... FOR UPDATE on
PostgreSQL, BEGIN IMMEDIATE on SQLite); entries, counters (+1 `lock_version` per touched
account) and one version row per touched account are written together. Every method takes
`tenant_id`, and another tenant's rows read exactly like missing ones.

Raises (adapters.errors): InvalidInput, NotFound, Unbalanced, CurrencyMismatch,
InsufficientFunds, IdempotencyMismatch and InvalidTransition (both Conflict).

After a write commits (never before, never for a replay or a refused write) one LedgerEvent is
published to the service's EventPublisher, if it has one (adapters/events.py).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, and_, bindparam, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.audit.records import Actor, posting_event
from adapters.audit.store import insert_events
from adapters.database_errors import DatabaseUnavailable, is_transient_database_error
from adapters.errors import (
    Conflict,
    CurrencyMismatch,
    DeadlineExceeded,
    IdempotencyMismatch,
    InsufficientFunds,
    InvalidTransition,
    LockTimeout,
    NotFound,
)
from adapters.events import EventPublisher, LedgerEvent
from adapters.ledger.data_versions import bump_data_version
from adapters.ledger.engine import WRITE_OPTION
from adapters.ledger.posting_balances import (
    Deltas,
    add_change,
    apply_changes,
    check_limits,
    lock_accounts,
)
from adapters.ledger.posting_requests import (
    DEFAULT_EFFECTIVE_WINDOW,
    EffectiveWindow,
    NewEntry,
    NewTransaction,
    check_effective_at,
    check_idempotency_key,
    check_row_id,
    reversal_fingerprint,
    transaction_fingerprint,
    validate_new_transaction,
)
from adapters.ledger.tables import ledger_accounts, ledger_entries, ledger_transactions
from adapters.money import currency_exponent
from adapters.records import Direction, LedgerEntry, LedgerTransaction, TransactionStatus

__all__ = ["NewEntry", "NewTransaction", "PostingResult", "PostingService"]

_FLIPPED = {Direction.DEBIT: Direction.CREDIT, Direction.CREDIT: Direction.DEBIT}
# Attempts per call: a lost race for an idempotency key is retried once and then replays; a
# transient database failure (lost connection, serialization failure, deadlock, pool timeout)
# is retried once too, which the idempotency key makes safe even if the commit had landed.
_ATTEMPTS = 2

# Statements built once: a statement object keeps its cache key, so a posting binds values
# instead of building and keying each statement anew.
_BY_KEY = select(ledger_transactions).where(
    ledger_transactions.c.tenant_id == bindparam("p_tenant_id"),
    ledger_transactions.c.idempotency_key == bindparam("p_key"),
)
_INSERT_TRANSACTION = insert(ledger_transactions).returning(*ledger_transactions.c)
_INSERT_ENTRIES = insert(ledger_entries).returning(*ledger_entries.c, sort_by_parameter_order=True)


@dataclass(frozen=True, slots=True)
class PostingResult:
    """The transaction and its entries (in request order) after a call.

    `replayed` is True when an earlier request with the same idempotency key and body is
    answered again; the transaction is then returned as it is now. `account_versions`: each
    account this call changed, with its lock_version after the change (empty for a replay).
    """

    transaction: LedgerTransaction
    entries: tuple[LedgerEntry, ...]
    replayed: bool
    # What this call did rather than what the transaction is: a replay equals the first result.
    account_versions: tuple[tuple[int, int], ...] = field(default=(), compare=False)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _KeyRace(Exception):
    """A concurrent request committed the same idempotency key first."""


class PostingService:
    """Writes ledger transactions for one engine; safe to share across concurrent tasks."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], dt.datetime] = _utc_now,
        effective_window: EffectiveWindow = DEFAULT_EFFECTIVE_WINDOW,
        lock_timeout_ms: int | None = None,
        events: EventPublisher | None = None,
    ) -> None:
        """`events`: where committed writes are announced (None: nowhere)."""
        self._engine = engine
        self._events = events
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._clock = clock
        self._effective_window = effective_window
        self._lock_timeout_ms = lock_timeout_ms
        self._deadline: float | None = None
        self._actor: Actor | None = None

    def for_request(self, *, deadline: float | None, actor: Actor | None) -> PostingService:
        """A view for one request: its transactions stop at `deadline` (event-loop clock;
        `SET LOCAL statement_timeout` on PostgreSQL) and each write records an audit event
        for `actor` in the same transaction (adapters.audit)."""
        view = copy.copy(self)
        view._deadline = deadline
        view._actor = actor
        return view

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction, bounded by the lock timeout and the deadline.

        On PostgreSQL one statement first sets both for this transaction only (`SET LOCAL`
        through set_config): a lock wait longer than the lock timeout raises LockTimeout
        (retryable), a statement past the deadline DeadlineExceeded; both roll back.
        """
        timeout: float | None = None
        if self._deadline is not None:
            timeout = self._deadline - asyncio.get_running_loop().time()
            if timeout <= 0:
                raise DeadlineExceeded("the operation's deadline passed before this write")
        try:
            async with asyncio.timeout(timeout), self._writer.begin() as connection:
                if self._engine.dialect.name == "postgresql":
                    await _set_local_timeouts(connection, self._lock_timeout_ms, timeout)
                yield connection
        except TimeoutError:
            raise DeadlineExceeded("the write ran past the operation's deadline") from None
        except DBAPIError as error:
            state = _sqlstate(error)
            if state == "55P03":  # lock_not_available
                raise LockTimeout(
                    "the accounts are locked by another write; retry", field="entries"
                ) from error
            if state == "57014":  # query_canceled: statement_timeout
                raise DeadlineExceeded("the write ran past the operation's deadline") from error
            raise

    async def _audit(
        self, connection: AsyncConnection, action: str, result: PostingResult
    ) -> PostingResult:
        """Record the write in audit_events inside its transaction (not replays: they write
        nothing). A posting and its audit row commit together or not at all."""
        if self._actor is not None and not result.replayed:
            event = posting_event(self._actor, action, result.transaction.id, self._clock())
            await insert_events(connection, [event])
        return result

    async def post_transaction(self, tenant_id: int, new: NewTransaction) -> PostingResult:
        """Post `new` (pending or posted), or replay the earlier result for its key."""
        validate_new_transaction(new)
        fingerprint = transaction_fingerprint(new)

        async def write(connection: AsyncConnection) -> PostingResult:
            earlier = await _replay(connection, tenant_id, new.idempotency_key, fingerprint)
            if earlier is not None:
                return earlier
            check_effective_at(new.effective_at, self._clock(), self._effective_window)
            result = await self._write(connection, tenant_id, new, fingerprint, None)
            return await self._audit(connection, "post", result)

        return await self._announce(tenant_id, "post", await self._in_write_transaction(write))

    async def post_pending(self, tenant_id: int, transaction_id: int) -> PostingResult:
        """Move a pending transaction's amounts to the posted counters (pending -> posted)."""
        return await self._settle(tenant_id, transaction_id, TransactionStatus.POSTED)

    async def void_pending(self, tenant_id: int, transaction_id: int) -> PostingResult:
        """Release a pending transaction's amounts (pending -> voided)."""
        return await self._settle(tenant_id, transaction_id, TransactionStatus.VOIDED)

    async def reverse_transaction(
        self, tenant_id: int, transaction_id: int, idempotency_key: str
    ) -> PostingResult:
        """Post, once, a transaction with every entry of a posted one flipped.

        The reversal is effective now and netting the original to zero; a second reversal
        (with another key) raises InvalidTransition, the same key replays the first.
        """
        check_idempotency_key(idempotency_key)
        check_row_id(transaction_id, what="ledger transaction", field="transaction_id")
        fingerprint = reversal_fingerprint(transaction_id)

        async def write(connection: AsyncConnection) -> PostingResult:
            # Lock the original first: same-key retries queue here, then replay.
            original = await _lock_transaction(connection, tenant_id, transaction_id)
            earlier = await _replay(connection, tenant_id, idempotency_key, fingerprint)
            if earlier is not None:
                return earlier
            if original.status != TransactionStatus.POSTED:
                raise InvalidTransition(
                    f"only posted transactions can be reversed; this one is {original.status}",
                    field="transaction_id",
                )
            await _ensure_not_reversed(connection, tenant_id, transaction_id)
            reversal = NewTransaction(
                idempotency_key=idempotency_key,
                entries=tuple(
                    NewEntry(
                        int(row.account_id),
                        _FLIPPED[Direction(row.direction)],
                        int(row.amount),
                        str(row.currency),
                    )
                    for row in await _entry_rows(connection, tenant_id, transaction_id)
                ),
                description=f"Reversal of transaction {transaction_id}",
            )
            result = await self._write(connection, tenant_id, reversal, fingerprint, transaction_id)
            return await self._audit(connection, "reverse", result)

        return await self._announce(tenant_id, "reverse", await self._in_write_transaction(write))

    async def _announce(self, tenant_id: int, action: str, result: PostingResult) -> PostingResult:
        """Publish a committed write (called after its transaction ended); replays are not
        writes and publish nothing."""
        if self._events is not None and not result.replayed and result.account_versions:
            event = LedgerEvent(tenant_id, result.transaction.id, action, result.account_versions)
            await self._events.publish(event)
        return result

    async def _in_write_transaction(
        self, work: Callable[[AsyncConnection], Awaitable[PostingResult]]
    ) -> PostingResult:
        """Run `work` in one write transaction; once more if it lost an idempotency-key race
        or the database failed transiently (DatabaseUnavailable when it fails again)."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._transaction() as connection:
                    return await work(connection)
            except _KeyRace as race:
                if attempt == _ATTEMPTS:
                    raise Conflict(
                        "a concurrent request with this idempotency key interfered; retry",
                        field="idempotency_key",
                    ) from race
            except Exception as error:
                if not is_transient_database_error(error):
                    raise
                if attempt == _ATTEMPTS:
                    raise DatabaseUnavailable(
                        "the database could not complete the posting; retry it"
                    ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write(
        self,
        connection: AsyncConnection,
        tenant_id: int,
        new: NewTransaction,
        fingerprint: str,
        reverses_transaction_id: int | None,
    ) -> PostingResult:
        """Validate against the locked accounts, then write everything; all or nothing."""
        accounts = await lock_accounts(connection, tenant_id, {e.account_id for e in new.entries})
        for index, entry in enumerate(new.entries):
            account = accounts.get(entry.account_id)
            if account is None:
                raise NotFound("ledger account not found", field=f"entries.{index}.account_id")
            if account.currency != entry.currency:
                raise CurrencyMismatch(
                    f"entry currency {entry.currency} differs from the account's "
                    f"{account.currency}",
                    field=f"entries.{index}.currency",
                )
            if account.currency_exponent != currency_exponent(entry.currency):
                # Amounts arrive in minor units of ISO 4217's exponent; the account's amounts
                # are read with its stored one. Never mix the two scales.
                raise CurrencyMismatch(
                    f"the account keeps {account.currency} with {account.currency_exponent}"
                    " decimals, ISO 4217 now says otherwise; amounts cannot be converted",
                    field=f"entries.{index}.currency",
                )
        status = TransactionStatus(new.status)
        deltas: Deltas = {}
        for entry in new.entries:
            add_change(deltas, entry.account_id, f"{status}_{entry.direction}s", entry.amount)
        check_limits(accounts, deltas, new.entries)

        now = self._clock()
        effective_at = now if new.effective_at is None else new.effective_at
        async with _translated_integrity_errors():
            values = {
                "tenant_id": tenant_id,
                "idempotency_key": new.idempotency_key,
                "request_fingerprint": fingerprint,
                "description": new.description,
                "status": str(status),
                "effective_at": effective_at,
                "posted_at": now if status == TransactionStatus.POSTED else None,
                "reverses_transaction_id": reverses_transaction_id,
                "metadata": {},
            }
            transaction = (await connection.execute(_INSERT_TRANSACTION, values)).one()
            versions = await apply_changes(
                connection, tenant_id, deltas, int(transaction.id), transaction.effective_at
            )
            entries = await connection.execute(
                _INSERT_ENTRIES,
                [
                    {
                        "tenant_id": tenant_id,
                        "transaction_id": transaction.id,
                        "account_id": entry.account_id,
                        "direction": str(entry.direction),
                        "amount": entry.amount,
                        "currency": entry.currency,
                        "status": str(status),
                        "effective_at": transaction.effective_at,
                    }
                    for entry in new.entries
                ],
            )
            await bump_data_version(connection, tenant_id)  # last: its row lock is held briefly
            exponents = {i: int(a.currency_exponent) for i, a in accounts.items()}
            result = _result(transaction, entries.all(), exponents, replayed=False)
            return dataclasses.replace(result, account_versions=versions)

    async def _settle(
        self, tenant_id: int, transaction_id: int, target: TransactionStatus
    ) -> PostingResult:
        check_row_id(transaction_id, what="ledger transaction", field="transaction_id")
        verb = "posted" if target == TransactionStatus.POSTED else "voided"
        action = "post_pending" if target == TransactionStatus.POSTED else "void"
        async with self._transaction() as connection:
            transaction = await _lock_transaction(connection, tenant_id, transaction_id)
            if transaction.status != TransactionStatus.PENDING:
                raise InvalidTransition(
                    f"only pending transactions can be {verb}; this one is {transaction.status}",
                    field="transaction_id",
                )
            deltas: Deltas = {}
            rows = await _entry_rows(connection, tenant_id, transaction_id)
            for entry in rows:
                account_id, amount = int(entry.account_id), int(entry.amount)
                add_change(deltas, account_id, f"pending_{entry.direction}s", -amount)
                if target == TransactionStatus.POSTED:
                    add_change(deltas, account_id, f"posted_{entry.direction}s", amount)
            async with _translated_integrity_errors():
                versions = await apply_changes(
                    connection, tenant_id, deltas, transaction_id, transaction.effective_at
                )
            settled = (
                await connection.execute(
                    update(ledger_transactions)
                    .where(
                        ledger_transactions.c.tenant_id == tenant_id,
                        ledger_transactions.c.id == transaction_id,
                    )
                    .values(
                        status=str(target),
                        posted_at=self._clock() if target == TransactionStatus.POSTED else None,
                    )
                    .returning(*ledger_transactions.c)
                )
            ).one()
            entries = await connection.execute(
                update(ledger_entries)
                .where(
                    ledger_entries.c.tenant_id == tenant_id,
                    ledger_entries.c.transaction_id == transaction_id,
                )
                .values(status=str(target))
                .returning(*ledger_entries.c)
            )
            await bump_data_version(connection, tenant_id)  # last: its row lock is held briefly
            result = await self._audit(
                connection,
                action,
                _result(settled, entries.all(), _exponents(rows), replayed=False),
            )
        return await self._announce(
            tenant_id, action, dataclasses.replace(result, account_versions=versions)
        )


async def _set_local_timeouts(
    connection: AsyncConnection, lock_timeout_ms: int | None, statement_seconds: float | None
) -> None:
    settings: dict[str, str] = {}
    if lock_timeout_ms is not None:
        settings["lock_timeout"] = f"{lock_timeout_ms}ms"
    if statement_seconds is not None:
        settings["statement_timeout"] = f"{max(1, int(statement_seconds * 1000))}ms"
    if not settings:
        return
    calls = ", ".join(f"set_config('{name}', :{name}, true)" for name in settings)
    await connection.execute(text(f"select {calls}"), settings)


def _sqlstate(error: DBAPIError) -> str | None:
    """The SQLSTATE of a database error (asyncpg's, through SQLAlchemy's adaptation)."""
    for candidate in (error.orig, getattr(error.orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


async def _replay(
    connection: AsyncConnection, tenant_id: int, key: str, fingerprint: str
) -> PostingResult | None:
    """The earlier result for `key`, None when unused; IdempotencyMismatch for another body."""
    transaction = (
        await connection.execute(_BY_KEY, {"p_tenant_id": tenant_id, "p_key": key})
    ).one_or_none()
    if transaction is None:
        return None
    if transaction.request_fingerprint != fingerprint:
        raise IdempotencyMismatch(
            "this idempotency key was already used with a different request",
            field="idempotency_key",
        )
    entries = await _entry_rows(connection, tenant_id, transaction.id)
    return _result(transaction, entries, _exponents(entries), replayed=True)


async def _lock_transaction(
    connection: AsyncConnection, tenant_id: int, transaction_id: int
) -> Row[Any]:
    transaction = (
        await connection.execute(
            select(ledger_transactions)
            .where(
                ledger_transactions.c.id == transaction_id,
                ledger_transactions.c.tenant_id == tenant_id,
            )
            .with_for_update()
        )
    ).one_or_none()
    if transaction is None:
        raise NotFound("ledger transaction not found", field="transaction_id")
    return transaction


async def _ensure_not_reversed(
    connection: AsyncConnection, tenant_id: int, transaction_id: int
) -> None:
    reversal = await connection.scalar(
        select(ledger_transactions.c.id).where(
            ledger_transactions.c.tenant_id == tenant_id,
            ledger_transactions.c.reverses_transaction_id == transaction_id,
        )
    )
    if reversal is not None:
        raise InvalidTransition(
            f"transaction was already reversed by transaction {reversal}", field="transaction_id"
        )


async def _entry_rows(
    connection: AsyncConnection, tenant_id: int, transaction_id: int
) -> Sequence[Row[Any]]:
    """The transaction's entries, each with its account's stored `currency_exponent`."""
    account = and_(
        ledger_accounts.c.tenant_id == ledger_entries.c.tenant_id,
        ledger_accounts.c.id == ledger_entries.c.account_id,
    )
    result = await connection.execute(
        select(ledger_entries, ledger_accounts.c.currency_exponent)
        .join_from(ledger_entries, ledger_accounts, account)
        .where(
            ledger_entries.c.tenant_id == tenant_id,
            ledger_entries.c.transaction_id == transaction_id,
        )
        .order_by(ledger_entries.c.id)
    )
    return result.all()


def _exponents(entries: Sequence[Row[Any]]) -> dict[int, int]:
    """Account id -> stored exponent, from rows of `_entry_rows`."""
    return {int(row.account_id): int(row.currency_exponent) for row in entries}


@asynccontextmanager
async def _translated_integrity_errors() -> AsyncIterator[None]:
    """Turn the database's constraint refusals into adapter errors; others propagate."""
    try:
        yield
    except IntegrityError as error:
        text = str(error.orig).lower()
        is_unique = "unique" in text  # PostgreSQL and SQLite both say so
        if is_unique and "idempotency_key" in text:
            raise _KeyRace from error
        if is_unique and "reverses_transaction_id" in text:
            raise InvalidTransition(
                "transaction was already reversed", field="transaction_id"
            ) from error
        if "must_not_exceed" in text or "counters_non_negative" in text:
            raise InsufficientFunds(
                "insufficient funds: an overdraft guard refused the entries", field="entries"
            ) from error
        raise


def _result(
    transaction: Row[Any],
    entries: Sequence[Row[Any]],
    exponents: dict[int, int],
    *,
    replayed: bool,
) -> PostingResult:
    """`exponents`: each account's stored exponent, the scale its entries' amounts are in."""
    return PostingResult(
        transaction=LedgerTransaction(
            id=int(transaction.id),
            tenant_id=int(transaction.tenant_id),
            idempotency_key=transaction.idempotency_key,
            description=transaction.description,
            status=TransactionStatus(transaction.status),
            effective_at=transaction.effective_at,
            posted_at=transaction.posted_at,
            reverses_transaction_id=transaction.reverses_transaction_id,
            created_at=transaction.created_at,
        ),
        entries=tuple(
            LedgerEntry(
                id=int(row.id),
                tenant_id=int(row.tenant_id),
                transaction_id=int(row.transaction_id),
                account_id=int(row.account_id),
                direction=Direction(row.direction),
                amount=int(row.amount),
                currency=row.currency,
                currency_exponent=exponents[int(row.account_id)],
                status=TransactionStatus(row.status),
                effective_at=row.effective_at,
                created_at=row.created_at,
            )
            for row in sorted(entries, key=lambda row: int(row.id))
        ),
        replayed=replayed,
    )
