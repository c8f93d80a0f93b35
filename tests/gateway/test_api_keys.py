"""API keys over HTTP: every client kind, immediate revocation and rotation across processes,
scopes by credential, pii:read masking, and the JWT kinds."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys

import httpx
import pytest
from sqlalchemy import update

from adapters.access.clients import ClientKind, ClientStore
from adapters.ledger.tables import customers
from gateway.app import create_app
from gateway.auth import Authenticator
from gateway.lifespan import Services
from gateway.settings import Settings
from resolvers.node import encode_global_id
from tests.factories import make_customer
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient
from tests.gateway.test_persisted_documents import code_of, make_client, post

PING = "{ __typename }"


def _second_process(settings: Settings, services: Services) -> httpx.AsyncClient:
    """Another gateway process over the same database: its own stores and caches."""
    clients = ClientStore(services.engine, pepper=settings.api_key_pepper.reveal())
    other = dataclasses.replace(
        services, clients=clients, authenticator=Authenticator(services.verifier, clients)
    )
    transport = httpx.ASGITransport(app=create_app(settings, other))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        pytest.param("analyst", {"query": PING}, id="analyst_case"),
        pytest.param("first_party", {"documentId": "ping"}, id="first_party_case"),
        pytest.param("partner", {"documentId": "ping"}, id="partner_case"),
    ],
)
async def test_each_client_kind_runs_with_its_key(
    http: httpx.AsyncClient, services: Services, tenant_id: int, kind: ClientKind,
    body: dict[str, str],
) -> None:  # fmt: skip
    _, key = await make_client(services, tenant_id, kind, documents={"ping": PING})
    response = await post(http, key, body)
    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})


async def test_a_revoked_key_fails_at_once_in_every_process(
    http: httpx.AsyncClient, services: Services, settings: Settings, tenant_id: int,
    database: Database,
) -> None:  # fmt: skip
    client_id, key = await make_client(services, tenant_id, "analyst")
    async with _second_process(settings, services) as second:
        assert (await post(http, key, {"query": PING})).status_code == 200
        assert (await post(second, key, {"query": PING})).status_code == 200

        # Revoked by the CLI, a third process.
        revoking = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "clients", "revoke", str(client_id),
            env={**os.environ, "DATABASE_URL": database.url, "GATEWAY_ENV": "development"},
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        output, _ = await revoking.communicate()
        assert revoking.returncode == 0
        assert b"revoked" in output

        for process in (http, second):
            response = await post(process, key, {"query": PING})
            assert (response.status_code, code_of(response)) == (401, "UNAUTHENTICATED")
            assert response.headers["www-authenticate"] == "Bearer"


async def test_a_rotated_key_replaces_the_old_one_at_once(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    client_id, old = await make_client(services, tenant_id, "analyst")
    assert (await post(http, old, {"query": PING})).status_code == 200
    new = (await services.clients.rotate_key(client_id)).key
    assert (await post(http, old, {"query": PING})).status_code == 401
    assert (await post(http, new, {"query": PING})).json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param("fgw_live_" + "A" * 43, id="unknown_key_case"),
        pytest.param("fgw_live_tooshort", id="malformed_key_case"),
    ],
)
async def test_unknown_keys_are_401(http: httpx.AsyncClient, credential: str) -> None:
    response = await post(http, credential, {"query": PING})
    assert (response.status_code, code_of(response)) == (401, "UNAUTHENTICATED")


async def test_the_tenant_comes_from_the_key_never_from_a_header(
    http: httpx.AsyncClient, services: Services, database: Database, tenant_id: int
) -> None:
    _, key = await make_client(services, tenant_id, "analyst")
    response = await post(
        http, key, {"query": "{ customers { totalCount } }"}, **{"x-tenant-id": "1"}
    )
    assert response.json() == {"data": {"customers": {"totalCount": 0}}}


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        pytest.param(("ledger:read",), "a***@example.com", id="masked_case"),
        pytest.param(("ledger:read", "pii:read"), "ada@example.com", id="pii_read_case"),
    ],
)
async def test_email_is_masked_unless_pii_read(
    http: httpx.AsyncClient, services: Services, database: Database, tenant_id: int,
    scopes: tuple[str, ...], expected: str,
) -> None:  # fmt: skip
    customer = await make_customer(database.engine, tenant_id)
    async with database.engine.begin() as connection:
        await connection.execute(
            update(customers).where(customers.c.id == customer).values(email="ada@example.com")
        )
    _, key = await make_client(services, tenant_id, "analyst", scopes=scopes)
    global_id = encode_global_id("Customer", customer)
    response = await post(http, key, {"query": f'{{ customer(id: "{global_id}") {{ email }} }}'})
    assert response.json() == {"data": {"customer": {"email": expected}}}


async def test_a_missing_scope_is_forbidden_and_named_for_api_keys(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    _, key = await make_client(services, tenant_id, "analyst", scopes=("pii:read",))
    response = await post(http, key, {"query": "{ customers { totalCount } }"})
    assert response.json()["errors"][0]["extensions"] == {
        "code": "FORBIDDEN",
        "scope": "ledger:read",
    }


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        pytest.param(None, 200, id="default_first_party_case"),
        pytest.param("analyst", 200, id="analyst_case"),
        pytest.param("first_party", 200, id="first_party_case"),
    ],
)
async def test_jwt_principals_send_text_and_use_apq(
    gql: GraphQLClient, settings: Settings, tenant_id: int, kind: ClientKind | None, status: int
) -> None:
    from gateway.auth import mint_token

    token = mint_token(settings, tenant_id=tenant_id, scopes=["ledger:read"], kind=kind)
    response = await post(gql.http, token, {"query": PING})
    assert (response.status_code, response.json()) == (status, {"data": {"__typename": "Query"}})


async def test_a_jwt_cannot_claim_to_be_a_partner(
    gql: GraphQLClient, settings: Settings, tenant_id: int
) -> None:
    from gateway.auth import mint_token

    token = mint_token(settings, tenant_id=tenant_id, scopes=["ledger:read"], kind="partner")
    response = await post(gql.http, token, {"query": PING})
    assert (response.status_code, code_of(response)) == (401, "UNAUTHENTICATED")
