"""The provider runtime of one process: clients, the read-through cache, background work.

Opened by the lifespan next to the engine and the cache, closed on shutdown. In `sandbox` mode
(the embedded default) the Stripe-, Plaid- and Open Banking-shaped sandboxes are served
in-process through `httpx.ASGITransport`; in `live` mode each provider with credentials gets a
pooled client to its base URL; tests pass their own transports (sandboxes as real HTTP
servers, or faults). Every client goes through `adapters.http_client.ResilientTransport`
(timeouts, retries, concurrency cap, circuit breaker).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking import BankingProvider, ProviderCredentials, create_banking_provider
from adapters.banking.openbanking import OpenBankingProvider
from adapters.banking.queries import BankReader
from adapters.banking.webhooks import WebhookKeyCache
from adapters.cache import Cache
from adapters.cards.protocol import CardProcessor
from adapters.cards.stripe import StripeCardProcessor
from adapters.crypto import SecretBox, SecretText
from adapters.http_client import (
    CircuitState,
    ProviderCallObserver,
    ProviderPolicy,
    provider_http_client,
    transport_of,
)
from adapters.provider_cache import ReadThroughCache, StaleRead
from adapters.providers.queries import ProviderLinkReader
from gateway.provider_settings import ProviderSettings
from resolvers.loaders.banking import BankingLoaders
from resolvers.loaders.cards import CardCachePolicy, CardLoaders

__all__ = ["PLAID_READ_PATHS", "ProviderRuntime", "open_providers"]

logger = logging.getLogger("gateway.providers")

# Plaid reads are POSTs; these change nothing upstream, so they may be retried.
PLAID_READ_PATHS = frozenset(
    {
        "/accounts/get",
        "/accounts/balance/get",
        "/institutions/get_by_id",
        "/transactions/sync",
        "/webhook_verification_key/get",
    }
)
_SANDBOX_PLAID_URL = "http://banking.sandbox"
_SANDBOX_OBUK_HOST = "http://obuk.sandbox"


@dataclass(slots=True)
class ProviderRuntime:
    """Shared by every request of one process; loaders are built per request from it."""

    settings: ProviderSettings
    engine: AsyncEngine
    reads: ReadThroughCache
    links: ProviderLinkReader
    bank_reader: BankReader
    card_processors: dict[str, CardProcessor]
    banking_providers: dict[str, BankingProvider]
    secret_box: SecretBox | None
    card_policy: CardCachePolicy
    http_clients: dict[str, httpx.AsyncClient]
    stripe_webhook_secrets: tuple[str, ...] = ()
    plaid_webhook_keys: WebhookKeyCache | None = None
    sandboxes: dict[str, Any] = field(default_factory=dict)
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def cache(self) -> Cache:
        return self.reads.cache

    def card_loaders(
        self,
        tenant_id: int,
        on_stale: Callable[[StaleRead], None] | None = None,
        deadline: float | None = None,
    ) -> CardLoaders:
        return CardLoaders(
            links=self.links,
            processors=self.card_processors,
            reads=self.reads,
            tenant_id=tenant_id,
            policy=self.card_policy,
            on_stale=on_stale,
            deadline=deadline,
        )

    def banking_loaders(self, tenant_id: int, deadline: float | None = None) -> BankingLoaders:
        return BankingLoaders(
            engine=self.engine,
            reader=self.bank_reader,
            links=self.links,
            providers=self.banking_providers,
            box=self.secret_box,
            tenant_id=tenant_id,
            deadline=deadline,
        )

    def collector(self) -> Collector:
        """Prometheus collector of the provider transports and the read-through cache."""
        return _ProviderCollector(self)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` after the response (webhook follow-ups); failures are logged, not lost."""
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for the background work started so far (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        for processor in self.card_processors.values():
            await processor.aclose()
        for client in self.http_clients.values():
            await client.aclose()


class _ProviderCollector(Collector):
    """Read at scrape time: the transports count on their own (adapters.http_client)."""

    def __init__(self, runtime: ProviderRuntime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterable[Metric]:
        runtime = self._runtime
        transports = {name: transport_of(c) for name, c in runtime.http_clients.items()}
        # Unlabelled totals, as the benchmark has always read them.
        attempts = sum(t.stats.attempts for t in transports.values())
        yield CounterMetricFamily(
            "gateway_provider_upstream_attempts",
            "HTTP attempts to every provider (retries included).",
            value=attempts,
        )
        reads = runtime.reads
        for name, value, text in (
            ("hits", reads.hits, "Provider reads answered by the read-through cache."),
            ("misses", reads.misses, "Provider reads that called the provider."),
            ("coalesced", reads.coalesced, "Provider reads that joined one already in flight."),
        ):
            yield CounterMetricFamily(f"gateway_provider_cache_{name}", text, value=value)
        per_provider = {
            "attempts": ("HTTP attempts to a provider (retries included).", "attempts"),
            "retries": ("Attempts that were retries.", "retries"),
            "failures": ("Calls that failed after their last attempt.", "failures"),
            "short_circuited": ("Calls refused by an open circuit.", "short_circuited"),
        }
        for metric, (text, attribute) in per_provider.items():
            family = CounterMetricFamily(f"gateway_provider_{metric}", text, labels=["provider"])
            for name, transport in transports.items():
                family.add_metric([name], getattr(transport.stats, attribute))
            yield family
        state = GaugeMetricFamily(
            "gateway_provider_circuit_state",
            "Circuit breaker state of each provider: 1 for the state it is in.",
            labels=["provider", "state"],
        )
        for name, transport in transports.items():
            current = transport.breaker.state
            for each in CircuitState:
                state.add_metric([name, each.value], 1 if each is current else 0)
        yield state


def _policy(name: str, settings: ProviderSettings, **extra: Any) -> ProviderPolicy:
    return ProviderPolicy(
        name=name,
        read_timeout=settings.timeout_seconds,
        write_timeout=settings.timeout_seconds,
        max_attempts=settings.max_attempts,
        backoff_base_seconds=settings.backoff_base_seconds,
        max_concurrency=settings.max_concurrency,
        failure_threshold=settings.breaker_failure_threshold,
        cooldown_seconds=settings.breaker_cooldown_seconds,
        **extra,
    )


@asynccontextmanager
async def open_providers(
    settings: ProviderSettings,
    engine: AsyncEngine,
    cache: Cache,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    base_urls: Mapping[str, str] | None = None,
    on_call: ProviderCallObserver | None = None,
) -> AsyncIterator[ProviderRuntime]:
    """Build the provider clients for `settings.mode`; `transports`/`base_urls` (by provider
    name) override where a provider is reached (tests: sandboxes over HTTP or in-process);
    `on_call` is told of every provider call (gateway.metrics: histograms and trace spans)."""
    transports = dict(transports or {})
    base_urls = dict(base_urls or {})
    clients: dict[str, httpx.AsyncClient] = {}
    processors: dict[str, CardProcessor] = {}
    banks: dict[str, BankingProvider] = {}
    sandboxes: dict[str, Any] = {}
    stripe_secrets: tuple[str, ...] = tuple(s.reveal() for s in settings.stripe_webhook_secrets)
    stripe_key = settings.stripe_api_key.reveal() if settings.stripe_api_key else None
    plaid: tuple[str, SecretText] | None = None
    if settings.plaid_client_id and settings.plaid_secret:
        plaid = (settings.plaid_client_id, settings.plaid_secret)
    obuk: tuple[str, SecretText] | None = None
    if settings.obuk_financial_id and settings.obuk_client_token and settings.obuk_base_url:
        obuk = (settings.obuk_financial_id, settings.obuk_client_token)
    if settings.is_sandbox:
        from adapters.sandbox.banking_app import SANDBOX_CLIENT_ID, SANDBOX_SECRET, BankingSandbox
        from adapters.sandbox.cards_app import (
            DEFAULT_SECRET_KEY,
            DEFAULT_WEBHOOK_SECRET,
            SANDBOX_BASE_URL,
            CardsSandbox,
        )
        from adapters.sandbox.openbanking_app import (
            OB_BASE_PATH,
            OB_SANDBOX_CLIENT_TOKEN,
            OB_SANDBOX_FINANCIAL_ID,
            OpenBankingSandbox,
        )

        cards_sandbox, banking_sandbox = CardsSandbox(), BankingSandbox()
        obuk_sandbox = OpenBankingSandbox()
        cards_sandbox.faults.latency_seconds = settings.sandbox_latency_seconds
        banking_sandbox.faults.latency = settings.sandbox_latency_seconds
        obuk_sandbox.faults.latency = settings.sandbox_latency_seconds
        sandboxes = {"stripe": cards_sandbox, "plaid": banking_sandbox, "obuk": obuk_sandbox}
        transports.setdefault("stripe", cards_sandbox.transport())
        transports.setdefault("plaid", httpx.ASGITransport(app=banking_sandbox.app))
        transports.setdefault("obuk", httpx.ASGITransport(app=obuk_sandbox.app))
        base_urls.setdefault("stripe", SANDBOX_BASE_URL)
        base_urls.setdefault("plaid", _SANDBOX_PLAID_URL)
        base_urls.setdefault("obuk", _SANDBOX_OBUK_HOST + OB_BASE_PATH)
        stripe_key = stripe_key or DEFAULT_SECRET_KEY
        stripe_secrets = stripe_secrets or (DEFAULT_WEBHOOK_SECRET,)
        plaid = plaid or (SANDBOX_CLIENT_ID, SecretText(SANDBOX_SECRET))
        obuk = obuk or (OB_SANDBOX_FINANCIAL_ID, SecretText(OB_SANDBOX_CLIENT_TOKEN))
    if stripe_key is not None:
        clients["stripe"] = provider_http_client(
            _policy("stripe", settings), transport=transports.get("stripe"), on_call=on_call
        )
        processors["stripe"] = StripeCardProcessor(
            api_key=stripe_key,
            base_url=base_urls.get("stripe", settings.stripe_base_url),
            client=clients["stripe"],
        )
    keys = None
    if plaid is not None:
        clients["plaid"] = provider_http_client(
            _policy("plaid", settings, idempotent_post_paths=PLAID_READ_PATHS),
            base_url=base_urls.get("plaid", settings.plaid_base_url),
            transport=transports.get("plaid"),
            on_call=on_call,
        )
        provider = create_banking_provider(
            "plaid", clients["plaid"], ProviderCredentials(client_id=plaid[0], secret=plaid[1])
        )
        banks["plaid"] = provider
        keys = WebhookKeyCache(provider.get_webhook_verification_key)  # type: ignore[attr-defined]
    if obuk is not None:
        # Reads only (GET), so every call may be retried.
        clients["obuk"] = provider_http_client(
            _policy("obuk", settings),
            base_url=base_urls.get("obuk", settings.obuk_base_url or ""),
            transport=transports.get("obuk"),
            on_call=on_call,
        )
        banks["obuk"] = OpenBankingProvider(
            clients["obuk"],
            ProviderCredentials(client_id=obuk[0], secret=obuk[1]),
            institution_name=settings.obuk_institution_name,
        )
    runtime = ProviderRuntime(
        settings=settings,
        engine=engine,
        reads=ReadThroughCache(cache),
        links=ProviderLinkReader(engine),
        bank_reader=BankReader(engine),
        card_processors=processors,
        banking_providers=banks,
        secret_box=SecretBox.from_keyring(settings.secret_keyring.reveal()),
        card_policy=CardCachePolicy(
            ttl_seconds=settings.cache_ttl_seconds,
            stale_ttl_seconds=settings.cache_stale_seconds,
        ),
        http_clients=clients,
        stripe_webhook_secrets=stripe_secrets,
        plaid_webhook_keys=keys,
        sandboxes=sandboxes,
    )
    try:
        yield runtime
    finally:
        await runtime.aclose()
