"""Provider settings: which card processor and banking provider to call, how, and with what.

Two modes (PROVIDERS): `sandbox` (the embedded default: the Stripe-, Plaid- and Open
Banking-shaped sandboxes served in-process, no credentials) and `live` (base URLs and
credentials from the environment; a provider without credentials is left out, and its fields
answer PROVIDER_UNAVAILABLE). Every secret is a SecretText: it never prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adapters.crypto import DEV_SECRET_KEYRING, SecretText

__all__ = ["ProviderSettings", "load_provider_settings"]


def _secret(value: str | None) -> SecretText | None:
    return SecretText(value) if value else None


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Provider wiring, HTTP policy and cache lifetimes (seconds)."""

    mode: str = "sandbox"
    stripe_base_url: str = "https://api.stripe.com"
    stripe_api_key: SecretText | None = None
    # Every accepted endpoint secret (old and new while rotating).
    stripe_webhook_secrets: tuple[SecretText, ...] = ()
    plaid_base_url: str = "https://production.plaid.com"
    plaid_client_id: str | None = None
    plaid_secret: SecretText | None = None
    # A UK Open Banking ASPSP: base URL with its API prefix, its x-fapi-financial-id, our
    # client-credentials token (reads consents) and the name shown for its accounts.
    obuk_base_url: str | None = None
    obuk_financial_id: str | None = None
    obuk_client_token: SecretText | None = None
    obuk_institution_name: str = "Open Banking ASPSP"
    # Keyring sealing provider access tokens at rest (adapters.crypto).
    secret_keyring: SecretText = field(default_factory=lambda: SecretText(DEV_SECRET_KEYRING))
    timeout_seconds: float = 5.0
    max_attempts: int = 3
    backoff_base_seconds: float = 0.1
    max_concurrency: int = 16
    # Circuit breaker per provider: opens after this many consecutive retryable failures and
    # lets one trial call through after the cool-down.
    breaker_failure_threshold: int = 5
    breaker_cooldown_seconds: float = 10.0
    cache_ttl_seconds: float = 60.0
    cache_stale_seconds: float = 3600.0
    webhook_dedup_seconds: float = 7 * 24 * 3600.0
    # Largest webhook body read; a longer one is refused (413) without reading the rest.
    webhook_max_body_bytes: int = 1_000_000
    # Sandbox mode only: added to every sandbox call (benchmarks model provider round trips).
    sandbox_latency_seconds: float = 0.0

    @property
    def is_sandbox(self) -> bool:
        return self.mode == "sandbox"


def _float(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {number}")
    return number


def load_provider_settings(env: Mapping[str, str], *, environment: str) -> ProviderSettings:
    """Read PROVIDERS and the provider variables; outside development `live` is the default,
    and a banking provider needs its own SECRET_KEYRING (the development one is refused)."""
    defaults = ProviderSettings()
    mode = env.get("PROVIDERS", "sandbox" if environment == "development" else "live")
    if mode not in ("sandbox", "live"):
        raise ValueError(f"PROVIDERS must be 'sandbox' or 'live', got {mode!r}")
    keyring = env.get("SECRET_KEYRING") or DEV_SECRET_KEYRING
    has_bank_links = bool(env.get("PLAID_CLIENT_ID") or env.get("OBUK_FINANCIAL_ID"))
    if environment != "development" and has_bank_links and keyring == DEV_SECRET_KEYRING:
        raise ValueError("SECRET_KEYRING must be set outside development to store bank links")
    webhook_secrets = env.get("STRIPE_WEBHOOK_SECRETS", "")
    return ProviderSettings(
        mode=mode,
        stripe_base_url=env.get("STRIPE_BASE_URL", defaults.stripe_base_url),
        stripe_api_key=_secret(env.get("STRIPE_API_KEY")),
        stripe_webhook_secrets=tuple(
            SecretText(part.strip()) for part in webhook_secrets.split(",") if part.strip()
        ),
        plaid_base_url=env.get("PLAID_BASE_URL", defaults.plaid_base_url),
        plaid_client_id=env.get("PLAID_CLIENT_ID") or None,
        plaid_secret=_secret(env.get("PLAID_SECRET")),
        obuk_base_url=env.get("OBUK_BASE_URL") or None,
        obuk_financial_id=env.get("OBUK_FINANCIAL_ID") or None,
        obuk_client_token=_secret(env.get("OBUK_CLIENT_TOKEN")),
        obuk_institution_name=env.get("OBUK_INSTITUTION_NAME", defaults.obuk_institution_name),
        secret_keyring=SecretText(keyring),
        timeout_seconds=_float(
            env.get("PROVIDER_TIMEOUT_SECONDS", str(defaults.timeout_seconds)),
            "PROVIDER_TIMEOUT_SECONDS",
        ),
        max_concurrency=int(
            _float(
                env.get("PROVIDER_MAX_CONCURRENCY", str(defaults.max_concurrency)),
                "PROVIDER_MAX_CONCURRENCY",
            )
        ),
        breaker_failure_threshold=max(
            1,
            int(
                _float(
                    env.get(
                        "PROVIDER_BREAKER_FAILURE_THRESHOLD",
                        str(defaults.breaker_failure_threshold),
                    ),
                    "PROVIDER_BREAKER_FAILURE_THRESHOLD",
                )
            ),
        ),
        breaker_cooldown_seconds=_float(
            env.get("PROVIDER_BREAKER_COOLDOWN_SECONDS", str(defaults.breaker_cooldown_seconds)),
            "PROVIDER_BREAKER_COOLDOWN_SECONDS",
        ),
        cache_ttl_seconds=_float(
            env.get("PROVIDER_CACHE_TTL_SECONDS", str(defaults.cache_ttl_seconds)),
            "PROVIDER_CACHE_TTL_SECONDS",
        ),
        cache_stale_seconds=_float(
            env.get("PROVIDER_CACHE_STALE_SECONDS", str(defaults.cache_stale_seconds)),
            "PROVIDER_CACHE_STALE_SECONDS",
        ),
        webhook_max_body_bytes=int(
            _float(
                env.get("WEBHOOK_MAX_BODY_BYTES", str(defaults.webhook_max_body_bytes)),
                "WEBHOOK_MAX_BODY_BYTES",
            )
        ),
        sandbox_latency_seconds=_float(env.get("SANDBOX_LATENCY_MS", "0"), "SANDBOX_LATENCY_MS")
        / 1000,
    )
