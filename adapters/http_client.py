"""Resilient HTTP to one provider: timeouts, retries, a concurrency cap, a circuit breaker.

`ResilientTransport` is an httpx transport, so any adapter built on `httpx.AsyncClient`
(Stripe's `client=`, Plaid's `http_client`) gets it without changing its mapping code;
`provider_http_client(policy, ...)` builds that pooled client. `ProviderHttpClient` adds the
error mapping for adapters that want it done for them. What every call gets:

- explicit connect/read/write/pool timeouts from the provider's `ProviderPolicy`;
- at most `max_concurrency` calls in flight to the provider (an `asyncio.Semaphore`);
- a circuit breaker: after `failure_threshold` consecutive retryable failures the circuit
  opens and calls fail at once with ProviderUnavailable for `cooldown_seconds`; then one
  trial call is let through (half-open) and its outcome closes or re-opens the circuit;
- retries of idempotent calls only (GET, HEAD, PUT, DELETE; a POST with an Idempotency-Key
  header, `extensions={"idempotent": True}`, or a path in `idempotent_post_paths`, such as
  Plaid's read endpoints), with exponential backoff and full jitter, honouring Retry-After
  (seconds or an HTTP date) up to `retry_after_cap_seconds`; after the last attempt the
  transport hands the final 5xx/429 response (or network error) to the adapter to map;
- an open circuit raises ProviderUnavailable without calling out.

`ProviderHttpClient.request` maps failures to `adapters.errors`: network, timeout, 5xx and an
open circuit to ProviderUnavailable, 429 to ProviderRateLimited, other 4xx to
ProviderRejected (or what the adapter's `classify` hook says, such as
ProviderReauthRequired). Messages are ours: the provider's body never reaches a client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.errors import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

__all__ = [
    "CircuitBreaker",
    "CircuitState",
    "ProviderCall",
    "ProviderCallObserver",
    "ProviderCallStats",
    "ProviderHttpClient",
    "ProviderPolicy",
    "ResilientTransport",
    "parse_retry_after",
    "provider_http_client",
    "transport_of",
]

logger = logging.getLogger("adapters.http_client")

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_REQUEST_ID_HEADERS = ("request-id", "x-request-id", "x-plaid-request-id")

Classifier = Callable[[httpx.Response, str | None], ProviderError | None]
"""An adapter's hook: turn an error response into a specific ProviderError, or None."""


@dataclass(frozen=True, slots=True)
class ProviderPolicy:
    """How the gateway calls one provider. Times are seconds."""

    name: str
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    write_timeout: float = 5.0
    pool_timeout: float = 2.0
    max_attempts: int = 3
    backoff_base_seconds: float = 0.1
    backoff_cap_seconds: float = 2.0
    retry_after_cap_seconds: float = 5.0
    max_concurrency: int = 16
    max_connections: int = 32
    failure_threshold: int = 5
    cooldown_seconds: float = 10.0
    idempotent_post_paths: frozenset[str] = frozenset()

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.write_timeout,
            pool=self.pool_timeout,
        )


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date); None if
    absent or unreadable. A date in the past gives 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a cool-down and a single half-open trial."""

    def __init__(
        self,
        *,
        failure_threshold: int,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failure_threshold
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state = CircuitState.CLOSED
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._clock() - self._opened_at >= self._cooldown:
            return CircuitState.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open, only one trial call at a time."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN or self._trial_in_flight:
            return False
        self._state = CircuitState.HALF_OPEN
        self._trial_in_flight = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._state = CircuitState.CLOSED
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._trial_in_flight = False
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN or self._failures >= self._threshold:
            self._state = CircuitState.OPEN
            self._opened_at = self._clock()

    def record_neutral(self) -> None:
        """The call ended in a way that says nothing about the provider's health (a 4xx)."""
        if self._state is CircuitState.HALF_OPEN:
            self.record_success()


