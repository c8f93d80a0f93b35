"""Provider settings: which card processor and banking provider to call, how, and with what.

Two modes (PROVIDERS): `sandbox` (the embedded default: the Stripe-, Adyen-, Plaid- and Open
Banking-shaped sandboxes served in-process, no credentials) and `live` (base URLs and
credentials from the environment; a provider without credentials is left out, and its fields
answer PROVIDER_UNAVAILABLE). Every secret is a SecretText: it never prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adapters.cards.adyen_webhooks import decode_hmac_key
from adapters.crypto import DEV_SECRET_KEYRING, SecretText
from gateway.env_values import integer, non_negative_float, positive_float

__all__ = ["ProviderSettings", "load_provider_settings"]


_ADYEN_CHECKOUT_URL = "https://checkout-test.adyen.com/v72"


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
    # Adyen (webhook-sourced): HMAC keys (hex; several while rotating), the Basic auth the
    # webhook endpoint demands, which merchant account belongs to which tenant, and the
    # Checkout API (used only for card details a notification lacks).
    adyen_hmac_keys: tuple[SecretText, ...] = ()
    adyen_webhook_username: str | None = None
    adyen_webhook_password: SecretText | None = None
    adyen_merchant_accounts: tuple[tuple[str, int], ...] = ()
    adyen_api_key: SecretText | None = None
    adyen_checkout_url: str = _ADYEN_CHECKOUT_URL
    # Notification deliveries stored concurrently per process (others queue).
    adyen_ingest_concurrency: int = 4
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


def _merchant_accounts(value: str) -> tuple[tuple[str, int], ...]:
    """`Account=tenant,Other=tenant` as pairs; ValueError naming the variable otherwise."""
    pairs = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        account, separator, tenant = part.rpartition("=")
        if not separator or not account.strip() or not tenant.strip().isdigit():
            raise ValueError("ADYEN_MERCHANT_ACCOUNTS must be 'MerchantAccount=tenant_id,...'")
        pairs.append((account.strip(), int(tenant)))
    return tuple(pairs)


def _adyen(env: Mapping[str, str], environment: str) -> dict[str, object]:
    """The Adyen settings; outside development, a merchant account without HMAC keys or
    webhook credentials is refused (notifications would be unverifiable)."""
    keys = tuple(
        SecretText(k.strip()) for k in env.get("ADYEN_HMAC_KEYS", "").split(",") if k.strip()
    )
    for key in keys:
        decode_hmac_key(key.reveal())  # ValueError: not hex, too short
    accounts = _merchant_accounts(env.get("ADYEN_MERCHANT_ACCOUNTS", ""))
    username = env.get("ADYEN_WEBHOOK_USERNAME") or None
    password = _secret(env.get("ADYEN_WEBHOOK_PASSWORD"))
    if environment != "development" and accounts and not (keys and username and password):
        raise ValueError(
            "ADYEN_MERCHANT_ACCOUNTS needs ADYEN_HMAC_KEYS, ADYEN_WEBHOOK_USERNAME and "
            "ADYEN_WEBHOOK_PASSWORD outside development"
        )
    return {
        "adyen_hmac_keys": keys,
        "adyen_webhook_username": username,
        "adyen_webhook_password": password,
        "adyen_merchant_accounts": accounts,
        "adyen_api_key": _secret(env.get("ADYEN_API_KEY")),
        "adyen_checkout_url": env.get("ADYEN_CHECKOUT_URL", _ADYEN_CHECKOUT_URL),
        "adyen_ingest_concurrency": integer(env, "ADYEN_INGEST_CONCURRENCY", 4, minimum=1),
    }


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
        **_adyen(env, environment),  # type: ignore[arg-type]
        plaid_base_url=env.get("PLAID_BASE_URL", defaults.plaid_base_url),
        plaid_client_id=env.get("PLAID_CLIENT_ID") or None,
        plaid_secret=_secret(env.get("PLAID_SECRET")),
        obuk_base_url=env.get("OBUK_BASE_URL") or None,
        obuk_financial_id=env.get("OBUK_FINANCIAL_ID") or None,
        obuk_client_token=_secret(env.get("OBUK_CLIENT_TOKEN")),
        obuk_institution_name=env.get("OBUK_INSTITUTION_NAME", defaults.obuk_institution_name),
        secret_keyring=SecretText(keyring),
        # 0 would time every provider read out at once: refused, as any non-positive value.
        timeout_seconds=positive_float(env, "PROVIDER_TIMEOUT_SECONDS", defaults.timeout_seconds),
        max_concurrency=integer(
            env, "PROVIDER_MAX_CONCURRENCY", defaults.max_concurrency, minimum=1
        ),
        breaker_failure_threshold=integer(
            env,
            "PROVIDER_BREAKER_FAILURE_THRESHOLD",
            defaults.breaker_failure_threshold,
            minimum=1,
        ),
        breaker_cooldown_seconds=non_negative_float(
            env, "PROVIDER_BREAKER_COOLDOWN_SECONDS", defaults.breaker_cooldown_seconds
        ),
        cache_ttl_seconds=non_negative_float(
            env, "PROVIDER_CACHE_TTL_SECONDS", defaults.cache_ttl_seconds
        ),
        cache_stale_seconds=non_negative_float(
            env, "PROVIDER_CACHE_STALE_SECONDS", defaults.cache_stale_seconds
        ),
        webhook_max_body_bytes=integer(
            env, "WEBHOOK_MAX_BODY_BYTES", defaults.webhook_max_body_bytes, minimum=0
        ),
        sandbox_latency_seconds=non_negative_float(env, "SANDBOX_LATENCY_MS", 0) / 1000,
    )
