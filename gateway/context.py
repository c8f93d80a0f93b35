"""The typed per-request context that resolvers read, and the Info alias they annotate with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import strawberry

if TYPE_CHECKING:
    from adapters.ledger.posting import PostingService
    from gateway.auth import Principal
    from gateway.loaders import LedgerLoaders
    from gateway.loaders.banking import BankingLoaders
    from gateway.loaders.cards import CardLoaders
    from gateway.provider_cache import StaleRead
    from gateway.providers import ProviderRuntime

__all__ = ["Info", "RequestContext", "attach_providers"]


@dataclass(slots=True)
class RequestContext:
    """Everything one GraphQL request may use: who asks, and fresh loaders for their tenant."""

    request_id: str
    principal: Principal
    ledger: LedgerLoaders
    posting: PostingService
    max_page_size: int
    # Provider loaders (None when the process runs without providers: their fields then
    # answer PROVIDER_UNAVAILABLE). Set by `attach_providers`.
    cards: CardLoaders | None = None
    banking: BankingLoaders | None = None
    # Added to the response's top-level `extensions` by the HTTP layer when not empty
    # (for example `staleData`: provider data served past its freshness).
    response_extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def tenant_id(self) -> int:
        return self.principal.tenant_id

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


def attach_providers(context: RequestContext, runtime: ProviderRuntime | None) -> RequestContext:
    """Give a request's context fresh provider loaders for its tenant (no-op without any)."""
    if runtime is not None:
        context.cards = runtime.card_loaders(context.tenant_id, context.report_stale)
        context.banking = runtime.banking_loaders(context.tenant_id)
    return context


Info = strawberry.Info[RequestContext, None]
