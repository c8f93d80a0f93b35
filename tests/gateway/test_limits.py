"""Resource caps (variables, tokens, list lengths), limits from the environment, and CORS."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.app import create_app
from gateway.cors import ALLOWED_HEADERS, CorsSettings, load_cors_settings
from gateway.lifespan import Services
from gateway.limits import LimitSettings, load_limit_settings
from gateway.settings import Settings, load_settings
from tests.fixtures.gateway import GraphQLClient

NODES = "query N($ids: [ID!]!) { nodes(ids: $ids) { id } }"
TIGHT = LimitSettings(
    max_tokens=40, max_variables_bytes=200, max_variables_depth=3, max_list_length=5
)


@pytest.fixture
async def tight(settings: Settings, services: Services) -> AsyncIterator[GraphQLClient]:
    limited = dataclasses.replace(settings, limits=TIGHT)
    app = create_app(limited, dataclasses.replace(services, settings=limited))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield GraphQLClient(http, limited)


async def _refused(client: GraphQLClient, body: dict[str, object], tenant_id: int) -> str:
    response = await client.http.post(
        "/graphql", json=body, headers={"authorization": f"Bearer {client.token(tenant_id)}"}
    )
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    limit: str = error["extensions"]["limit"]
    return limit


@pytest.mark.parametrize(
    ("body", "limit"),
    [
        pytest.param({"query": NODES, "variables": {"ids": ["x" * 300]}}, "variablesBytes",
                     id="bytes"),
        pytest.param({"query": NODES, "variables": {"ids": [], "a": {"b": {"c": {}}}}},
                     "variablesDepth", id="depth"),
        pytest.param({"query": NODES, "variables": {"ids": ["a"] * 6}}, "listLength",
                     id="list_in_variables"),
        pytest.param({"query": '{ nodes(ids: ["1","2","3","4","5","6"]) { id } }'},
                     "listLength", id="list_literal"),
        pytest.param({"query": "{ " + "a: __typename " * 20 + "}"}, "tokens", id="tokens"),
    ],
)  # fmt: skip
async def test_requests_over_a_cap_are_refused_before_execution(
    tight: GraphQLClient, tenant_id: int, body: dict[str, object], limit: str
) -> None:
    assert await _refused(tight, body, tenant_id) == limit
    # The same bytes again: a refused body is read and refused again, never kept as read.
    assert await _refused(tight, body, tenant_id) == limit


async def test_a_body_read_once_is_still_checked_for_each_caller(
    tight: GraphQLClient, tenant_id: int
) -> None:
    """The handler keeps POST bodies it has read (gateway.http); authentication still runs
    first on every request, and the caps of the next body are checked on its own bytes."""
    body = {"query": NODES, "variables": {"ids": ["a"] * 5}}
    for _ in range(2):
        ok = await tight.http.post(
            "/graphql", json=body, headers={"authorization": f"Bearer {tight.token(tenant_id)}"}
        )
        assert ok.status_code == 200
        anonymous = await tight.http.post("/graphql", json=body)
        assert anonymous.status_code == 401
    longer: dict[str, object] = {"query": NODES, "variables": {"ids": ["a"] * 6}}
    assert await _refused(tight, longer, tenant_id) == "listLength"


async def test_requests_within_the_caps_run(tight: GraphQLClient, tenant_id: int) -> None:
    body = await tight.post(NODES, {"ids": ["a"] * 5}, tenant_id=tenant_id)
    assert "errors" not in body or body["errors"][0]["extensions"]["code"] != "LIMIT_EXCEEDED"


def test_limits_are_settable_from_the_environment() -> None:
    env = {
        "MAX_QUERY_DEPTH": "7", "MAX_ALIASES": "9", "MAX_QUERY_BYTES": "5000",
        "MAX_TOKENS": "300", "MAX_VARIABLES_BYTES": "1000", "MAX_VARIABLES_DEPTH": "4",
        "MAX_LIST_LENGTH": "50",
    }  # fmt: skip
    settings = load_settings(env)
    assert (settings.max_query_depth, settings.max_aliases, settings.max_query_bytes) == (
        7, 9, 5000
    )  # fmt: skip
    assert settings.limits == LimitSettings(
        max_tokens=300, max_variables_bytes=1000, max_variables_depth=4, max_list_length=50
    )
    assert load_limit_settings({}) == LimitSettings()
    with pytest.raises(ValueError, match="MAX_TOKENS"):
        load_limit_settings({"MAX_TOKENS": "many"})


# CORS ---------------------------------------------------------------------------------------


def test_credentials_with_any_origin_refuse_to_start() -> None:
    with pytest.raises(ValueError, match="CORS_ALLOW_CREDENTIALS"):
        load_cors_settings({"CORS_ALLOWED_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": "true"})
    with pytest.raises(ValueError, match="CORS_ALLOW_CREDENTIALS"):
        CorsSettings(allowed_origins=("*",), allow_credentials=True)
    assert load_cors_settings({}) == CorsSettings()


async def _app_client(settings: Settings, services: Services) -> httpx.AsyncClient:
    app = create_app(settings, dataclasses.replace(services, settings=settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test")


async def test_no_cors_headers_without_configured_origins(
    settings: Settings, services: Services
) -> None:
    async with await _app_client(settings, services) as http:
        response = await http.options(
            "/graphql",
            headers={"origin": "https://app.example", "access-control-request-method": "POST"},
        )
    assert "access-control-allow-origin" not in response.headers


async def test_a_preflight_from_an_allowed_origin_allows_the_gateway_headers(
    settings: Settings, services: Services
) -> None:
    cors = CorsSettings(allowed_origins=("https://app.example",), allow_credentials=True)
    async with await _app_client(dataclasses.replace(settings, cors=cors), services) as http:
        allowed = await http.options(
            "/graphql",
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": ", ".join(ALLOWED_HEADERS),
            },
        )
        other = await http.options(
            "/graphql",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    granted = {h.strip() for h in allowed.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "x-api-key", "apollo-require-preflight",
            "apollographql-client-name"} <= granted  # fmt: skip
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
