"""Audit records: who did what to which object, and the buffer one request collects them in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

__all__ = ["Actor", "AuditBuffer", "AuditEvent", "posting_event"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts, in which request: copied onto each event."""

    tenant_id: int
    subject: str
    client_id: int | None
    request_id: str
    operation_name: str | None = None
    document_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One stored event. `object_id` is the row id of `object_type` (for example Customer)."""

    id: int
    tenant_id: int
    occurred_at: dt.datetime
    action: str
    object_type: str
    object_id: int | None
    fields: tuple[str, ...]
    subject: str
    client_id: int | None
    request_id: str
    operation_name: str | None
    document_id: str | None


def _row(
    actor: Actor,
    action: str,
    object_type: str,
    object_id: int | None,
    fields: list[str],
    occurred_at: dt.datetime,
) -> dict[str, Any]:
    return {
        "tenant_id": actor.tenant_id,
        "occurred_at": occurred_at,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "fields": fields,
        "subject": actor.subject,
        "client_id": actor.client_id,
        "request_id": actor.request_id,
        "operation_name": actor.operation_name,
        "document_id": actor.document_id,
    }


def posting_event(
    actor: Actor, action: str, transaction_id: int, occurred_at: dt.datetime
) -> dict[str, Any]:
    """The row of one ledger write (post, post_pending, void, reverse) of a transaction."""
    return _row(actor, action, "LedgerTransaction", transaction_id, [], occurred_at)


class AuditBuffer:
    """The events of one request, kept in memory and written once at its end.

    One event per (action, type, object): reading the same customer's email under two aliases
    records it once, with the fields read merged.
    """

    __slots__ = ("_events", "actor")

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self._events: dict[tuple[str, str, int], list[str]] = {}

    def __len__(self) -> int:
        return len(self._events)

    def record(self, action: str, object_type: str, object_id: int, field: str) -> None:
        fields = self._events.setdefault((action, object_type, object_id), [])
        if field not in fields:
            fields.append(field)

    def rows(self, occurred_at: dt.datetime) -> list[dict[str, Any]]:
        return [
            _row(self.actor, action, object_type, object_id, fields, occurred_at)
            for (action, object_type, object_id), fields in self._events.items()
        ]
