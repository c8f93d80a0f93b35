"""Bodies are read with a cap: Content-Length first, then counted while streaming; past the cap
the answer is 413 PAYLOAD_TOO_LARGE and the rest of the body is never read.

The bodies here are streams that count the chunks the server pulled, so "never read" is
observed, not assumed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.cache import Cache
from gateway.app import create_app
from gateway.lifespan import Services
from gateway.provider_settings import ProviderSettings, load_provider_settings
from gateway.settings import Settings
from tests.fixtures.gateway import GraphQLClient
from tests.fixtures.providers import ProviderWorld

CHUNK = 16 * 1024
CHUNKS = 400  # 6.4 MB: well past every cap below


class CountingBody:
    """An upload in chunks (by default 6.4 MB of them) that counts how many the server read."""

    def __init__(self, chunks: list[bytes] | None = None) -> None:
        self.chunks = [b"x" * CHUNK] * CHUNKS if chunks is None else chunks
        self.pulled = 0

    @property
    def size(self) -> int:
        return sum(map(len, self.chunks))

    async def _stream(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream()


@pytest.fixture
async def client(
    settings: Settings, services: Services, providers: ProviderWorld, cache: Cache
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its webhook routes (small caps: a 4 KB query, 50 KB webhook bodies)."""
    capped = dataclasses.replace(settings, max_query_bytes=4096)
    runtime = providers.runtime
    runtime.settings = dataclasses.replace(runtime.settings, webhook_max_body_bytes=50_000)
    app = create_app(
        capped, dataclasses.replace(services, settings=capped, providers=runtime, cache=cache)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield http


ROUTES = [
    pytest.param("/graphql", 8192, id="graphql_case"),
    pytest.param("/webhooks/stripe", 50_000, id="stripe_case"),
    pytest.param("/webhooks/plaid", 50_000, id="plaid_case"),
]


def _headers(gql: GraphQLClient, tenant_id: int, path: str) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if path == "/graphql":  # authentication comes first there; webhooks have none
        headers["authorization"] = f"Bearer {gql.token(tenant_id)}"
    return headers


def _assert_too_large(response: httpx.Response, cap: int) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "errors": [
            {
                "message": f"the request body is larger than {cap} bytes",
                "extensions": {"code": "PAYLOAD_TOO_LARGE", "maxBytes": cap},
            }
        ]
    }


@pytest.mark.parametrize(("path", "cap"), ROUTES)
async def test_a_declared_length_over_the_cap_is_413_before_a_byte_is_read(
    client: httpx.AsyncClient, gql: GraphQLClient, tenant_id: int, path: str, cap: int
) -> None:
    body = CountingBody()
    headers = {**_headers(gql, tenant_id, path), "content-length": str(body.size)}
    response = await client.post(path, content=body, headers=headers)
    _assert_too_large(response, cap)
    assert body.pulled == 0


@pytest.mark.parametrize(("path", "cap"), ROUTES)
async def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_cap(
    client: httpx.AsyncClient, gql: GraphQLClient, tenant_id: int, path: str, cap: int
) -> None:
    body = CountingBody()
    response = await client.post(path, content=body, headers=_headers(gql, tenant_id, path))
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    _assert_too_large(response, cap)
    assert body.pulled == cap // CHUNK + 1  # the chunk that crossed the cap, and no more


@pytest.mark.parametrize(("path", "cap"), ROUTES)
async def test_an_ordinary_oversized_body_is_413(
    client: httpx.AsyncClient, gql: GraphQLClient, tenant_id: int, path: str, cap: int
) -> None:
    response = await client.post(
        path, content=b" " * (cap + 1), headers=_headers(gql, tenant_id, path)
    )
    _assert_too_large(response, cap)


async def test_a_chunked_query_under_the_cap_runs(
    client: httpx.AsyncClient, gql: GraphQLClient, tenant_id: int
) -> None:
    text = b'{"query": "{ __typename }"}' + b" " * 8000  # 8,027 bytes of 8,192: under the cap
    body = CountingBody([text[i : i + 1000] for i in range(0, len(text), 1000)])
    response = await client.post(
        "/graphql", content=body, headers=_headers(gql, tenant_id, "/graphql")
    )
    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})
    assert body.pulled == len(body.chunks) == 9


async def test_a_content_length_that_is_not_a_number_is_400(
    client: httpx.AsyncClient, gql: GraphQLClient, tenant_id: int
) -> None:
    headers = {**_headers(gql, tenant_id, "/graphql"), "content-length": "lots"}
    response = await client.post("/graphql", content=CountingBody([b"{}"]), headers=headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_the_webhook_cap_is_read_from_the_environment() -> None:
    assert ProviderSettings().webhook_max_body_bytes == 1_000_000
    read = load_provider_settings({"WEBHOOK_MAX_BODY_BYTES": "2048"}, environment="development")
    assert read.webhook_max_body_bytes == 2048
    with pytest.raises(ValueError, match="WEBHOOK_MAX_BODY_BYTES"):
        load_provider_settings({"WEBHOOK_MAX_BODY_BYTES": "lots"}, environment="development")
