"""One reconciliation run: read settlements, book them, match them, store the results.

Steps, for one tenant, one processor and a window [start, end) of payout arrival dates:
1. the processor's payouts arriving in the window widened by the bank window (so credits of
   neighbouring payouts are claimed by them, not reported), with their movements;
2. the ledger chart, created on first use; every movement and payout booked once (idempotency
   keys from the provider's ids: re-running books nothing new);
3. the tenant's synced bank credits around the window, matched (adapters.reconciliation
   .matching); each MATCHED payout's arrival booked (payouts in transit -> bank:operating);
4. the results of the window replaced in one transaction that bumps the data version.
A run is a write; reads (`Query.reconciliation`) answer from the stored results.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.errors import InvalidInput
from adapters.ledger.posting_requests import (
    DEFAULT_EFFECTIVE_WINDOW,
    EffectiveWindow,
    NewTransaction,
)
from adapters.reconciliation.booking import (
    SettlementBooker,
    arrival_key,
    arrival_transaction,
    chart_for,
    item_key,
    item_transaction,
    payout_key,
    payout_transaction,
)
from adapters.reconciliation.matching import MatchWindow, match_settlements
from adapters.reconciliation.records import (
    MissingOn,
    Reason,
    ReasonCode,
    ReconciliationItem,
    ReconciliationStatus,
)
from adapters.reconciliation.sources import SettlementSource
from adapters.reconciliation.store import ReconciliationStore

__all__ = ["ReconciliationRun", "run_reconciliation"]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class ReconciliationRun:
    provider: str
    start: dt.datetime
    end: dt.datetime
    items: tuple[ReconciliationItem, ...]
    settlements: int
    movements: int
    bookings: int

    @property
    def breaks(self) -> tuple[ReconciliationItem, ...]:
        return tuple(item for item in self.items if item.is_break)


def _plan(
    key: str,
    make: Callable[[], NewTransaction | None],
    plans: dict[str, NewTransaction],
    problems: dict[str, Reason],
) -> str | None:
    """Add the booking `make` builds under `key`; its key, or None when nothing is to book."""
    try:
        new = make()
    except (InvalidInput, KeyError) as error:
        problems[key] = Reason(ReasonCode.NOT_BOOKED, f"{key} cannot be booked: {error}")
        return key
    if new is None:
        return None
    plans.setdefault(key, new)
    return key


async def run_reconciliation(
    *,
    engine: AsyncEngine,
    effective_window: EffectiveWindow = DEFAULT_EFFECTIVE_WINDOW,
    source: SettlementSource,
    tenant_id: int,
    start: dt.datetime,
    end: dt.datetime,
    window: MatchWindow = MatchWindow(),  # noqa: B008 (frozen)
    clock: Callable[[], dt.datetime] = _utc_now,
) -> ReconciliationRun:
    if end <= start:
        raise InvalidInput("to must be after from", field="to")
    provider = source.provider
    settlements = await source.settlements(start - window.after, end + window.before)
    booker = SettlementBooker(engine, effective_window)
    accounts = await booker.ensure_accounts(tenant_id, chart_for(settlements))

    plans: dict[str, NewTransaction] = {}
    problems: dict[str, Reason] = {}
    expected: dict[str, tuple[str, ...]] = {}
    for s in settlements:
        keys = [
            _plan(
                item_key(provider, item.id),
                functools.partial(item_transaction, provider, item, accounts),
                plans,
                problems,
            )
            for item in {item.id: item for item in s.items}.values()
        ]
        keys.append(
            _plan(
                payout_key(provider, s.id),
                functools.partial(payout_transaction, s, accounts),
                plans,
                problems,
            )
        )
        expected[s.id] = tuple(key for key in keys if key is not None)
    booking = await booker.book(tenant_id, list(plans.values()))
    booking.problems.update(problems)

    store = ReconciliationStore(engine)
    reach = window.after + window.before
    credits = await store.bank_credits(
        tenant_id,
        first_day=(start - reach).date(),
        last_day=(end + reach).date(),
        provider=provider,
        replacing=(start, end),
    )
    now = clock()
    items, matched = match_settlements(
        provider, settlements, credits, booking, expected,
        report_from=start, report_to=end, window=window, marker=source.bank_marker, now=now,
    )  # fmt: skip

    arrivals: dict[str, NewTransaction] = {}
    arrival_problems: dict[str, Reason] = {}
    by_id = {s.id: s for s in settlements}
    keys_of = {
        payout: _plan(
            arrival_key(provider, payout),
            functools.partial(arrival_transaction, by_id[payout], accounts),
            arrivals,
            arrival_problems,
        )
        for payout in matched
    }
    arrived = await booker.book(tenant_id, list(arrivals.values()))
    arrived.problems.update(arrival_problems)
    items = [_with_arrival(item, keys_of, arrived.problems) for item in items]

    await store.replace(tenant_id, provider, start, end, items)
    return ReconciliationRun(
        provider=provider,
        start=start,
        end=end,
        items=tuple(items),
        settlements=len(settlements),
        movements=sum(len(s.items) for s in settlements),
        bookings=len(plans) + len(arrivals),
    )


def _with_arrival(
    item: ReconciliationItem, keys_of: dict[str, str | None], problems: dict[str, Reason]
) -> ReconciliationItem:
    """A MATCHED payout whose arrival could not be booked is no longer matched."""
    key = keys_of.get(item.payout_id or "")
    problem = problems.get(key or "")
    if problem is None:
        return item
    conflict = problem.code == ReasonCode.BOOKING_CONFLICT
    return dataclasses.replace(
        item,
        status=ReconciliationStatus.MISMATCHED if conflict else ReconciliationStatus.UNMATCHED,
        missing_on=None if conflict else MissingOn.LEDGER,
        reasons=(*item.reasons, problem),
    )
