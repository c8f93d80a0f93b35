"""Where settlements come from: one small protocol, and its card-processor implementation.

A processor plugs into reconciliation by producing `Settlement`s for a window of arrival
dates. `CardProcessorSettlements` does so over any `CardProcessor` that lists payouts and the
balance transactions of a payout (the Stripe-shaped adapter); a webhook-sourced processor
would read its own tables instead.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Protocol, runtime_checkable

from adapters.cards.protocol import MAX_PAGE_SIZE, CardProcessor
from adapters.cards.records import BalanceTransactionType, Payout
from adapters.reconciliation.records import Settlement, SettlementItem

__all__ = ["CardProcessorSettlements", "SettlementSource"]


@runtime_checkable
class SettlementSource(Protocol):
    @property
    def provider(self) -> str:
        """The processor's name, as in idempotency keys and results ("stripe")."""
        ...

    @property
    def bank_marker(self) -> str:
        """Text the bank shows on this processor's credits (case-insensitive): a credit
        carrying it that no payout explains is reported."""
        ...

    async def settlements(self, start: dt.datetime, end: dt.datetime) -> list[Settlement]:
        """Every payout arriving in [start, end), with the movements it settles."""
        ...


class CardProcessorSettlements:
    """Settlements read from a card processor's payout and balance-transaction lists.

    Payouts are listed newest first until one was created `lookback` before `start` (a payout
    arrives some days after it is created); each payout's movements are then read page by
    page, `concurrency` payouts at a time. Upstream calls: the payout pages plus, per payout,
    one call per 100 movements.
    """

    def __init__(
        self,
        processor: CardProcessor,
        *,
        bank_marker: str | None = None,
        lookback: dt.timedelta = dt.timedelta(days=14),
        concurrency: int = 4,
    ) -> None:
        self._processor = processor
        self._bank_marker = bank_marker or processor.name.upper()
        self._lookback = lookback
        self._concurrency = concurrency

    @property
    def provider(self) -> str:
        return self._processor.name

    @property
    def bank_marker(self) -> str:
        return self._bank_marker

    async def settlements(self, start: dt.datetime, end: dt.datetime) -> list[Settlement]:
        payouts: list[Payout] = []
        cursor: str | None = None
        while True:
            page = await self._processor.list_payouts(limit=MAX_PAGE_SIZE, starting_after=cursor)
            payouts.extend(page.items)
            cursor = page.next_cursor
            if cursor is None or (page.items and page.items[-1].created < start - self._lookback):
                break
        chosen = [payout for payout in payouts if start <= payout.arrival_date < end]
        gate = asyncio.Semaphore(self._concurrency)

        async def settle(payout: Payout) -> Settlement:
            async with gate:
                return await self._settlement(payout)

        return list(await asyncio.gather(*(settle(payout) for payout in chosen)))

    async def _settlement(self, payout: Payout) -> Settlement:
        items: list[SettlementItem] = []
        cursor: str | None = None
        while True:
            page = await self._processor.list_balance_transactions(
                limit=MAX_PAGE_SIZE, starting_after=cursor, payout_id=payout.id
            )
            items.extend(
                SettlementItem(
                    id=movement.id,
                    type=movement.type,
                    amount=movement.amount,
                    fee=movement.fee,
                    net=movement.net,
                    currency=movement.currency,
                    exponent=movement.exponent,
                    created=movement.created,
                    source_id=movement.source_id,
                )
                for movement in page.items
                # The payout's own movement is the payout itself, booked from the payout.
                if not (
                    movement.type == BalanceTransactionType.PAYOUT
                    and movement.source_id == payout.id
                )
            )
            cursor = page.next_cursor
            if cursor is None:
                break
        return Settlement(
            provider=self.provider,
            id=payout.id,
            amount=payout.amount,
            currency=payout.currency,
            exponent=payout.exponent,
            status=str(payout.status),
            created=payout.created,
            arrival_date=payout.arrival_date,
            reference=payout.statement_descriptor,
            items=tuple(items),
        )
