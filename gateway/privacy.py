"""Data-subject requests (README, "Data-subject requests"): export and erasure of one customer.

The adapters do the database part (adapters/privacy). This module adds what only the gateway
knows: which cache entries hold the customer's data. After an erasure commits it deletes the
customer's card payments from the provider cache (their processor's head pages and later
pages) and every stored GraphQL answer of the tenant from the shared cache (the tenant's data
version was bumped in the erasure's transaction, so none of them could be served any more;
this removes the bytes too). A cache that cannot be reached makes the purge raise: the caller
reports it rather than pretend the data is gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.audit.records import Actor
from adapters.cache import Cache
from adapters.privacy.erasure import ErasureResult, erase_customer
from gateway.providers import ProviderRuntime
from gateway.response_cache import purge_tenant_responses
from resolvers.loaders.cards import card_payment_kinds

__all__ = ["ErasureReport", "erase_and_purge"]

logger = logging.getLogger("gateway.privacy")


@dataclass(frozen=True, slots=True)
class ErasureReport:
    erasure: ErasureResult
    provider_entries_purged: int
    responses_purged: int


async def erase_and_purge(
    engine: AsyncEngine,
    tenant_id: int,
    customer_id: int,
    *,
    actor: Actor,
    providers: ProviderRuntime | None,
    response_cache: Cache | None,
) -> ErasureReport:
    """Erase the customer (adapters.privacy.erasure), then purge the caches that held their
    data. NotFound when the tenant has no such customer (nothing is touched)."""
    erasure = await erase_customer(
        engine, tenant_id, customer_id, actor=actor,
        banking_providers=None if providers is None else providers.banking_providers,
        box=None if providers is None else providers.secret_box,
    )  # fmt: skip
    purged = 0
    if providers is not None:
        for link in erasure.links:
            if link.kind != "cards":
                continue
            head, after = card_payment_kinds(link.provider, providers.card_policy)
            purged += await providers.reads.purge(head, tenant_id, link.external_id)
            purged += await providers.reads.purge(
                after, tenant_id, link.external_id + "~", as_prefix=True
            )
    responses = 0
    if response_cache is not None:
        responses = await purge_tenant_responses(response_cache, tenant_id)
    logger.info("erasure of customer %s: %d provider and %d response cache entries purged",
                customer_id, purged, responses)  # fmt: skip
    return ErasureReport(erasure, purged, responses)
