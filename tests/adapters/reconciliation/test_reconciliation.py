"""Reconciliation end to end: the card sandbox's payouts booked into a real ledger and matched
to bank credits synced from the banking sandbox (both over HTTP), with injected faults."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from adapters.ledger.posting_requests import NewEntry, NewTransaction
from adapters.ledger.tables import ledger_accounts
from adapters.reconciliation.booking import SettlementBooker
from adapters.reconciliation.records import MissingOn, ReasonCode, ReconciliationStatus
from adapters.reconciliation.store import ReconciliationStore
from adapters.reconciliation.tables import settlement_accounts
from adapters.records import Direction
from tests.adapters.reconciliation.scenario import BASE, END, START, make_scenario
from tests.fixtures.providers import ProviderWorld


async def _balances(world: ProviderWorld, tenant_id: int) -> dict[tuple[str, str], int]:
    """Debit-positive posted balance of each chart account, by (name, currency)."""
    a, s = ledger_accounts, settlement_accounts
    query = (
        select(a.c.name, a.c.currency, a.c.posted_debits - a.c.posted_credits)
        .join(s, (s.c.tenant_id == a.c.tenant_id) & (s.c.ledger_account_id == a.c.id))
        .where(a.c.tenant_id == tenant_id)
    )
    async with world.engine.connect() as connection:
        return {(name, cur): int(net) for name, cur, net in await connection.execute(query)}


async def test_clean_payouts_match_and_rerunning_books_nothing_more(
    providers: ProviderWorld, tenant_id: int
) -> None:
    scenario = await make_scenario(providers, tenant_id)
    await scenario.credit()
    calls_before = providers.cards.total_calls
    run = await scenario.run()
    payouts = scenario.payouts
    assert len(run.items) == len(payouts) == 9
    assert {item.status for item in run.items} == {ReconciliationStatus.MATCHED}
    assert not run.breaks
    # One page of payouts, one page of movements per payout: no call per movement.
    assert providers.cards.total_calls - calls_before == 1 + len(payouts)
    by_id = {item.payout_id: item for item in run.items}
    for payout in payouts:
        item = by_id[payout["id"]]
        assert (item.payout_amount, item.items_net) == (payout["amount"], payout["amount"])
        arrival = dt.datetime.fromtimestamp(payout["arrival_date"], dt.UTC).date()
        assert item.bank_date == arrival + dt.timedelta(days=1)

    booked = await scenario.ledger_transactions()
    movements = len({i for p in payouts for i in p["_items"]})
    assert booked == movements + 2 * len(payouts)  # each movement, each payout, each arrival
    balances = await _balances(providers, tenant_id)
    usd = [p["amount"] for p in payouts if p["currency"] == "usd"]
    assert balances[("processor:stripe:clearing", "USD")] == 0
    assert balances[("processor:stripe:payouts_in_transit", "USD")] == 0
    assert balances[("bank:operating", "USD")] == sum(usd)
    # ISK: Stripe counts hundredths, the ledger whole krónur.
    isk = sum(p["amount"] for p in payouts if p["currency"] == "isk")
    assert balances[("bank:operating", "ISK")] == isk // 100
    assert sum(balances.values()) == 0  # debit-positive sums of a balanced ledger

    again = await scenario.run()
    assert await scenario.ledger_transactions() == booked
    assert [(i.payout_id, i.status) for i in again.items] == [
        (i.payout_id, i.status) for i in run.items
    ]
    stored = await ReconciliationStore(providers.engine).page(
        tenant_id, START, END, statuses=None, first=100, offset=0
    )
    assert len(stored.items) == 9


async def test_injected_faults_are_reported_with_reasons_and_amounts(
    providers: ProviderWorld, tenant_id: int
) -> None:
    scenario = await make_scenario(providers, tenant_id)
    usd0, eur0, gbp0 = (scenario.payout(c, 0) for c in ("usd", "eur", "gbp"))
    jpy0, usd1, eur1, isk1 = (
        scenario.payout("jpy", 0), scenario.payout("usd", 1), scenario.payout("eur", 1),
        scenario.payout("isk", 1),
    )  # fmt: skip
    hidden = usd0["_items"][0]
    twice = eur0["_items"][0]
    faults = providers.cards.faults
    faults.payout_missing_items = [hidden]
    faults.payout_duplicated_items = [twice]
    faults.payout_amounts = {gbp0["id"]: gbp0["amount"] + 100}
    await scenario.credit(
        late={jpy0["id"]: 9},
        amounts={usd1["id"]: usd1["amount"] - 1},
        missing={eur1["id"]},
        duplicated={isk1["id"]},
    )
    run = await scenario.run()
    by_id = {item.payout_id: item for item in run.items}

    def codes(payout: dict[str, object]) -> list[ReasonCode]:
        return [reason.code for reason in by_id[str(payout["id"])].reasons]

    missing_item = by_id[usd0["id"]]
    assert missing_item.status == ReconciliationStatus.MISMATCHED
    assert codes(usd0) == [ReasonCode.ITEMS_DO_NOT_SUM_TO_PAYOUT]
    hidden_net = providers.cards.data.objects[hidden]["net"]
    assert missing_item.items_net == usd0["amount"] - hidden_net
    assert missing_item.item_count == len(usd0["_items"]) - 1

    assert codes(eur0) == [ReasonCode.DUPLICATE_ITEM, ReasonCode.ITEMS_DO_NOT_SUM_TO_PAYOUT]
    assert twice in by_id[eur0["id"]].reasons[0].message

    wrong = by_id[gbp0["id"]]
    assert codes(gbp0) == [ReasonCode.ITEMS_DO_NOT_SUM_TO_PAYOUT, ReasonCode.BANK_AMOUNT_DIFFERS]
    assert (wrong.payout_amount, wrong.bank_amount) == (gbp0["amount"] + 100, gbp0["amount"])

    late = by_id[jpy0["id"]]
    assert (late.status, late.missing_on) == (ReconciliationStatus.UNMATCHED, MissingOn.BANK)
    assert codes(jpy0) == [ReasonCode.LATE_BANK_CREDIT]
    assert late.bank_transaction_id is not None

    short = by_id[usd1["id"]]
    assert short.status == ReconciliationStatus.MISMATCHED
    assert codes(usd1) == [ReasonCode.BANK_AMOUNT_DIFFERS]
    assert (short.payout_amount, short.bank_amount) == (usd1["amount"], usd1["amount"] - 1)

    absent = by_id[eur1["id"]]
    assert (absent.status, absent.missing_on) == (ReconciliationStatus.UNMATCHED, MissingOn.BANK)
    assert codes(eur1) == [ReasonCode.NO_BANK_CREDIT]

    assert by_id[isk1["id"]].status == ReconciliationStatus.MATCHED
    (extra,) = [item for item in run.items if item.payout_id is None]
    assert (extra.status, extra.missing_on) == (ReconciliationStatus.UNMATCHED, MissingOn.PROCESSOR)
    assert [r.code for r in extra.reasons] == [ReasonCode.DUPLICATE_BANK_CREDIT]
    assert isk1["id"] in extra.reasons[0].message

    untouched = {p["id"] for p in scenario.payouts} - {
        p["id"] for p in (usd0, eur0, gbp0, jpy0, usd1, eur1)
    }
    assert {by_id[i].status for i in untouched} == {ReconciliationStatus.MATCHED}
    assert len(run.breaks) == 7

    # A payout's arrival is booked when its bank credit matched (usd0's did: only its
    # movement list is short); usd1's credit differs, so it stays in transit.
    assert missing_item.bank_amount == usd0["amount"]
    balances = await _balances(providers, tenant_id)
    assert balances[("processor:stripe:payouts_in_transit", "USD")] == usd1["amount"]
    # The movement the processor left out was never booked: clearing is short by its net.
    assert balances[("processor:stripe:clearing", "USD")] == -hidden_net


async def test_payouts_whose_bank_window_is_open_are_pending(
    providers: ProviderWorld, tenant_id: int
) -> None:
    scenario = await make_scenario(providers, tenant_id)
    run = await scenario.run(now=BASE + dt.timedelta(days=3))
    statuses = {item.payout_id: (item.status, [r.code for r in item.reasons]) for item in run.items}
    for payout in scenario.payouts:
        if payout["status"] == "in_transit":  # arrives at BASE + 2 days: window still open
            expected = (ReconciliationStatus.PENDING, [ReasonCode.AWAITING_BANK_CREDIT])
        else:
            expected = (ReconciliationStatus.UNMATCHED, [ReasonCode.NO_BANK_CREDIT])
        assert statuses[payout["id"]] == expected
    assert len(run.breaks) == 4


async def test_a_conflicting_booking_under_the_providers_key_is_a_mismatch(
    providers: ProviderWorld, tenant_id: int
) -> None:
    scenario = await make_scenario(providers, tenant_id)
    await scenario.credit()
    payout = scenario.payout("usd", 1)
    movement = payout["_items"][0]
    posting = scenario.posting()
    # Someone books another body under the key reconciliation derives from the movement's id.
    chart = await SettlementBooker(providers.engine).ensure_accounts(
        tenant_id, {("processor:stripe", "clearing", "USD"), ("processor:stripe", "fees", "USD")}
    )
    ids = [chart["processor:stripe", role, "USD"] for role in ("clearing", "fees")]
    await posting.post_transaction(
        tenant_id,
        NewTransaction(
            idempotency_key=f"stripe:{movement}",
            entries=(
                NewEntry(ids[0], Direction.DEBIT, 1, "USD"),
                NewEntry(ids[1], Direction.CREDIT, 1, "USD"),
            ),
        ),
    )
    run = await scenario.run()
    (item,) = [i for i in run.items if i.payout_id == payout["id"]]
    assert item.status == ReconciliationStatus.MISMATCHED
    assert [r.code for r in item.reasons] == [ReasonCode.BOOKING_CONFLICT]
    assert movement in item.reasons[0].message


async def test_concurrent_runs_book_every_movement_once(
    providers: ProviderWorld, tenant_id: int
) -> None:
    scenario = await make_scenario(providers, tenant_id)
    await scenario.credit()
    runs = await asyncio.gather(*(scenario.run() for _ in range(3)))
    assert all(not run.breaks for run in runs)
    payouts = scenario.payouts
    movements = len({i for p in payouts for i in p["_items"]})
    assert await scenario.ledger_transactions() == movements + 2 * len(payouts)
    stored = await ReconciliationStore(providers.engine).page(
        tenant_id, START, END, statuses=None, first=100, offset=0
    )
    assert len(stored.items) == 9
    assert sum((await _balances(providers, tenant_id)).values()) == 0
