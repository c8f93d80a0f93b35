"""Subscription settings (README, "Live updates").

- `SUBSCRIPTION_QUEUE_SIZE` (100): events waiting for one subscriber; one more and that
  subscriber is disconnected (WebSocket close 1013, "try again later"; an SSE stream ends).
- `SUBSCRIPTION_MAX_CONNECTIONS_PER_CLIENT` (10): open WebSocket and SSE subscription
  connections of one client (an API client, or a JWT's tenant and subject) in one process;
  the next is refused (WebSocket close 4429, SSE HTTP 429).
- `SUBSCRIPTION_MAX_OPERATIONS_PER_CONNECTION` (20): subscriptions running at once on one
  WebSocket; another is answered with an `error` message (TOO_MANY_SUBSCRIPTIONS).
- `SUBSCRIPTION_INIT_TIMEOUT_SECONDS` (10): a WebSocket that sends no `connection_init` in
  time is closed with 4408.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.env_values import integer

__all__ = ["SubscriptionSettings", "load_subscription_settings"]


@dataclass(frozen=True, slots=True)
class SubscriptionSettings:
    queue_size: int = 100
    max_connections_per_client: int = 10
    max_operations_per_connection: int = 20
    init_timeout_seconds: float = 10.0


def load_subscription_settings(env: Mapping[str, str]) -> SubscriptionSettings:
    defaults = SubscriptionSettings()
    return SubscriptionSettings(
        queue_size=integer(env, "SUBSCRIPTION_QUEUE_SIZE", defaults.queue_size, minimum=1),
        max_connections_per_client=integer(
            env,
            "SUBSCRIPTION_MAX_CONNECTIONS_PER_CLIENT",
            defaults.max_connections_per_client,
            minimum=1,
        ),
        max_operations_per_connection=integer(
            env,
            "SUBSCRIPTION_MAX_OPERATIONS_PER_CONNECTION",
            defaults.max_operations_per_connection,
            minimum=1,
        ),
        # Whole seconds, as it has always been read.
        init_timeout_seconds=float(
            integer(
                env,
                "SUBSCRIPTION_INIT_TIMEOUT_SECONDS",
                int(defaults.init_timeout_seconds),
                minimum=1,
            )
        ),
    )
