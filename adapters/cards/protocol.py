"""The seam every card processor adapter implements; loaders depend on this, not on Stripe.

Customer ids here are the processor's own ids (`provider_links.external_id`), never ours.
Every method raises the provider errors of `adapters.errors` (ProviderUnavailable,
ProviderRateLimited, ProviderReauthRequired, ProviderRejected) and NotFound for a missing
single object; nothing processor-specific leaves an implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from adapters.cards.records import (
    BalanceTransaction,
    CardPage,
    CardPayment,
    Dispute,
    Payout,
)

__all__ = ["MAX_PAGE_SIZE", "CardProcessor"]

MAX_PAGE_SIZE = 100


@runtime_checkable
class CardProcessor(Protocol):
    """Read access to one card processor account. `limit` is capped at MAX_PAGE_SIZE."""

    @property
    def name(self) -> str:
        """Stable provider name ("stripe"), as stored in `provider_links.provider`."""
        ...

    async def payments_by_customers(
        self, customer_ids: Sequence[str], *, limit: int = 20
    ) -> Mapping[str, CardPage[CardPayment]]:
        """The newest `limit` payments of each customer, in as few upstream calls as possible.

        Returns one page per requested id (an empty page for a customer without payments);
        follow a page with `list_payments(customer_id, starting_after=page.next_cursor)`.
        """
        ...

    async def list_payments(
        self, customer_id: str, *, limit: int = 20, starting_after: str | None = None
    ) -> CardPage[CardPayment]:
        """One page of a customer's payments, newest first, with refunds, dispute and fees."""
        ...

    async def get_payment(self, payment_id: str) -> CardPayment:
        """One payment by the processor's id; raises NotFound."""
        ...

    async def list_disputes(
        self, *, limit: int = 20, starting_after: str | None = None
    ) -> CardPage[Dispute]: ...

    async def list_payouts(
        self, *, limit: int = 20, starting_after: str | None = None
    ) -> CardPage[Payout]: ...

    async def list_balance_transactions(
        self,
        *,
        limit: int = 20,
        starting_after: str | None = None,
        payout_id: str | None = None,
    ) -> CardPage[BalanceTransaction]:
        """Balance movements, newest first; with `payout_id`, only those a payout settled."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections the adapter owns (not ones passed in to it)."""
        ...
