"""Persisted documents: per client, all-or-nothing, an id never re-pointed at another body."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.access.clients import ClientStore
from adapters.access.documents import NewDocument, SqlDocumentStore, sha256_hex
from adapters.errors import Conflict

BODY = "query A { customers { totalCount } }"


def _doc(document_id: str, body: str = BODY) -> NewDocument:
    return NewDocument(
        document_id=document_id, name="A", body=body, operation_type="query",
        normalized_sha256=sha256_hex(body),
    )  # fmt: skip


async def _client(engine: AsyncEngine, tenant_id: int) -> int:
    issued = await ClientStore(engine, pepper="p").create(
        tenant_id=tenant_id, name="c", kind="partner", scopes=[]
    )
    return issued.client.id


async def test_documents_are_found_by_id_hash_and_normalised_hash_of_their_client_only(
    engine: AsyncEngine, tenant_id: int
) -> None:
    store = SqlDocumentStore(engine)
    mine, other = await _client(engine, tenant_id), await _client(engine, tenant_id)
    summary = await store.register(mine, [_doc("a1")])
    assert (summary.added, summary.unchanged) == (1, 0)
    found = await store.find(mine, document_id="a1")
    assert found is not None
    assert found.body == BODY
    assert await store.find_by_hash(mine, sha256_hex(BODY)) == found
    assert await store.find_by_normalized_hash(mine, sha256_hex(BODY)) == found
    assert await store.find(other, document_id="a1") is None
    assert await store.find_by_hash(other, sha256_hex(BODY)) is None


async def test_registering_again_is_idempotent(engine: AsyncEngine, tenant_id: int) -> None:
    store = SqlDocumentStore(engine)
    client = await _client(engine, tenant_id)
    await store.register(client, [_doc("a1")])
    summary = await store.register(client, [_doc("a1"), _doc("a2")])
    assert (summary.added, summary.unchanged) == (1, 1)
    assert [doc.document_id for doc in await store.list(client)] == ["a1", "a2"]


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param([_doc("a1", "{ b: __typename }")], id="against_stored_case"),
        pytest.param([_doc("new"), _doc("new", "{ c: __typename }")], id="within_manifest_case"),
    ],
)
async def test_an_id_reused_with_another_body_is_refused_and_nothing_is_written(
    engine: AsyncEngine, tenant_id: int, batch: list[NewDocument]
) -> None:
    store = SqlDocumentStore(engine)
    client = await _client(engine, tenant_id)
    await store.register(client, [_doc("a1")])
    with pytest.raises(Conflict):
        await store.register(client, [_doc("fresh"), *batch])
    assert [doc.document_id for doc in await store.list(client)] == ["a1"]
