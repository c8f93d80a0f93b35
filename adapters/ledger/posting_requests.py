"""What a client asks the posting service to write, and the checks that need no database.

A `NewTransaction` is validated and fingerprinted here; `adapters.ledger.posting` writes it.
Error fields are snake_case segments joined by "." ("entries.2.amount"); the GraphQL layer
camel-cases them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from adapters.errors import InvalidInput, NotFound, Unbalanced
from adapters.money import MAX_MINOR_UNITS, currency_exponent
from adapters.records import Direction, TransactionStatus

__all__ = [
    "DEFAULT_EFFECTIVE_WINDOW",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_ENTRIES",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "MAX_ROW_ID",
    "EffectiveWindow",
    "NewEntry",
    "NewTransaction",
    "check_effective_at",
    "check_idempotency_key",
    "check_row_id",
    "reversal_fingerprint",
    "transaction_fingerprint",
    "validate_new_transaction",
]

MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 1000
MAX_ENTRIES = 100
MAX_ROW_ID = 2**63 - 1  # BIGINT ids; larger ones cannot exist, so they read as missing


@dataclass(frozen=True, slots=True)
class NewEntry:
    """One leg of a new transaction: `amount` in minor units (> 0) of ISO 4217 `currency`."""

    account_id: int
    direction: Direction
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class NewTransaction:
    """A transaction to post: balanced per currency, at least one debit and one credit.

    `effective_at` must be timezone-aware; None means "now" (the service's clock) and is
    fingerprinted as sent, so retries of the same request stay identical. `status` is PENDING
    (two-phase: posted or voided later) or POSTED.
    """

    idempotency_key: str
    entries: tuple[NewEntry, ...]
    description: str | None = None
    effective_at: dt.datetime | None = None
    status: TransactionStatus = TransactionStatus.POSTED


@dataclass(frozen=True, slots=True)
class EffectiveWindow:
    """How far from the service's clock a client-given `effective_at` may lie.

    `max_backdate`: how far in the past (back-dating, e.g. a late bank statement line);
    `max_future_skew`: how far in the future (a client clock running ahead). Beyond either,
    an entry would sit outside every statement a client pages through while still counting
    in balances, so it is refused.
    """

    max_backdate: dt.timedelta = dt.timedelta(days=365)
    max_future_skew: dt.timedelta = dt.timedelta(minutes=5)


DEFAULT_EFFECTIVE_WINDOW = EffectiveWindow()


def check_effective_at(
    effective_at: dt.datetime | None, now: dt.datetime, window: EffectiveWindow
) -> None:
    """Raise InvalidInput naming `effective_at` unless it lies within `window` of `now`.

    None ("now") always passes. Called with the service's clock, for new postings only: a
    replay of an earlier request answers its first result even after the window moved on.
    """
    if effective_at is None:
        return
    try:
        earliest = now - window.max_backdate
    except OverflowError:  # a window reaching before year 1 bounds nothing
        earliest = dt.datetime.min.replace(tzinfo=dt.UTC)
    try:
        latest = now + window.max_future_skew
    except OverflowError:
        latest = dt.datetime.max.replace(tzinfo=dt.UTC)
    if effective_at < earliest:
        raise InvalidInput(
            f"effective_at may be at most {window.max_backdate.days} days in the past "
            f"(not before {_rfc3339(earliest)})",
            field="effective_at",
        )
    if effective_at > latest:
        raise InvalidInput(
            f"effective_at may be at most {int(window.max_future_skew.total_seconds())} seconds "
            f"in the future (not after {_rfc3339(latest)})",
            field="effective_at",
        )


def _rfc3339(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_idempotency_key(key: str) -> None:
    """Raise InvalidInput unless `key` has 1..255 characters."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            f"idempotency key must have 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            field="idempotency_key",
        )


