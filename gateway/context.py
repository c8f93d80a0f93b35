"""The typed per-request context that resolvers read, and the Info alias they annotate with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import strawberry

if TYPE_CHECKING:
    from adapters.ledger.posting import PostingService
    from gateway.auth import Principal
    from gateway.loaders import LedgerLoaders

__all__ = ["Info", "RequestContext"]


@dataclass(slots=True)
class RequestContext:
    """Everything one GraphQL request may use: who asks, and fresh loaders for their tenant."""

    request_id: str
    principal: Principal
    ledger: LedgerLoaders
    posting: PostingService
    max_page_size: int

    @property
    def tenant_id(self) -> int:
        return self.principal.tenant_id


Info = strawberry.Info[RequestContext, None]