@dataclass(slots=True)
class ProviderCallStats:
    """Counters of one provider's transport (read by metrics, tests and the benchmark)."""

    attempts: int = 0
    retries: int = 0
    failures: int = 0
    short_circuited: int = 0


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One call through a ResilientTransport, retries included, reported when it ends.

    `outcome` is "ok" (any response handed to the adapter below 500 and not 429), the final
    status ("5xx", "429"), "error" (network error or timeout) or "circuit_open". Times are
    `time.time_ns()`. No body, header or query string: nothing a provider sent is kept.
    """

    provider: str
    method: str
    host: str
    path: str
    outcome: str
    status_code: int | None
    attempts: int
    started_ns: int
    ended_ns: int


ProviderCallObserver = Callable[[ProviderCall], None]
"""Told of every call when it ends (the gateway's metrics and trace spans)."""


class ResilientTransport(httpx.AsyncBaseTransport):
    """Wraps a transport with the provider's retries, concurrency cap and circuit breaker.

    Returns the provider's final response, whatever its status: mapping it is the adapter's
    job. Raises the inner transport's httpx errors after the last attempt, and
    ProviderUnavailable when the circuit is open.
    """

    def __init__(
        self,
        policy: ProviderPolicy,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        on_call: ProviderCallObserver | None = None,
    ) -> None:
        self.policy = policy
        self.stats = ProviderCallStats()
        self.on_call = on_call
        self.breaker = CircuitBreaker(
            failure_threshold=policy.failure_threshold,
            cooldown_seconds=policy.cooldown_seconds,
            clock=clock,
        )
        self._inner = inner or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=policy.max_connections,
                max_keepalive_connections=policy.max_connections,
            )
        )
        self._semaphore = asyncio.Semaphore(policy.max_concurrency)
        self._sleep = sleep
        self._jitter = jitter

    def is_idempotent(self, request: httpx.Request) -> bool:
        if request.extensions.get("idempotent") is not None:
            return bool(request.extensions["idempotent"])
        return (
            request.method in _IDEMPOTENT_METHODS
            or "idempotency-key" in request.headers
            or (request.method == "POST" and request.url.path in self.policy.idempotent_post_paths)
        )

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt))."""
        policy = self.policy
        return self._jitter() * min(
            policy.backoff_cap_seconds, policy.backoff_base_seconds * 2.0**attempt
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.on_call is None:
            return await self._handle(request)
        started, attempts_before = time.time_ns(), self.stats.attempts
        outcome, status = "error", None
        try:
            response = await self._handle(request)
        except ProviderUnavailable:
            outcome = "circuit_open"
            raise
        else:
            status = response.status_code
            outcome = str(status) if status >= 500 or status == 429 else "ok"
            return response
        finally:
            url = request.url
            self.on_call(
                ProviderCall(
                    provider=self.policy.name,
                    method=request.method,
                    host=url.host,
                    path=url.path,
                    outcome=outcome,
                    status_code=status,
                    attempts=self.stats.attempts - attempts_before,
                    started_ns=started,
                    ended_ns=time.time_ns(),
                )
            )

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        attempts = self.policy.max_attempts if self.is_idempotent(request) else 1
        name = self.policy.name
        for attempt in range(attempts):
            is_last = attempt == attempts - 1
            if not self.breaker.allow():
                self.stats.short_circuited += 1
                self.stats.failures += 1
                raise ProviderUnavailable(
                    f"{name} is unavailable (circuit open after repeated failures)", provider=name
                )
            wait: float | None
            async with self._semaphore:
                self.stats.attempts += 1
                try:
                    response = await self._inner.handle_async_request(request)
                except httpx.TransportError:
                    self.breaker.record_failure()
                    if is_last:
                        self.stats.failures += 1
                        raise
                    wait = self.backoff(attempt)
                else:
                    wait = self._verdict(response, attempt, is_last)
                    if wait is None:
                        return response
                    await response.aclose()
            self.stats.retries += 1
            await self._sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _verdict(self, response: httpx.Response, attempt: int, is_last: bool) -> float | None:
        """None to hand the response over; else how long to wait before the next attempt."""
        status = response.status_code
        if status >= 500:
            self.breaker.record_failure()
            logger.warning("%s answered %d", self.policy.name, status)
            if is_last:
                self.stats.failures += 1
                return None
            return self.backoff(attempt)
        if status == 429:
            self.breaker.record_neutral()
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            too_long = retry_after is not None and retry_after > self.policy.retry_after_cap_seconds
            if is_last or too_long:
                self.stats.failures += 1
                return None
            return self.backoff(attempt) if retry_after is None else retry_after
        if status >= 400:
            self.breaker.record_neutral()
        else:
            self.breaker.record_success()
        return None

    async def aclose(self) -> None:
        await self._inner.aclose()


def provider_http_client(
    policy: ProviderPolicy,
    *,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
    on_call: ProviderCallObserver | None = None,
) -> httpx.AsyncClient:
    """A pooled `httpx.AsyncClient` for one provider, with the policy's timeouts and a
    ResilientTransport around `transport` (default: real HTTP; tests and the embedded default
    pass `httpx.ASGITransport(app=sandbox)`); `on_call` is told of every call."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers=dict(headers or {}),
        timeout=policy.timeout,
        transport=ResilientTransport(
            policy, transport, sleep=sleep, jitter=jitter, clock=clock, on_call=on_call
        ),
    )


