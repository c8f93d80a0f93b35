"""Customer.bankAccounts across both banking providers (Plaid-shaped and Open Banking-shaped):
one list from the shared tables, batched, tenant isolated; an expired Open Banking consent is
PROVIDER_REAUTH_REQUIRED. Sandboxes run as real HTTP servers; both databases, both caches."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.sync import sync_bank_links
from resolvers.node import encode_global_id
from tests.factories import make_customer, make_tenant
from tests.fixtures.database import Database
from tests.fixtures.providers import ProviderWorld

PAGE = """
query Page($first: Int!) {
  customers(first: $first) { edges { node {
    displayName
    bankAccounts {
      provider name type mask connectionStatus institution { id name }
      balances { current { amount currency } available { amount currency } }
      transactions(first: 50) { edges { node { amount { amount currency } isPending } } }
    }
  } } }
}
"""


def _nodes(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in body["data"]["customers"]["edges"]]


async def _customers_with_both(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int, count: int
) -> list[int]:
    ids = []
    for number in range(count):
        customer_id = await make_customer(engine, tenant_id, display_name=f"B{number:03}")
        await providers.link_bank(tenant_id, customer_id, transactions=3)
        await providers.link_obuk(tenant_id, customer_id, f"cb-{tenant_id}-{number}",
                                  transactions=3)  # fmt: skip
        ids.append(customer_id)
    runtime = providers.runtime
    assert runtime.secret_box is not None
    await sync_bank_links(engine, runtime.banking_providers, runtime.secret_box,
                          tenant_id=tenant_id)  # fmt: skip
    return ids


async def test_bank_accounts_list_both_providers_in_statements_that_do_not_grow(
    providers: ProviderWorld, database: Database, tenant_id: int
) -> None:
    engine = database.engine
    await _customers_with_both(providers, engine, tenant_id, 12)
    providers.banking.calls.clear()
    providers.obuk.calls.clear()

    counts = []
    for first in (2, 12):
        with database.metrics.measure_statements() as tally:
            body = await providers.execute(PAGE, {"first": first}, tenant_id=tenant_id)
        counts.append(tally.count)
        assert "errors" not in body, body.get("errors")
        nodes = _nodes(body)
        assert len(nodes) == first
        for node in nodes:
            by_provider = {a["provider"] for a in node["bankAccounts"]}
            assert by_provider == {"plaid", "obuk"}
            assert len(node["bankAccounts"]) == 4
            obuk = [a for a in node["bankAccounts"] if a["provider"] == "obuk"]
            assert {a["institution"]["name"] for a in obuk} == {"Open Banking ASPSP"}
            assert {a["type"] for a in obuk} == {"depository", "credit"}
            amounts = [e["node"]["amount"] for a in obuk for e in a["transactions"]["edges"]]
            assert len(amounts) == 3
            assert {m["currency"] for m in amounts} == {"GBP"}

    assert counts[0] == counts[1]  # customers, accounts, transactions: one statement each
    assert providers.upstream_calls == 0  # read from our tables, never from the banks


async def test_another_tenants_open_banking_accounts_are_invisible(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    other = await make_tenant(engine)
    (theirs,) = await _customers_with_both(providers, engine, other, 1)
    (ours,) = await _customers_with_both(providers, engine, tenant_id, 1)
    query = """query One($id: ID!) { customer(id: $id) { bankAccounts { provider name } } }"""

    mine = await providers.execute(
        query, {"id": encode_global_id("Customer", ours)}, tenant_id=tenant_id
    )
    foreign = await providers.execute(
        query, {"id": encode_global_id("Customer", theirs)}, tenant_id=tenant_id
    )

    assert len(mine["data"]["customer"]["bankAccounts"]) == 4
    assert foreign["data"]["customer"] is None
    listed = await providers.execute(PAGE, {"first": 10}, tenant_id=tenant_id)
    assert [node["displayName"] for node in _nodes(listed)] == ["B000"]


async def test_an_expired_consent_on_first_read_is_provider_reauth_required(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    customer_id = await make_customer(engine, tenant_id, display_name="Expired")
    consent_id = await providers.link_obuk(tenant_id, customer_id, f"ce-{tenant_id}")
    providers.obuk.expire_consent(consent_id)
    query = "{ customers(first: 1) { edges { node { displayName bankAccounts { name } } } } }"

    body = await providers.execute(query, tenant_id=tenant_id)

    assert _nodes(body) == [{"displayName": "Expired", "bankAccounts": None}]
    [error] = body["errors"]
    assert error["path"][-1] == "bankAccounts"
    assert error["extensions"]["code"] == "PROVIDER_REAUTH_REQUIRED"
    assert error["extensions"]["provider"] == "obuk"
    assert error["extensions"]["retryable"] is False


async def test_a_consent_that_expires_after_a_sync_keeps_the_accounts_marked(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    await _customers_with_both(providers, engine, tenant_id, 1)
    providers.obuk.expire_consent(f"cb-{tenant_id}-0")
    runtime = providers.runtime
    assert runtime.secret_box is not None
    await sync_bank_links(engine, runtime.banking_providers, runtime.secret_box,
                          tenant_id=tenant_id)  # fmt: skip

    body = await providers.execute(PAGE, {"first": 1}, tenant_id=tenant_id)

    statuses = {(a["provider"], a["connectionStatus"]) for a in _nodes(body)[0]["bankAccounts"]}
    assert statuses == {("plaid", "ACTIVE"), ("obuk", "LOGIN_REQUIRED")}


async def test_open_banking_amounts_keep_the_currency_exponent_on_the_wire(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int
) -> None:
    for currency in ("JPY", "BHD"):
        customer_id = await make_customer(engine, tenant_id, display_name=currency)
        consent_id = await providers.link_obuk(
            tenant_id, customer_id, f"cx-{tenant_id}-{currency}", currency=currency,
            transactions=0,
        )  # fmt: skip
        providers.obuk.add_transaction(
            consent_id, amount="1500" if currency == "JPY" else "1.235", credit=True
        )

    body = await providers.execute(PAGE, {"first": 5}, tenant_id=tenant_id)

    assert "errors" not in body, body.get("errors")
    amounts = {
        node["displayName"]: [
            e["node"]["amount"] for a in node["bankAccounts"] for e in a["transactions"]["edges"]
        ]
        for node in _nodes(body)
    }
    assert amounts == {
        "JPY": [{"amount": "1500", "currency": "JPY"}],
        "BHD": [{"amount": "1.235", "currency": "BHD"}],
    }
