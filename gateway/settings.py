"""Settings: one frozen object read from the environment; secrets never print."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adapters.crypto import SecretText
from gateway.cors import CorsSettings, load_cors_settings
from gateway.cost import CostSettings, load_cost_settings
from gateway.deadlines import DeadlineSettings, load_deadline_settings
from gateway.env_values import flag, integer
from gateway.export_settings import ExportSettings, load_export_settings
from gateway.limits import LimitSettings, load_limit_settings
from gateway.provider_settings import ProviderSettings, load_provider_settings
from gateway.rate_limits import RateLimitSettings, load_rate_limit_settings
from gateway.reconciliation import ReconciliationSettings, load_reconciliation_settings
from gateway.subscription_settings import SubscriptionSettings, load_subscription_settings
from gateway.telemetry_settings import TelemetrySettings, load_telemetry_settings

__all__ = ["DEV_JWT_SECRET", "ENVIRONMENTS", "Settings", "check_settings", "load_settings"]

# Used only when GATEWAY_ENV=development and no JWT_SECRET is set: the embedded default must
# work with no configuration, and every token it signs says so in its issuer.
DEV_JWT_SECRET = "finance-gateway-development-secret-do-not-use-in-production"  # noqa: S105
# GATEWAY_ENV must name one of these: a typo ("prod") is refused rather than guessed at.
ENVIRONMENTS = ("development", "test", "staging", "production")
_MIN_SECRET_CHARS = 32


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway reads from its environment. Build with `load_settings`.

    A Settings built by hand is production unless it says otherwise (nothing fails open).
    """

    environment: str = "production"
    database_url: str = "sqlite+aiosqlite:///var/gateway.db"
    database_pool_size: int = 10
    redis_url: str | None = None
    # Namespace of every key this deployment writes to Redis (tests use one per run).
    redis_key_prefix: str = "fgw"
    jwt_secret: SecretText = field(default_factory=lambda: SecretText(DEV_JWT_SECRET))
    jwt_issuer: str = "finance-gateway-dev"
    jwt_audience: str = "finance-gateway"
    jwt_leeway_seconds: int = 30
    # When set, bearer JWTs are verified against this JWKS (RS256/ES256) instead of jwt_secret.
    jwt_jwks_url: str | None = None
    # HMAC key for stored API-key hashes; a database leak then yields nothing to brute-force.
    api_key_pepper: SecretText = field(default_factory=lambda: SecretText(""))
    apq_ttl_seconds: int = 86_400
    # Cached read responses (gateway/response_cache.py): on by default; the TTL only bounds
    # memory, since the tenant's data version in the key keeps entries from going stale.
    response_cache: bool = True
    response_cache_ttl_seconds: int = 600
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    max_page_size: int = 100
    max_query_depth: int = 12
    max_aliases: int = 30
    max_query_bytes: int = 100_000
    # How far a posting's effectiveAt may lie from now: back-dating window and future skew.
    ledger_max_backdate_days: int = 365
    ledger_max_future_skew_seconds: int = 300
    graphiql: bool = True
    # Known ledger queries run as one JSON-building SQL statement on PostgreSQL (gateway.compiled).
    compiled_operations: bool = True
    graphiql_assets_dir: Path = Path("var/graphiql")
    providers: ProviderSettings = field(default_factory=ProviderSettings)
    cost: CostSettings = field(default_factory=CostSettings)
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    deadlines: DeadlineSettings = field(default_factory=DeadlineSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)
    subscriptions: SubscriptionSettings = field(default_factory=SubscriptionSettings)
    exports: ExportSettings = field(default_factory=ExportSettings)
    reconciliation: ReconciliationSettings = field(default_factory=ReconciliationSettings)

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def is_production(self) -> bool:
        """Production refuses test API keys (`fgw_test_...`)."""
        return self.environment == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def check_settings(settings: Settings) -> None:
    """Refuse (ValueError) settings a gateway must not start with; nothing to do in development."""
    if settings.environment not in ENVIRONMENTS:
        raise ValueError(
            f"GATEWAY_ENV must be one of {', '.join(ENVIRONMENTS)}, got {settings.environment!r}"
        )
    if settings.is_development:
        return
    if len(settings.api_key_pepper.reveal()) < _MIN_SECRET_CHARS:
        raise ValueError(
            f"API_KEY_PEPPER must be set outside development (GATEWAY_ENV={settings.environment}):"
            f" a random string of at least {_MIN_SECRET_CHARS} characters"
        )