def transport_of(client: httpx.AsyncClient) -> ResilientTransport:
    """The ResilientTransport of a client built by `provider_http_client`."""
    transport = client._transport  # httpx exposes no public accessor
    assert isinstance(transport, ResilientTransport)
    return transport


class ProviderHttpClient:
    """`provider_http_client` plus error mapping: `request` returns 2xx or raises ours."""

    def __init__(
        self,
        policy: ProviderPolicy,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        classify: Classifier | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.client = provider_http_client(
            policy,
            base_url=base_url,
            headers=headers,
            transport=transport,
            sleep=sleep,
            jitter=jitter,
            clock=clock,
        )
        self.transport = transport_of(self.client)
        self._classify = classify

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def stats(self) -> ProviderCallStats:
        return self.transport.stats

    @property
    def breaker(self) -> CircuitBreaker:
        return self.transport.breaker

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        idempotency_key: str | None = None,
        accept_statuses: Collection[int] = (),
    ) -> httpx.Response:
        """Send one call (retried when idempotent); return a 2xx response, or one whose status
        is in `accept_statuses` (such as 404 for an adapter that maps it to NotFound).

        Raises ProviderUnavailable, ProviderRateLimited, ProviderRejected, or what the
        adapter's `classify` hook returns for an error response.
        """
        call_headers = dict(headers or {})
        if idempotency_key is not None:
            call_headers["Idempotency-Key"] = idempotency_key
        extensions = {} if idempotent is None else {"idempotent": idempotent}
        name = self.name
        try:
            response = await self.client.request(
                method, path, params=params, json=json, headers=call_headers, extensions=extensions
            )
        except httpx.TimeoutException as error:
            raise ProviderUnavailable(f"{name} did not answer in time", provider=name) from error
        except httpx.TransportError as error:
            raise ProviderUnavailable(f"{name} could not be reached", provider=name) from error
        status = response.status_code
        if status < 400 or status in accept_statuses:
            return response
        request_id = _request_id(response)
        specific = self._classify(response, request_id) if self._classify else None
        if specific is not None:
            raise specific
        if status >= 500:
            raise ProviderUnavailable(
                f"{name} is unavailable", provider=name, request_id=request_id
            )
        if status == 429:
            raise ProviderRateLimited(
                f"{name} is rate limiting the gateway; try again later",
                provider=name,
                request_id=request_id,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        raise ProviderRejected(f"{name} refused the request", provider=name, request_id=request_id)


def _request_id(response: httpx.Response) -> str | None:
    for header in _REQUEST_ID_HEADERS:
        value = response.headers.get(header)
        if value:
            return str(value)[:128]
    return None
