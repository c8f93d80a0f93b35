"""`gateway reconcile`: runs over the configured processor (the card sandbox over HTTP) and the
tenant's synced bank credits, prints JSON or a table, exits 0 clean, 1 on breaks, 2 on bad
input."""

from __future__ import annotations

import argparse
import json

import pytest

from adapters.sandbox.banking_app import SANDBOX_CLIENT_ID, SANDBOX_SECRET
from adapters.sandbox.cards_app import DEFAULT_SECRET_KEY
from gateway.reconciliation import run_reconcile_command
from gateway.settings import Settings, load_settings
from tests.adapters.reconciliation.scenario import make_scenario
from tests.fixtures.database import Database
from tests.fixtures.providers import ProviderWorld, SandboxServer


@pytest.fixture
def cli_settings(
    database: Database, cards_server: SandboxServer, banking_server: SandboxServer
) -> Settings:
    return load_settings(
        {
            "DATABASE_URL": database.url,
            "DATABASE_POOL_SIZE": "2",
            "PROVIDERS": "live",
            "STRIPE_API_KEY": DEFAULT_SECRET_KEY,
            "STRIPE_BASE_URL": cards_server.base_url,
            "PLAID_CLIENT_ID": SANDBOX_CLIENT_ID,
            "PLAID_SECRET": SANDBOX_SECRET,
            "PLAID_BASE_URL": banking_server.base_url,
        }
    )


def _args(
    tenant: int, *, start: str = "2023-11-01", end: str = "2023-11-20", as_json: bool = True
) -> argparse.Namespace:
    return argparse.Namespace(tenant=tenant, start=start, end=end, json=as_json)


async def test_exit_status_follows_the_breaks(
    providers: ProviderWorld,
    tenant_id: int,
    cli_settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenario = await make_scenario(providers, tenant_id)
    eur = scenario.payout("eur", 1)
    await scenario.credit(missing={eur["id"]})
    assert await run_reconcile_command(_args(tenant_id), cli_settings) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["breaks"] == 1
    (broken,) = [item for item in report["items"] if item["status"] != "MATCHED"]
    assert broken["payoutId"] == eur["id"]
    assert broken["missingOn"] == "BANK"
    assert broken["reasons"][0]["code"] == "NO_BANK_CREDIT"
    assert len(report["items"]) == 9

    # The late credit arrives and is synced: the next run is clean (and prints a table).
    await scenario.credit(only=[eur], late={eur["id"]: 2})
    assert await run_reconcile_command(_args(tenant_id, as_json=False), cli_settings) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["STATUS", "PROVIDER", "PAYOUT"]
    assert "stripe: 9 payouts" in table
    assert "0 breaks" in table


async def test_bad_input_exits_2(
    tenant_id: int, cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_reconcile_command(_args(tenant_id, start="yesterday"), cli_settings) == 2
    assert await run_reconcile_command(_args(tenant_id, end="2023-10-01"), cli_settings) == 2
    assert await run_reconcile_command(_args(10**9), cli_settings) == 2
    assert "no tenant" in capsys.readouterr().err
