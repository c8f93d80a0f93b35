"""Batched, tenant-scoped reads of provider links (which provider object is whose).

One statement per batch of customers; another tenant's customer reads like one without links.
Secrets are never selected here: only adapters/banking/links.py unseals them, just before a
provider call.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.tables import customers
from adapters.providers.tables import provider_links

__all__ = ["ProviderLink", "ProviderLinkReader", "unlinked_customer_ids"]


@dataclass(frozen=True, slots=True)
class ProviderLink:
    """A customer's link to one provider object (a Stripe customer, a Plaid item)."""

    id: int
    tenant_id: int
    customer_id: int
    provider: str
    kind: str
    external_id: str
    status: str
    last_synced_at: dt.datetime | None


_COLUMNS = (
    provider_links.c.id,
    provider_links.c.tenant_id,
    provider_links.c.customer_id,
    provider_links.c.provider,
    provider_links.c.kind,
    provider_links.c.external_id,
    provider_links.c.status,
    provider_links.c.last_synced_at,
)


def _link(row: RowMapping) -> ProviderLink:
    return ProviderLink(
        id=int(row["id"]),
        tenant_id=int(row["tenant_id"]),
        customer_id=int(row["customer_id"]),
        provider=str(row["provider"]),
        kind=str(row["kind"]),
        external_id=str(row["external_id"]),
        status=str(row["status"]),
        last_synced_at=row["last_synced_at"],
    )


class ProviderLinkReader:
    """Reads for the provider loaders and webhooks; each method issues one SQL statement."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def links_by_customer_ids(
        self, tenant_id: int, customer_ids: Sequence[int], *, kind: str
    ) -> list[list[ProviderLink]]:
        """Each customer's links of `kind` ('banking' or 'cards'), oldest first, in key order."""
        if not customer_ids:
            return []
        query = (
            select(*_COLUMNS)
            .where(
                provider_links.c.tenant_id == tenant_id,
                provider_links.c.kind == kind,
                provider_links.c.customer_id.in_(list(customer_ids)),
            )
            .order_by(provider_links.c.customer_id, provider_links.c.id)
        )
        async with self._engine.connect() as connection:
            rows = list((await connection.execute(query)).mappings())
        by_customer: dict[int, list[ProviderLink]] = defaultdict(list)
        for row in rows:
            by_customer[int(row["customer_id"])].append(_link(row))
        return [by_customer.get(customer_id, []) for customer_id in customer_ids]

    async def links_by_external_id(self, provider: str, external_id: str) -> list[ProviderLink]:
        """The links to one provider object, in every tenant (a webhook names only the object)."""
        query = (
            select(*_COLUMNS)
            .where(
                provider_links.c.provider == provider,
                provider_links.c.external_id == external_id,
            )
            .order_by(provider_links.c.id)
        )
        async with self._engine.connect() as connection:
            rows = list((await connection.execute(query)).mappings())
        return [_link(row) for row in rows]


async def unlinked_customer_ids(
    engine: AsyncEngine, tenant_id: int, kind: str, *, limit: int | None = None
) -> list[int]:
    """The tenant's customers without a link of `kind`, lowest ids first (at most `limit`)."""
    linked = select(provider_links.c.customer_id).where(
        provider_links.c.tenant_id == tenant_id, provider_links.c.kind == kind
    )
    query = (
        select(customers.c.id)
        .where(customers.c.tenant_id == tenant_id, customers.c.id.not_in(linked))
        .order_by(customers.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    async with engine.connect() as connection:
        return list((await connection.execute(query)).scalars())
