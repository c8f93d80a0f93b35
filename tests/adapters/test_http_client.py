"""ProviderHttpClient against tiny local apps that play the provider, counting attempts."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.errors import (
    ProviderError,
    ProviderRateLimited,
    ProviderReauthRequired,
    ProviderRejected,
    ProviderUnavailable,
)
from adapters.http_client import (
    CircuitState,
    ProviderHttpClient,
    ProviderPolicy,
    parse_retry_after,
    provider_http_client,
    transport_of,
)


class ScriptedProvider:  # an ASGI app: httpx types it with MutableMapping scopes
    """An ASGI app answering from a script of (status, headers, body), then 200s; counts calls."""

    def __init__(self, *script: tuple[int, dict[str, str], bytes]) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.release: asyncio.Event | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.calls.append((scope["method"], scope["path"]))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.release is not None:
                await self.release.wait()
            status, headers, body = self.script.pop(0) if self.script else (200, {}, b"{}")
        finally:
            self.in_flight -= 1
        raw = [(k.encode(), v.encode()) for k, v in {"content-type": "application/json",
                                                     **headers}.items()]  # fmt: skip
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


class Harness:
    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.now = 1000.0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def client(self, app: Any, **policy: Any) -> ProviderHttpClient:
        settings: dict[str, Any] = {"name": "acme", "backoff_base_seconds": 0.01} | policy
        return ProviderHttpClient(
            ProviderPolicy(**settings),
            base_url="http://acme.test",
            transport=httpx.ASGITransport(app=app),
            sleep=self.sleep,
            jitter=lambda: 1.0,
            clock=self.clock,
        )


@pytest.fixture
def harness() -> Harness:
    return Harness()


_503 = (503, {"request-id": "req_5xx"}, b'{"error": "secret internal detail"}')


async def test_retries_idempotent_calls_on_5xx_with_exponential_backoff(harness: Harness) -> None:
    provider = ScriptedProvider(_503, _503)
    client = harness.client(provider, max_attempts=3)
    response = await client.request("GET", "/v1/things")
    assert response.status_code == 200
    assert len(provider.calls) == 3
    assert harness.sleeps == [0.01, 0.02]  # full jitter pinned to its ceiling
    assert (client.stats.attempts, client.stats.retries, client.stats.failures) == (3, 2, 0)


async def test_gives_up_after_max_attempts_with_our_message_and_the_request_id(
    harness: Harness,
) -> None:
    provider = ScriptedProvider(_503, _503, _503)
    client = harness.client(provider, max_attempts=3)
    with pytest.raises(ProviderUnavailable) as raised:
        await client.request("GET", "/v1/things")
    error = raised.value
    assert (error.code, error.provider, error.request_id, error.retryable) == (
        "PROVIDER_UNAVAILABLE", "acme", "req_5xx", True,
    )  # fmt: skip
    assert "secret" not in error.message
    assert len(provider.calls) == 3


async def test_never_retries_a_post_without_an_idempotency_key(harness: Harness) -> None:
    provider = ScriptedProvider(_503)
    client = harness.client(provider)
    with pytest.raises(ProviderUnavailable):
        await client.request("POST", "/v1/charges", json={"amount": 1})
    assert len(provider.calls) == 1
    assert harness.sleeps == []


@pytest.mark.parametrize(
    "options",
    [{"idempotency_key": "key-1"}, {"idempotent": True}],
    ids=["idempotency_key_case", "marked_idempotent_case"],
)
async def test_retries_a_post_that_is_idempotent(harness: Harness, options: dict[str, Any]) -> None:
    provider = ScriptedProvider(_503)
    client = harness.client(provider)
    response = await client.request("POST", "/v1/charges", json={"amount": 1}, **options)
    assert response.status_code == 200
    assert len(provider.calls) == 2


async def test_honours_retry_after_seconds_on_429(harness: Harness) -> None:
    provider = ScriptedProvider((429, {"retry-after": "0.5"}, b"{}"))
    client = harness.client(provider)
    await client.request("GET", "/v1/things")
    assert harness.sleeps == [0.5]
    assert len(provider.calls) == 2


async def test_429_after_retries_is_rate_limited_and_retryable(harness: Harness) -> None:
    limited = (429, {"retry-after": "1", "request-id": "req_429"}, b"{}")
    provider = ScriptedProvider(limited, limited, limited)
    client = harness.client(provider, max_attempts=3)
    with pytest.raises(ProviderRateLimited) as raised:
        await client.request("GET", "/v1/things")
    assert (raised.value.code, raised.value.retryable, raised.value.retry_after) == (
        "PROVIDER_RATE_LIMITED", True, 1.0,
    )  # fmt: skip
    assert raised.value.request_id == "req_429"
    assert harness.sleeps == [1.0, 1.0]


async def test_retry_after_beyond_the_cap_is_not_waited_for(harness: Harness) -> None:
    provider = ScriptedProvider((429, {"retry-after": "120"}, b"{}"))
    client = harness.client(provider, retry_after_cap_seconds=5)
    with pytest.raises(ProviderRateLimited) as raised:
        await client.request("GET", "/v1/things")
    assert raised.value.retry_after == 120.0
    assert harness.sleeps == []
    assert len(provider.calls) == 1


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = dt.datetime(2026, 11, 29, 12, 0, 0, tzinfo=dt.UTC)
    later = email.utils.format_datetime(now + dt.timedelta(seconds=30), usegmt=True)
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after(later, now=now) == 30.0
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


async def test_4xx_is_terminal_and_not_retried(harness: Harness) -> None:
    provider = ScriptedProvider((400, {"request-id": "req_4"}, b'{"message": "raw text"}'))
    client = harness.client(provider)
    with pytest.raises(ProviderRejected) as raised:
        await client.request("GET", "/v1/things")
    assert (raised.value.code, raised.value.retryable, raised.value.request_id) == (
        "PROVIDER_REJECTED", False, "req_4",
    )  # fmt: skip
    assert "raw text" not in raised.value.message
    assert len(provider.calls) == 1


async def test_accepted_error_statuses_are_returned_to_the_adapter(harness: Harness) -> None:
    provider = ScriptedProvider((404, {}, b"{}"))
    client = harness.client(provider)
    response = await client.request("GET", "/v1/things/x", accept_statuses=(404,))
    assert response.status_code == 404


async def test_the_adapter_classifies_provider_specific_errors(harness: Harness) -> None:
    def classify(response: httpx.Response, request_id: str | None) -> ProviderError | None:
        if response.json().get("error_code") == "ITEM_LOGIN_REQUIRED":
            return ProviderReauthRequired(
                "the bank connection needs a new login", provider="acme", request_id=request_id
            )
        return None

    provider = ScriptedProvider((400, {}, b'{"error_code": "ITEM_LOGIN_REQUIRED"}'))
    client = ProviderHttpClient(
        ProviderPolicy(name="acme"),
        base_url="http://acme.test",
        transport=httpx.ASGITransport(app=provider),
        classify=classify,
        sleep=harness.sleep,
    )
    with pytest.raises(ProviderReauthRequired) as raised:
        await client.request("POST", "/transactions/sync", json={}, idempotent=True)
    assert (raised.value.code, raised.value.retryable) == ("PROVIDER_REAUTH_REQUIRED", False)
    assert len(provider.calls) == 1


async def test_circuit_opens_after_repeated_failures_and_recovers_after_cool_down(
    harness: Harness,
) -> None:
    provider = ScriptedProvider(_503, _503, _503)
    client = harness.client(provider, max_attempts=1, failure_threshold=3, cooldown_seconds=10)
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            await client.request("GET", "/v1/things")
    assert client.breaker.state.value == "open"

    with pytest.raises(ProviderUnavailable, match="circuit open"):
        await client.request("GET", "/v1/things")
    assert len(provider.calls) == 3  # short-circuited: the provider saw nothing

    harness.now += 10
    assert client.breaker.state.value == "half_open"
    response = await client.request("GET", "/v1/things")  # the trial call succeeds
    assert response.status_code == 200
    assert client.breaker.state is CircuitState.CLOSED
    assert client.stats.short_circuited == 1


async def test_a_failed_half_open_trial_reopens_the_circuit(harness: Harness) -> None:
    provider = ScriptedProvider(_503, _503)
    client = harness.client(provider, max_attempts=1, failure_threshold=1, cooldown_seconds=5)
    with pytest.raises(ProviderUnavailable):
        await client.request("GET", "/v1/things")
    harness.now += 5
    with pytest.raises(ProviderUnavailable):
        await client.request("GET", "/v1/things")
    assert client.breaker.state is CircuitState.OPEN
    assert len(provider.calls) == 2


async def test_concurrent_calls_are_capped_per_provider(harness: Harness) -> None:
    provider = ScriptedProvider()
    provider.release = asyncio.Event()
    client = harness.client(provider, max_concurrency=2)
    calls = [asyncio.create_task(client.request("GET", f"/v1/things/{i}")) for i in range(6)]
    for _ in range(20):
        await asyncio.sleep(0)  # let every task reach the semaphore or the provider
    assert provider.in_flight == 2
    provider.release.set()
    await asyncio.gather(*calls)
    assert (provider.max_in_flight, len(provider.calls)) == (2, 6)


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_timeout_is_unavailable_and_retried(harness: Harness, silent_server: str) -> None:
    client = ProviderHttpClient(
        ProviderPolicy(name="acme", read_timeout=0.05, max_attempts=2),
        base_url=silent_server,
        sleep=harness.sleep,
    )
    try:
        with pytest.raises(ProviderUnavailable, match="did not answer in time"):
            await client.request("GET", "/v1/things")
        assert client.stats.attempts == 2
    finally:
        await client.aclose()


async def test_a_refused_connection_is_unavailable(harness: Harness) -> None:
    client = ProviderHttpClient(
        ProviderPolicy(name="acme", max_attempts=2),
        base_url="http://127.0.0.1:1",
        sleep=harness.sleep,
    )
    try:
        with pytest.raises(ProviderUnavailable, match="could not be reached") as raised:
            await client.request("GET", "/v1/things")
        assert raised.value.request_id is None
        assert client.stats.attempts == 2
    finally:
        await client.aclose()


async def test_adapters_on_plain_httpx_get_the_final_response_to_map(harness: Harness) -> None:
    """Stripe's and Plaid's adapters map responses themselves: after the retries they get the
    provider's last answer, and POSTs to the policy's read-only paths are retried."""
    provider = ScriptedProvider(_503, _503, _503, _503)
    policy = ProviderPolicy(
        name="plaid", max_attempts=2, idempotent_post_paths=frozenset({"/accounts/get"})
    )
    client = provider_http_client(
        policy,
        base_url="http://plaid.test",
        transport=httpx.ASGITransport(app=provider),
        sleep=harness.sleep,
        jitter=lambda: 1.0,
    )
    async with client:
        response = await client.post("/accounts/get", json={})
        assert response.status_code == 503
        assert len(provider.calls) == 2
        response = await client.post("/item/remove", json={})
        assert response.status_code == 503
        assert len(provider.calls) == 3
        assert transport_of(client).stats.attempts == 3
