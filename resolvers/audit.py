"""The audit trail through the schema: `auditEvents`, readable with the audit:read scope."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from adapters.audit.records import AuditEvent as AuditRecord
from adapters.errors import InvalidInput
from resolvers.context import Info
from resolvers.node import encode_global_id
from resolvers.pagination import (
    After,
    Connection,
    First,
    check_first,
    decode_cursor,
    encode_cursor,
    make_connection,
)

__all__ = ["AuditEvent", "AuditQuery"]

# Object types whose ids are given as global ids (the others keep their row id).
_NODE_TYPES = frozenset({"Customer", "LedgerAccount", "LedgerTransaction", "LedgerEntry"})


@strawberry.type(
    description=(
        "One recorded event: an unmasked read of personal data (action `read`) or a ledger "
        "write (`post`, `post_pending`, `void`, `reverse`). Append-only: never changed."
    )
)
class AuditEvent:
    record: strawberry.Private[AuditRecord]

    @strawberry.field(description="Opaque id of the event; later events have greater ids.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(encode_cursor("audit", self.record.id))

    @strawberry.field(description="When it happened.")
    def occurred_at(self) -> dt.datetime:
        return self.record.occurred_at

    @strawberry.field(description="read, post, post_pending, void or reverse.")
    def action(self) -> str:
        return self.record.action

    @strawberry.field(description="The type of the object read or written, e.g. Customer.")
    def object_type(self) -> str:
        return self.record.object_type

    @strawberry.field(description="The global id of the object read or written.")
    def object_id(self) -> strawberry.ID | None:
        record = self.record
        if record.object_id is None:
            return None
        if record.object_type in _NODE_TYPES:
            return strawberry.ID(encode_global_id(record.object_type, record.object_id))
        return strawberry.ID(str(record.object_id))

    @strawberry.field(description="The fields read unmasked (empty for writes).")
    def fields(self) -> list[str]:
        return list(self.record.fields)

    @strawberry.field(description="Who: the token's subject, or `client:<id>` for API keys.")
    def subject(self) -> str:
        return self.record.subject

    @strawberry.field(description="The API client's id; null for signed-in users (JWT).")
    def client_id(self) -> strawberry.ID | None:
        client_id = self.record.client_id
        return None if client_id is None else strawberry.ID(str(client_id))

    @strawberry.field(description="The request id (x-request-id) of the request that did it.")
    def request_id(self) -> str:
        return self.record.request_id

    @strawberry.field(description="The operation's name, when it had one.")
    def operation_name(self) -> str | None:
        return self.record.operation_name

    @strawberry.field(description="The persisted document's id (or APQ hash), when sent by id.")
    def document_id(self) -> str | None:
        return self.record.document_id


def _node(record: AuditRecord) -> AuditEvent:
    return AuditEvent(record=record)


@strawberry.type
class AuditQuery:
    @strawberry.field(
        description=(
            "Your tenant's audit trail, newest first: every unmasked read of personal data "
            "(pii:read) and every ledger write. `since` and `until` bound `occurredAt` "
            "(since <= occurredAt < until). Needs the audit:read scope."
        )
    )
    async def audit_events(
        self,
        info: Info,
        first: First = 20,
        after: After = None,
        since: Annotated[
            dt.datetime | None,
            strawberry.argument(description="Earliest `occurredAt` (included); null for no bound."),
        ] = None,
        until: Annotated[
            dt.datetime | None,
            strawberry.argument(
                description="`occurredAt` before this (excluded); null for no bound. Before "
                "`since` is BAD_USER_INPUT."
            ),
        ] = None,
    ) -> Connection[AuditEvent]:
        context = info.context
        limit = check_first(first, context.max_page_size)
        before_id = decode_cursor("audit", after, 1)[0] if after is not None else None
        if since is not None and until is not None and until < since:
            raise InvalidInput("until must not be before since", field="until")
        store = context.audit_store
        if store is None:
            return make_connection(
                [], False, lambda record: AuditEvent(record=record), lambda _: ""
            )
        page = await store.page(
            context.tenant_id, first=limit, before_id=before_id, since=since, until=until
        )
        return make_connection(
            page.items,
            page.has_next_page,
            _node,
            lambda record: encode_cursor("audit", record.id),
        )
