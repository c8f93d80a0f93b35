"""The Open Banking provider's settings and its place in the provider runtime."""

from __future__ import annotations

import pytest

from adapters.banking.openbanking import obuk_link_secret
from adapters.cache import Cache
from adapters.crypto import SecretText
from adapters.sandbox.openbanking_app import OpenBankingSandbox
from gateway.provider_settings import ProviderSettings, load_provider_settings
from gateway.providers import open_providers
from tests.fixtures.database import Database


def test_obuk_settings_are_read_from_the_environment() -> None:
    read = load_provider_settings(
        {
            "OBUK_BASE_URL": "https://ob.bank.example/open-banking/v4.0/aisp",
            "OBUK_FINANCIAL_ID": "0015800001041RHAAY",
            "OBUK_CLIENT_TOKEN": "tpp-token",
            "OBUK_INSTITUTION_NAME": "Bank of Tests",
        },
        environment="development",
    )
    assert read.obuk_base_url == "https://ob.bank.example/open-banking/v4.0/aisp"
    assert read.obuk_financial_id == "0015800001041RHAAY"
    assert read.obuk_client_token is not None
    assert read.obuk_client_token.reveal() == "tpp-token"
    assert "tpp-token" not in repr(read)
    assert read.obuk_institution_name == "Bank of Tests"


def test_open_banking_links_need_a_keyring_outside_development() -> None:
    with pytest.raises(ValueError, match="SECRET_KEYRING"):
        load_provider_settings({"OBUK_FINANCIAL_ID": "fid"}, environment="production")


async def test_sandbox_mode_serves_the_open_banking_sandbox_in_process(
    database: Database, cache: Cache
) -> None:
    async with open_providers(ProviderSettings(), database.engine, cache) as runtime:
        provider = runtime.banking_providers["obuk"]
        sandbox = runtime.sandboxes["obuk"]
        assert isinstance(sandbox, OpenBankingSandbox)
        consent_id, token = sandbox.create_consent("c-wired")
        accounts = await provider.get_accounts(obuk_link_secret(consent_id, token))
    assert [a.provider_account_id for a in accounts.accounts] == ["c-wired-cur", "c-wired-card"]


async def test_live_mode_without_obuk_settings_leaves_the_provider_out(
    database: Database, cache: Cache
) -> None:
    settings = ProviderSettings(
        mode="live", plaid_client_id="id", plaid_secret=SecretText("secret")
    )
    async with open_providers(settings, database.engine, cache) as runtime:
        assert set(runtime.banking_providers) == {"plaid"}
