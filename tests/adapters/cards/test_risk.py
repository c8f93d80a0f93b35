"""Risk signals: a scripted fraud pattern is flagged, ordinary history is not, and facts are
recorded idempotently, per tenant, and read back in one statement per batch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.cards.risk import RiskStore
from adapters.cards.risk_rules import (
    PaymentFact,
    RiskLevel,
    RiskOutcome,
    RiskReasonCode,
    evaluate,
)
from tests.factories import make_customer, make_tenant
from tests.fixtures.database import Database

START = dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)
R = RiskReasonCode


def _fact(
    payment: str,
    at: dt.datetime,
    *,
    customer: int | None = 1,
    amount: int = 2_000,
    card: str | None = "fp_home",
    outcome: RiskOutcome = RiskOutcome.SUCCEEDED,
    currency: str = "USD",
    disputed: bool = False,
) -> PaymentFact:
    return PaymentFact("stripe", payment, customer, card, amount, currency, outcome, disputed, at)


def _codes(reasons: Iterable[object]) -> set[RiskReasonCode]:
    return {reason.code for reason in reasons}  # type: ignore[attr-defined]


def _ordinary(customer: int = 1) -> list[PaymentFact]:
    """Ten ordinary payments a week apart, 18.00-27.00, on one card."""
    return [
        _fact(f"pi_ok_{customer}_{n}", START + dt.timedelta(days=7 * n), customer=customer,
              amount=1_800 + 100 * n)
        for n in range(10)
    ]  # fmt: skip


def test_ordinary_history_fires_nothing() -> None:
    history = _ordinary()
    for index, payment in enumerate(history):
        assert evaluate(payment, history[:index], history[:index]) == ()


def test_a_scripted_card_testing_burst_is_flagged() -> None:
    history = _ordinary()
    burst_start = START + dt.timedelta(days=70)
    # A new card, six attempts within 25 minutes, three declined, the last one large.
    burst = [
        _fact(f"pi_burst_{n}", burst_start + dt.timedelta(minutes=5 * n), card="fp_stolen",
              outcome=RiskOutcome.DECLINED if n in (1, 2, 3) else RiskOutcome.SUCCEEDED,
              amount=50_000 if n == 5 else 2_100)
        for n in range(6)
    ]  # fmt: skip
    seen: list[PaymentFact] = list(history)
    results = []
    for payment in burst:
        results.append(evaluate(payment, seen, [f for f in seen if f.fingerprint == "fp_stolen"]))
        seen.append(payment)

    assert _codes(results[0]) == {R.NEW_CARD}
    last = results[-1]
    assert {R.VELOCITY_COUNT, R.DECLINE_RATIO, R.AMOUNT_OUTLIER, R.VELOCITY_AMOUNT,
            R.CARD_VELOCITY} <= _codes(last)  # fmt: skip
    assert max(reason.level for reason in last) is RiskLevel.MEDIUM
    outlier = next(reason for reason in last if reason.code is R.AMOUNT_OUTLIER)
    assert "50000 USD minor units" in outlier.message


def test_an_amount_in_another_currency_is_not_compared_with_dollars() -> None:
    history = _ordinary()
    yen = _fact("pi_yen", START + dt.timedelta(days=80), amount=500_000, currency="JPY")
    assert R.AMOUNT_OUTLIER not in _codes(evaluate(yen, history, history))


def test_one_card_paying_for_three_customers_is_high() -> None:
    at = START + dt.timedelta(days=1)
    others = [_fact("pi_a", at - dt.timedelta(hours=3), customer=2, card="fp_shared"),
              _fact("pi_b", at - dt.timedelta(hours=2), customer=3, card="fp_shared")]  # fmt: skip
    reasons = evaluate(_fact("pi_c", at, customer=1, card="fp_shared"), [], others)
    assert _codes(reasons) == {R.CARD_SHARED}
    assert reasons[0].level is RiskLevel.HIGH


async def test_the_store_records_idempotently_and_remembers_disputes(
    database: Database, engine: AsyncEngine
) -> None:
    tenant = await make_tenant(engine)
    customer = await make_customer(engine, tenant)
    store = RiskStore(engine)
    history = _ordinary(customer)
    for payment in history:
        assert (await store.observe(tenant, payment)).level is RiskLevel.NONE
    again = await store.observe(tenant, history[-1])  # a repeated event
    assert again.level is RiskLevel.NONE
    summary = (await store.customer_summaries(tenant, [customer], window_days=3650))[0]
    assert summary.payments == 10

    assert await store.mark_disputed(tenant, "stripe", history[3].payment_id)
    assert not await store.mark_disputed(tenant, "stripe", "pi_unknown")
    # A later event for the disputed payment keeps it disputed.
    await store.observe(tenant, history[3])
    nxt = _fact("pi_next", START + dt.timedelta(days=75), customer=customer)
    risk = await store.observe(tenant, nxt)
    assert _codes(risk.reasons) == {R.DISPUTE_HISTORY, R.CARD_DISPUTED}
    assert risk.level is RiskLevel.HIGH

    with database.metrics.measure_statements() as tally:
        found = await store.signals(
            tenant,
            [("stripe", "pi_next"), ("stripe", "pi_unknown"), ("stripe", history[0].payment_id)],
        )
    assert tally.count == 1
    assert [None if risk is None else risk.level for risk in found] == [
        RiskLevel.HIGH, None, RiskLevel.NONE,
    ]  # fmt: skip
    summary = (await store.customer_summaries(tenant, [customer], window_days=3650))[0]
    assert (summary.payments, summary.disputes, summary.distinct_cards) == (11, 1, 1)
    assert summary.reasons == {R.DISPUTE_HISTORY: 1, R.CARD_DISPUTED: 1}


async def test_another_tenants_facts_neither_count_nor_read(engine: AsyncEngine) -> None:
    mine, theirs = await make_tenant(engine), await make_tenant(engine)
    me, them = await make_customer(engine, mine), await make_customer(engine, theirs)
    store = RiskStore(engine)
    at = START + dt.timedelta(days=1)
    for n in range(2):  # the same card at two customers of another tenant
        other = await make_customer(engine, theirs)
        await store.observe(theirs, _fact(f"pi_t{n}", at - dt.timedelta(hours=n + 1),
                                          customer=other, card="fp_shared"))  # fmt: skip
    await store.observe(theirs, _fact("pi_theirs", at, customer=them, card="fp_shared"))
    mine_risk = await store.observe(mine, _fact("pi_mine", at, customer=me, card="fp_shared"))
    assert mine_risk.reasons == ()
    assert await store.signals(mine, [("stripe", "pi_theirs")]) == [None]
    assert (await store.customer_summaries(mine, [them], window_days=3650))[0].payments == 0
