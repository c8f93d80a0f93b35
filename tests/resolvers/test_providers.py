"""Provider fields through the schema: batching, cache, failures, staleness, first sync.

Sandboxes run as real HTTP servers and count what they receive; every test runs on both
databases and both cache backends.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.sync import sync_bank_links
from adapters.sandbox.cards_app import CardsSandboxFaults
from tests.factories import make_account, make_customer
from tests.fixtures.providers import ProviderWorld

PAGE = """
query Page($first: Int!) {
  customers(first: $first) { edges { node {
    displayName
    ledgerAccounts(first: 5) { edges { node { name } } }
    bankAccounts {
      name mask type subtype provider fetchedAt connectionStatus
      balances { current { amount currency } asOf }
    }
    cardPayments(first: 5) {
      edges { node {
        processorId provider fetchedAt status createdAt
        amount { amount currency } captured { amount } refunded { amount }
        card { brand last4 expMonth expYear funding wallet }
        refunds { amount { amount } status }
        dispute { status reason provider }
        failureCode failureCategory failureMessage fee { amount } net { amount }
      } }
      pageInfo { hasNextPage endCursor }
    }
  } } }
}
"""


async def _customers(
    world: ProviderWorld, engine: AsyncEngine, tenant_id: int, count: int, *, banks: bool = True
) -> list[int]:
    ids = []
    for number in range(1, count + 1):
        customer_id = await make_customer(engine, tenant_id, display_name=f"C{number:03}")
        await make_account(engine, tenant_id, customer_id=customer_id, name=f"Wallet {number}")
        await world.link_card_customer(tenant_id, customer_id, f"cus_{number}")
        if banks:
            await world.link_bank(tenant_id, customer_id, transactions=3)
        ids.append(customer_id)
    return ids


def _nodes(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in body["data"]["customers"]["edges"]]


async def test_a_page_of_50_customers_costs_a_few_batched_upstream_calls_then_none(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    # Given 50 customers, each with a card customer and a synced bank item
    await _customers(providers, engine, tenant_id, 50)
    runtime = providers.runtime
    await sync_bank_links(engine, runtime.banking_providers, runtime.secret_box,  # type: ignore[arg-type]
                          tenant_id=tenant_id)  # fmt: skip
    providers.cards.reset()
    providers.banking.calls.clear()

    # When the page is read cold
    cold = await providers.execute(PAGE, {"first": 50}, tenant_id=tenant_id)

    # Then: one card search per 10 customers (the processor's clause limit), no bank calls
    assert "errors" not in cold, cold.get("errors")
    assert dict(providers.cards.calls) == {"GET /v1/payment_intents/search": 5}
    assert sum(providers.banking.calls.values()) == 0
    nodes = _nodes(cold)
    assert len(nodes) == 50
    assert all(node["ledgerAccounts"]["edges"] for node in nodes)
    assert all(node["bankAccounts"] for node in nodes)
    payments = [edge["node"] for node in nodes for edge in node["cardPayments"]["edges"]]
    assert payments
    assert {payment["provider"] for payment in payments} == {"stripe"}
    assert all(
        payment["failureMessage"] is None or payment["failureCategory"] is not None
        for payment in payments
    )

    # When the same page is read again: everything comes from the cache
    warm = await providers.execute(PAGE, {"first": 50}, tenant_id=tenant_id)
    assert warm == cold
    assert providers.cards.total_calls == 5
    assert runtime.reads.hits == 50


async def test_provider_down_nulls_only_its_fields_with_a_coded_error(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    await _customers(providers, engine, tenant_id, 2, banks=False)
    providers.cards.faults = CardsSandboxFaults(fail_status=503)

    body = await providers.execute(PAGE, {"first": 2}, tenant_id=tenant_id)

    nodes = _nodes(body)
    assert [node["cardPayments"] for node in nodes] == [None, None]
    assert [node["ledgerAccounts"]["edges"][0]["node"]["name"] for node in nodes] == [
        "Wallet 1", "Wallet 2",
    ]  # fmt: skip
    assert [node["bankAccounts"] for node in nodes] == [[], []]
    errors = body["errors"]
    assert [error["path"][-1] for error in errors] == ["cardPayments", "cardPayments"]
    extensions = errors[0]["extensions"]
    assert extensions["code"] == "PROVIDER_UNAVAILABLE"
    assert extensions["provider"] == "stripe"
    assert extensions["retryable"] is True
    assert extensions["requestId"]
    assert "An error occurred on our side" not in errors[0]["message"]
    assert providers.cards.calls["GET /v1/payment_intents/search"] == 3  # one call, 3 attempts


async def test_rate_limited_processor_answers_rate_limited_and_retryable(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    await _customers(providers, engine, tenant_id, 1, banks=False)
    providers.cards.faults = CardsSandboxFaults(fail_status=429, retry_after_seconds=60)

    body = await providers.execute(PAGE, {"first": 1}, tenant_id=tenant_id)

    assert _nodes(body)[0]["cardPayments"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "PROVIDER_RATE_LIMITED"
    assert error["extensions"]["retryable"] is True
    assert error["extensions"]["retryAfterSeconds"] == 60
    assert providers.cards.total_calls == 1  # Retry-After beyond the cap: not waited for


async def test_stale_payments_are_served_and_reported_when_the_processor_fails(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    await _customers(providers, engine, tenant_id, 3, banks=False)
    fresh = await providers.execute(PAGE, {"first": 3}, tenant_id=tenant_id)
    providers.clock.now += 120  # past the 60 s TTL, inside the stale window
    providers.cards.faults = CardsSandboxFaults(fail_status=503)

    stale = await providers.execute(PAGE, {"first": 3}, tenant_id=tenant_id)

    assert "errors" not in stale
    assert stale["data"] == fresh["data"]
    [entry] = stale["extensions"]["staleData"]
    assert entry["provider"] == "stripe"
    assert entry["count"] == 3
    assert entry["code"] == "PROVIDER_UNAVAILABLE"
    assert 120 <= entry["ageSeconds"] < 121


async def test_bank_accounts_trigger_a_first_sync_then_read_from_our_tables(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    customer_id = await make_customer(engine, tenant_id)
    await providers.link_bank(tenant_id, customer_id, transactions=6)
    query = """
      query One($id: ID!) { customer(id: $id) { bankAccounts {
        name provider transactions(first: 50) { edges { node { amount { amount } date } } }
      } } }
    """
    from resolvers.node import encode_global_id

    variables = {"id": encode_global_id("Customer", customer_id)}
    first = await providers.execute(query, variables, tenant_id=tenant_id)
    assert "errors" not in first, first.get("errors")
    accounts = first["data"]["customer"]["bankAccounts"]
    assert accounts
    assert {account["provider"] for account in accounts} == {"plaid"}
    first_sync = {"/transactions/sync": 1, "/accounts/get": 1, "/institutions/get_by_id": 1}
    assert dict(providers.banking.calls) == first_sync  # feed, then its institution

    again = await providers.execute(query, variables, tenant_id=tenant_id)
    assert again == first
    assert dict(providers.banking.calls) == first_sync  # from our tables

    dates = sorted(
        edge["node"]["date"] for account in accounts for edge in account["transactions"]["edges"]
    )
    assert len(dates) == 6
    since = dates[3]
    filtered = await providers.execute(
        query.replace("first: 50", f'first: 50, since: "{since}"'), variables, tenant_id=tenant_id
    )
    kept = [
        edge["node"]["date"]
        for account in filtered["data"]["customer"]["bankAccounts"]
        for edge in account["transactions"]["edges"]
    ]
    assert sorted(kept) == [date for date in dates if date >= since]


async def test_a_failed_first_sync_nulls_only_bank_accounts(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    customer_id = await make_customer(engine, tenant_id, display_name="Bank down")
    await providers.link_bank(tenant_id, customer_id)
    providers.banking.faults.error_rate = 1.0
    query = "{ customers(first: 1) { edges { node { displayName bankAccounts { name } } } } }"

    body = await providers.execute(query, tenant_id=tenant_id)

    assert _nodes(body) == [{"displayName": "Bank down", "bankAccounts": None}]
    [error] = body["errors"]
    assert error["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
    assert error["extensions"]["provider"] == "plaid"


async def test_card_payments_page_forward_with_after(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    customer_id = await make_customer(engine, tenant_id)
    await providers.link_card_customer(tenant_id, customer_id, "cus_4")
    query = """query Pages($after: String) { customers(first: 1) { edges { node {
      cardPayments(first: 1, after: $after) {
        edges { node { processorId } } pageInfo { hasNextPage endCursor } } } } } }"""
    expected = providers.cards.data.payment_intent_ids("cus_4")  # 11 payments

    seen: list[str] = []
    after = None
    for _ in range(len(expected) + 1):
        body = await providers.execute(query, {"after": after}, tenant_id=tenant_id)
        connection = _nodes(body)[0]["cardPayments"]
        seen += [edge["node"]["processorId"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(expected)
    assert providers.cards.calls["GET /v1/payment_intents"] == len(expected) - 1


async def test_a_cursor_of_another_list_is_bad_user_input(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    await _customers(providers, engine, tenant_id, 1, banks=False)
    query = '{ customers(first: 1) { edges { node { cardPayments(after: "bm9wZQ==") {'
    query += " edges { node { processorId } } } } } } }"
    body = await providers.execute(query, tenant_id=tenant_id)
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}
    assert providers.cards.total_calls == 0


async def test_bank_accounts_name_their_institution_from_our_tables(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    gingham = await make_customer(engine, tenant_id, display_name="C1")
    unnamed = await make_customer(engine, tenant_id, display_name="C2")
    await providers.link_bank(tenant_id, gingham, institution_id="ins_109509")
    await providers.link_bank(tenant_id, unnamed, institution_id="ins_unknown")
    runtime = providers.runtime
    await sync_bank_links(engine, runtime.banking_providers, runtime.secret_box,  # type: ignore[arg-type]
                          tenant_id=tenant_id)  # fmt: skip
    providers.banking.calls.clear()
    query = """{ customers(first: 2) { edges { node {
      displayName bankAccounts { type institution { id name } } } } } }"""

    body = await providers.execute(query, tenant_id=tenant_id)

    assert "errors" not in body, body.get("errors")
    assert sum(providers.banking.calls.values()) == 0
    institutions = {
        node["displayName"]: [account["institution"] for account in node["bankAccounts"]]
        for node in _nodes(body)
    }
    gingham_bank = {"id": "ins_109509", "name": "First Gingham Credit Union"}
    assert institutions == {
        "C1": [gingham_bank, gingham_bank],  # checking and credit card
        "C2": [{"id": "ins_unknown", "name": None}] * 2,  # its lookup failed: the id alone
    }
