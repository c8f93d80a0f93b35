"""Long-lived clients of one gateway process, opened and closed by the app's lifespan."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.access.clients import ClientStore
from adapters.access.documents import SqlDocumentStore
from adapters.cache import Cache, MemoryCache, RedisCache
from adapters.events import EventBroker, MemoryEventBroker, RedisEventBroker
from adapters.ledger.engine import create_ledger_engine
from adapters.ledger.posting import PostingService
from adapters.ledger.posting_requests import EffectiveWindow
from adapters.ledger.queries import LedgerReader
from adapters.ledger.tables import tenants
from adapters.read_pool import ReadPool
from gateway.auth import Authenticator, TokenVerifier, mint_token
from gateway.metrics import Metrics
from gateway.persisted_documents import ApqStore, TrustedDocuments
from gateway.providers import ProviderRuntime, open_providers
from gateway.rate_limits import RateLimiter, open_rate_limiter
from gateway.settings import Settings, check_settings
from gateway.tracing import Tracing
from resolvers.principal import SCOPES

__all__ = ["Services", "effective_window", "open_cache", "open_event_broker", "open_services"]


@dataclass(slots=True)
class Services:
    """Shared by every request of one process; nothing here is tenant-specific."""

    settings: Settings
    engine: AsyncEngine
    metrics: Metrics
    reader: LedgerReader
    posting: PostingService
    verifier: TokenVerifier
    cache: Cache
    clients: ClientStore
    authenticator: Authenticator
    trusted_documents: TrustedDocuments
    apq: ApqStore
    development_token: str | None = None
    # Provider clients and the read-through cache; None runs the gateway without providers.
    providers: ProviderRuntime | None = None
    # Trace spans of each request (gateway.tracing); off unless an exporter is configured.
    tracing: Tracing = field(default_factory=Tracing)
    # Cost-weighted rate limits (Redis when configured); None: the handler keeps an
    # in-process one.
    rate_limiter: RateLimiter | None = None
    # Committed ledger writes, published by the posting service and delivered to this
    # process's subscriptions (adapters.events; Redis pub/sub when REDIS_URL is set).
    events: EventBroker = field(default_factory=MemoryEventBroker)

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


def effective_window(settings: Settings) -> EffectiveWindow:
    """How far from now a posting's effectiveAt may lie (LEDGER_MAX_BACKDATE_DAYS, ...)."""
    return EffectiveWindow(
        max_backdate=dt.timedelta(days=settings.ledger_max_backdate_days),
        max_future_skew=dt.timedelta(seconds=settings.ledger_max_future_skew_seconds),
    )


def open_cache(settings: Settings) -> Cache:
    """Redis when REDIS_URL is set, else the in-process cache of the embedded default."""
    if settings.redis_url:
        return RedisCache(settings.redis_url, prefix=settings.redis_key_prefix)
    return MemoryCache()


def open_event_broker(settings: Settings) -> EventBroker:
    """Redis pub/sub when REDIS_URL is set (every process sees every posting), else in-process."""
    if settings.redis_url:
        return RedisEventBroker(settings.redis_url, prefix=settings.redis_key_prefix)
    return MemoryEventBroker()


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Open the engine and clients; in development also mint a token for the first tenant.

    Settings a gateway must not run with (see `check_settings`) are refused (ValueError).
    """
    check_settings(settings)
    metrics = Metrics()
    telemetry = settings.telemetry
    tracing = Tracing()
    if telemetry.otlp_traces_endpoint:
        tracing = Tracing.otlp(telemetry.otlp_traces_endpoint, service_name=telemetry.service_name)
    system = "sqlite" if settings.is_sqlite else "postgresql"
    engine = create_ledger_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        on_statement=metrics.count_statement,
        on_statement_timed=metrics.statement_timer(system),
    )
    cache = open_cache(settings)
    stack = AsyncExitStack()
    try:
        token = None
        if settings.is_development:
            tenant_id = await _first_tenant_id(engine)
            if tenant_id is not None:
                token = mint_token(settings, tenant_id=tenant_id, scopes=SCOPES)
        verifier = TokenVerifier(settings)
        # Single-statement reads on the request path (loaders, API-key lookups) share one
        # asyncpg pool on PostgreSQL; everything else goes through SQLAlchemy.
        reads = (
            ReadPool.for_engine(engine, size=settings.database_pool_size)
            if engine.dialect.name == "postgresql"
            else None
        )
        if reads is not None:
            stack.push_async_callback(reads.close)
        clients = ClientStore(engine, pepper=settings.api_key_pepper.reveal(), reads=reads)
        providers = await stack.enter_async_context(
            open_providers(settings.providers, engine, cache, on_call=metrics.provider_call)
        )
        reader = LedgerReader(
            engine,
            on_statement=metrics.count_statement,
            reads=reads,
            on_statement_timed=metrics.statement_timer(system),
        )
        rate_limiter = open_rate_limiter(
            settings.rate_limits, settings.redis_url, prefix=f"{settings.redis_key_prefix}:rl"
        )
        stack.push_async_callback(rate_limiter.close)
        events = open_event_broker(settings)
        stack.push_async_callback(events.close)
        await events.start()
        yield Services(
            settings=settings,
            engine=engine,
            metrics=metrics,
            reader=reader,
            posting=PostingService(
                engine,
                effective_window=effective_window(settings),
                lock_timeout_ms=settings.deadlines.lock_timeout_ms,
                events=events,
            ),
            verifier=verifier,
            cache=cache,
            clients=clients,
            authenticator=Authenticator(
                verifier, clients, accept_test_keys=not settings.is_production
            ),
            trusted_documents=TrustedDocuments(SqlDocumentStore(engine)),
            apq=ApqStore(cache, ttl_seconds=settings.apq_ttl_seconds),
            development_token=token,
            providers=providers,
            tracing=tracing,
            rate_limiter=rate_limiter,
            events=events,
        )
    finally:
        tracing.shutdown()
        await stack.aclose()
        await cache.close()
        await engine.dispose()
