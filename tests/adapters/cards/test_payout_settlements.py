"""Payouts of the card sandbox settle what they list, and its settlement faults break that:
every exchange goes through the Stripe adapter and is checked against Stripe's spec."""

from __future__ import annotations

from adapters.cards.records import BalanceTransactionType
from adapters.cards.stripe import StripeCardProcessor
from adapters.sandbox.cards_app import CardsSandbox


async def _settled(processor: StripeCardProcessor, payout_id: str) -> list[tuple[str, int]]:
    page = await processor.list_balance_transactions(limit=100, payout_id=payout_id)
    assert not page.has_more
    return [(b.id, b.net) for b in page.items if b.type != BalanceTransactionType.PAYOUT]


async def test_each_payout_is_the_net_of_its_movements_in_its_currency(
    cards_sandbox: CardsSandbox, stripe_processor: StripeCardProcessor
) -> None:
    payouts = (await stripe_processor.list_payouts(limit=100)).items
    assert len({(p.currency, p.created) for p in payouts}) == len(payouts) > 4
    for payout in payouts:
        page = await stripe_processor.list_balance_transactions(limit=100, payout_id=payout.id)
        own = [b for b in page.items if b.source_id == payout.id]
        assert [(b.type, b.amount) for b in own] == [
            (BalanceTransactionType.PAYOUT, -payout.amount)
        ]
        assert {b.currency for b in page.items} == {payout.currency}
        assert sum(b.net for b in page.items) == 0  # the movements' net, less the payout


async def test_disputes_withdraw_their_amount(
    cards_sandbox: CardsSandbox, stripe_processor: StripeCardProcessor
) -> None:
    movements = (await stripe_processor.list_balance_transactions(limit=100)).items
    withdrawals = [b for b in movements if b.type == BalanceTransactionType.DISPUTE]
    assert withdrawals
    disputes = {d.id: d for d in (await stripe_processor.list_disputes(limit=100)).items}
    for withdrawal in withdrawals:
        assert withdrawal.source_id in disputes
        assert withdrawal.amount == -disputes[withdrawal.source_id].amount


async def test_settlement_faults_change_what_a_payout_lists_and_says(
    cards_sandbox: CardsSandbox, stripe_processor: StripeCardProcessor
) -> None:
    payout = (await stripe_processor.list_payouts(limit=1)).items[0]
    clean = await _settled(stripe_processor, payout.id)
    (first, _), (second, _) = clean[0], clean[1]
    cards_sandbox.faults.payout_missing_items = [first]
    cards_sandbox.faults.payout_duplicated_items = [second]
    cards_sandbox.faults.payout_amounts = {payout.id: payout.amount + 1}

    faulty = await _settled(stripe_processor, payout.id)
    assert [id_ for id_, _ in faulty].count(second) == 2
    assert first not in {id_ for id_, _ in faulty}
    said = (await stripe_processor.list_payouts(limit=1)).items[0]
    assert said.amount == payout.amount + 1

    cards_sandbox.reset()
    assert await _settled(stripe_processor, payout.id) == clean
