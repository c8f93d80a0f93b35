"""Telemetry of the GraphQL endpoint: one record per request, finished in one place.

`RequestTelemetry.begin(headers)` starts a `RequestRecord` (and, when tracing is on, the
operation's span); the handler tells it who is calling (`principal`), which document runs
(`document`) and, on failure, the error code (`outcome`); `finish(status)` then, once:

- observes `gateway_request_duration_seconds{operation, client, outcome}` (gateway.metrics);
- names and ends the span (gateway.tracing);
- writes one access-log line (`AccessLog`: logger `gateway.access`, JSON with
  gateway.json_logs): request id, client, tenant, operation type and name, status, code,
  duration, estimated cost (null when the request was refused before cost analysis), and the
  `apollographql-client-name` / `-version` headers.

Also here: who may read /metrics (`metrics_endpoint`) and its own port (`metrics_server`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

from graphql import DocumentNode
from prometheus_client import start_http_server
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gateway.json_logs import JsonFormatter, json_line_from, json_stream_handler, line_head
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.telemetry_settings import OPEN_METRICS_ENVIRONMENTS
from gateway.tracing import RequestTrace, Tracing, operation_of
from resolvers.principal import Principal

__all__ = ["AccessLog", "RequestRecord", "RequestTelemetry", "metrics_endpoint", "metrics_server"]

access_logger = logging.getLogger("gateway.access")
ACCESS_MESSAGE = "graphql request"
_REDACTED_CACHE = 4096
_CLIENT_HEADERS = ("apollographql-client-name", "apollographql-client-version")
# Access-line fields only the gateway writes (an operation type, a hex trace id); with the
# request id when the gateway generated it.
_OWN = frozenset({"operation_type", "trace_id"})
_OWN_WITH_ID = _OWN | {"request_id"}


def client_label(principal: Principal | None) -> str:
    """The `client` label: the API client's id, `jwt` for JWT principals, or `anonymous`."""
    if principal is None:
        return "anonymous"
    return "jwt" if principal.client_id is None else str(principal.client_id)


class RequestRecord:
    """What one request did, filled in by the handler and reported by `finish`."""

    __slots__ = (
        "_document",
        "_operation_name",
        "_started",
        "_telemetry",
        "_text",
        "cost",
        "headers",
        "outcome",
        "principal",
        "request_id",
        "trace",
    )

    def __init__(
        self, telemetry: RequestTelemetry, headers: Mapping[str, str], trace: RequestTrace | None
    ) -> None:
        self._telemetry = telemetry
        self._started = time.perf_counter()
        self.headers = headers
        self.trace = trace
        self.request_id = ""
        self.principal: Principal | None = None
        self.outcome: str | None = None
        # Cost analysis sets this (issue 8, item 1): logged, and observed with the duration.
        self.cost: int | None = None
        self._text: str | None = None
        self._document: DocumentNode | None = None
        self._operation_name: str | None = None

    def document(
        self, text: str, document: DocumentNode | None, operation_name: str | None
    ) -> None:
        """The document the request runs (parsed or not yet) and its operationName."""
        self._text = text
        self._document = document
        self._operation_name = operation_name

    def finish(self, status: int) -> None:
        seconds = time.perf_counter() - self._started
        telemetry = self._telemetry
        outcome = self.outcome or ("ok" if status < 400 else f"HTTP_{status}")
        document = self._document
        if document is None and self._text is not None:
            document = telemetry.parse(self._text)
        kind, name = operation_of(document, self._operation_name)
        client = client_label(self.principal)
        telemetry.metrics.observe_request(name or "anonymous", client, outcome, seconds, self.cost)
        trace = self.trace
        headers = self.headers
        if trace is not None:
            trace.operation(kind, name, self._text, document)
            trace.span.set_attribute("gateway.client", client)
            trace.finish(outcome, status)
        access_log = telemetry.access_log
        if access_log is not None and access_log.logger.isEnabledFor(logging.INFO):
            principal = self.principal
            fields: dict[str, Any] = {
                "request_id": self.request_id,
                "client": client,
                "tenant": None if principal is None else principal.tenant_id,
                "operation_type": kind,
                "operation_name": name,
                "status": status,
                "code": None if outcome == "ok" else outcome,
                "duration_ms": round(seconds * 1000, 3),
                "cost": self.cost,
                "client_name": headers.get(_CLIENT_HEADERS[0], "")[:64] or None,
                "client_version": headers.get(_CLIENT_HEADERS[1], "")[:64] or None,
            }
            # Without the caller's x-request-id (gateway.http), the id is ours: hex.
            own = _OWN if headers.get("x-request-id", "")[:64] else _OWN_WITH_ID
            if trace is not None:
                fields["trace_id"] = format(trace.span.get_span_context().trace_id, "032x")
            access_log.write(fields, own=own)


