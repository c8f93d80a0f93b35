"""`reconciliation(from:, to:)` over HTTP: stored results with amounts and reasons, its own
scope, tenant isolation, paging in a fixed number of statements, and no stale cached answer
after a run stores new results."""

from __future__ import annotations

import datetime as dt

from adapters.reconciliation.records import (
    MissingOn,
    Reason,
    ReasonCode,
    ReconciliationItem,
    ReconciliationStatus,
)
from adapters.reconciliation.store import ReconciliationStore
from tests.factories import make_tenant
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)

QUERY = """
query Recon($from: DateTime!, $to: DateTime!, $first: Int!, $after: String,
            $statuses: [ReconciliationStatus!]) {
  reconciliation(from: $from, to: $to) {
    matched unmatched mismatched pending
    items(first: $first, after: $after, statuses: $statuses) {
      edges { cursor node {
        id status provider payoutId occurredAt missingOn itemCount bankDate bankTransactionId
        payoutAmount { amount currency } itemsNet { amount currency }
        bankAmount { amount currency } reasons { code message }
      } }
      pageInfo { hasNextPage }
    }
  }
}"""


def _item(
    n: int, status: ReconciliationStatus = ReconciliationStatus.MATCHED
) -> ReconciliationItem:
    reasons: tuple[Reason, ...] = ()
    missing = None
    if status == ReconciliationStatus.MISMATCHED:
        reasons = (
            Reason(ReasonCode.BANK_AMOUNT_DIFFERS, "bank credit 12.33 USD, payout 12.34 USD"),
        )
    elif status == ReconciliationStatus.UNMATCHED:
        reasons, missing = (Reason(ReasonCode.NO_BANK_CREDIT, "no bank credit"),), MissingOn.BANK
    return ReconciliationItem(
        provider="stripe",
        payout_id=f"po_{n:04d}",
        status=status,
        missing_on=missing,
        reasons=reasons,
        occurred_at=START + dt.timedelta(hours=n),
        currency="USD",
        exponent=2,
        payout_amount=1234,
        items_net=1234,
        item_count=3,
        bank_transaction_id=None if missing else 10_000 + n,
        bank_amount=None if missing else 1233 if reasons else 1234,
        bank_currency=None if missing else "USD",
        bank_exponent=None if missing else 2,
        bank_date=None if missing else dt.date(2026, 3, 2),
        checked_at=END,
    )


def _variables(first: int = 100, **more: object) -> dict[str, object]:
    return {"from": START.isoformat(), "to": END.isoformat(), "first": first, **more}


async def test_lists_stored_results_with_amounts_and_reasons(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    items = [
        _item(0),
        _item(1, ReconciliationStatus.MISMATCHED),
        _item(2, ReconciliationStatus.UNMATCHED),
    ]
    await ReconciliationStore(database.engine).replace(tenant_id, "stripe", START, END, items)
    body = await gql.post(QUERY, _variables(), tenant_id=tenant_id, scopes=["reconciliation:read"])
    assert "errors" not in body, body
    found = body["data"]["reconciliation"]
    assert (found["matched"], found["unmatched"], found["mismatched"], found["pending"]) == (
        1,
        1,
        1,
        0,
    )
    nodes = [edge["node"] for edge in found["items"]["edges"]]
    assert [n["payoutId"] for n in nodes] == ["po_0000", "po_0001", "po_0002"]
    mismatched = nodes[1]
    assert mismatched["status"] == "MISMATCHED"
    assert mismatched["payoutAmount"] == {"amount": "12.34", "currency": "USD"}
    assert mismatched["bankAmount"] == {"amount": "12.33", "currency": "USD"}
    assert mismatched["reasons"] == [
        {"code": "BANK_AMOUNT_DIFFERS", "message": "bank credit 12.33 USD, payout 12.34 USD"}
    ]
    unmatched = nodes[2]
    assert (unmatched["status"], unmatched["missingOn"], unmatched["bankAmount"]) == (
        "UNMATCHED", "BANK", None,
    )  # fmt: skip
    assert nodes[0]["reasons"] == []
    assert nodes[0]["bankDate"] == "2026-03-02"

    only = await gql.post(
        QUERY, _variables(statuses=["UNMATCHED", "MISMATCHED"]), tenant_id=tenant_id,
        scopes=["reconciliation:read"],
    )  # fmt: skip
    edges = only["data"]["reconciliation"]["items"]["edges"]
    assert [e["node"]["payoutId"] for e in edges] == ["po_0001", "po_0002"]


async def test_needs_its_scope_and_sees_only_the_callers_tenant(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    await ReconciliationStore(database.engine).replace(tenant_id, "stripe", START, END, [_item(0)])
    refused = await gql.post(
        QUERY, _variables(), tenant_id=tenant_id, scopes=["ledger:read", "providers:read"]
    )
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"] == {
        "code": "FORBIDDEN", "scope": "reconciliation:read",
    }  # fmt: skip
    other = await make_tenant(database.engine)
    theirs = await gql.post(QUERY, _variables(), tenant_id=other, scopes=["reconciliation:read"])
    assert theirs["data"]["reconciliation"]["items"]["edges"] == []
    assert theirs["data"]["reconciliation"]["matched"] == 0


async def test_pages_take_a_fixed_number_of_statements(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    items = [_item(n, ReconciliationStatus.MATCHED) for n in range(60)]
    await ReconciliationStore(database.engine).replace(tenant_id, "stripe", START, END, items)
    counts = {}
    for first in (5, 50):
        with database.metrics.measure_statements() as tally:
            body = await gql.post(
                QUERY, _variables(first), tenant_id=tenant_id, scopes=["reconciliation:read"]
            )
        assert len(body["data"]["reconciliation"]["items"]["edges"]) == first
        assert body["data"]["reconciliation"]["items"]["pageInfo"]["hasNextPage"] is True
        counts[first] = tally.count
    # the page, the counts, and the data version read for the response cache's key
    assert counts[5] == counts[50] == 2 + int(gql.settings.response_cache)
    cursor = body["data"]["reconciliation"]["items"]["edges"][-1]["cursor"]
    rest = await gql.post(
        QUERY, _variables(50, after=cursor), tenant_id=tenant_id, scopes=["reconciliation:read"]
    )
    edges = rest["data"]["reconciliation"]["items"]["edges"]
    assert [e["node"]["payoutId"] for e in edges] == [f"po_{n:04d}" for n in range(50, 60)]


async def test_a_new_run_is_never_answered_from_an_older_cached_answer(
    database: Database, gql: GraphQLClient, tenant_id: int
) -> None:
    store = ReconciliationStore(database.engine)
    await store.replace(tenant_id, "stripe", START, END, [_item(0)])
    first = await gql.post(QUERY, _variables(), tenant_id=tenant_id, scopes=["reconciliation:read"])
    again = await gql.post(QUERY, _variables(), tenant_id=tenant_id, scopes=["reconciliation:read"])
    assert first == again
    await store.replace(tenant_id, "stripe", START, END, [_item(0, ReconciliationStatus.UNMATCHED)])
    after = await gql.post(QUERY, _variables(), tenant_id=tenant_id, scopes=["reconciliation:read"])
    assert after["data"]["reconciliation"]["unmatched"] == 1
    assert after["data"]["reconciliation"]["matched"] == 0


async def test_an_empty_or_reversed_window_is_bad_input(gql: GraphQLClient, tenant_id: int) -> None:
    body = await gql.post(
        QUERY, {"from": END.isoformat(), "to": START.isoformat(), "first": 10},
        tenant_id=tenant_id, scopes=["reconciliation:read"],
    )  # fmt: skip
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