def load_settings(
    environ: Mapping[str, str] | None = None, *, require_environment: bool = False
) -> Settings:
    """Read settings from `environ` (default: the process environment).

    Outside development a JWT secret and an API-key pepper must be given; the development
    secret is refused. Without GATEWAY_ENV the settings are development ones, unless
    `require_environment` (as `gateway serve` asks): then a missing GATEWAY_ENV is refused.
    """
    env = os.environ if environ is None else environ
    defaults = Settings()
    environment = env.get("GATEWAY_ENV", "").strip()
    if not environment:
        if require_environment:
            raise ValueError(
                "GATEWAY_ENV is not set: a server must be told its environment. Set "
                "GATEWAY_ENV=production (with JWT_SECRET and API_KEY_PEPPER) for a deployment, "
                "or GATEWAY_ENV=development for a local run (`make run` does)"
            )
        environment = "development"
    secret_text = env.get("JWT_SECRET")
    jwks_url = env.get("JWT_JWKS_URL") or None
    if secret_text is None:
        if environment != "development" and jwks_url is None:
            raise ValueError("JWT_SECRET must be set outside development (GATEWAY_ENV)")
        secret_text = DEV_JWT_SECRET
    elif environment != "development" and (
        secret_text == DEV_JWT_SECRET or len(secret_text) < _MIN_SECRET_CHARS
    ):
        raise ValueError("JWT_SECRET must be a random string of at least 32 characters")
    settings = Settings(
        environment=environment,
        database_url=env.get("DATABASE_URL", defaults.database_url),
        database_pool_size=integer(
            env, "DATABASE_POOL_SIZE", defaults.database_pool_size, minimum=1
        ),
        redis_url=env.get("REDIS_URL") or None,
        redis_key_prefix=env.get("REDIS_KEY_PREFIX") or defaults.redis_key_prefix,
        jwt_secret=SecretText(secret_text),
        jwt_issuer=env.get("JWT_ISSUER", defaults.jwt_issuer),
        jwt_audience=env.get("JWT_AUDIENCE", defaults.jwt_audience),
        jwt_jwks_url=jwks_url,
        api_key_pepper=SecretText(env.get("API_KEY_PEPPER", "")),
        apq_ttl_seconds=integer(env, "APQ_TTL_SECONDS", defaults.apq_ttl_seconds, minimum=1),
        response_cache=flag(env, "RESPONSE_CACHE", defaults.response_cache),
        response_cache_ttl_seconds=integer(
            env, "RESPONSE_CACHE_TTL_SECONDS", defaults.response_cache_ttl_seconds, minimum=1
        ),
        host=env.get("GATEWAY_HOST", defaults.host),
        port=integer(env, "GATEWAY_PORT", defaults.port, minimum=1, maximum=65535),
        log_level=env.get("LOG_LEVEL", defaults.log_level),
        max_page_size=integer(env, "MAX_PAGE_SIZE", defaults.max_page_size, minimum=1),
        ledger_max_backdate_days=min(
            integer(env, "LEDGER_MAX_BACKDATE_DAYS", defaults.ledger_max_backdate_days, minimum=0),
            3_650_000,  # ten thousand years: unbounded in practice, and no overflow
        ),
        ledger_max_future_skew_seconds=min(
            integer(
                env,
                "LEDGER_MAX_FUTURE_SKEW_SECONDS",
                defaults.ledger_max_future_skew_seconds,
                minimum=0,
            ),
            10**11,
        ),
        max_query_depth=integer(env, "MAX_QUERY_DEPTH", defaults.max_query_depth, minimum=1),
        max_aliases=integer(env, "MAX_ALIASES", defaults.max_aliases, minimum=0),
        max_query_bytes=integer(env, "MAX_QUERY_BYTES", defaults.max_query_bytes, minimum=1),
        graphiql=flag(env, "GRAPHIQL", environment == "development"),
        compiled_operations=flag(env, "COMPILED_OPERATIONS", defaults.compiled_operations),
        graphiql_assets_dir=Path(env.get("GRAPHIQL_ASSETS_DIR", str(defaults.graphiql_assets_dir))),
        providers=load_provider_settings(env, environment=environment),
        cost=load_cost_settings(env),
        rate_limits=load_rate_limit_settings(env),
        telemetry=load_telemetry_settings(env),
        limits=load_limit_settings(env),
        deadlines=load_deadline_settings(env),
        cors=load_cors_settings(env),
        subscriptions=load_subscription_settings(env),
        exports=load_export_settings(env),
        reconciliation=load_reconciliation_settings(env),
    )
    check_settings(settings)
    return settings
