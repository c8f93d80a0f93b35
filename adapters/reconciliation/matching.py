"""Matching payouts to the ledger and to bank credits: pure functions over plain records.

For each payout arriving in the window:
- processor side: its movements' net sum equals the payout amount, all in its currency, none
  listed twice nor in another payout (else MISMATCHED);
- ledger side: every booking of the payout and its movements is in the ledger as the
  processor's figures give it (else UNMATCHED on the ledger, or MISMATCHED on a conflict);
- bank side: one credit of the same amount and currency dated within [arrival - before,
  arrival + after], preferring one whose text names the payout (its id or reference), and
  never one naming another payout. A bank credit matches one payout at most. A credit naming
  the payout outside those terms is reported with the payout: wrong amount or currency
  (MISMATCHED), or late (UNMATCHED). No credit: UNMATCHED on the bank, or PENDING while the
  window is still open.
Credits carrying the processor's marker that no payout explains are reported on their own
(UNMATCHED on the processor side; a second credit for a matched payout is a duplicate).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adapters.money import format_minor_units
from adapters.reconciliation.booking import BookingResult
from adapters.reconciliation.records import (
    BankCredit,
    MissingOn,
    Reason,
    ReasonCode,
    ReconciliationItem,
    ReconciliationStatus,
    Settlement,
)

__all__ = ["MatchWindow", "match_settlements"]

_NOT_PAID = frozenset({"failed", "canceled"})


@dataclass(frozen=True, slots=True)
class MatchWindow:
    """How far a bank credit's date may lie before and after a payout's arrival date."""

    before: dt.timedelta = dt.timedelta(days=2)
    after: dt.timedelta = dt.timedelta(days=5)


def _flip(
    accept: Callable[[BankCredit, Settlement], bool], s: Settlement, credit: BankCredit
) -> bool:
    return accept(credit, s)


def _money(amount: int, exponent: int, currency: str) -> str:
    return f"{format_minor_units(amount, exponent)} {currency}"


def _same_money(a: int, a_exp: int, b: int, b_exp: int) -> bool:
    scale = max(a_exp, b_exp)
    return bool(a * 10 ** (scale - a_exp) == b * 10 ** (scale - b_exp))


@dataclass
class _Claims:
    """Which bank credit went to which payout; a credit goes to one payout at most."""

    by_payout: dict[str, BankCredit]
    by_credit: dict[int, str]

    def take(self, payout_id: str, credit: BankCredit) -> None:
        self.by_payout[payout_id] = credit
        self.by_credit[credit.id] = payout_id


def match_settlements(
    provider: str,
    settlements: Sequence[Settlement],
    credits: Sequence[BankCredit],
    booking: BookingResult,
    expected: dict[str, tuple[str, ...]],
    *,
    report_from: dt.datetime,
    report_to: dt.datetime,
    window: MatchWindow,
    marker: str,
    now: dt.datetime,
) -> tuple[list[ReconciliationItem], dict[str, BankCredit]]:
    """Results for payouts arriving in [report_from, report_to) and for unexplained credits
    dated in that range; and the credit each MATCHED payout was matched to.

    `settlements` may reach beyond the range (their credits are then claimed, not reported);
    `expected` gives each payout's booking keys.
    """
    texts = {credit.id: credit.name.lower() for credit in credits}
    tokens = {
        s.id: {s.id.lower(), *([s.reference.lower()] if s.reference else [])} for s in settlements
    }
    mentions = {
        credit.id: {s.id for s in settlements if any(t in texts[credit.id] for t in tokens[s.id])}
        for credit in credits
    }
    claims = _Claims({}, {})
    ordered = sorted(settlements, key=lambda s: (s.arrival_date, s.id))

    def in_window(credit: BankCredit, s: Settlement) -> bool:
        arrival = s.arrival_date.date()
        return arrival - window.before <= credit.date <= arrival + window.after

    def exact(credit: BankCredit, s: Settlement) -> bool:
        return (
            credit.currency == s.currency
            and _same_money(credit.amount, credit.exponent, s.amount, s.exponent)
            and in_window(credit, s)
        )

    def closest(s: Settlement, accept: Callable[[BankCredit], bool]) -> BankCredit | None:
        found = [c for c in credits if c.id not in claims.by_credit and accept(c)]
        arrival = s.arrival_date.date()
        return min(found, key=lambda c: (abs((c.date - arrival).days), c.id), default=None)

    def named_exact(credit: BankCredit, s: Settlement) -> bool:
        return exact(credit, s) and s.id in mentions[credit.id]

    def anonymous_exact(credit: BankCredit, s: Settlement) -> bool:
        return exact(credit, s) and not mentions[credit.id]

    def named(credit: BankCredit, s: Settlement) -> bool:
        return s.id in mentions[credit.id]

    # 1. exact and naming the payout; 2. exact and naming no payout at all; then
    # 3. naming the payout, with another amount, currency or date: reported with it.
    matched: dict[str, BankCredit] = {}
    for accept in (named_exact, anonymous_exact, named):
        if accept is named:
            matched = dict(claims.by_payout)
        for s in ordered:
            if s.id not in claims.by_payout:
                found = closest(s, functools.partial(_flip, accept, s))
                if found is not None:
                    claims.take(s.id, found)

    results = [
        _payout_result(
            s, claims, matched, booking, expected[s.id], window, now, settlements, credits
        )
        for s in ordered
        if report_from <= s.arrival_date < report_to
    ]
    for credit in credits:
        day = dt.datetime.combine(credit.date, dt.time(), dt.UTC)
        if credit.id in claims.by_credit or not report_from <= day < report_to:
            continue
        if not mentions[credit.id] and marker.lower() not in texts[credit.id]:
            continue
        results.append(_bank_only_result(provider, credit, mentions[credit.id], claims, now))
    return results, {s.id: matched[s.id] for s in settlements if s.id in matched}


def _payout_result(
    s: Settlement,
    claims: _Claims,
    matched: dict[str, BankCredit],
    booking: BookingResult,
    keys: tuple[str, ...],
    window: MatchWindow,
    now: dt.datetime,
    settlements: Sequence[Settlement],
    credits: Sequence[BankCredit],
) -> ReconciliationItem:
    mismatches: list[Reason] = []
    missing: list[tuple[MissingOn, Reason]] = []
    pending: list[Reason] = []

    def money(amount: int) -> str:
        return _money(amount, s.exponent, s.currency)

    first_day = (arrival := s.arrival_date.date()) - window.before
    last_day = arrival + window.after
    span = f"{first_day.isoformat()}..{last_day.isoformat()}"

    # Processor side: the payout against the movements it lists.
    counts = Counter(item.id for item in s.items)
    twice = sorted(id_ for id_, count in counts.items() if count > 1)
    if twice:
        mismatches.append(
            Reason(ReasonCode.DUPLICATE_ITEM, f"listed more than once: {', '.join(twice)}")
        )
    elsewhere = sorted(
        {item.id for other in settlements if other.id != s.id for item in other.items} & set(counts)
    )
    if elsewhere:
        mismatches.append(
            Reason(
                ReasonCode.ITEM_IN_SEVERAL_PAYOUTS,
                f"also in another payout: {', '.join(elsewhere)}",
            )
        )
    foreign = sorted({item.currency for item in s.items} - {s.currency})
    if foreign:
        mismatches.append(
            Reason(
                ReasonCode.CURRENCY_DIFFERS,
                f"movements in {', '.join(foreign)} in a {s.currency} payout",
            )
        )
    net = sum(item.net for item in s.items if item.currency == s.currency)
    if net != s.amount:
        mismatches.append(
            Reason(
                ReasonCode.ITEMS_DO_NOT_SUM_TO_PAYOUT,
                f"payout {money(s.amount)}, its {len(s.items)} movements net {money(net)} "
                f"(difference {money(s.amount - net)})",
            )
        )

    # Ledger side.
    for key in keys:
        if key in booking.booked:
            continue
        problem = booking.problems.get(
            key, Reason(ReasonCode.NOT_BOOKED, f"{key} is not in the ledger")
        )
        if problem.code == ReasonCode.BOOKING_CONFLICT:
            mismatches.append(problem)
        else:
            missing.append((MissingOn.LEDGER, problem))

    # Bank side.
    credit = claims.by_payout.get(s.id)
    if credit is not None and s.id not in matched:
        shown = _money(credit.amount, credit.exponent, credit.currency)
        if credit.currency != s.currency:
            mismatches.append(
                Reason(
                    ReasonCode.BANK_CURRENCY_DIFFERS,
                    f"bank credit {shown}, payout {money(s.amount)}",
                )
            )
        elif not _same_money(credit.amount, credit.exponent, s.amount, s.exponent):
            mismatches.append(
                Reason(
                    ReasonCode.BANK_AMOUNT_DIFFERS, f"bank credit {shown}, payout {money(s.amount)}"
                )
            )
        else:
            missing.append(
                (
                    MissingOn.BANK,
                    Reason(
                        ReasonCode.LATE_BANK_CREDIT,
                        f"credited on {credit.date.isoformat()}, outside {span} around the "
                        f"arrival date {arrival.isoformat()}",
                    ),
                )
            )
    elif credit is None and s.status not in _NOT_PAID:
        if now.date() <= last_day:
            pending.append(
                Reason(
                    ReasonCode.AWAITING_BANK_CREDIT,
                    f"no bank credit yet; expected by {last_day.isoformat()}",
                )
            )
        else:
            taken = [
                c for c in credits
                if c.id in claims.by_credit and c.currency == s.currency
                and _same_money(c.amount, c.exponent, s.amount, s.exponent)
                and first_day <= c.date <= last_day
            ]  # fmt: skip
            detail = ""
            if taken:
                other = claims.by_credit[taken[0].id]
                detail = f"; bank transaction {taken[0].id} of that amount went to payout {other}"
            missing.append(
                (
                    MissingOn.BANK,
                    Reason(
                        ReasonCode.NO_BANK_CREDIT,
                        f"no bank credit of {money(s.amount)} in {span}{detail}",
                    ),
                )
            )

    if mismatches:
        status = ReconciliationStatus.MISMATCHED
    elif missing:
        status = ReconciliationStatus.UNMATCHED
    elif pending:
        status = ReconciliationStatus.PENDING
    else:
        status = ReconciliationStatus.MATCHED
    sides = {side for side, _ in missing}
    missing_on = MissingOn.BANK if MissingOn.BANK in sides else MissingOn.LEDGER if sides else None
    return ReconciliationItem(
        provider=s.provider,
        payout_id=s.id,
        status=status,
        missing_on=missing_on,
        reasons=(*mismatches, *(reason for _, reason in missing), *pending),
        occurred_at=s.arrival_date,
        currency=s.currency,
        exponent=s.exponent,
        payout_amount=s.amount,
        items_net=net,
        item_count=len(s.items),
        bank_transaction_id=None if credit is None else credit.id,
        bank_amount=None if credit is None else credit.amount,
        bank_currency=None if credit is None else credit.currency,
        bank_exponent=None if credit is None else credit.exponent,
        bank_date=None if credit is None else credit.date,
        checked_at=now,
    )


def _bank_only_result(
    provider: str, credit: BankCredit, named: set[str], claims: _Claims, now: dt.datetime
) -> ReconciliationItem:
    shown = _money(credit.amount, credit.exponent, credit.currency)
    duplicated = sorted(payout for payout in named if payout in claims.by_payout)
    if duplicated:
        reason = Reason(
            ReasonCode.DUPLICATE_BANK_CREDIT,
            f"bank credit {shown} names payout {duplicated[0]}, already matched to bank "
            f"transaction {claims.by_payout[duplicated[0]].id}",
        )
    else:
        reason = Reason(
            ReasonCode.NO_PAYOUT_FOR_BANK_CREDIT,
            f"bank credit {shown} ({credit.name}) matches no payout arriving around "
            f"{credit.date.isoformat()}",
        )
    return ReconciliationItem(
        provider=provider,
        payout_id=None,
        status=ReconciliationStatus.UNMATCHED,
        missing_on=MissingOn.PROCESSOR,
        reasons=(reason,),
        occurred_at=dt.datetime.combine(credit.date, dt.time(), dt.UTC),
        currency=None,
        exponent=None,
        payout_amount=None,
        items_net=None,
        item_count=None,
        bank_transaction_id=credit.id,
        bank_amount=credit.amount,
        bank_currency=credit.currency,
        bank_exponent=credit.exponent,
        bank_date=credit.date,
        checked_at=now,
    )
