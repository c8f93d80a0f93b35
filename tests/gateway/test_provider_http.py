"""Provider fields over HTTP: the ledger still arrives when a processor is down, and data
served stale says so in the response's top-level extensions."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.cache import Cache
from adapters.sandbox.cards_app import CardsSandboxFaults
from gateway.app import create_app
from gateway.auth import mint_token
from gateway.lifespan import Services
from gateway.settings import Settings
from resolvers.principal import SCOPES
from tests.factories import make_account, make_customer
from tests.fixtures.providers import ProviderWorld

QUERY = """{ customers(first: 1) { edges { node {
  ledgerAccounts(first: 1) { edges { node { name } } }
  cardPayments(first: 2) { edges { node { processorId } } }
} } } }"""


@pytest.fixture
async def post(
    settings: Settings, services: Services, providers: ProviderWorld, cache: Cache
) -> AsyncIterator[Any]:
    app = create_app(settings, dataclasses.replace(services, providers=providers.runtime,
                                                   cache=cache))  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:

        async def send(tenant_id: int) -> dict[str, Any]:
            token = mint_token(settings, tenant_id=tenant_id, scopes=SCOPES)
            response = await client.post("/graphql", json={"query": QUERY},
                                         headers={"authorization": f"Bearer {token}"})  # fmt: skip
            assert response.status_code == 200
            body: dict[str, Any] = response.json()
            return body

        yield send


async def _customer(providers: ProviderWorld, engine: AsyncEngine, tenant_id: int) -> None:
    customer_id = await make_customer(engine, tenant_id)
    await make_account(engine, tenant_id, customer_id=customer_id, name="Wallet")
    await providers.link_card_customer(tenant_id, customer_id, "cus_1")


async def test_processor_down_over_http_keeps_the_ledger(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int, post: Any
) -> None:
    await _customer(providers, engine, tenant_id)
    providers.cards.faults = CardsSandboxFaults(fail_status=500)

    body = await post(tenant_id)

    node = body["data"]["customers"]["edges"][0]["node"]
    assert node == {"ledgerAccounts": {"edges": [{"node": {"name": "Wallet"}}]},
                    "cardPayments": None}  # fmt: skip
    [error] = body["errors"]
    assert error["path"] == ["customers", "edges", 0, "node", "cardPayments"]
    assert {key: error["extensions"][key] for key in ("code", "provider", "retryable")} == {
        "code": "PROVIDER_UNAVAILABLE", "provider": "stripe", "retryable": True,
    }  # fmt: skip


async def test_stale_data_is_reported_in_the_response_extensions(
    providers: ProviderWorld, engine: AsyncEngine, tenant_id: int, post: Any
) -> None:
    await _customer(providers, engine, tenant_id)
    await post(tenant_id)
    providers.clock.now += 120
    providers.cards.faults = CardsSandboxFaults(fail_status=503)

    body = await post(tenant_id)

    assert "errors" not in body
    assert body["extensions"]["staleData"][0]["provider"] == "stripe"
