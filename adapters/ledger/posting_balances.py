"""Balance changes of the posting service: locked accounts, limits, counters, version rows.

Counters only ever change through `apply_changes`, which bumps `lock_version` by one per
touched account and appends that account's version row, inside the caller's transaction.
Every statement names the tenant as well as the row (the composite keys of adapters.ledger.tables
refuse a row of another tenant even if a caller got an id wrong).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.errors import InsufficientFunds, InvalidInput
from adapters.ledger.posting_requests import NewEntry
from adapters.ledger.tables import ledger_account_versions, ledger_accounts
from adapters.money import MAX_MINOR_UNITS
from adapters.records import Direction

__all__ = ["COUNTERS", "Deltas", "add_change", "apply_changes", "check_limits", "lock_accounts"]

COUNTERS = ("posted_debits", "posted_credits", "pending_debits", "pending_credits")

Deltas = dict[int, dict[str, int]]
"""Account id -> counter name -> signed change."""


# Built once: a statement object keeps its cache key, so a posting only binds values instead
# of building and keying each statement anew (a third of a posting's CPU went to that).
_columns = ledger_accounts.c
_LOCK_ACCOUNTS = (
    select(ledger_accounts)
    .where(
        _columns.tenant_id == bindparam("p_tenant_id"),
        _columns.id.in_(bindparam("p_account_ids", expanding=True)),
    )
    .order_by(_columns.id)
    .with_for_update()
)
_CHANGE_COUNTERS = (
    update(ledger_accounts)
    .where(
        _columns.tenant_id == bindparam("p_tenant_id"),
        _columns.id == bindparam("p_account_id"),
    )
    .values(
        {counter: _columns[counter] + bindparam(f"p_{counter}") for counter in COUNTERS}
        | {"lock_version": _columns.lock_version + 1}
    )
    .returning(_columns.lock_version, *(_columns[c] for c in COUNTERS))
)
_INSERT_VERSIONS = insert(ledger_account_versions)


async def lock_accounts(
    connection: AsyncConnection, tenant_id: int, account_ids: Iterable[int]
) -> dict[int, Row[Any]]:
    """This tenant's accounts among `account_ids`, row-locked in ascending id order."""
    rows = await connection.execute(
        _LOCK_ACCOUNTS, {"p_tenant_id": tenant_id, "p_account_ids": sorted(account_ids)}
    )
    return {int(row.id): row for row in rows}


def add_change(deltas: Deltas, account_id: int, counter: str, amount: int) -> None:
    changes = deltas.setdefault(account_id, dict.fromkeys(COUNTERS, 0))
    changes[counter] += amount


def check_limits(
    accounts: Mapping[int, Row[Any]], deltas: Deltas, entries: Sequence[NewEntry]
) -> None:
    """Refuse counters past BIGINT and overdrafts of guarded accounts, naming an entry."""

    def first_entry(account_id: int, direction: Direction) -> str:
        index = next(
            (
                i
                for i, e in enumerate(entries)
                if (e.account_id, e.direction) == (account_id, direction)
            ),
            None,
        )
        return "entries" if index is None else f"entries.{index}.amount"

    for account_id, changes in sorted(deltas.items()):
        account = accounts[account_id]
        after = {counter: int(account._mapping[counter]) + changes[counter] for counter in COUNTERS}
        debits = after["posted_debits"] + after["pending_debits"]
        credits = after["posted_credits"] + after["pending_credits"]
        for direction, total in ((Direction.DEBIT, debits), (Direction.CREDIT, credits)):
            if total > MAX_MINOR_UNITS:
                raise InvalidInput(
                    f"the account's {direction}s would exceed {MAX_MINOR_UNITS} minor units",
                    field=first_entry(account_id, direction),
                )
        if account.debits_must_not_exceed_credits and debits > after["posted_credits"]:
            raise InsufficientFunds(
                "insufficient funds: the account's debits would exceed its posted credits",
                field=first_entry(account_id, Direction.DEBIT),
            )
        if account.credits_must_not_exceed_debits and credits > after["posted_debits"]:
            raise InsufficientFunds(
                "insufficient funds: the account's credits would exceed its posted debits",
                field=first_entry(account_id, Direction.CREDIT),
            )


async def apply_changes(
    connection: AsyncConnection,
    tenant_id: int,
    deltas: Deltas,
    transaction_id: int,
    effective_at: dt.datetime,
) -> tuple[tuple[int, int], ...]:
    """Change the counters of each touched account (ascending id), +1 lock_version, version row.

    Returns each touched account id with its new lock_version, in ascending id order."""
    versions: list[dict[str, Any]] = []
    for account_id, changes in sorted(deltas.items()):
        parameters = {f"p_{counter}": changes[counter] for counter in COUNTERS}
        parameters |= {"p_tenant_id": tenant_id, "p_account_id": account_id}
        account = (await connection.execute(_CHANGE_COUNTERS, parameters)).one()
        versions.append(
            {
                "account_id": account_id,
                "tenant_id": tenant_id,
                "transaction_id": transaction_id,
                "effective_at": effective_at,
                **account._asdict(),
            }
        )
    await connection.execute(_INSERT_VERSIONS, versions)
    return tuple((int(row["account_id"]), int(row["lock_version"])) for row in versions)
