"""Loaders of card payment risk: signals by (provider, payment id), summaries by customer."""

from __future__ import annotations

from functools import cached_property, partial
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.cards.risk import RiskStore
from resolvers.loaders.batching import KeyedLoaders, batch_loader

__all__ = ["RiskLoaders"]


class RiskLoaders:
    """The risk loaders of one request, scoped to `tenant_id`."""

    def __init__(self, engine: AsyncEngine, tenant_id: int) -> None:
        self._store = RiskStore(engine)
        self._tenant_id = tenant_id
        self._summaries = KeyedLoaders()

    @cached_property
    def payment_signals(self) -> DataLoader[Any, Any]:
        """Loads PaymentRisk | None per (provider, payment id)."""
        return batch_loader(partial(self._store.signals, self._tenant_id))

    def customer_summary(self, window_days: int) -> DataLoader[Any, Any]:
        """Loads CustomerRisk per customer id, over the last `window_days`."""
        return self._summaries.get(
            window_days,
            partial(self._store.customer_summaries, self._tenant_id, window_days=window_days),
        )
