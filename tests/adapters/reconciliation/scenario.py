"""A reconciliation scenario over the provider world: the card sandbox's payouts, bank items
per currency linked to one customer, their credits added and synced into the bank tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from adapters.banking.sync import sync_bank_links
from adapters.ledger.posting import PostingService
from adapters.ledger.posting_requests import EffectiveWindow
from adapters.ledger.tables import ledger_transactions
from adapters.reconciliation.run import ReconciliationRun, run_reconciliation
from adapters.reconciliation.sources import CardProcessorSettlements
from adapters.sandbox.cards_data import BASE_TIME
from adapters.sandbox.settlements import credit_payouts
from tests.factories import make_customer
from tests.fixtures.providers import ProviderWorld

START = dt.datetime(2023, 11, 1, tzinfo=dt.UTC)
END = dt.datetime(2023, 11, 20, tzinfo=dt.UTC)
LONG_AFTER = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
BASE = dt.datetime.fromtimestamp(BASE_TIME, dt.UTC)
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "ISK")


@dataclass
class Scenario:
    world: ProviderWorld
    tenant_id: int
    items: dict[str, str]

    @property
    def payouts(self) -> list[dict[str, Any]]:
        return self.world.cards.data.payouts()

    def payout(self, currency: str, week: int) -> dict[str, Any]:
        """The payout in `currency` created `week` weeks before the sandbox's base time."""
        created = BASE_TIME - week * 7 * 86_400
        (found,) = [
            p for p in self.payouts if p["currency"] == currency.lower() and p["created"] == created
        ]
        return found

    async def credit(self, only: list[dict[str, Any]] | None = None, **knobs: Any) -> None:
        """Add the bank credits of every payout (or `only` these) and sync them."""
        credit_payouts(self.world.banking, self.items, only or self.payouts, **knobs)
        assert self.world.runtime.secret_box is not None
        await sync_bank_links(
            self.world.engine,
            self.world.runtime.banking_providers,
            self.world.runtime.secret_box,
            tenant_id=self.tenant_id,
        )

    def posting(self) -> PostingService:
        return PostingService(
            self.world.engine, effective_window=EffectiveWindow(max_backdate=dt.timedelta(3650))
        )

    async def run(
        self,
        *,
        now: dt.datetime = LONG_AFTER,
        start: dt.datetime = START,
        end: dt.datetime = END,
    ) -> ReconciliationRun:
        clock: Callable[[], dt.datetime] = lambda: now  # noqa: E731
        return await run_reconciliation(
            engine=self.world.engine,
            effective_window=EffectiveWindow(max_backdate=dt.timedelta(3650)),
            source=CardProcessorSettlements(self.world.runtime.card_processors["stripe"]),
            tenant_id=self.tenant_id,
            start=start,
            end=end,
            clock=clock,
        )

    async def ledger_transactions(self) -> int:
        async with self.world.engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).where(ledger_transactions.c.tenant_id == self.tenant_id)
            )
        return int(count or 0)


async def make_scenario(world: ProviderWorld, tenant_id: int) -> Scenario:
    customer = await make_customer(world.engine, tenant_id, display_name="Treasury")
    items = {}
    for currency in CURRENCIES:
        items[currency] = await world.link_bank(
            tenant_id, customer, currency=currency, transactions=2
        )
    return Scenario(world, tenant_id, items)
