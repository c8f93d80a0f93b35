"""Reconciliation of a month of canonical-size card activity: time, statements, upstream calls.

`python -m bench.reconcile [--customers 10000] [--days 30] [--database-url URL]`

The card sandbox generates the activity of `--customers` card customers (the canonical
benchmark's 10,000) spread over `--days` days, paid out weekly per currency; the banking sandbox
holds one credit per payout (on items of the tenant, synced into the bank tables first). Both
sandboxes are served in-process through the gateway's provider HTTP layer. The script runs one
reconciliation of the month (everything booked: one posting per movement, payout and arrival),
then the same run again (nothing new to book), and prints, for each: wall time, SQL statements,
upstream calls, payouts, movements, bookings and breaks. It uses a database of its own,
dropped and created afresh (`finance_gateway_bench_reconcile` on the local PostgreSQL unless
`--database-url` names another). Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from collections.abc import Sequence

import asyncpg
import httpx

from adapters.banking.links import create_bank_link
from adapters.banking.sync import sync_bank_links
from adapters.cache import MemoryCache
from adapters.crypto import SecretText
from adapters.ledger.engine import create_ledger_engine
from adapters.ledger.posting_requests import EffectiveWindow
from adapters.ledger.tables import customers, tenants
from adapters.migrate import upgrade_to_head
from adapters.reconciliation.run import ReconciliationRun, run_reconciliation
from adapters.reconciliation.sources import CardProcessorSettlements
from adapters.sandbox.banking_app import (
    SANDBOX_CLIENT_ID,
    SANDBOX_SECRET,
    BankingSandbox,
    access_token_for_item,
)
from adapters.sandbox.cards_app import DEFAULT_SECRET_KEY, SANDBOX_BASE_URL, CardsSandbox
from adapters.sandbox.cards_data import BASE_TIME, CardsSandboxData
from adapters.sandbox.settlements import credit_payouts
from gateway.metrics import Metrics
from gateway.provider_settings import ProviderSettings
from gateway.providers import open_providers

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/finance_gateway_bench_reconcile"
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "ISK")


async def _fresh_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    base, _, name = url.rpartition("/")
    dsn = base.replace("postgresql+asyncpg", "postgresql") + "/postgres"
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'drop database if exists "{name}"')
        await connection.execute(f'create database "{name}"')
    finally:
        await connection.close()


async def _measure(
    label: str, metrics: Metrics, cards: CardsSandbox, run: asyncio.Future[ReconciliationRun]
) -> dict[str, object]:
    statements, calls = metrics.sql_statements, cards.total_calls
    started = time.perf_counter()
    result = await run
    seconds = time.perf_counter() - started
    return {
        "run": label,
        "seconds": round(seconds, 2),
        "sql_statements": metrics.sql_statements - statements,
        "upstream_calls": cards.total_calls - calls,
        "payouts": result.settlements,
        "movements": result.movements,
        "bookings": result.bookings,
        "breaks": len(result.breaks),
        "statuses": {
            s: sum(i.status == s for i in result.items) for s in {i.status for i in result.items}
        },
    }


async def bench(options: argparse.Namespace) -> list[dict[str, object]]:
    await _fresh_database(options.database_url)
    metrics = Metrics()
    engine = create_ledger_engine(
        options.database_url, pool_size=4, on_statement=metrics.count_statement
    )
    await upgrade_to_head(engine)
    async with engine.begin() as connection:
        tenant_id = (
            await connection.execute(
                tenants.insert().values(name="reconciliation bench").returning(tenants.c.id)
            )
        ).scalar_one()
        customer_id = (
            await connection.execute(
                customers.insert()
                .values(tenant_id=tenant_id, kind="business", display_name="Treasury", metadata={})
                .returning(customers.c.id)
            )
        ).scalar_one()

    cards, banking = CardsSandbox(), BankingSandbox()
    weeks = options.days // 7 + 2
    cards.data = CardsSandboxData(
        payout_customers=options.customers,
        days_between_payments=options.days / 12,  # each customer pays at most 12 times
        payout_weeks=weeks,
    )
    generated = time.perf_counter()
    payouts = cards.data.payouts()
    generated = time.perf_counter() - generated
    items = {}
    settings = ProviderSettings(
        mode="live",
        stripe_api_key=SecretText(DEFAULT_SECRET_KEY),
        plaid_client_id=SANDBOX_CLIENT_ID,
        plaid_secret=SecretText(SANDBOX_SECRET),
        timeout_seconds=30.0,
    )
    async with open_providers(
        settings,
        engine,
        MemoryCache(),
        transports={
            "stripe": cards.transport(),
            "plaid": httpx.ASGITransport(app=banking.app),
        },
        base_urls={"stripe": SANDBOX_BASE_URL, "plaid": "http://banking.sandbox"},
    ) as runtime:
        assert runtime.secret_box is not None
        for currency in CURRENCIES:
            item_id, _ = banking.create_item(currency=currency, transactions=0)
            items[currency] = item_id
            await create_bank_link(
                engine, runtime.secret_box, tenant_id=tenant_id, customer_id=customer_id,
                provider="plaid", item_id=item_id,
                access_token=SecretText(access_token_for_item(item_id)),
            )  # fmt: skip
        credit_payouts(banking, items, payouts)
        await sync_bank_links(
            engine, runtime.banking_providers, runtime.secret_box, tenant_id=tenant_id
        )
        window = EffectiveWindow(max_backdate=dt.timedelta(days=36500))
        end = dt.datetime.fromtimestamp(BASE_TIME, dt.UTC) + dt.timedelta(days=3)
        start = end - dt.timedelta(days=options.days)
        source = CardProcessorSettlements(runtime.card_processors["stripe"])

        def run() -> asyncio.Future[ReconciliationRun]:
            return asyncio.ensure_future(
                run_reconciliation(
                    engine=engine,
                    effective_window=window,
                    source=source,
                    tenant_id=tenant_id,
                    start=start,
                    end=end,
                )
            )

        results = [
            await _measure("first run (books everything)", metrics, cards, run()),
            await _measure("second run (nothing new)", metrics, cards, run()),
        ]
    await engine.dispose()
    for result in results:
        result["customers"] = options.customers
        result["window"] = f"{start.date()}..{end.date()}"
        result["sandbox_generation_seconds"] = round(generated, 2)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    options = parser.parse_args(argv)
    for result in asyncio.run(bench(options)):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
