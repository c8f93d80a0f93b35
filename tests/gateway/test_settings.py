from __future__ import annotations

import pytest

from gateway.settings import DEV_JWT_SECRET, Settings, load_settings
from gateway.subscription_settings import SubscriptionSettings


def test_the_embedded_default_needs_no_configuration() -> None:
    settings = load_settings({})
    assert settings.is_development
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.jwt_secret.reveal() == DEV_JWT_SECRET
    assert settings.graphiql is True


def test_a_server_needs_an_explicit_environment() -> None:
    with pytest.raises(ValueError, match="GATEWAY_ENV is not set") as refused:
        load_settings({}, require_environment=True)
    with pytest.raises(ValueError, match="GATEWAY_ENV is not set"):
        load_settings({"GATEWAY_ENV": "  "}, require_environment=True)
    assert "GATEWAY_ENV=production" in str(refused.value)
    assert load_settings({"GATEWAY_ENV": "development"}, require_environment=True).is_development


@pytest.mark.parametrize("environment", ["test", "staging", "production"])
def test_outside_development_the_api_key_pepper_is_required(environment: str) -> None:
    base = {"GATEWAY_ENV": environment, "JWT_SECRET": "p" * 48}
    for pepper in (None, "", "short"):
        environ = base if pepper is None else {**base, "API_KEY_PEPPER": pepper}
        with pytest.raises(ValueError, match="API_KEY_PEPPER must be set outside development"):
            load_settings(environ)
    settings = load_settings({**base, "API_KEY_PEPPER": "q" * 40})
    assert settings.api_key_pepper.reveal() == "q" * 40
    assert settings.is_production == (environment == "production")


def test_an_unknown_environment_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="GATEWAY_ENV must be one of"):
        load_settings({"GATEWAY_ENV": "prod", "JWT_SECRET": "p" * 48, "API_KEY_PEPPER": "q" * 40})


def test_a_settings_object_built_by_hand_is_production() -> None:
    assert Settings().is_production


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValueError, match="JWT_SECRET must be set"):
        load_settings({"GATEWAY_ENV": "production"})
    with pytest.raises(ValueError, match="at least 32 characters"):
        load_settings({"GATEWAY_ENV": "production", "JWT_SECRET": DEV_JWT_SECRET})
    with pytest.raises(ValueError, match="at least 32 characters"):
        load_settings({"GATEWAY_ENV": "production", "JWT_SECRET": "short"})


def test_production_settings_are_read_with_casts() -> None:
    settings = load_settings(
        {
            "GATEWAY_ENV": "production",
            "JWT_SECRET": "p" * 48,
            "API_KEY_PEPPER": "q" * 40,
            "DATABASE_URL": "postgresql+asyncpg://db/ledger",
            "MAX_PAGE_SIZE": "50",
            "GATEWAY_PORT": "9000",
        }
    )
    assert (settings.database_url, settings.max_page_size, settings.port) == (
        "postgresql+asyncpg://db/ledger", 50, 9000,
    )  # fmt: skip
    assert settings.graphiql is False  # off outside development unless asked for


@pytest.mark.parametrize(
    ("name", "value"), [("MAX_PAGE_SIZE", "0"), ("GATEWAY_PORT", "x"), ("GRAPHIQL", "maybe")]
)
def test_bad_values_are_refused_with_their_name(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        load_settings({name: value})


def test_the_response_cache_is_on_by_default_and_can_be_switched_off() -> None:
    default = load_settings({})
    assert (default.response_cache, default.response_cache_ttl_seconds) == (True, 600)
    assert default.redis_key_prefix == "fgw"
    off = load_settings(
        {"RESPONSE_CACHE": "off", "RESPONSE_CACHE_TTL_SECONDS": "30", "REDIS_KEY_PREFIX": "x"}
    )
    assert (off.response_cache, off.response_cache_ttl_seconds, off.redis_key_prefix) == (
        False, 30, "x",
    )  # fmt: skip
    with pytest.raises(ValueError, match="RESPONSE_CACHE must be a boolean"):
        load_settings({"RESPONSE_CACHE": "sometimes"})


def test_subscription_limits_are_read_and_bad_ones_refused() -> None:
    settings = load_settings(
        {
            "SUBSCRIPTION_QUEUE_SIZE": "5",
            "SUBSCRIPTION_MAX_CONNECTIONS_PER_CLIENT": "3",
            "SUBSCRIPTION_MAX_OPERATIONS_PER_CONNECTION": "2",
            "SUBSCRIPTION_INIT_TIMEOUT_SECONDS": "4",
        }
    )
    assert settings.subscriptions == SubscriptionSettings(
        queue_size=5, max_connections_per_client=3, max_operations_per_connection=2,
        init_timeout_seconds=4.0,
    )  # fmt: skip
    assert load_settings({}).subscriptions == SubscriptionSettings()
    for name in ("SUBSCRIPTION_QUEUE_SIZE", "SUBSCRIPTION_MAX_CONNECTIONS_PER_CLIENT"):
        with pytest.raises(ValueError, match=name):
            load_settings({name: "0"})
