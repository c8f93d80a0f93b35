"""The banking sandbox itself: Plaid-shaped errors, determinism, knobs, call counts, seeding."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking import ProviderCredentials
from adapters.banking.links import access_token_for, bank_links
from adapters.banking.plaid import PlaidProvider
from adapters.banking.sandbox_seed import link_seeded_customers, seeded_item_id
from adapters.banking.sync import sync_bank_links
from adapters.crypto import DEV_SECRET_KEYRING, SecretBox, SecretText
from adapters.sandbox.banking_app import (
    SANDBOX_CLIENT_ID,
    SANDBOX_SECRET,
    BankingFaults,
    BankingSandbox,
)
from tests.factories import make_customer

BOX = SecretBox.from_keyring(DEV_SECRET_KEYRING)
CREDENTIALS = {"client_id": SANDBOX_CLIENT_ID, "secret": SANDBOX_SECRET}


def _client(sandbox: BankingSandbox) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url="http://s")


@pytest.mark.parametrize(
    ("fault", "status", "error_type", "error_code"),
    [
        ("429", 429, "RATE_LIMIT_EXCEEDED", "TRANSACTIONS_SYNC_LIMIT"),
        ("5xx", 500, "API_ERROR", "INTERNAL_SERVER_ERROR"),
    ],
    ids=["rate_limit", "server_error"],
)
async def test_faults_answer_with_plaid_shaped_errors(
    fault: str, status: int, error_type: str, error_code: str
) -> None:
    sandbox = BankingSandbox()
    sandbox.faults.fail_next("/accounts/get", fault)
    async with _client(sandbox) as client:
        response = await client.post(
            "/accounts/get", json={**CREDENTIALS, "access_token": "access-sandbox-item-1"}
        )
        after = await client.post(
            "/accounts/get", json={**CREDENTIALS, "access_token": "access-sandbox-item-1"}
        )

    body = response.json()
    assert response.status_code == status
    assert (body["error_type"], body["error_code"], body["status"]) == (
        error_type,
        error_code,
        status,
    )
    assert body["request_id"]
    assert response.headers.get("Retry-After") == ("1" if status == 429 else None)
    assert after.status_code == 200
    assert sandbox.calls["/accounts/get"] == 2


async def test_login_required_and_bad_tokens_are_item_and_input_errors() -> None:
    sandbox = BankingSandbox()
    sandbox.set_login_required("item-locked")
    async with _client(sandbox) as client:
        locked = await client.post(
            "/transactions/sync", json={**CREDENTIALS, "access_token": "access-sandbox-item-locked"}
        )
        bad = await client.post("/transactions/sync", json={**CREDENTIALS, "access_token": "x"})

    assert (locked.status_code, locked.json()["error_code"]) == (400, "ITEM_LOGIN_REQUIRED")
    assert locked.json()["error_type"] == "ITEM_ERROR"
    assert (bad.status_code, bad.json()["error_code"]) == (400, "INVALID_ACCESS_TOKEN")


def test_data_is_deterministic_per_item_id() -> None:
    first, second = BankingSandbox(), BankingSandbox()

    assert first._item("item-x").accounts == second._item("item-x").accounts
    assert first._item("item-x").log == second._item("item-x").log
    assert first._item("item-x").accounts != first._item("item-y").accounts


def test_random_fault_rates_are_seeded() -> None:
    faults = BankingFaults(error_rate=0.3, rate_limit_rate=0.3, seed=3)
    again = BankingFaults(error_rate=0.3, rate_limit_rate=0.3, seed=3)

    assert [faults.draw("/p") for _ in range(50)] == [again.draw("/p") for _ in range(50)]
    assert {faults.draw("/p") for _ in range(200)} == {None, "5xx", "429"}


async def test_seeded_customers_link_to_sandbox_items_and_sync(
    engine: AsyncEngine, tenant_id: int
) -> None:
    customers = [await make_customer(engine, tenant_id) for _ in range(3)]
    sandbox = BankingSandbox()

    linked = await link_seeded_customers(engine, tenant_id, BOX, limit=2)
    linked_again = await link_seeded_customers(engine, tenant_id, BOX)
    links = await bank_links(engine, tenant_id=tenant_id)
    async with _client(sandbox) as client:
        plaid = PlaidProvider(
            client, ProviderCredentials(SANDBOX_CLIENT_ID, SecretText(SANDBOX_SECRET))
        )
        results = await sync_bank_links(engine, {"plaid": plaid}, BOX, tenant_id=tenant_id)

    assert (linked, linked_again) == (2, 1)
    assert [link.external_id for link in links] == [seeded_item_id(tenant_id, c) for c in customers]
    assert access_token_for(BOX, links[0]) == SecretText(
        f"access-sandbox-{seeded_item_id(tenant_id, customers[0])}"
    )
    assert [r.added for r in results] == [sandbox.transactions_per_item] * 3
