"""Fail-closed credentials: JWTs tied to the API client they name, test keys refused in
production, and a gateway that will not start without its environment and pepper."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.crypto import SecretText
from gateway.app import create_app
from gateway.auth import mint_token
from gateway.lifespan import Services, open_services
from gateway.settings import Settings
from tests.factories import make_tenant
from tests.gateway.test_persisted_documents import code_of, make_client, post

PING = "{ __typename }"
CUSTOMERS = "{ customers(first: 1) { edges { node { id } } } }"


def _token(settings: Settings, tenant_id: int, client_id: int, scopes: list[str]) -> str:
    return mint_token(
        settings, tenant_id=tenant_id, scopes=scopes, subject="user-7", client_id=client_id
    )


async def test_a_token_naming_a_client_acts_with_its_kind_policy_and_common_scopes(
    http: httpx.AsyncClient, services: Services, settings: Settings, tenant_id: int
) -> None:
    # A partner client: registered documents only, and `ledger:write` alone.
    client_id, _ = await make_client(
        services, tenant_id, "partner", scopes=("ledger:write",), documents={"ping": PING}
    )
    token = _token(settings, tenant_id, client_id, ["ledger:read", "ledger:write"])

    text = await post(http, token, {"query": PING})
    document = await post(http, token, {"documentId": "ping"})
    principal = await services.authenticator.authenticate(f"Bearer {token}")

    assert (text.status_code, code_of(text)) == (400, "PERSISTED_QUERY_ID_REQUIRED")
    assert document.json() == {"data": {"__typename": "Query"}}
    assert (principal.kind, principal.client_id, principal.subject) == (
        "partner", client_id, "user-7",
    )  # fmt: skip
    assert principal.scopes == frozenset({"ledger:write"})  # token ∩ client
    assert principal.policy.allow_text is False


async def test_the_common_scopes_bound_what_the_token_reads(
    http: httpx.AsyncClient, services: Services, settings: Settings, tenant_id: int
) -> None:
    client_id, _ = await make_client(services, tenant_id, "analyst", scopes=("ledger:write",))
    token = _token(settings, tenant_id, client_id, ["ledger:read", "ledger:write"])

    response = await post(http, token, {"query": CUSTOMERS})

    assert response.json()["errors"][0]["extensions"] == {
        "code": "FORBIDDEN",
        "scope": "ledger:read",
    }


@pytest.mark.parametrize("case", ["unknown", "revoked", "other_tenant"])
async def test_a_token_naming_no_active_client_of_its_tenant_is_unauthenticated(
    http: httpx.AsyncClient, services: Services, settings: Settings, tenant_id: int, case: str
) -> None:
    client_id, _ = await make_client(services, tenant_id, "analyst")
    token_tenant = tenant_id
    if case == "unknown":
        client_id += 1_000_000
    elif case == "revoked":
        await services.clients.revoke(client_id)
    else:
        token_tenant = await make_tenant(services.engine)
    token = _token(settings, token_tenant, client_id, ["ledger:read"])

    response = await post(http, token, {"query": PING})

    assert (response.status_code, code_of(response)) == (401, "UNAUTHENTICATED")
    assert "client_id" in response.json()["errors"][0]["message"]


async def test_a_client_revoked_after_the_token_verified_fails_at_once(
    http: httpx.AsyncClient, services: Services, settings: Settings, tenant_id: int
) -> None:
    client_id, _ = await make_client(services, tenant_id, "analyst")
    token = _token(settings, tenant_id, client_id, ["ledger:read"])

    before = await post(http, token, {"query": PING})
    await services.clients.revoke(client_id)
    after = await post(http, token, {"query": PING})

    assert before.json() == {"data": {"__typename": "Query"}}
    assert (after.status_code, code_of(after)) == (401, "UNAUTHENTICATED")


@pytest.mark.parametrize("claim", ["abc", "-3", "0", "1.5"])
async def test_a_malformed_client_claim_is_unauthenticated(
    http: httpx.AsyncClient, settings: Settings, tenant_id: int, claim: str
) -> None:
    import datetime as dt

    import jwt

    now = dt.datetime.now(dt.UTC)
    token = jwt.encode(
        {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": "u", "iat": now,
         "exp": now + dt.timedelta(minutes=5), "tenant": str(tenant_id),
         "scope": "ledger:read", "client_id": claim},
        settings.jwt_secret.reveal(), algorithm="HS256",
    )  # fmt: skip

    response = await post(http, token, {"query": PING})

    assert (response.status_code, code_of(response)) == (401, "UNAUTHENTICATED")


# --- test keys and production ---------------------------------------------------------------


@pytest.fixture
async def production(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app as the lifespan wires it for GATEWAY_ENV=production."""
    production = dataclasses.replace(settings, environment="production", redis_url=None)
    async with open_services(production) as services:
        transport = httpx.ASGITransport(app=create_app(production, services))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield http


async def test_test_keys_are_refused_in_production_and_live_keys_are_not(
    production: httpx.AsyncClient, http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    test_key = (
        await services.clients.create(
            tenant_id=tenant_id, name="sandbox", kind="analyst", scopes=["ledger:read"],
            environment="test",
        )
    ).key  # fmt: skip
    _, live_key = await make_client(services, tenant_id, "analyst")

    refused = await post(production, test_key, {"query": PING})
    by_header = await production.post(
        "/graphql", json={"query": PING}, headers={"x-api-key": test_key}
    )
    live = await post(production, live_key, {"query": PING})
    elsewhere = await post(http, test_key, {"query": PING})  # GATEWAY_ENV=test

    for response in (refused, by_header):
        assert (response.status_code, code_of(response)) == (401, "UNAUTHENTICATED")
        assert "test API keys" in response.json()["errors"][0]["message"]
    assert live.json() == {"data": {"__typename": "Query"}}
    assert elsewhere.json() == {"data": {"__typename": "Query"}}


async def test_production_refuses_to_open_without_a_pepper(settings: Settings) -> None:
    unpeppered = dataclasses.replace(
        settings, environment="production", api_key_pepper=SecretText("")
    )
    with pytest.raises(ValueError, match="API_KEY_PEPPER"):
        async with open_services(unpeppered):
            pass


def _environment_without(*names: str) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in names}


async def test_serve_without_gateway_env_refuses_to_start(tmp_path: object) -> None:
    import asyncio

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve",
        env={**_environment_without("GATEWAY_ENV"), "GATEWAY_PORT": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, error = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 2
    assert b"GATEWAY_ENV is not set" in error
    assert b"GATEWAY_ENV=production" in error
