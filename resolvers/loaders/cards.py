"""Card processor loaders: each customer's card payments, through the read-through cache.

A batch of customers costs one SQL statement (their card links), one cache MGET, and for the
misses one batched processor call per processor (`payments_by_customers`: a search per chunk
of customers). The head page (`head_size` newest payments) of every customer is cached under
the customer's processor id, so any `first` up to it, and the webhooks that invalidate it,
share one entry. Later pages (`after`) are fetched per customer with bounded concurrency and
cached under (customer, first, after) with the same TTLs.

Processors merge (`CardLoaders.card_payments_by_customer_id`): a customer may have payments
at a read-through processor (Stripe) and at Adyen (stored in our tables from its
notifications: one statement per batch, adapters.cards.adyen_store). The page is one list,
newest first by (created, provider, id), each payment with the position to continue from:
the merge key, plus the read-through processor's own cursor (its last payment shown so far),
so each source is continued exactly where the page left it.

A processor failure becomes that customer's result (a ProviderError), so only its field is
null, when it was the customer's only source; when another source answered, the page carries
that source's payments and the failure in `MergedCardPage.failures` (partial data with an
error). A value served stale is reported through `on_stale`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiodataloader import DataLoader

from adapters.cards.adyen_store import PROVIDER as ADYEN
from adapters.cards.adyen_store import AdyenStore, PagePosition
from adapters.cards.protocol import CardProcessor
from adapters.cards.records import CardPage, CardPayment
from adapters.errors import ProviderError, ProviderUnavailable
from adapters.provider_cache import CachedKind, ReadThroughCache, StaleRead
from adapters.providers.queries import ProviderLink, ProviderLinkReader
from resolvers.loaders.batching import KeyedLoaders, batch_loader

__all__ = [
    "CardCachePolicy",
    "CardLoaders",
    "MergedCardPage",
    "MergedCursor",
    "card_payment_kinds",
    "merge_key",
]

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


@dataclass(frozen=True, slots=True)
class MergedCursor:
    """Where a merged page continues: after `position`; the read-through processor after its
    payment `processor_after` (None: from its newest, skipping what sorts before `position`)."""

    position: PagePosition
    processor_after: str | None


@dataclass(frozen=True, slots=True)
class MergedCardPage:
    """A customer's payments across processors, newest first, with each one's cursor."""

    items: tuple[CardPayment, ...]
    cursors: tuple[MergedCursor, ...]
    has_more: bool
    failures: tuple[ProviderError, ...] = ()


def merge_key(payment: CardPayment) -> tuple[float, str, str]:
    """Sort key of the merged list (sorted descending): created, then provider, then id."""
    return (payment.created.timestamp(), payment.provider, payment.id)


def _position_key(position: PagePosition) -> tuple[float, str, str]:
    return (position.created.timestamp(), position.provider, position.id)


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
        adyen: AdyenStore | None = None,
        tenant_id: int,
        policy: CardCachePolicy = CardCachePolicy(),
        on_stale: Callable[[StaleRead], None] | None = None,
        deadline: float | None = None,
    ) -> None:
        self._processors = processors
        self._adyen = adyen
        self._reads = reads
        self._tenant_id = tenant_id
        self._policy = policy
        self._on_stale = on_stale
        self.card_links_by_customer_id: DataLoader[int, list[ProviderLink]] = batch_loader(
            partial(links.links_by_customer_ids, tenant_id, kind="cards"), deadline
        )
        self._paged = KeyedLoaders(deadline)

    def card_payments_by_customer_id(
        self, first: int, after: MergedCursor | None
    ) -> DataLoader[int, MergedCardPage]:
        """Loads each customer's merged page: `first` payments after the cursor `after`.

        A customer without a card link gets an empty page.
        """
        return self._paged.get((first, after), partial(self._merged, first, after))

    async def _merged(
        self, first: int, after: MergedCursor | None, customer_ids: Sequence[int]
    ) -> list[MergedCardPage | ProviderError]:
        links = await self.card_links_by_customer_id.load_many(list(customer_ids))
        processor_links: list[list[ProviderLink]] = []
        shoppers: list[list[str]] = []
        for customer_links in links:
            processor_links.append([link for link in customer_links if link.provider != ADYEN])
            shoppers.append([link.external_id for link in customer_links if link.provider == ADYEN])
        stripe_pages, adyen_pages = await asyncio.gather(
            self._processor_pages(processor_links, first, after),
            self._adyen_pages(shoppers, first, after),
        )
        results: list[MergedCardPage | ProviderError] = []
        for index in range(len(customer_ids)):
            results.append(
                self._merge(
                    first,
                    after,
                    stripe_pages[index],
                    [p for ref in shoppers[index] for p in adyen_pages.get(ref, [])],
                    has_adyen=bool(shoppers[index]),
                    adyen_failure=adyen_pages.get(None),
                )
            )
        return results

    async def _processor_pages(
        self, links: list[list[ProviderLink]], first: int, after: MergedCursor | None
    ) -> list[CardPage[CardPayment] | ProviderError | None]:
        """The read-through processors' pages; None for a customer without such a link."""
        results: list[CardPage[CardPayment] | ProviderError] = [_EMPTY] * len(links)
        groups: dict[str, list[tuple[int, str]]] = {}
        for index, customer_links in enumerate(links):
            # One card link per customer and processor: the oldest not revoked (an erased
            # customer's links are revoked, and their processor records are no longer read).
            live = [link for link in customer_links if link.status != "revoked"]
            if live:
                link = live[0]
                groups.setdefault(link.provider, []).append((index, link.external_id))
        processor_after = None if after is None else after.processor_after
        await asyncio.gather(
            *(
                self._load_group(provider, entries, first, processor_after, results)
                for provider, entries in groups.items()
            )
        )
        return [result if links[i] else None for i, result in enumerate(results)]

    async def _adyen_pages(
        self, shoppers: list[list[str]], first: int, after: MergedCursor | None
    ) -> dict[str | None, Any]:
        """Every shopper's newest `first + 1` stored payments after the position, one statement;
        under None, the failure when the store could not be read."""
        wanted = sorted({ref for refs in shoppers for ref in refs})
        if not wanted:
            return {}
        if self._adyen is None:
            return {None: ProviderUnavailable("adyen is not configured", provider=ADYEN)}
        try:
            pages: dict[str | None, Any] = {}
            pages.update(
                await self._adyen.payments_by_shoppers(
                    self._tenant_id,
                    wanted,
                    limit=first + 1,
                    after=None if after is None else after.position,
                )
            )
        except ProviderError as error:
            return {None: error}
        return pages

    @staticmethod
    def _merge(
        first: int,
        after: MergedCursor | None,
        processor: CardPage[CardPayment] | ProviderError | None,
        adyen: list[CardPayment],
        *,
        has_adyen: bool,
        adyen_failure: ProviderError | None,
    ) -> MergedCardPage | ProviderError:
        failures: list[ProviderError] = []
        candidates: list[CardPayment] = list(adyen)
        more = False
        if isinstance(processor, ProviderError):
            failures.append(processor)
        elif processor is not None:
            more = processor.has_more
            bound = None if after is None else _position_key(after.position)
            candidates.extend(p for p in processor.items if bound is None or merge_key(p) < bound)
        if has_adyen and adyen_failure is not None:
            failures.append(adyen_failure)
        sources = int(processor is not None) + int(has_adyen)
        if failures and len(failures) == sources:
            return failures[0]  # nothing answered: the field is null with the error
        candidates.sort(key=merge_key, reverse=True)
        items = candidates[:first]
        has_more = more or len(candidates) > first
        processor_after = None if after is None else after.processor_after
        cursors = []
        for payment in items:
            if payment.provider != ADYEN:
                processor_after = payment.id
            cursors.append(
                MergedCursor(
                    PagePosition(payment.created, payment.provider, payment.id), processor_after
                )
            )
        return MergedCardPage(tuple(items), tuple(cursors), has_more, tuple(failures))

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
                head_kind,
                self._tenant_id,
                [external for _, external in entries],
                fetch_heads,
                self._on_stale,
            )
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
