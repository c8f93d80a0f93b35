"""The audit_events table: append-only (see migration 0007_audit for the guard)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Table, Text

from adapters.db import Id, UtcDateTime, metadata

__all__ = ["audit_events"]

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    # read (unmasked personal data), post, post_pending, void, reverse
    Column("action", String(32), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("object_id", Id),
    Column("fields", JSON, nullable=False),
    # Who: the principal's subject ("client:7" or the JWT's sub) and the API client, if any.
    Column("subject", Text, nullable=False),
    Column("client_id", Id),
    Column("request_id", String(64), nullable=False),
    Column("operation_name", Text),
    Column("document_id", Text),
    Index(None, "tenant_id", "id"),
    Index(None, "tenant_id", "occurred_at"),
)
