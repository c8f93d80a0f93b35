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

__all__ = ["SubscriptionSettings", "load_subscription_settings"]


@dataclass(frozen=True, slots=True)
class SubscriptionSettings:
    queue_size: int = 100
    max_connections_per_client: int = 10
    max_operations_per_connection: int = 20
    init_timeout_seconds: float = 10.0


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def load_subscription_settings(env: Mapping[str, str]) -> SubscriptionSettings:
    defaults = SubscriptionSettings()
    return SubscriptionSettings(
        queue_size=_positive(env, "SUBSCRIPTION_QUEUE_SIZE", defaults.queue_size),
        max_connections_per_client=_positive(
            env, "SUBSCRIPTION_MAX_CONNECTIONS_PER_CLIENT", defaults.max_connections_per_client
        ),
        max_operations_per_connection=_positive(
            env,
            "SUBSCRIPTION_MAX_OPERATIONS_PER_CONNECTION",
            defaults.max_operations_per_connection,
        ),
        init_timeout_seconds=float(
            _positive(env, "SUBSCRIPTION_INIT_TIMEOUT_SECONDS", int(defaults.init_timeout_seconds))
        ),
    )
