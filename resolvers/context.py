"""The typed per-request context that resolvers read, and the Info alias they annotate with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import strawberry
from graphql import GraphQLError

if TYPE_CHECKING:
    from adapters.audit.records import AuditBuffer
    from adapters.audit.store import AuditStore
    from adapters.events import LedgerEvent
    from adapters.ledger.posting import PostingService
    from adapters.provider_cache import StaleRead
    from adapters.reconciliation.store import ReconciliationStore
    from resolvers.loaders import LedgerLoaders
    from resolvers.loaders.banking import BankingLoaders
    from resolvers.loaders.cards import CardLoaders
    from resolvers.loaders.reconciliation import ReconciliationLoaders
    from resolvers.principal import Principal
    from resolvers.rate_limit import RateLimitStatus

__all__ = [
    "Info",
    "LedgerEventSource",
    "ProviderLoaderFactory",
    "RequestContext",
    "attach_providers",
]


class ProviderLoaderFactory(Protocol):
    """What the context needs of the runtime's providers: per-tenant loaders, built on demand.

    The process's provider runtime (`gateway.providers.ProviderRuntime`) satisfies it; the
    context names only this protocol, so the schema never imports the runtime.
    """

    def card_loaders(
        self,
        tenant_id: int,
        on_stale: Callable[[StaleRead], None] | None = None,
        deadline: float | None = None,
    ) -> CardLoaders: ...

    def banking_loaders(self, tenant_id: int, deadline: float | None = None) -> BankingLoaders: ...


class LedgerEventSource(Protocol):
    """What a subscription needs of its transport (gateway.subscriptions): the caller's
    tenant's committed ledger writes, and fresh loaders to read what each one changed."""

    def listen(self) -> AsyncIterator[LedgerEvent]:
        """The tenant's events from now on, until the subscription ends (or is too slow)."""
        ...

    def loaders_for(self, event: LedgerEvent) -> LedgerLoaders:
        """Loaders to read what `event` changed: new for that event (nothing cached from
        before it), and shared by the process's subscriptions of the tenant that receive it,
        so one read serves them all."""
        ...


@dataclass(slots=True)
class RequestContext:
    """Everything one GraphQL request may use: who asks, and fresh loaders for their tenant."""

    request_id: str
    principal: Principal
    ledger: LedgerLoaders
    posting: PostingService
    max_page_size: int
    # The process's provider runtime (None when it runs without providers: their fields then
    # answer PROVIDER_UNAVAILABLE). Its per-request loaders are built on first use.
    providers: ProviderLoaderFactory | None = None
    _cards: CardLoaders | None = None
    _banking: BankingLoaders | None = None
    # Added to the response's top-level `extensions` by the HTTP layer when not empty
    # (for example `staleData`: provider data served past its freshness).
    response_extensions: dict[str, Any] = field(default_factory=dict)
    # The caller's rate limit after this operation was charged (gateway.rate_limits); None
    # when rate limiting is off. Read by Query.rateLimit.
    rate_limit: RateLimitStatus | None = None
    # When the operation must be done, on the event loop's clock (gateway.deadlines); provider
    # loader batches are cancelled past it. None: no deadline.
    deadline: float | None = None
    # Unmasked personal-data reads of this request, written once at its end (gateway.audit).
    audit: AuditBuffer | None = None
    # The audit trail, for the auditEvents field (audit:read).
    audit_store: AuditStore | None = None
    # Subscriptions only (over WebSocket or SSE): where the tenant's ledger events come from.
    events: LedgerEventSource | None = None
    # Errors of fields that still answered (one processor of a merged list failed): added to
    # the response's `errors` after execution (resolvers.schema.PartialErrors).
    partial_errors: list[GraphQLError] = field(default_factory=list)
    # Stored reconciliation results, for the reconciliation field (reconciliation:read).
    reconciliation_store: ReconciliationStore | None = None
    _reconciliation: ReconciliationLoaders | None = None

    @property
    def tenant_id(self) -> int:
        return self.principal.tenant_id

    @property
    def cards(self) -> CardLoaders | None:
        """This request's card-processor loaders (built on first use), or None."""
        if self._cards is None and self.providers is not None:
            self._cards = self.providers.card_loaders(
                self.tenant_id, self.report_stale, self.deadline
            )
        return self._cards

    @property
    def banking(self) -> BankingLoaders | None:
        """This request's banking loaders (built on first use), or None."""
        if self._banking is None and self.providers is not None:
            self._banking = self.providers.banking_loaders(self.tenant_id, self.deadline)
        return self._banking

    @property
    def reconciliation(self) -> ReconciliationLoaders:
        """This request's reconciliation reads for its tenant (built on first use)."""
        if self._reconciliation is None:
            from resolvers.loaders.reconciliation import ReconciliationLoaders

            if self.reconciliation_store is None:
                raise RuntimeError("this context was built without a reconciliation store")
            self._reconciliation = ReconciliationLoaders(self.reconciliation_store, self.tenant_id)
        return self._reconciliation

    @property
    def used_providers(self) -> bool:
        """True once this request built provider loaders (its answer holds provider data)."""
        return self._cards is not None or self._banking is not None

    def report_stale(self, read: StaleRead) -> None:
        """Note provider data served stale; one entry per provider and kind, oldest age."""
        entries: list[dict[str, Any]] = self.response_extensions.setdefault("staleData", [])
        for entry in entries:
            if (entry["provider"], entry["kind"]) == (read.provider, read.kind):
                entry["count"] += 1
                entry["ageSeconds"] = max(entry["ageSeconds"], read.age_seconds)
                return
        entries.append(
            {"provider": read.provider, "kind": read.kind, "ageSeconds": read.age_seconds,
             "count": 1, "code": read.code}
        )  # fmt: skip


def attach_providers(
    context: RequestContext, runtime: ProviderLoaderFactory | None
) -> RequestContext:
    """Let a request's context build provider loaders for its tenant from `runtime`."""
    context.providers = runtime
    return context


Info = strawberry.Info[RequestContext, None]
