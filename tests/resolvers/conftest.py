"""The gateway app with providers, and credentials of every kind with chosen scopes.

Authorization tests call the app over HTTP as real clients do: API keys of each client kind
(documents registered for the kinds that must send registered documents) and JWTs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from adapters.access.clients import DEFAULT_POLICIES, ClientKind
from adapters.access.documents import NewDocument
from adapters.cache import Cache
from gateway.app import create_app
from gateway.auth import mint_token
from gateway.lifespan import Services
from gateway.persisted_documents import parse_manifest
from gateway.settings import Settings
from resolvers.schema import schema
from tests.fixtures.providers import ProviderWorld


@dataclass(frozen=True)
class Caller:
    """A credential and how it sends a document: by registered id, or as text."""

    kind: ClientKind
    scopes: frozenset[str]
    credential: str
    by_id: bool

    def body(self, name: str, text: str, variables: dict[str, Any] | None) -> dict[str, Any]:
        request: dict[str, Any] = {"documentId": name} if self.by_id else {"query": text}
        request["variables"] = variables or {}
        return request


class ProviderGateway:
    """The app over the test database with the provider sandboxes wired in."""

    def __init__(self, http: httpx.AsyncClient, services: Services, settings: Settings) -> None:
        self.http = http
        self.services = services
        self.settings = settings
        self._manifests: dict[tuple[tuple[str, str], ...], list[NewDocument]] = {}

    async def api_key(
        self,
        tenant_id: int,
        kind: ClientKind,
        scopes: Iterable[str],
        documents: dict[str, str],
    ) -> Caller:
        """A registered client of `kind`; kinds that must send registered documents get
        `documents` registered and send them by id."""
        issued = await self.services.clients.create(
            tenant_id=tenant_id, name=f"{kind}-{'-'.join(sorted(scopes)) or 'none'}", kind=kind,
            scopes=scopes, policy=DEFAULT_POLICIES[kind],
        )  # fmt: skip
        by_id = DEFAULT_POLICIES[kind].safelist_required
        if by_id:
            key = tuple(sorted(documents.items()))
            if key not in self._manifests:  # parsed and validated once per set of documents
                self._manifests[key] = parse_manifest(orjson.dumps(documents), schema._schema)
            await self.services.trusted_documents.store.register(
                issued.client.id, self._manifests[key]
            )
        return Caller(kind, frozenset(scopes), issued.key, by_id)

    def jwt(
        self, tenant_id: int, scopes: Iterable[str], kind: ClientKind = "first_party"
    ) -> Caller:
        token = mint_token(self.settings, tenant_id=tenant_id, scopes=scopes, kind=kind)
        return Caller(kind, frozenset(scopes), token, by_id=False)

    async def run(
        self,
        caller: Caller,
        name: str,
        text: str,
        variables: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send one document; asserts HTTP 200 and returns the decoded body."""
        response = await self.http.post(
            "/graphql",
            json=caller.body(name, text, variables),
            headers={"authorization": f"Bearer {caller.credential}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@asynccontextmanager
async def open_provider_gateway(
    settings: Settings, services: Services, providers: ProviderWorld, cache: Cache
) -> AsyncIterator[ProviderGateway]:
    """The app built from `settings` over `services`, with the provider world wired in."""
    wired = dataclasses.replace(services, providers=providers.runtime, cache=cache)
    transport = httpx.ASGITransport(app=create_app(settings, wired))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield ProviderGateway(client, wired, settings)


@pytest.fixture
async def provider_gateway(
    settings: Settings, services: Services, providers: ProviderWorld, cache: Cache
) -> AsyncIterator[ProviderGateway]:
    async with open_provider_gateway(settings, services, providers, cache) as gateway:
        yield gateway
