"""`Query.rateLimit`: the caller's cost-weighted rate limit, as GitHub's GraphQL API reports it.

The runtime (gateway.rate_limits) charges the operation before it runs and puts the outcome
on the request context; this field only reads it: no I/O, cost 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import strawberry

from resolvers.context import Info
from resolvers.cost_directives import FREE

__all__ = ["RateLimit", "RateLimitQuery", "RateLimitStatus"]


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """One caller's budget after this operation was charged (a plain record of the runtime)."""

    limit: int
    cost: int
    remaining: int
    reset_at: dt.datetime


@strawberry.type(
    directives=[FREE],
    description=(
        "Your rate limit: points per window, charged by each operation's estimated cost (at "
        "least 1)."
    ),
)
class RateLimit:
    limit: int = strawberry.field(description="Points you may spend per window.")
    cost: int = strawberry.field(description="Points this operation was charged.")
    remaining: int = strawberry.field(description="Points left now, after this operation.")
    reset_at: dt.datetime = strawberry.field(
        description="When your budget is whole again if you send nothing more."
    )


@strawberry.type
class RateLimitQuery:
    @strawberry.field(
        directives=[FREE],
        description=(
            "Your rate limit after this operation was charged; null when rate limiting is "
            "off. Reading it costs nothing."
        ),
    )
    def rate_limit(self, info: Info) -> RateLimit | None:
        status = info.context.rate_limit
        if status is None:
            return None
        return RateLimit(
            limit=status.limit, cost=status.cost, remaining=status.remaining,
            reset_at=status.reset_at,
        )  # fmt: skip
