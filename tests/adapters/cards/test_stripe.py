"""The Stripe adapter against the card sandbox, in-process and over HTTP, spec-checked."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from adapters.cards import CardProcessor, create_card_processor
from adapters.cards.records import CardPayment, PaymentStatus
from adapters.cards.stripe import SEARCH_CLAUSE_LIMIT, StripeCardProcessor
from adapters.errors import NotFound
from adapters.sandbox.cards_app import CardsSandbox
from adapters.sandbox.cards_data import Json
from tests.fixtures.stripe_spec import StripeSpec


def _customer_with(sandbox: CardsSandbox, at_least: int) -> str:
    return next(
        f"cus_{n}"
        for n in range(1, 200)
        if len(sandbox.data.payment_intent_ids(f"cus_{n}")) >= at_least
    )


def _charge(sandbox: CardsSandbox, intent: Json) -> Json | None:
    charge_id = intent["latest_charge"]
    return None if charge_id is None else sandbox.data.objects[charge_id]


def _assert_maps(sandbox: CardsSandbox, payment: CardPayment) -> None:
    """Every field of `payment` against the sandbox's stored objects."""
    intent = sandbox.data.objects[payment.id]
    charge = _charge(sandbox, intent)
    assert payment.customer_external_id == intent["customer"]
    assert payment.amount == intent["amount"]
    assert payment.currency == intent["currency"].upper()
    assert payment.created == dt.datetime.fromtimestamp(intent["created"], tz=dt.UTC)
    assert payment.provider == "stripe"
    if charge is None:
        assert (payment.card, payment.refunds, payment.dispute, payment.fee) == (
            None,
            (),
            None,
            None,
        )
        return
    card = charge["payment_method_details"]["card"]
    assert payment.card is not None
    assert (payment.card.brand.value, payment.card.last4) == (card["brand"], card["last4"])
    assert (payment.card.exp_month, payment.card.exp_year) == (card["exp_month"], card["exp_year"])
    assert payment.amount_refunded == charge["amount_refunded"]
    assert [refund.id for refund in payment.refunds] == charge.get("_refund_ids", [])
    assert (payment.dispute.id if payment.dispute else None) == charge["dispute"]
    if charge["status"] == "failed":
        assert payment.status is PaymentStatus.FAILED
        assert payment.failure_code == charge["failure_code"]
        assert payment.failure_category is not None
        assert payment.fee is None
    else:
        balance = sandbox.data.objects[charge["balance_transaction"]]
        assert (payment.fee, payment.net) == (balance["fee"], balance["net"])
        assert payment.failure_category is None


async def test_a_page_of_payments_is_one_call_with_everything_expanded(
    stripe_processor: StripeCardProcessor, cards_sandbox: CardsSandbox, stripe_spec: StripeSpec
) -> None:
    customer = _customer_with(cards_sandbox, 8)

    page = await stripe_processor.list_payments(customer, limit=100)

    assert [p.id for p in page.items] == cards_sandbox.data.payment_intent_ids(customer)
    assert (page.has_more, page.next_cursor) == (False, None)
    for payment in page.items:
        _assert_maps(cards_sandbox, payment)
    assert any(p.refunds for p in page.items) or any(p.fee is not None for p in page.items)
    assert cards_sandbox.total_calls == 1
    assert stripe_spec.checked == ["GET /v1/payment_intents 200"]


async def test_pagination_follows_the_cursor_to_the_last_page(
    stripe_processor: StripeCardProcessor, cards_sandbox: CardsSandbox
) -> None:
    customer = _customer_with(cards_sandbox, 5)
    expected = cards_sandbox.data.payment_intent_ids(customer)

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await stripe_processor.list_payments(customer, limit=2, starting_after=cursor)
        seen += [payment.id for payment in page.items]
        if not page.has_more:
            break
        cursor = page.next_cursor

    assert seen == expected
    assert cards_sandbox.total_calls == math.ceil(len(expected) / 2)


