"""The audit trail of requests: who read personal data unmasked, who posted.

Reads: the Customer.email resolver notes each unmasked read in the request's AuditBuffer
(adapters.audit.records), in memory; `AuditRecorder.flush` writes them all with one INSERT at
the end of the request, after execution and before the response leaves. If that INSERT fails
the response is refused (`AUDIT_UNAVAILABLE`, HTTP 503, no data): personal data is never
answered without its record. The compiled read path (gateway.compiled) hands operations that
read a masked field to the resolvers for principals who may see it unmasked, so every such
read passes through the buffer.

Writes: the posting service records each post, post_pending, void and reverse in the same
database transaction as the write (PostingService.for_request): a committed posting always
has its event, and a rolled-back one never has.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Callable

from graphql import (
    DocumentNode,
    GraphQLSchema,
    get_operation_ast,
)

from adapters.audit.records import Actor, AuditBuffer
from adapters.audit.store import AuditStore
from gateway.document_fields import selects_any
from gateway.persisted_documents import DocumentRequest
from resolvers.errors import GatewayError
from resolvers.permissions import MASKED_FIELDS
from resolvers.principal import Principal

__all__ = ["AuditRecorder", "AuditUnavailable", "actor_for"]

logger = logging.getLogger("gateway.audit")


class AuditUnavailable(GatewayError):
    """The audit trail could not be written: the data it would record is not answered."""

    code = "AUDIT_UNAVAILABLE"
    status_code = 503


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def actor_for(
    principal: Principal,
    request_id: str,
    document: DocumentNode | None,
    operation_name: str | None,
    sent: DocumentRequest,
) -> Actor:
    """Who is acting in this request, and with which operation and document."""
    if operation_name is None and document is not None:
        operation = get_operation_ast(document, None)
        if operation is not None and operation.name is not None:
            operation_name = operation.name.value
    document_id = sent.document_id or sent.relay_doc_id
    if document_id is None and isinstance(sent.persisted_query, dict):
        digest = sent.persisted_query.get("sha256Hash")
        document_id = f"sha256:{digest}" if isinstance(digest, str) else None
    return Actor(
        tenant_id=principal.tenant_id,
        subject=principal.subject,
        client_id=principal.client_id,
        request_id=request_id,
        operation_name=operation_name,
        document_id=document_id,
    )


# Scopes that reveal some masked field: only their holders can read personal data unmasked.
_UNMASK_SCOPES = frozenset(MASKED_FIELDS.values())


class AuditRecorder:
    """Writes the buffered events of a request, once, at its end; tells which requests read
    personal data unmasked (those are never answered from the response cache, whose hits run
    no resolver and so would record nothing)."""

    def __init__(
        self,
        store: AuditStore,
        schema: GraphQLSchema,
        *,
        clock: Callable[[], dt.datetime] = _utc_now,
        max_documents: int = 1024,
    ) -> None:
        self.store = store
        self._schema = schema
        self._clock = clock
        self._masked: OrderedDict[str, bool] = OrderedDict()
        self._max_documents = max_documents

    def reads_unmasked(
        self, principal: Principal, text: str, document: DocumentNode | None
    ) -> bool:
        """True when `principal` may unmask personal data and the document selects a masked
        field (remembered per document text). Free for principals without such a scope."""
        if document is None or _UNMASK_SCOPES.isdisjoint(principal.scopes):
            return False
        found = self._masked.get(text)
        if found is None:
            found = self._masked[text] = selects_any(self._schema, document, MASKED_FIELDS)
            if len(self._masked) > self._max_documents:
                self._masked.popitem(last=False)
        return found

    async def flush(self, buffer: AuditBuffer | None) -> None:
        """One INSERT of every event of the request; AuditUnavailable when it fails."""
        if buffer is None or not len(buffer):
            return
        try:
            await self.store.record(buffer.rows(self._clock()))
        except Exception as error:
            logger.exception("audit events not written, request_id=%s", buffer.actor.request_id)
            raise AuditUnavailable(
                "the audit trail is unavailable; personal data is not answered without it",
                requestId=buffer.actor.request_id,
            ) from error
