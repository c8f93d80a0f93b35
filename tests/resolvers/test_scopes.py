"""Read scopes apply to types wherever they are reached (security review, items 1 and 2).

- providers:read guards bank and card data nested under a customer: a ledger:read-only
  caller, partner key or JWT, gets those fields null with FORBIDDEN, and the rest arrives.
- A ledger:write-only caller posts, and learns what it wrote, but reads no ledger data
  through the mutation's payload.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.access.clients import ClientKind
from adapters.ledger.tables import ledger_transactions
from resolvers.node import encode_global_id
from tests.factories import make_account, make_customer
from tests.fixtures.providers import ProviderWorld
from tests.resolvers.conftest import Caller, ProviderGateway

CUSTOMER = """query Customer($id: ID!) { customer(id: $id) {
  displayName
  ledgerAccounts { edges { node { name } } }
  bankAccounts { name mask balances { current { amount } } }
  cardPayments(first: 3) { edges { node { processorId amount { amount } } } }
} }"""

POST = """mutation Post($input: PostLedgerTransactionInput!) {
  postLedgerTransaction(input: $input) {
    replayed transactionId
    transaction { id entries { amount { amount } account { balance { posted { amount } } } } }
  }
}"""

BALANCE = "query Balance($id: ID!) { ledgerAccount(id: $id) { balance { posted { amount } } } }"


def _forbidden(body: dict[str, Any]) -> list[tuple[list[Any], dict[str, Any]]]:
    return [(error["path"], error["extensions"]) for error in body.get("errors", [])]


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param("partner", id="partner_key_case"),
        pytest.param("analyst", id="analyst_key_case"),
        pytest.param("jwt", id="jwt_case"),
    ],
)
async def test_ledger_read_alone_reads_no_provider_data(
    provider_gateway: ProviderGateway, providers: ProviderWorld, engine: AsyncEngine,
    tenant_id: int, credential: str,
) -> None:  # fmt: skip
    # Given a customer with a ledger account, a linked bank and a card customer
    customer = await make_customer(engine, tenant_id, display_name="Ada")
    await make_account(engine, tenant_id, customer_id=customer, name="Wallet")
    await providers.link_bank(tenant_id, customer, transactions=2)
    await providers.link_card_customer(tenant_id, customer, "cus_4")
    scopes = ("ledger:read",)
    caller: Caller
    if credential == "jwt":
        caller = provider_gateway.jwt(tenant_id, scopes)
    else:
        kind: ClientKind = "partner" if credential == "partner" else "analyst"
        caller = await provider_gateway.api_key(tenant_id, kind, scopes, {"customer": CUSTOMER})
    providers.cards.reset()
    providers.banking.calls.clear()

    # When the caller reads the customer with its provider data
    body = await provider_gateway.run(
        caller, "customer", CUSTOMER, {"id": encode_global_id("Customer", customer)}
    )

    # Then the ledger arrives, the provider fields are null and FORBIDDEN naming the scope
    assert body["data"] == {"customer": {
        "displayName": "Ada",
        "ledgerAccounts": {"edges": [{"node": {"name": "Wallet"}}]},
        "bankAccounts": None,
        "cardPayments": None,
    }}  # fmt: skip
    forbidden = {"code": "FORBIDDEN", "scope": "providers:read"}
    assert sorted(_forbidden(body), key=str) == [
        (["customer", "bankAccounts"], forbidden),
        (["customer", "cardPayments"], forbidden),
    ]
    # and no provider was even asked
    assert providers.upstream_calls == 0


async def test_with_providers_read_the_same_caller_reads_provider_data(
    provider_gateway: ProviderGateway, providers: ProviderWorld, engine: AsyncEngine,
    tenant_id: int,
) -> None:  # fmt: skip
    customer = await make_customer(engine, tenant_id, display_name="Ada")
    await providers.link_bank(tenant_id, customer, transactions=2)
    await providers.link_card_customer(tenant_id, customer, "cus_4")
    caller = await provider_gateway.api_key(
        tenant_id, "partner", ("ledger:read", "providers:read"), {"customer": CUSTOMER}
    )

    body = await provider_gateway.run(
        caller, "customer", CUSTOMER, {"id": encode_global_id("Customer", customer)}
    )

    assert "errors" not in body, body["errors"]
    node = body["data"]["customer"]
    assert node["bankAccounts"]
    assert node["cardPayments"]["edges"]


async def _transactions(engine: AsyncEngine, tenant_id: int) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).select_from(ledger_transactions)
            .where(ledger_transactions.c.tenant_id == tenant_id)
        )  # fmt: skip
    return int(count or 0)


async def test_ledger_write_alone_posts_but_reads_nothing_through_the_payload(
    provider_gateway: ProviderGateway, engine: AsyncEngine, tenant_id: int
) -> None:
    cash = encode_global_id("LedgerAccount", await make_account(engine, tenant_id))
    revenue = encode_global_id(
        "LedgerAccount", await make_account(engine, tenant_id, normal_balance="credit")
    )
    writer = provider_gateway.jwt(tenant_id, ("ledger:write",))
    entries = [
        {"accountId": cash, "direction": "DEBIT", "amount": "12.50", "currency": "USD"},
        {"accountId": revenue, "direction": "CREDIT", "amount": "12.50", "currency": "USD"},
    ]
    variables = {"input": {"idempotencyKey": "write-only-1", "entries": entries}}

    body = await provider_gateway.run(writer, "post", POST, variables)

    # The write happened and the payload says what was written...
    payload = body["data"]["postLedgerTransaction"]
    assert payload["replayed"] is False
    assert payload["transactionId"]
    assert await _transactions(engine, tenant_id) == 1
    # ...but entries and balances stay behind ledger:read
    assert payload["transaction"] is None
    assert _forbidden(body) == [
        (["postLedgerTransaction", "transaction"], {"code": "FORBIDDEN", "scope": "ledger:read"})
    ]

    # A reader sees the posted balance, and the id the writer got is the transaction's
    reader = provider_gateway.jwt(tenant_id, ("ledger:read",))
    balance = await provider_gateway.run(reader, "balance", BALANCE, {"id": cash})
    assert balance["data"]["ledgerAccount"]["balance"]["posted"]["amount"] == "12.50"
    both = provider_gateway.jwt(tenant_id, ("ledger:read", "ledger:write"))
    replay = await provider_gateway.run(both, "post", POST, variables)
    assert "errors" not in replay, replay["errors"]
    replayed = replay["data"]["postLedgerTransaction"]
    assert replayed["replayed"] is True
    assert replayed["transaction"]["id"] == payload["transactionId"]
    assert len(replayed["transaction"]["entries"]) == 2


async def test_read_scope_without_write_scope_still_cannot_post(
    provider_gateway: ProviderGateway, engine: AsyncEngine, tenant_id: int
) -> None:
    account = encode_global_id("LedgerAccount", await make_account(engine, tenant_id))
    reader = provider_gateway.jwt(tenant_id, ("ledger:read", "providers:read", "pii:read"))
    entries = [
        {"accountId": account, "direction": "DEBIT", "amount": "1", "currency": "USD"},
        {"accountId": account, "direction": "CREDIT", "amount": "1", "currency": "USD"},
    ]

    body = await provider_gateway.run(
        reader, "post", POST, {"input": {"idempotencyKey": "k", "entries": entries}}
    )

    assert body["data"] is None
    assert _forbidden(body) == [
        (["postLedgerTransaction"], {"code": "FORBIDDEN", "scope": "ledger:write"})
    ]
    assert await _transactions(engine, tenant_id) == 0
