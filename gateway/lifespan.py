"""Long-lived clients of one gateway process, opened and closed by the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.engine import create_ledger_engine
from adapters.ledger.posting import PostingService
from adapters.ledger.queries import LedgerReader
from adapters.ledger.tables import tenants
from gateway.auth import SCOPES, TokenVerifier, mint_token
from gateway.metrics import Metrics
from gateway.settings import Settings

__all__ = ["Services", "open_services"]


@dataclass(slots=True)
class Services:
    """Shared by every request of one process; nothing here is tenant-specific."""

    settings: Settings
    engine: AsyncEngine
    metrics: Metrics
    reader: LedgerReader
    posting: PostingService
    verifier: TokenVerifier
    development_token: str | None = None

    async def database_is_ready(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("select 1"))
        except Exception:  # noqa: BLE001 - any failure means "not ready", and is reported so
            return False
        return True


async def _first_tenant_id(engine: AsyncEngine) -> int | None:
    async with engine.connect() as connection:
        result = await connection.execute(select(tenants.c.id).order_by(tenants.c.id).limit(1))
        return result.scalar_one_or_none()


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Open the engine and clients; in development also mint a token for the first tenant."""
    metrics = Metrics()
    engine = create_ledger_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        on_statement=metrics.count_statement,
    )
    try:
        token = None
        if settings.is_development:
            tenant_id = await _first_tenant_id(engine)
            if tenant_id is not None:
                token = mint_token(settings, tenant_id=tenant_id, scopes=SCOPES)
        yield Services(
            settings=settings,
            engine=engine,
            metrics=metrics,
            reader=LedgerReader(engine, on_statement=metrics.count_statement),
            posting=PostingService(engine),
            verifier=TokenVerifier(settings),
            development_token=token,
        )
    finally:
        await engine.dispose()
