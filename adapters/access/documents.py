"""Trusted (persisted) documents, registered per client: the safelist.

A document is found by its id as registered, by the SHA-256 of its exact body, or by the
SHA-256 of its normalised body (which the caller computes: normalising is GraphQL's business,
not ours). Registration is all-or-nothing, and an id is never re-pointed at another body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.access.tables import persisted_documents
from adapters.errors import Conflict

__all__ = ["NewDocument", "PersistedDocument", "RegisterSummary", "SqlDocumentStore", "sha256_hex"]


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of the UTF-8 bytes of `text`."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewDocument:
    document_id: str
    name: str | None
    body: str
    operation_type: str
    normalized_sha256: str
    # Worst-case cost estimate, computed by the caller (the runtime's cost analysis).
    cost: int | None = None


@dataclass(frozen=True, slots=True)
class PersistedDocument:
    client_id: int
    document_id: str
    name: str | None
    body: str
    operation_type: str
    body_sha256: str
    normalized_sha256: str
    cost: int | None = None


@dataclass(frozen=True, slots=True)
class RegisterSummary:
    added: int
    unchanged: int


_COLUMNS = [
    persisted_documents.c[name]
    for name in (
        "client_id", "document_id", "name", "body", "operation_type", "body_sha256",
        "normalized_sha256", "cost",
    )
]  # fmt: skip


def _record(row: Row[Any]) -> PersistedDocument:
    return PersistedDocument(
        client_id=row.client_id,
        document_id=row.document_id,
        name=row.name,
        body=row.body,
        operation_type=row.operation_type,
        body_sha256=row.body_sha256,
        normalized_sha256=row.normalized_sha256,
        cost=row.cost,
    )


class SqlDocumentStore:
    """Persisted documents in the gateway's database; every read is scoped to one client."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def register(self, client_id: int, documents: Sequence[NewDocument]) -> RegisterSummary:
        """Add the documents of a manifest; Conflict (nothing written) when an id is reused
        with another body, within the manifest or against what the client already has."""
        wanted: dict[str, NewDocument] = {}
        for document in documents:
            earlier = wanted.get(document.document_id)
            if earlier is not None and earlier.body != document.body:
                raise Conflict(f"document id {document.document_id!r} is used for two bodies")
            wanted[document.document_id] = document
        try:
            async with self._engine.begin() as connection:
                existing = {
                    row.document_id: row.body
                    for row in await connection.execute(
                        select(persisted_documents.c.document_id, persisted_documents.c.body).where(
                            persisted_documents.c.client_id == client_id,
                            persisted_documents.c.document_id.in_(list(wanted)),
                        )
                    )
                }
                for document_id, body in existing.items():
                    if wanted[document_id].body != body:
                        raise Conflict(
                            f"document id {document_id!r} is already registered with another body"
                        )
                new = [doc for doc_id, doc in wanted.items() if doc_id not in existing]
                if new:
                    await connection.execute(
                        insert(persisted_documents),
                        [
                            {
                                "client_id": client_id,
                                "document_id": doc.document_id,
                                "name": doc.name,
                                "body": doc.body,
                                "operation_type": doc.operation_type,
                                "body_sha256": sha256_hex(doc.body),
                                "normalized_sha256": doc.normalized_sha256,
                                "cost": doc.cost,
                            }
                            for doc in new
                        ],
                    )
        except IntegrityError as error:
            raise Conflict("documents were registered concurrently; try again") from error
        return RegisterSummary(added=len(new), unchanged=len(existing))

    async def find(self, client_id: int, *, document_id: str) -> PersistedDocument | None:
        """The client's document registered under `document_id`."""
        return await self._one(client_id, persisted_documents.c.document_id == document_id)

    async def find_by_hash(self, client_id: int, sha256: str) -> PersistedDocument | None:
        """The client's document whose exact body hashes to `sha256`, or whose id is it."""
        return await self._one(
            client_id,
            or_(
                persisted_documents.c.body_sha256 == sha256,
                persisted_documents.c.document_id == sha256,
            ),
        )

    async def find_by_normalized_hash(
        self, client_id: int, sha256: str
    ) -> PersistedDocument | None:
        return await self._one(client_id, persisted_documents.c.normalized_sha256 == sha256)

    async def list(self, client_id: int) -> Sequence[PersistedDocument]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(*_COLUMNS)
                .where(persisted_documents.c.client_id == client_id)
                .order_by(persisted_documents.c.document_id)
            )
            return [_record(row) for row in rows]

    async def _one(self, client_id: int, condition: Any) -> PersistedDocument | None:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(*_COLUMNS)
                    .where(persisted_documents.c.client_id == client_id, condition)
                    .order_by(persisted_documents.c.id)
                    .limit(1)
                )
            ).one_or_none()
        return None if row is None else _record(row)
