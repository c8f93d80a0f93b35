"""10,000 fuzzed HTTP requests with zero unmasked 500s.

The generators of tests/gateway/test_input_fuzz.py (GraphQL documents from a walk of the
schema, and random methods, media types, bodies, parameters and credentials), drawn from a
fixed seed (derandomized Hypothesis) in 200 batches of 50 requests sent concurrently to the
in-process ASGI app, on PostgreSQL with the provider cache on Redis. Whatever comes back: a 5xx
must be a JSON body whose every error carries the request id (the `x-request-id` header's),
and an INTERNAL_SERVER_ERROR anywhere must be the masked message. Bounded: no network, no
sleeps, a fixed number of requests.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.cache import Cache, RedisCache
from tests.fixtures.database import Database
from tests.gateway.test_input_fuzz import (
    _JSON_VALUES,
    _REQUEST_FIELDS,
    FuzzWorld,
    _latin1,
    graphql_requests,
    world,
)

__all__ = ["world"]  # the fixture, imported so that it is registered here

BATCHES = 200
PER_BATCH = 50

pytestmark = pytest.mark.fault


@st.composite
def http_requests(draw: st.DrawFn, world: FuzzWorld) -> dict[str, Any]:
    """Arguments of one `httpx.AsyncClient.request`: any method, headers, body."""
    if draw(st.integers(0, 2)) == 0:
        document, variables = draw(graphql_requests(world.ids))
        return {
            "method": "POST",
            "url": "/graphql",
            "json": {"query": document, "variables": variables},
            "headers": world.headers,
        }
    headers = {key.encode(): value.encode() for key, value in world.headers.items()}
    credentials = draw(st.sampled_from(["token", "token", "junk", "none"]))
    if credentials == "junk":
        headers = {b"authorization": draw(st.text(max_size=40).map(_latin1))}
    elif credentials == "none":
        headers = {}
    for name in draw(
        st.lists(st.sampled_from(["accept", "content-type", "x-request-id", "x-api-key",
                                  "apollographql-client-name", "graphql-preflight", "origin"]),
                 max_size=3, unique=True)
    ):  # fmt: skip
        headers[name.encode()] = draw(
            st.sampled_from([b"application/json", b"*/*", b"text/html", b"1", b""])
            | st.text(max_size=60).map(_latin1)
        )
    method = draw(st.sampled_from(["GET", "POST", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]))
    url = draw(st.sampled_from(["/graphql", "/graphql", "/graphql/", "/healthz", "/readyz",
                                "/nope", "/metrics", "/graphql?query=%7B"]))  # fmt: skip
    if method == "GET":
        fields = draw(_REQUEST_FIELDS)
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        return {"method": method, "url": url, "params": params, "headers": headers}
    content = draw(
        _REQUEST_FIELDS.map(lambda fields: json.dumps(fields).encode())
        | _JSON_VALUES.map(lambda value: json.dumps(value).encode())
        | st.binary(max_size=300)
    )
    return {"method": method, "url": url, "content": content, "headers": headers}


def _check(response: httpx.Response) -> int:
    """1 for a (masked) 5xx, else 0; fails on anything unmasked."""
    request_id = response.headers.get("x-request-id")
    if response.status_code >= 500:
        assert response.headers.get("content-type", "").startswith("application/json"), (
            response.status_code, response.text[:500],
        )  # fmt: skip
        errors = response.json()["errors"]
        assert errors, response.text[:500]
        assert request_id, response.headers
        for error in errors:
            assert error["extensions"]["requestId"] == request_id, error
    if "json" not in response.headers.get("content-type", ""):
        return 0
    try:
        body = response.json()
    except ValueError:
        return 0
    for error in (body.get("errors") or []) if isinstance(body, dict) else []:
        if (error.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR":
            assert error["message"].startswith("Internal server error (request id "), error
    return int(response.status_code >= 500)


async def test_10000_fuzzed_requests_have_no_unmasked_500(
    postgres: Database, cache: Cache, world: FuzzWorld
) -> None:
    if not isinstance(cache, RedisCache):
        pytest.skip("run once: on PostgreSQL with the Redis cache")
    batches: list[list[dict[str, Any]]] = []

    @settings(
        max_examples=BATCHES,
        derandomize=True,  # a fixed seed: the same 10,000 requests every run
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=st.lists(http_requests(world), min_size=PER_BATCH, max_size=PER_BATCH))
    def generate(batch: list[dict[str, Any]]) -> None:
        batches.append(batch)

    generate()
    assert sum(len(batch) for batch in batches) == BATCHES * PER_BATCH
    fivexx = 0
    for batch in batches:
        responses = await asyncio.gather(*(world.http.request(**args) for args in batch))
        for response in responses:
            fivexx += _check(response)
    print(f"{BATCHES * PER_BATCH} fuzzed requests, {fivexx} masked 5xx")  # noqa: T201
