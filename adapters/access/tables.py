"""api_clients and persisted_documents (DESIGN.md, "Core ledger model").

An API key is never stored: only its keyed hash (`key_hash`, unique) and its first characters
(`key_prefix`, to recognise it in a list). A revoked client keeps its row with `revoked_at`.
A persisted document belongs to one client; `(client_id, document_id)` is unique, and the
hashes of its exact body and of its normalised body find it by APQ hash or by matching text.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from adapters.db import Id, UtcDateTime, created_at_column, metadata

__all__ = ["api_clients", "persisted_documents"]

api_clients = Table(
    "api_clients",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    # "fgw_live_ab12" or "fgw_test_ab12": enough to recognise a key, never enough to use it.
    Column("key_prefix", String(24), nullable=False),
    # Hex HMAC-SHA-256 of the whole key under the server's pepper.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    # Operation policy: what kinds of documents the client may send.
    Column("apq_enabled", Boolean, nullable=False),
    Column("allow_text", Boolean, nullable=False),
    Column("safelist_required", Boolean, nullable=False),
    Column("introspection", Boolean, nullable=False),
    # Rate limit in cost points per period (gateway.rate_limits); None: the kind's default.
    Column("rate_limit", Integer),
    # Most an operation may cost (gateway.cost); None: the kind's default.
    Column("max_cost", Integer),
    created_at_column(),
    Column("revoked_at", UtcDateTime()),
    CheckConstraint("kind in ('first_party', 'partner', 'analyst')", name="kind"),
    Index(None, "tenant_id", "id"),
)

persisted_documents = Table(
    "persisted_documents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("client_id", Id, ForeignKey("api_clients.id"), nullable=False),
    # As registered: a manifest id (often the body's SHA-256 hex) or a custom id.
    Column("document_id", String(200), nullable=False),
    Column("name", Text),
    Column("body", Text, nullable=False),
    Column("operation_type", String(16), nullable=False),
    # Hex SHA-256 of the exact body bytes (APQ hashes, `sha256:` document ids).
    Column("body_sha256", String(64), nullable=False),
    # Hex SHA-256 of the normalised body (first-party text matching).
    Column("normalized_sha256", String(64), nullable=False),
    # Worst-case cost estimate, computed once at registration (gateway.cost).
    Column("cost", Integer),
    created_at_column(),
    CheckConstraint(
        "operation_type in ('query', 'mutation', 'subscription')", name="operation_type"
    ),
    UniqueConstraint("client_id", "document_id"),
    Index(None, "client_id", "body_sha256"),
    Index(None, "client_id", "normalized_sha256"),
)
