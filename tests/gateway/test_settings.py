from __future__ import annotations

import pytest

from gateway.settings import DEV_JWT_SECRET, load_settings


def test_the_embedded_default_needs_no_configuration() -> None:
    settings = load_settings({})
    assert settings.is_development
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.jwt_secret.reveal() == DEV_JWT_SECRET
    assert settings.graphiql is True


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
