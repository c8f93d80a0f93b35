"""API clients in the database: keys shown once, stored hashed, revocable, rotatable."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.access.clients import DEFAULT_POLICIES, ClientStore, looks_like_api_key
from adapters.access.tables import api_clients
from adapters.errors import NotFound


@pytest.fixture
def clients(engine: AsyncEngine) -> ClientStore:
    return ClientStore(engine, pepper="pepper-for-tests")


async def test_a_created_key_is_prefixed_shown_once_and_stored_only_as_a_hash(
    clients: ClientStore, engine: AsyncEngine, tenant_id: int
) -> None:
    issued = await clients.create(
        tenant_id=tenant_id, name="acme", kind="partner", scopes=["ledger:read"]
    )
    assert issued.key.startswith("fgw_live_")
    assert looks_like_api_key(issued.key)
    assert issued.client.key_prefix == issued.key[:13]
    assert issued.client.policy == DEFAULT_POLICIES["partner"]
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(api_clients).where(api_clients.c.id == issued.client.id)
            )
        ).one()
    assert issued.key not in str(tuple(row))
    assert row.key_hash == clients.hash_key(issued.key)
    assert await clients.by_key(issued.key) == issued.client


async def test_test_keys_have_their_own_prefix(clients: ClientStore, tenant_id: int) -> None:
    issued = await clients.create(
        tenant_id=tenant_id, name="sandbox", kind="analyst", scopes=[], environment="test"
    )
    assert issued.key.startswith("fgw_test_")
    assert (await clients.by_key(issued.key)) == issued.client


async def test_a_revoked_key_fails_at_once(clients: ClientStore, tenant_id: int) -> None:
    issued = await clients.create(tenant_id=tenant_id, name="a", kind="partner", scopes=[])
    revoked = await clients.revoke(issued.client.id)
    assert revoked.is_revoked
    assert await clients.by_key(issued.key) is None
    with pytest.raises(NotFound):
        await clients.rotate_key(issued.client.id)


async def test_rotating_replaces_the_key(clients: ClientStore, tenant_id: int) -> None:
    issued = await clients.create(tenant_id=tenant_id, name="a", kind="first_party", scopes=[])
    rotated = await clients.rotate_key(issued.client.id)
    assert rotated.key != issued.key
    assert await clients.by_key(issued.key) is None
    found = await clients.by_key(rotated.key)
    assert found is not None
    assert found.id == issued.client.id


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty_case"),
        pytest.param("fgw_live_short", id="short_case"),
        pytest.param("sk_live_" + "a" * 44, id="other_prefix_case"),
        pytest.param("fgw_live_" + "a" * 43, id="unknown_case"),
    ],
)
async def test_unknown_or_malformed_keys_find_nothing(clients: ClientStore, key: str) -> None:
    assert await clients.by_key(key) is None


async def test_listing_is_per_tenant(
    clients: ClientStore, tenant_id: int, engine: AsyncEngine
) -> None:
    from tests.factories import make_tenant

    other = await make_tenant(engine)
    mine = await clients.create(tenant_id=tenant_id, name="mine", kind="analyst", scopes=[])
    await clients.create(tenant_id=other, name="theirs", kind="analyst", scopes=[])
    assert [client.id for client in await clients.list(tenant_id)] == [mine.client.id]
    with pytest.raises(NotFound):
        await clients.revoke(10**9)
