"""The lifespan opens everything a request needs, over the configured database, and closes it."""

from __future__ import annotations

import dataclasses

from gateway.lifespan import open_services
from gateway.settings import Settings
from tests.factories import make_customer


async def test_open_services_serves_reads_and_key_lookups(
    settings: Settings, tenant_id: int
) -> None:
    customer = await _customer(settings, tenant_id)
    async with open_services(dataclasses.replace(settings, redis_url=None)) as services:
        assert await services.database_is_ready()
        [found] = await services.reader.customers_by_ids(tenant_id, [customer])
        assert found is not None
        assert found.display_name == "Lifespan"
        issued = await services.clients.create(
            tenant_id=tenant_id, name="lifespan", kind="partner", scopes=["ledger:read"]
        )
        client = await services.clients.by_key(issued.key)
        assert client is not None
        assert client.id == issued.client.id
        await services.clients.revoke(issued.client.id)
        assert await services.clients.by_key(issued.key) is None


async def _customer(settings: Settings, tenant_id: int) -> int:
    from adapters.ledger.engine import create_ledger_engine

    engine = create_ledger_engine(settings.database_url)
    try:
        return await make_customer(engine, tenant_id, display_name="Lifespan")
    finally:
        await engine.dispose()
