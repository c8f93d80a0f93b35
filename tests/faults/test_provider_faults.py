"""A card processor that answers 5xx, hangs, and resets connections.

The cards sandbox runs as a real HTTP server behind a TCP proxy of the test's own (which can
reset connections, the one fault an ASGI app cannot make); the provider runtime has a short
timeout, a breaker threshold of 3 and a cool-down of 0.2 s (PROVIDER_BREAKER_* settings). For
each fault in turn: ledger fields keep arriving while `cardPayments` answers
PROVIDER_UNAVAILABLE (retryable), the breaker opens (calls then fail at once, without reaching
the sandbox), and once the fault is gone and the cool-down has passed, one trial call closes
it and card payments come back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.cache import Cache
from adapters.crypto import SecretText
from adapters.http_client import CircuitState, transport_of
from adapters.ledger.queries import LedgerReader
from adapters.provider_cache import ReadThroughCache
from adapters.sandbox.banking_app import SANDBOX_CLIENT_ID, SANDBOX_SECRET, BankingSandbox
from adapters.sandbox.cards_app import DEFAULT_SECRET_KEY, CardsSandbox, CardsSandboxFaults
from gateway.provider_settings import ProviderSettings
from gateway.providers import open_providers
from tests.factories import make_account, make_customer
from tests.faults.fault_proxy import FaultProxy
from tests.fixtures.database import Database
from tests.fixtures.providers import Clock, ProviderWorld, SandboxServer

pytestmark = pytest.mark.fault

QUERY = """
query Page {
  customers(first: 2) { edges { node {
    displayName
    ledgerAccounts(first: 5) { edges { node { name } } }
    cardPayments(first: 5) { edges { node { processorId status } } }
  } } }
}
"""
COOLDOWN_SECONDS = 0.2


@pytest.fixture
async def faulty(
    database: Database,
    cache: Cache,
    cards_server: SandboxServer,
    banking_server: SandboxServer,
) -> AsyncIterator[tuple[ProviderWorld, FaultProxy]]:
    cards, banking = CardsSandbox(), BankingSandbox()
    cards_server.app, banking_server.app = cards.app, banking.app
    proxy = FaultProxy(cards_server.port)
    await proxy.start()
    settings = ProviderSettings(
        mode="live",
        stripe_api_key=SecretText(DEFAULT_SECRET_KEY),
        plaid_client_id=SANDBOX_CLIENT_ID,
        plaid_secret=SecretText(SANDBOX_SECRET),
        timeout_seconds=0.3,
        max_attempts=2,
        backoff_base_seconds=0.001,
        breaker_failure_threshold=3,
        breaker_cooldown_seconds=COOLDOWN_SECONDS,
    )
    clock = Clock()
    try:
        async with open_providers(
            settings,
            database.engine,
            cache,
            base_urls={"stripe": proxy.base_url, "plaid": banking_server.base_url},
        ) as runtime:
            runtime.reads = ReadThroughCache(cache, clock=clock, poll_seconds=0.005)
            reader = LedgerReader(database.engine)
            try:
                yield ProviderWorld(runtime, cards, banking, database.engine, clock, reader), proxy
            finally:
                await reader.aclose()
    finally:
        await proxy.close()


def _state(world: ProviderWorld) -> CircuitState:
    return transport_of(world.runtime.http_clients["stripe"]).breaker.state


def _check_ledger(body: dict[str, Any]) -> list[Any]:
    """Ledger fields arrived for both customers; returns their cardPayments."""
    nodes = [edge["node"] for edge in body["data"]["customers"]["edges"]]
    assert [node["displayName"] for node in nodes] == ["F1", "F2"]
    assert [node["ledgerAccounts"]["edges"][0]["node"]["name"] for node in nodes] == [
        "Wallet F1", "Wallet F2",
    ]  # fmt: skip
    return [node["cardPayments"] for node in nodes]


async def _until_open(world: ProviderWorld, tenant_id: int) -> None:
    """Query while the fault lasts: card payments fail retryably, ledger fields arrive."""
    for _ in range(10):  # a bound on attempts
        world.clock.now += 10_000  # past freshness and staleness: every read goes upstream
        body = await world.execute(QUERY, tenant_id=tenant_id)
        assert _check_ledger(body) == [None, None], body
        for error in body["errors"]:
            assert error["path"][-1] == "cardPayments", error
            assert error["extensions"]["code"] == "PROVIDER_UNAVAILABLE", error
            assert error["extensions"]["retryable"] is True, error
        if _state(world) is CircuitState.OPEN:
            break
    assert _state(world) is CircuitState.OPEN
    # Open: the next query fails at once, and nothing reaches the processor.
    calls = world.cards.total_calls
    body = await world.execute(QUERY, tenant_id=tenant_id)
    assert _check_ledger(body) == [None, None]
    assert world.cards.total_calls == calls


async def _until_closed(world: ProviderWorld, tenant_id: int) -> None:
    """The fault is gone: after the cool-down one trial call closes the circuit."""
    for _ in range(100):  # a bound on attempts, not a timing assertion
        if _state(world) is CircuitState.HALF_OPEN:
            break
        await asyncio.sleep(COOLDOWN_SECONDS / 4)
    assert _state(world) is CircuitState.HALF_OPEN
    world.clock.now += 10_000
    body = await world.execute(QUERY, tenant_id=tenant_id)
    assert "errors" not in body, body
    payments = _check_ledger(body)
    assert all(page is not None for page in payments)
    assert _state(world) is CircuitState.CLOSED


async def test_5xx_hangs_and_resets_open_the_breaker_and_it_closes_again(
    faulty: tuple[ProviderWorld, FaultProxy], tenant_id: int
) -> None:
    world, proxy = faulty
    for number in (1, 2):
        customer = await make_customer(world.engine, tenant_id, display_name=f"F{number}")
        await make_account(world.engine, tenant_id, customer_id=customer, name=f"Wallet F{number}")
        await world.link_card_customer(tenant_id, customer, f"cus_{number}")
    body = await world.execute(QUERY, tenant_id=tenant_id)
    assert "errors" not in body, body
    assert _state(world) is CircuitState.CLOSED

    # 5xx
    world.cards.faults = CardsSandboxFaults(fail_status=503)
    await _until_open(world, tenant_id)
    world.cards.faults = CardsSandboxFaults()
    await _until_closed(world, tenant_id)

    # Hangs past the provider timeout
    world.cards.faults = CardsSandboxFaults(hang_seconds=5)
    await _until_open(world, tenant_id)
    world.cards.faults = CardsSandboxFaults()
    await _until_closed(world, tenant_id)

    # Connections reset
    proxy.reset()
    await _until_open(world, tenant_id)
    assert proxy.accepted > 0
    proxy.mode = "pass"
    await _until_closed(world, tenant_id)