class AccessLog:
    """The access lines (logger `gateway.access`, message `graphql request`).

    Written the stdlib way (`logger.info(..., extra=fields)`) whenever something else than
    the JSON handler of gateway.json_logs would see them: a test's capture, an operator's own
    logging set-up, the text format. When that handler alone writes them (what `gateway
    serve` sets up), the lines are kept for up to `flush_seconds` (or `max_pending` lines)
    and then formatted and written to its stream together, with its redaction and in its
    format: the same lines, without a LogRecord, a lock and a write each. A record made and
    formatted one request at a time cost more than a one-row query's cost analysis, rate
    limit and metrics together (bench/README.md). `flush()` writes what is kept; the app's
    shutdown calls it.
    """

    def __init__(self, *, flush_seconds: float = 0.05, max_pending: int = 512) -> None:
        self.logger = access_logger
        self._flush_seconds = flush_seconds
        self._max_pending = max_pending
        self._pending: list[tuple[float, dict[str, Any], frozenset[str]]] = []
        self._redacted: dict[str, str] = {}  # operation and client names repeat
        self._timer: asyncio.TimerHandle | None = None

    def write(self, fields: dict[str, Any], *, own: frozenset[str] = frozenset()) -> None:
        """One line of `fields`; `own` names string fields whose values the gateway made
        itself (a request id it generated): redaction has nothing to find in them."""
        # Checked once a batch: `flush` checks again and logs the stdlib way if it changed.
        if not self._pending and json_stream_handler(self.logger) is None:
            self.logger.info(ACCESS_MESSAGE, extra=fields)
            return
        self._pending.append((time.time(), fields, own))
        if len(self._pending) >= self._max_pending:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # outside the event loop: nothing would flush later
                self.flush()
                return
            self._timer = loop.call_later(self._flush_seconds, self.flush)

    def _masked(
        self, fields: dict[str, Any], own: frozenset[str], redact: Callable[[str], str] | None
    ) -> dict[str, Any]:
        """`fields`, changed in place, as the handler's formatter would redact them: every
        string but the gateway's own values, each distinct one redacted once (a line's
        redaction otherwise cost more than the rest of it)."""
        if redact is None:
            return fields
        cache = self._redacted
        for key, value in fields.items():
            if isinstance(value, str) and key not in own:
                found = cache.get(value)
                if found is None:
                    if len(cache) >= _REDACTED_CACHE:
                        cache.clear()
                    found = cache[value] = redact(value)
                if found is not value:
                    fields[key] = found  # a value replaced: the keys, and the loop, unchanged
        return fields

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        handler = json_stream_handler(self.logger)
        if handler is None:  # the logging set-up changed since: the stdlib way after all
            for _created, fields, _own in pending:
                self.logger.info(ACCESS_MESSAGE, extra=fields)
            return
        redact = cast(JsonFormatter, handler.formatter).redact
        head = line_head("info", self.logger.name, ACCESS_MESSAGE)
        text = "".join(
            json_line_from(created, head, self._masked(fields, own, redact)) + "\n"
            for created, fields, own in pending
        )
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        except (OSError, ValueError):
            pass  # the stream is gone (closed stderr): so are the lines, as logging's would be
        finally:
            handler.release()


class RequestTelemetry:
    """Metrics, trace and access log of one GraphQL endpoint."""

    def __init__(
        self,
        metrics: Metrics,
        tracing: Tracing,
        *,
        parse: Callable[[str], DocumentNode | None],
        access_log: AccessLog | None = None,
    ) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.parse = parse
        self.access_log = access_log

    def begin(self, headers: Mapping[str, str]) -> RequestRecord:
        """A record for a request with these headers (lower-case names)."""
        trace = self.tracing.start(headers) if self.tracing.enabled else None
        return RequestRecord(self, headers, trace)


def _exposition(current: Callable[[], Any]) -> Collector:
    services = current()
    providers = services.providers
    extra = [] if providers is None else [providers.collector()]
    if services.rate_limiter is not None:
        extra.append(services.rate_limiter.collector())
    exposition: Collector = services.metrics.exposition(*extra)
    return exposition


def metrics_endpoint(settings: Settings, current: Callable[[], Any]) -> Callable[[Request], Any]:
    """/metrics on the main port: 404 when it has its own port; a bearer METRICS_TOKEN when
    one is set; open in development and test; 403 elsewhere."""
    telemetry = settings.telemetry
    token = None if telemetry.metrics_token is None else telemetry.metrics_token.reveal()
    is_open = settings.environment in OPEN_METRICS_ENVIRONMENTS

    async def metrics(request: Request) -> Response:
        if telemetry.metrics_port is not None:
            return PlainTextResponse("metrics are served on their own port", status_code=404)
        if token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.encode(), token.encode()
            ):
                return PlainTextResponse(
                    "metrics need the bearer METRICS_TOKEN",
                    status_code=401,
                    headers={"www-authenticate": "Bearer"},
                )
        elif not is_open:
            return PlainTextResponse(
                "metrics are not served here: set METRICS_TOKEN or METRICS_PORT", status_code=403
            )
        from prometheus_client import generate_latest

        return PlainTextResponse(generate_latest(_exposition(current)).decode())

    return metrics


class _Lazy(Collector):
    def __init__(self, current: Callable[[], Any]) -> None:
        self._current = current

    def collect(self) -> Any:
        return _exposition(self._current).collect()


@asynccontextmanager
async def metrics_server(settings: Settings, current: Callable[[], Any]) -> AsyncIterator[None]:
    """/metrics on METRICS_HOST:METRICS_PORT (prometheus-client's own HTTP server, in a
    thread) while the app runs; nothing when METRICS_PORT is unset."""
    telemetry = settings.telemetry
    if telemetry.metrics_port is None:
        yield
        return
    server, thread = start_http_server(
        telemetry.metrics_port, addr=telemetry.metrics_host, registry=_Lazy(current)
    )
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
