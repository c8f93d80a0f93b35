"""Risk signals on card payments and customers (adapters.cards.risk evaluates them on ingest).

Reading them never calls a processor: a payment's signals are one batched statement per
request level, a customer's summary another.
"""

from __future__ import annotations

import datetime as dt

import strawberry

from adapters.cards import risk, risk_rules
from adapters.errors import InvalidInput
from resolvers.context import Info

__all__ = [
    "MAX_RISK_WINDOW_DAYS",
    "CardRiskSignals",
    "CardRiskSummary",
    "customer_risk_summary",
    "payment_risk_signals",
]

MAX_RISK_WINDOW_DAYS = 365

strawberry.enum(
    risk_rules.RiskLevel,
    name="CardRiskLevel",
    description="How strongly the signals point at fraud: NONE, LOW, MEDIUM, HIGH.",
)
strawberry.enum(
    risk_rules.RiskReasonCode,
    name="CardRiskReasonCode",
    description="A risk rule (README, 'Risk signals', documents each rule and threshold).",
)
RiskLevel = risk_rules.RiskLevel
RiskReasonCode = risk_rules.RiskReasonCode


@strawberry.type(description="One risk rule that fired, with what it saw.")
class CardRiskReason:
    code: RiskReasonCode = strawberry.field(description="The rule.")
    level: RiskLevel = strawberry.field(description="How strongly this rule points at fraud.")
    message: str = strawberry.field(description="What the rule saw, in words.")


@strawberry.type(description="The risk rules evaluated on a card payment when it was recorded.")
class CardRiskSignals:
    level: RiskLevel = strawberry.field(description="The highest level among the reasons.")
    reasons: list[CardRiskReason] = strawberry.field(description="The rules that fired.")
    evaluated_at: dt.datetime = strawberry.field(description="When the rules last ran on it.")


@strawberry.type(description="How often one risk rule fired for a customer's payments.")
class CardRiskReasonCount:
    code: RiskReasonCode = strawberry.field(description="The rule.")
    count: int = strawberry.field(description="Payments it fired on within the window.")


@strawberry.type(description="A customer's card payments over a window, as risk sees them.")
class CardRiskSummary:
    window_days: int = strawberry.field(description="The window, in days up to now.")
    level: RiskLevel = strawberry.field(description="The highest level of any payment.")
    payments: int = strawberry.field(description="Card payment attempts recorded.")
    declines: int = strawberry.field(description="Attempts that were declined.")
    decline_ratio: str = strawberry.field(
        description='Declines over attempts, a decimal string with 4 places ("0.0000" for none).'
    )
    disputes: int = strawberry.field(description="Payments disputed.")
    distinct_cards: int = strawberry.field(description="Different card fingerprints used.")
    flagged_payments: int = strawberry.field(description="Payments with any reason.")
    reasons: list[CardRiskReasonCount] = strawberry.field(
        description="How often each rule fired, most frequent first."
    )


def _signals(found: risk.PaymentRisk) -> CardRiskSignals:
    return CardRiskSignals(
        level=found.level,
        reasons=[
            CardRiskReason(code=reason.code, level=reason.level, message=reason.message)
            for reason in found.reasons
        ],
        evaluated_at=found.evaluated_at,
    )


def _ratio(part: int, whole: int) -> str:
    if whole == 0:
        return "0.0000"
    scaled = (part * 10**4 * 2 + whole) // (2 * whole)  # half up, exact
    return f"{scaled // 10**4}.{scaled % 10**4:04d}"


async def payment_risk_signals(
    info: Info, provider: str, payment_id: str
) -> CardRiskSignals | None:
    found = await info.context.ledger.risk.payment_signals.load((provider, payment_id))
    return None if found is None else _signals(found)


async def customer_risk_summary(info: Info, customer_pk: int, window_days: int) -> CardRiskSummary:
    if not 1 <= window_days <= MAX_RISK_WINDOW_DAYS:
        raise InvalidInput(
            f"windowDays must be between 1 and {MAX_RISK_WINDOW_DAYS}", field="windowDays"
        )
    summary = await info.context.ledger.risk.customer_summary(window_days).load(customer_pk)
    return CardRiskSummary(
        window_days=summary.window_days,
        level=summary.level,
        payments=summary.payments,
        declines=summary.declines,
        decline_ratio=_ratio(summary.declines, summary.payments),
        disputes=summary.disputes,
        distinct_cards=summary.distinct_cards,
        flagged_payments=summary.flagged_payments,
        reasons=[
            CardRiskReasonCount(code=code, count=count)
            for code, count in sorted(summary.reasons.items(), key=lambda item: (-item[1], item[0]))
        ],
    )