def check_row_id(value: int, *, what: str, field: str) -> None:
    """Raise NotFound for ids no row can have (not a positive BIGINT)."""
    if type(value) is not int or not 1 <= value <= MAX_ROW_ID:
        raise NotFound(f"{what} not found", field=field)


def validate_new_transaction(new: NewTransaction) -> None:
    """Raise InvalidInput, NotFound or Unbalanced for anything wrong in `new` itself.

    Checks, in order: key, status, description, effective_at, entry count, then each entry
    (account id, direction, amount, currency), then one debit and one credit, then balance
    per currency. Accounts are checked against the database later, by the service.
    """
    check_idempotency_key(new.idempotency_key)
    if new.status not in (TransactionStatus.PENDING, TransactionStatus.POSTED):
        raise InvalidInput("status must be pending or posted", field="status")
    if new.description is not None and (
        not isinstance(new.description, str) or len(new.description) > MAX_DESCRIPTION_LENGTH
    ):
        raise InvalidInput(
            f"description must have at most {MAX_DESCRIPTION_LENGTH} characters",
            field="description",
        )
    if new.effective_at is not None and (
        not isinstance(new.effective_at, dt.datetime) or new.effective_at.utcoffset() is None
    ):
        raise InvalidInput("effective_at must be a timezone-aware time", field="effective_at")
    if len(new.entries) > MAX_ENTRIES:
        raise InvalidInput(f"at most {MAX_ENTRIES} entries per transaction", field="entries")

    totals: dict[str, dict[Direction, int]] = {}
    for index, entry in enumerate(new.entries):
        _validate_entry(index, entry)
        by_direction = totals.setdefault(entry.currency, {Direction.DEBIT: 0, Direction.CREDIT: 0})
        by_direction[Direction(entry.direction)] += entry.amount

    directions = {Direction(entry.direction) for entry in new.entries}
    if directions != {Direction.DEBIT, Direction.CREDIT}:
        raise Unbalanced(
            "a transaction needs at least one debit and one credit entry", field="entries"
        )
    for currency, by_direction in sorted(totals.items()):
        debits, credits = by_direction[Direction.DEBIT], by_direction[Direction.CREDIT]
        if debits != credits:
            raise Unbalanced(
                f"{currency} debits ({debits}) and credits ({credits}) must be equal",
                field="entries",
            )


def _validate_entry(index: int, entry: NewEntry) -> None:
    prefix = f"entries.{index}"
    check_row_id(entry.account_id, what="ledger account", field=f"{prefix}.account_id")
    if entry.direction not in (Direction.DEBIT, Direction.CREDIT):
        raise InvalidInput("direction must be debit or credit", field=f"{prefix}.direction")
    if type(entry.amount) is not int or not 0 < entry.amount <= MAX_MINOR_UNITS:
        raise InvalidInput(
            f"amount must be a whole number of minor units from 1 to {MAX_MINOR_UNITS}",
            field=f"{prefix}.amount",
        )
    if not isinstance(entry.currency, str):
        raise InvalidInput("currency must be an ISO 4217 code", field=f"{prefix}.currency")
    currency_exponent(entry.currency, field=f"{prefix}.currency")


def transaction_fingerprint(new: NewTransaction) -> str:
    """sha256 hex of the request as sent: entries in order, effective_at in UTC or null."""
    effective_at = None
    if new.effective_at is not None:
        effective_at = new.effective_at.astimezone(dt.UTC).isoformat(timespec="microseconds")
    return _digest(
        {
            "kind": "transaction",
            "description": new.description,
            "effective_at": effective_at,
            "entries": [
                [entry.account_id, str(entry.direction), entry.amount, entry.currency]
                for entry in new.entries
            ],
            "status": str(new.status),
        }
    )


def reversal_fingerprint(transaction_id: int) -> str:
    """sha256 hex of a reversal request; never equal to a transaction's fingerprint."""
    return _digest({"kind": "reversal", "reverses_transaction_id": transaction_id})


def _digest(body: dict[str, object]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