@pytest.mark.parametrize(
    "clause_limit", [SEARCH_CLAUSE_LIMIT, 7], ids=["stripe_case", "seven_case"]
)
async def test_fifty_customers_take_one_search_call_per_chunk_of_clauses(
    cards_sandbox: CardsSandbox,
    stripe_processor: StripeCardProcessor,
    stripe_spec: StripeSpec,
    clause_limit: int,
) -> None:
    stripe_processor._search_clause_limit = clause_limit
    customers = [f"cus_{n}" for n in range(1, 51)]

    pages = await stripe_processor.payments_by_customers(customers, limit=5)

    assert list(pages) == customers
    for customer, page in pages.items():
        ids = cards_sandbox.data.payment_intent_ids(customer)
        assert [payment.id for payment in page.items] == ids[:5]
        assert page.has_more is (len(ids) > 5)
        assert page.next_cursor == (ids[4] if len(ids) > 5 else None)
    assert cards_sandbox.calls == {"GET /v1/payment_intents/search": math.ceil(50 / clause_limit)}
    assert len(stripe_spec.checked) == math.ceil(50 / clause_limit)


async def test_a_batch_page_continues_with_the_list_endpoint(
    stripe_processor: StripeCardProcessor, cards_sandbox: CardsSandbox
) -> None:
    customer = _customer_with(cards_sandbox, 6)
    first = (await stripe_processor.payments_by_customers([customer, customer], limit=3))[customer]

    rest = await stripe_processor.list_payments(
        customer, limit=100, starting_after=first.next_cursor
    )

    ids = [payment.id for payment in (*first.items, *rest.items)]
    assert ids == cards_sandbox.data.payment_intent_ids(customer)


async def test_unknown_and_empty_customers_get_empty_pages(
    stripe_processor: StripeCardProcessor, cards_sandbox: CardsSandbox
) -> None:
    empty = next(
        f"cus_{n}" for n in range(1, 200) if not cards_sandbox.data.payment_intent_ids(f"cus_{n}")
    )

    pages = await stripe_processor.payments_by_customers([empty, "cus_unknown"])

    assert {key: (page.items, page.has_more) for key, page in pages.items()} == {
        empty: ((), False),
        "cus_unknown": ((), False),
    }
    assert await stripe_processor.payments_by_customers([]) == {}
    assert cards_sandbox.total_calls == 1


async def test_get_payment_and_not_found(
    stripe_processor: StripeCardProcessor, cards_sandbox: CardsSandbox
) -> None:
    payment_id = cards_sandbox.data.payment_intent_ids(_customer_with(cards_sandbox, 1))[0]

    payment = await stripe_processor.get_payment(payment_id)

    _assert_maps(cards_sandbox, payment)
    with pytest.raises(NotFound):
        await stripe_processor.get_payment("pi_000000001999nothere")


async def test_isk_amounts_keep_stripe_two_decimal_exponent(
    stripe_processor: StripeCardProcessor, cards_sandbox: CardsSandbox
) -> None:
    customers = [f"cus_{n}" for n in range(1, 51)]
    pages = await stripe_processor.payments_by_customers(customers, limit=100)
    by_currency = {p.currency: p for page in pages.values() for p in page.items}

    assert by_currency["ISK"].exponent == 2
    assert by_currency["ISK"].amount % 100 == 0
    assert (by_currency["JPY"].exponent, by_currency["USD"].exponent) == (0, 2)


async def test_account_lists_disputes_payouts_and_balance_transactions(
    stripe_processor: StripeCardProcessor, cards_sandbox: CardsSandbox
) -> None:
    disputes = await stripe_processor.list_disputes(limit=100)
    payouts = await stripe_processor.list_payouts(limit=3)
    payout = payouts.items[1]
    settled = await stripe_processor.list_balance_transactions(limit=100, payout_id=payout.id)
    everything = await stripe_processor.list_balance_transactions(limit=100)

    assert [d.id for d in disputes.items] == [d["id"] for d in cards_sandbox.data.disputes()]
    assert disputes.items
    assert all(d.payment_id for d in disputes.items)
    assert [p.id for p in payouts.items] == [p["id"] for p in cards_sandbox.data.payouts()[:3]]
    assert (payouts.has_more, payouts.next_cursor) == (True, payouts.items[-1].id)
    assert [b.id for b in settled.items] == [
        b["id"] for b in cards_sandbox.data.balance_transactions(payout_id=payout.id)
    ]
    assert payout.id in {b.source_id for b in settled.items}
    assert [b.id for b in everything.items] == [
        b["id"] for b in cards_sandbox.data.balance_transactions()[:100]
    ]


async def test_the_registry_builds_a_stripe_processor() -> None:
    processor = create_card_processor("stripe", api_key="sk_test_x", base_url="http://x")
    await processor.aclose()

    assert isinstance(processor, StripeCardProcessor)
    assert isinstance(processor, CardProcessor)
    assert processor.name == "stripe"
    with pytest.raises(KeyError, match="known: \\['stripe'\\]"):
        create_card_processor("adyen")
