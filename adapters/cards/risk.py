"""Card payment risk: facts recorded on ingest, signals evaluated then, read back in one statement.

A processor's events (a Stripe charge webhook, an Adyen notification) become one
`card_risk_facts` row per payment: who paid, how much, the card's fingerprint, the outcome,
whether it was disputed. When a fact arrives, the rules of `adapters.cards.risk_rules` run
against the customer's and the card's earlier facts (two indexed statements) and the reasons
that fired are stored on the row, so reading a payment's signals never calls the processor and
costs one statement per batch of payments. Card data stops at the fingerprint.

Idempotent: a fact is keyed by (tenant, provider, payment id); a repeated or later event
updates the outcome or the dispute flag and evaluates again.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    and_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.cards.risk_rules import (
    RULES,
    PaymentFact,
    RiskLevel,
    RiskOutcome,
    RiskReason,
    RiskReasonCode,
    evaluate,
)
from adapters.db import Id, UtcDateTime, metadata

__all__ = [
    "CustomerRisk",
    "PaymentRisk",
    "RiskStore",
    "card_risk_facts",
]

card_risk_facts = Table(
    "card_risk_facts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", Id, nullable=True),
    Column("provider", String(32), nullable=False),
    Column("payment_id", String(255), nullable=False),
    # The processor's card fingerprint (the same card gives the same value); never card data.
    Column("fingerprint", String(255), nullable=True),
    Column("amount", Id, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("disputed", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("evaluated_at", UtcDateTime(), nullable=False),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
    UniqueConstraint("tenant_id", "provider", "payment_id"),
    Index(None, "tenant_id", "customer_id", "created_at"),
    Index(None, "tenant_id", "fingerprint", "created_at"),
)

# Facts of one customer (or card) read to evaluate a payment: the newest this many.
_HISTORY_LIMIT = 500


@dataclass(frozen=True, slots=True)
class PaymentRisk:
    level: RiskLevel
    reasons: tuple[RiskReason, ...]
    evaluated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CustomerRisk:
    """A customer's facts over a window: counts, and how often each reason fired."""

    window_days: int
    payments: int
    declines: int
    disputes: int
    distinct_cards: int
    flagged_payments: int
    level: RiskLevel
    reasons: Mapping[RiskReasonCode, int]


def _payment(tenant_id: int, provider: str, payment_id: str) -> Any:
    return and_(
        card_risk_facts.c.tenant_id == tenant_id,
        card_risk_facts.c.provider == provider,
        card_risk_facts.c.payment_id == payment_id,
    )


def _fact(row: Any) -> PaymentFact:
    return PaymentFact(
        provider=row.provider,
        payment_id=row.payment_id,
        customer_id=row.customer_id,
        fingerprint=row.fingerprint,
        amount=int(row.amount),
        currency=row.currency,
        outcome=RiskOutcome(row.outcome),
        disputed=bool(row.disputed),
        created=row.created_at,
    )


def _reasons_json(reasons: Sequence[RiskReason]) -> list[dict[str, Any]]:
    return [{"code": r.code.value, "level": int(r.level), "message": r.message} for r in reasons]


def _reasons_of(raw: Any) -> tuple[RiskReason, ...]:
    return tuple(
        RiskReason(RiskReasonCode(item["code"]), RiskLevel(item["level"]), item["message"])
        for item in raw or ()
        if item.get("code") in RiskReasonCode.__members__
    )


_FACT_COLUMNS = (
    card_risk_facts.c.provider,
    card_risk_facts.c.payment_id,
    card_risk_facts.c.customer_id,
    card_risk_facts.c.fingerprint,
    card_risk_facts.c.amount,
    card_risk_facts.c.currency,
    card_risk_facts.c.outcome,
    card_risk_facts.c.disputed,
    card_risk_facts.c.created_at,
)


