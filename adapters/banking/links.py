"""Banking provider links: create one with its sealed access token, find them, unseal them.

A link row (`provider_links`, kind 'banking') ties one provider item to one customer of one
tenant. Its access token is sealed with adapters.crypto, bound to tenant and link id; it is
unsealed only just before a provider call and never logged or returned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.records import ConnectionStatus
from adapters.crypto import SecretBox, SecretDecryptionError, SecretText, link_associated_data
from adapters.errors import NotFound
from adapters.ledger.tables import customers
from adapters.providers.tables import provider_links

__all__ = [
    "BankLink",
    "access_token_for",
    "bank_links",
    "bank_links_for_item",
    "create_bank_link",
    "set_link_status",
]

_KIND = "banking"


@dataclass(frozen=True, slots=True)
class BankLink:
    """A customer's link to a banking provider item. The sealed token stays out of repr."""

    id: int
    tenant_id: int
    customer_id: int
    provider: str
    external_id: str
    status: ConnectionStatus
    sync_cursor: str | None
    last_synced_at: dt.datetime | None
    secret_encrypted: bytes | None = None

    def __repr__(self) -> str:
        return (
            f"BankLink(id={self.id}, tenant_id={self.tenant_id}, customer_id={self.customer_id}, "
            f"provider={self.provider!r}, status={self.status.value!r})"
        )


_COLUMNS = (
    provider_links.c.id,
    provider_links.c.tenant_id,
    provider_links.c.customer_id,
    provider_links.c.provider,
    provider_links.c.external_id,
    provider_links.c.status,
    provider_links.c.sync_cursor,
    provider_links.c.last_synced_at,
    provider_links.c.secret_encrypted,
)


def _link(values: RowMapping) -> BankLink:
    return BankLink(
        id=int(values["id"]),
        tenant_id=int(values["tenant_id"]),
        customer_id=int(values["customer_id"]),
        provider=str(values["provider"]),
        external_id=str(values["external_id"]),
        status=ConnectionStatus(values["status"]),
        sync_cursor=values["sync_cursor"],
        last_synced_at=values["last_synced_at"],
        secret_encrypted=values["secret_encrypted"],
    )


async def create_bank_link(
    engine: AsyncEngine,
    box: SecretBox,
    *,
    tenant_id: int,
    customer_id: int,
    provider: str,
    item_id: str,
    access_token: SecretText,
) -> int:
    """Store a new link with its access token sealed to (tenant, link id); returns the id.

    Raises NotFound (field `customer_id`) when the customer is not one of the tenant's; the
    composite key on (tenant_id, customer_id) would refuse the row anyway.
    """
    async with engine.begin() as connection:
        owned = await connection.scalar(
            select(customers.c.id).where(
                customers.c.tenant_id == tenant_id, customers.c.id == customer_id
            )
        )
        if owned is None:
            raise NotFound("customer not found", field="customer_id")
        link_id = (
            await connection.execute(
                insert(provider_links)
                .values(
                    tenant_id=tenant_id,
                    customer_id=customer_id,
                    provider=provider,
                    kind=_KIND,
                    external_id=item_id,
                )
                .returning(provider_links.c.id)
            )
        ).scalar_one()
        sealed = box.encrypt(access_token, link_associated_data(tenant_id, link_id))
        await connection.execute(
            update(provider_links)
            .where(provider_links.c.tenant_id == tenant_id, provider_links.c.id == link_id)
            .values(secret_encrypted=sealed)
        )
    return int(link_id)


def access_token_for(box: SecretBox, link: BankLink) -> SecretText:
    """Unseal the link's access token (raises SecretDecryptionError when it cannot)."""
    if link.secret_encrypted is None:
        raise SecretDecryptionError("the link has no stored secret")
    return box.decrypt(link.secret_encrypted, link_associated_data(link.tenant_id, link.id))


async def bank_links(
    engine: AsyncEngine,
    *,
    tenant_id: int | None = None,
    customer_ids: Sequence[int] | None = None,
    never_synced_only: bool = False,
) -> list[BankLink]:
    """Banking links, optionally of one tenant and some customers (customers need a tenant)."""
    if customer_ids is not None and tenant_id is None:
        raise ValueError("customer filters need a tenant")
    query = select(*_COLUMNS).where(provider_links.c.kind == _KIND)
    if tenant_id is not None:
        query = query.where(provider_links.c.tenant_id == tenant_id)
    if customer_ids is not None:
        query = query.where(provider_links.c.customer_id.in_(list(customer_ids)))
    if never_synced_only:
        query = query.where(provider_links.c.last_synced_at.is_(None))
    async with engine.connect() as connection:
        rows = (await connection.execute(query.order_by(provider_links.c.id))).all()
    return [_link(row._mapping) for row in rows]


async def bank_links_for_item(engine: AsyncEngine, provider: str, item_id: str) -> list[BankLink]:
    """The links of one provider item (a webhook names only the item), in any tenant."""
    query = select(*_COLUMNS).where(
        provider_links.c.kind == _KIND,
        provider_links.c.provider == provider,
        provider_links.c.external_id == item_id,
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query.order_by(provider_links.c.id))).all()
    return [_link(row._mapping) for row in rows]


async def set_link_status(
    engine: AsyncEngine, *, tenant_id: int, link_id: int, status: ConnectionStatus
) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(provider_links)
            .where(
                provider_links.c.id == link_id,
                provider_links.c.tenant_id == tenant_id,
                provider_links.c.status != ConnectionStatus.REVOKED.value,  # revoked is final
            )
            .values(status=status.value)
        )
