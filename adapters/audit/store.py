"""Writing and listing audit events. Writes are inserts only; nothing here updates or deletes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.audit.records import AuditEvent
from adapters.audit.tables import audit_events
from adapters.records import Page

__all__ = ["AuditStore", "insert_events"]

# Rows per INSERT: 11 parameters each stays far below every driver's parameter limit
# (SQLite 32766, PostgreSQL 32767). A request reads at most a few thousand objects.
_ROWS_PER_STATEMENT = 2_000


async def insert_events(connection: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` with one multi-row INSERT (per 2,000 rows) on `connection`."""
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = list(rows[start : start + _ROWS_PER_STATEMENT])
        await connection.execute(insert(audit_events).values(chunk))


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        id=int(row.id),
        tenant_id=int(row.tenant_id),
        occurred_at=row.occurred_at,
        action=row.action,
        object_type=row.object_type,
        object_id=None if row.object_id is None else int(row.object_id),
        fields=tuple(row.fields),
        subject=row.subject,
        client_id=None if row.client_id is None else int(row.client_id),
        request_id=row.request_id,
        operation_name=row.operation_name,
        document_id=row.document_id,
    )


class AuditStore:
    """The audit trail of one database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `rows` in one transaction (one statement up to 2,000 rows)."""
        if not rows:
            return
        async with self._engine.begin() as connection:
            await insert_events(connection, rows)

    async def page(
        self,
        tenant_id: int,
        *,
        first: int,
        before_id: int | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> Page[AuditEvent]:
        """The tenant's events newest first (by id), older than `before_id`, with
        `since <= occurred_at < until` when given."""
        query = select(audit_events).where(audit_events.c.tenant_id == tenant_id)
        if before_id is not None:
            query = query.where(audit_events.c.id < before_id)
        if since is not None:
            query = query.where(audit_events.c.occurred_at >= since)
        if until is not None:
            query = query.where(audit_events.c.occurred_at < until)
        query = query.order_by(audit_events.c.id.desc()).limit(first + 1)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        events = [_event(row) for row in rows]
        return Page(events[:first], len(events) > first)
