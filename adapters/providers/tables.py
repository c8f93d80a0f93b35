"""provider_links: which provider object (a Plaid item, a Stripe customer) belongs to which
customer of which tenant, with the provider's secret for it (encrypted) and the sync cursor."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from adapters.db import Id, UtcDateTime, created_at_column, metadata

__all__ = ["provider_links"]

provider_links = Table(
    "provider_links",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", Id, nullable=False),
    # Registered provider name ("plaid", "stripe") and its kind.
    Column("provider", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    # The provider's id of the linked object: a Plaid item_id, a Stripe customer id.
    Column("external_id", String(255), nullable=False),
    # Authenticated encryption of the provider secret for this link (a Plaid access token);
    # never stored in clear, never logged, never returned.
    Column("secret_encrypted", LargeBinary),
    # Transactions sync cursor, persisted only after a complete sync.
    Column("sync_cursor", Text),
    Column("status", String(24), nullable=False, server_default="active"),
    Column("last_synced_at", UtcDateTime()),
    created_at_column(),
    CheckConstraint("kind in ('banking', 'cards')", name="kind"),
    CheckConstraint("status in ('active', 'login_required', 'revoked')", name="status"),
    # The customer must be the link's tenant's (and bank rows name a link of their tenant).
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
    UniqueConstraint("tenant_id", "provider", "external_id"),
    UniqueConstraint("tenant_id", "id"),
    Index(None, "tenant_id", "customer_id", "kind"),
)
