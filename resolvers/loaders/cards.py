"""Card processor loaders: each customer's card payments, through the read-through cache.

A batch of customers costs one SQL statement (their card links), one cache MGET, and for the
misses one batched processor call per processor (`payments_by_customers`: a search per chunk
of customers). The head page (`head_size` newest payments) of every customer is cached under
the customer's processor id, so any `first` up to it, and the webhooks that invalidate it,
share one entry. Later pages (`after`) are fetched per customer with bounded concurrency and
cached under (customer, first, after) with the same TTLs.

A processor failure becomes that customer's result (a ProviderError), so only its field is
null; a value served stale is reported through `on_stale`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiodataloader import DataLoader

from adapters.cards.protocol import CardProcessor
from adapters.cards.records import CardPage, CardPayment
from adapters.errors import ProviderError, ProviderUnavailable
from adapters.provider_cache import CachedKind, ReadThroughCache, StaleRead
from adapters.providers.queries import ProviderLink, ProviderLinkReader
from resolvers.loaders.batching import KeyedLoaders, batch_loader

__all__ = ["CardCachePolicy", "CardLoaders", "card_payment_kinds"]

_CONCURRENT_PAGE_CALLS = 8
_EMPTY: CardPage[CardPayment] = CardPage(items=(), has_more=False, next_cursor=None)


@dataclass(frozen=True, slots=True)
class CardCachePolicy:
    """How card data is cached: head page size and TTLs (seconds)."""

    head_size: int = 20
    ttl_seconds: float = 60.0
    stale_ttl_seconds: float = 3600.0


def card_payment_kinds(
    provider: str, policy: CardCachePolicy
) -> tuple[CachedKind[CardPage[CardPayment]], CachedKind[CardPage[CardPayment]]]:
    """The cached kinds of one processor: head pages by customer, later pages by cursor."""
    common: dict[str, Any] = {
        "provider": provider,
        "value_type": CardPage[CardPayment],
        "ttl_seconds": policy.ttl_seconds,
        "stale_ttl_seconds": policy.stale_ttl_seconds,
    }
    return (
        CachedKind(name=f"cards.{provider}.payments", **common),
        CachedKind(name=f"cards.{provider}.payments-after", **common),
    )


def _slice(page: CardPage[CardPayment], first: int) -> CardPage[CardPayment]:
    items = page.items[:first]
    has_more = page.has_more or len(page.items) > len(items)
    return CardPage(
        items=items, has_more=has_more, next_cursor=items[-1].id if has_more and items else None
    )


class CardLoaders:
    """The card loaders of one request, scoped to `tenant_id`."""

    def __init__(
        self,
        *,
        links: ProviderLinkReader,
        processors: Mapping[str, CardProcessor],
        reads: ReadThroughCache,
        tenant_id: int,
        policy: CardCachePolicy = CardCachePolicy(),
        on_stale: Callable[[StaleRead], None] | None = None,
        deadline: float | None = None,
    ) -> None:
        self._processors = processors
        self._reads = reads
        self._tenant_id = tenant_id
        self._policy = policy
        self._on_stale = on_stale
        self.card_links_by_customer_id: DataLoader[int, list[ProviderLink]] = batch_loader(
            partial(links.links_by_customer_ids, tenant_id, kind="cards"), deadline
        )
        self._paged = KeyedLoaders(deadline)

    def card_payments_by_customer_id(
        self, first: int, after: str | None
    ) -> DataLoader[int, CardPage[CardPayment]]:
        """Loads each customer's CardPage (newest first): `first` items after payment `after`.

        A customer without a card link gets an empty page.
        """
        return self._paged.get((first, after), partial(self._payments, first, after))

    async def _payments(
        self, first: int, after: str | None, customer_ids: Sequence[int]
    ) -> list[CardPage[CardPayment] | ProviderError]:
        links = await self.card_links_by_customer_id.load_many(list(customer_ids))
        results: list[CardPage[CardPayment] | ProviderError] = [_EMPTY] * len(customer_ids)
        groups: dict[str, list[tuple[int, str]]] = {}
        for index, customer_links in enumerate(links):
            # One card link per customer: the oldest not revoked (an erased customer's links
            # are revoked, and their processor records are no longer read).
            live = [link for link in customer_links if link.status != "revoked"]
            if live:
                link = live[0]
                groups.setdefault(link.provider, []).append((index, link.external_id))
        await asyncio.gather(
            *(
                self._load_group(provider, entries, first, after, results)
                for provider, entries in groups.items()
            )
        )
        return results

    async def _load_group(
        self,
        provider: str,
        entries: list[tuple[int, str]],
        first: int,
        after: str | None,
        results: list[CardPage[CardPayment] | ProviderError],
    ) -> None:
        processor = self._processors.get(provider)
        if processor is None:
            missing = ProviderUnavailable(f"{provider} is not configured", provider=provider)
            for index, _ in entries:
                results[index] = missing
            return
        head_kind, after_kind = card_payment_kinds(provider, self._policy)
        head = self._policy.head_size
        if after is None and first <= head:

            async def fetch_heads(ids: list[str]) -> Mapping[str, CardPage[CardPayment]]:
                return await processor.payments_by_customers(ids, limit=head)

            values = await self._reads.load_many(
                head_kind, self._tenant_id, [external for _, external in entries], fetch_heads,
                self._on_stale,
            )  # fmt: skip
            for (index, _), value in zip(entries, values, strict=True):
                results[index] = (
                    value if isinstance(value, ProviderError) else _slice(value or _EMPTY, first)
                )
            return

        keys = {f"{external}~{first}~{after or ''}": external for _, external in entries}
        limiter = asyncio.Semaphore(_CONCURRENT_PAGE_CALLS)

        async def one(key: str) -> tuple[str, CardPage[CardPayment]]:
            async with limiter:
                return key, await processor.list_payments(
                    keys[key], limit=first, starting_after=after
                )

        async def fetch_pages(wanted: list[str]) -> Mapping[str, CardPage[CardPayment]]:
            return dict(await asyncio.gather(*(one(key) for key in wanted)))

        ordered = [f"{external}~{first}~{after or ''}" for _, external in entries]
        values = await self._reads.load_many(
            after_kind, self._tenant_id, ordered, fetch_pages, self._on_stale
        )
        for (index, _), value in zip(entries, values, strict=True):
            results[index] = value if isinstance(value, ProviderError) else value or _EMPTY
