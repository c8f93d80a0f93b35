"""Risk rules over card payments: pure functions of one payment and the history before it.

Nothing here does I/O or knows GraphQL; `adapters.cards.risk` fetches the history with SQL
and stores what these rules decide. Money is integer minor units throughout and the robust
statistics (median, median absolute deviation) are exact integer or Fraction arithmetic:
no float ever touches an amount. The rules and thresholds are documented in README.md
("Risk signals"); change them here and there together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from fractions import Fraction
from statistics import median_low

__all__ = [
    "RULES",
    "PaymentFact",
    "RiskLevel",
    "RiskOutcome",
    "RiskReason",
    "RiskReasonCode",
    "evaluate",
]


class RiskOutcome(StrEnum):
    """What became of an attempt, as far as risk cares."""

    SUCCEEDED = "succeeded"  # authorised or captured
    DECLINED = "declined"  # refused by the issuer or the processor's fraud screen
    PENDING = "pending"  # not decided yet (3-D Secure, processing)


class RiskLevel(IntEnum):
    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class RiskReasonCode(StrEnum):
    VELOCITY_COUNT = "VELOCITY_COUNT"
    VELOCITY_AMOUNT = "VELOCITY_AMOUNT"
    CARD_SHARED = "CARD_SHARED"
    CARD_VELOCITY = "CARD_VELOCITY"
    DECLINE_RATIO = "DECLINE_RATIO"
    NEW_CARD = "NEW_CARD"
    AMOUNT_OUTLIER = "AMOUNT_OUTLIER"
    DISPUTE_HISTORY = "DISPUTE_HISTORY"
    CARD_DISPUTED = "CARD_DISPUTED"


@dataclass(frozen=True, slots=True)
class PaymentFact:
    """One attempt as the rules see it (no card data beyond the processor's fingerprint)."""

    provider: str
    payment_id: str
    customer_id: int | None
    fingerprint: str | None
    amount: int
    currency: str
    outcome: RiskOutcome
    disputed: bool
    created: dt.datetime


@dataclass(frozen=True, slots=True)
class RiskReason:
    code: RiskReasonCode
    level: RiskLevel
    message: str


@dataclass(frozen=True, slots=True)
class _Thresholds:
    velocity_window: dt.timedelta = dt.timedelta(hours=1)
    velocity_medium: int = 5  # attempts by one customer in the window, this one included
    velocity_high: int = 10
    amount_window: dt.timedelta = dt.timedelta(hours=24)
    amount_multiple: int = 5  # 24 h spend over this many times the customer's median payment
    card_window: dt.timedelta = dt.timedelta(hours=24)
    card_customers: int = 3  # distinct customers on one card in the window
    card_attempts: int = 5  # attempts on one card within velocity_window
    decline_window: dt.timedelta = dt.timedelta(hours=24)
    decline_min: int = 3  # declines before the ratio counts
    decline_ratio: Fraction = Fraction(1, 2)
    history_window: dt.timedelta = dt.timedelta(days=180)
    outlier_min_history: int = 5  # successful payments in the currency before a "usual" exists
    # Modified z-score (Iglewicz and Hoaglin): 0.6745 * |x - median| / MAD > 3.5.
    outlier_z: Fraction = Fraction(35, 10)
    mad_consistency: Fraction = Fraction(6745, 10000)
    mad_floor_share: Fraction = Fraction(1, 20)  # MAD is at least 5 % of the median


RULES = _Thresholds()


def _median_and_mad(amounts: Sequence[int]) -> tuple[Fraction, Fraction]:
    ordered = sorted(amounts)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        center = Fraction(ordered[middle])
    else:
        center = Fraction(ordered[middle - 1] + ordered[middle], 2)
    deviations = sorted(abs(Fraction(amount) - center) for amount in ordered)
    middle = len(deviations) // 2
    if len(deviations) % 2:
        spread = deviations[middle]
    else:
        spread = (deviations[middle - 1] + deviations[middle]) / 2
    return center, spread


def _money(amount: int | Fraction, currency: str) -> str:
    return f"{int(amount)} {currency.upper()} minor units"


def evaluate(
    payment: PaymentFact,
    customer_history: Sequence[PaymentFact],
    card_history: Sequence[PaymentFact],
    rules: _Thresholds = RULES,
) -> tuple[RiskReason, ...]:
    """The reasons that fire for `payment`.

    `customer_history`: the customer's other attempts within `rules.history_window` before
    it; `card_history`: other attempts on the same fingerprint (any customer) within it.
    """
    at = payment.created
    reasons: list[RiskReason] = []
    earlier = [fact for fact in customer_history if fact.created <= at]

    recent = [f for f in earlier if at - f.created <= rules.velocity_window]
    attempts = len(recent) + 1
    if attempts >= rules.velocity_medium:
        level = RiskLevel.HIGH if attempts >= rules.velocity_high else RiskLevel.MEDIUM
        reasons.append(
            RiskReason(
                RiskReasonCode.VELOCITY_COUNT,
                level,
                f"{attempts} payment attempts by this customer within "
                f"{int(rules.velocity_window.total_seconds() // 60)} minutes",
            )
        )

    usual = [
        f.amount
        for f in earlier
        if f.outcome is RiskOutcome.SUCCEEDED and f.currency == payment.currency
    ]
    if len(usual) >= rules.outlier_min_history:
        center, spread = _median_and_mad(usual)
        spread = max(spread, center * rules.mad_floor_share, Fraction(1))
        score = rules.mad_consistency * abs(payment.amount - center) / spread
        if score > rules.outlier_z:
            reasons.append(
                RiskReason(
                    RiskReasonCode.AMOUNT_OUTLIER,
                    RiskLevel.MEDIUM,
                    f"amount {_money(payment.amount, payment.currency)} is far from this "
                    f"customer's median of {_money(center, payment.currency)}",
                )
            )
        day_spend = payment.amount + sum(
            f.amount
            for f in earlier
            if f.currency == payment.currency
            and f.outcome is not RiskOutcome.DECLINED
            and at - f.created <= rules.amount_window
        )
        typical = median_low(usual)
        if typical > 0 and day_spend > rules.amount_multiple * typical:
            reasons.append(
                RiskReason(
                    RiskReasonCode.VELOCITY_AMOUNT,
                    RiskLevel.MEDIUM,
                    f"{_money(day_spend, payment.currency)} within 24 hours, over "
                    f"{rules.amount_multiple} times this customer's usual payment",
                )
            )

    tried = [f for f in earlier if at - f.created <= rules.decline_window]
    tried_all = [*tried, payment]
    declines = sum(1 for f in tried_all if f.outcome is RiskOutcome.DECLINED)
    if declines >= rules.decline_min and Fraction(declines, len(tried_all)) >= rules.decline_ratio:
        reasons.append(
            RiskReason(
                RiskReasonCode.DECLINE_RATIO,
                RiskLevel.MEDIUM,
                f"{declines} of {len(tried_all)} attempts declined within 24 hours",
            )
        )

    if payment.fingerprint is not None and earlier:
        seen = any(f.fingerprint == payment.fingerprint for f in earlier)
        if not seen:
            reasons.append(
                RiskReason(
                    RiskReasonCode.NEW_CARD,
                    RiskLevel.LOW,
                    "a card this customer has not used before",
                )
            )

    if any(f.disputed for f in earlier):
        reasons.append(
            RiskReason(
                RiskReasonCode.DISPUTE_HISTORY,
                RiskLevel.MEDIUM,
                "this customer has disputed a payment within 180 days",
            )
        )

    if payment.fingerprint is not None:
        on_card = [f for f in card_history if f.created <= at]
        customers = {f.customer_id for f in on_card if at - f.created <= rules.card_window}
        customers.add(payment.customer_id)
        customers.discard(None)
        if len(customers) >= rules.card_customers:
            reasons.append(
                RiskReason(
                    RiskReasonCode.CARD_SHARED,
                    RiskLevel.HIGH,
                    f"this card paid for {len(customers)} customers within 24 hours",
                )
            )
        card_attempts = 1 + sum(1 for f in on_card if at - f.created <= rules.velocity_window)
        if card_attempts >= rules.card_attempts:
            reasons.append(
                RiskReason(
                    RiskReasonCode.CARD_VELOCITY,
                    RiskLevel.MEDIUM,
                    f"{card_attempts} attempts on this card within "
                    f"{int(rules.velocity_window.total_seconds() // 60)} minutes",
                )
            )
        if any(f.disputed for f in on_card):
            reasons.append(
                RiskReason(
                    RiskReasonCode.CARD_DISPUTED,
                    RiskLevel.HIGH,
                    "a payment on this card has been disputed",
                )
            )
    return tuple(reasons)