class RiskStore:
    """Records facts and evaluates them on ingest; reads signals and summaries back."""

    def __init__(self, engine: AsyncEngine, *, clock: Any = None) -> None:
        self._engine = engine
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    async def observe(self, tenant_id: int, fact: PaymentFact) -> PaymentRisk:
        """Record (or update) one payment's fact and evaluate it against earlier facts."""
        async with self._engine.begin() as connection:
            existing = await connection.scalar(
                select(card_risk_facts.c.disputed).where(
                    _payment(tenant_id, fact.provider, fact.payment_id)
                )
            )
            disputed = fact.disputed or bool(existing)
            customer, card = await self._histories(connection, tenant_id, fact)
            reasons = evaluate(fact, customer, card)
            risk = PaymentRisk(
                level=max((r.level for r in reasons), default=RiskLevel.NONE),
                reasons=reasons,
                evaluated_at=self._clock(),
            )
            values = {
                "customer_id": fact.customer_id,
                "fingerprint": fact.fingerprint,
                "amount": fact.amount,
                "currency": fact.currency,
                "outcome": fact.outcome.value,
                "disputed": disputed,
                "created_at": fact.created,
                "level": int(risk.level),
                "reasons": _reasons_json(reasons),
                "evaluated_at": risk.evaluated_at,
            }
            if existing is None:
                await connection.execute(
                    card_risk_facts.insert().values(
                        tenant_id=tenant_id,
                        provider=fact.provider,
                        payment_id=fact.payment_id,
                        **values,
                    )
                )
            else:
                await connection.execute(
                    update(card_risk_facts)
                    .where(_payment(tenant_id, fact.provider, fact.payment_id))
                    .values(**values)
                )
        return risk

    async def mark_disputed(self, tenant_id: int, provider: str, payment_id: str) -> bool:
        """Flag a payment as disputed (it weighs on later payments); False if unknown."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                update(card_risk_facts)
                .where(_payment(tenant_id, provider, payment_id))
                .values(disputed=True)
            )
        return bool(result.rowcount)

    async def _histories(
        self, connection: AsyncConnection, tenant_id: int, fact: PaymentFact
    ) -> tuple[list[PaymentFact], list[PaymentFact]]:
        since = fact.created - RULES.history_window
        other = and_(
            card_risk_facts.c.tenant_id == tenant_id,
            card_risk_facts.c.created_at >= since,
            card_risk_facts.c.created_at <= fact.created,
            ~_payment(tenant_id, fact.provider, fact.payment_id),
        )

        async def newest(column: Any, value: object) -> list[PaymentFact]:
            if value is None:
                return []
            rows = await connection.execute(
                select(*_FACT_COLUMNS)
                .where(other, column == value)
                .order_by(card_risk_facts.c.created_at.desc())
                .limit(_HISTORY_LIMIT)
            )
            return [_fact(row) for row in rows]

        return (
            await newest(card_risk_facts.c.customer_id, fact.customer_id),
            await newest(card_risk_facts.c.fingerprint, fact.fingerprint),
        )

    async def signals(
        self, tenant_id: int, keys: Sequence[tuple[str, str]]
    ) -> list[PaymentRisk | None]:
        """The stored evaluation of each (provider, payment id), in order; None if none yet.
        One statement for the whole batch."""
        if not keys:
            return []
        query = select(
            card_risk_facts.c.provider,
            card_risk_facts.c.payment_id,
            card_risk_facts.c.level,
            card_risk_facts.c.reasons,
            card_risk_facts.c.evaluated_at,
        ).where(
            card_risk_facts.c.tenant_id == tenant_id,
            card_risk_facts.c.payment_id.in_(sorted({payment for _, payment in keys})),
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        found = {
            (row.provider, row.payment_id): PaymentRisk(
                RiskLevel(row.level), _reasons_of(row.reasons), row.evaluated_at
            )
            for row in rows
        }
        return [found.get(key) for key in keys]

    async def customer_summaries(
        self, tenant_id: int, customer_ids: Sequence[int], *, window_days: int
    ) -> list[CustomerRisk]:
        """Each customer's facts over the last `window_days`, in order. One statement."""
        since = self._clock() - dt.timedelta(days=window_days)
        query = select(
            card_risk_facts.c.customer_id,
            card_risk_facts.c.fingerprint,
            card_risk_facts.c.outcome,
            card_risk_facts.c.disputed,
            card_risk_facts.c.level,
            card_risk_facts.c.reasons,
        ).where(
            card_risk_facts.c.tenant_id == tenant_id,
            card_risk_facts.c.customer_id.in_(sorted(set(customer_ids))),
            card_risk_facts.c.created_at >= since,
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        by_customer: dict[int, list[Any]] = {}
        for row in rows:
            by_customer.setdefault(row.customer_id, []).append(row)
        return [_summary(by_customer.get(cid, []), window_days) for cid in customer_ids]


def _summary(rows: Sequence[Any], window_days: int) -> CustomerRisk:
    reasons: Counter[RiskReasonCode] = Counter()
    for row in rows:
        reasons.update({reason.code for reason in _reasons_of(row.reasons)})
    return CustomerRisk(
        window_days=window_days,
        payments=len(rows),
        declines=sum(1 for row in rows if row.outcome == RiskOutcome.DECLINED.value),
        disputes=sum(1 for row in rows if row.disputed),
        distinct_cards=len({row.fingerprint for row in rows if row.fingerprint is not None}),
        flagged_payments=sum(1 for row in rows if row.level > RiskLevel.NONE),
        level=max((RiskLevel(row.level) for row in rows), default=RiskLevel.NONE),
        reasons=dict(reasons),
    )
