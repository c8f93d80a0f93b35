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
from typing import Any, NamedTuple, cast

import orjson
from graphql import DocumentNode
from prometheus_client import start_http_server
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gateway.json_logs import JsonFormatter, json_stream_handler, timestamp_of_millis
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.telemetry_settings import OPEN_METRICS_ENVIRONMENTS
from gateway.tracing import RequestTrace, Tracing, operation_of
from resolvers.principal import Principal

__all__ = [
    "AccessLine",
    "AccessLog",
    "RequestRecord",
    "RequestTelemetry",
    "metrics_endpoint",
    "metrics_server",
]

access_logger = logging.getLogger("gateway.access")
ACCESS_MESSAGE = "graphql request"
_JSON_CACHE = 4096
_CLIENT_HEADERS = ("apollographql-client-name", "apollographql-client-version")


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
        # (While lines are kept the logger was enabled: `flush` checks it again.)
        if access_log is not None and (
            access_log.pending or access_log.logger.isEnabledFor(logging.INFO)
        ):
            principal = self.principal
            client_name = headers.get(_CLIENT_HEADERS[0])
            client_version = headers.get(_CLIENT_HEADERS[1])
            access_log.write(
                _new_line(
                    AccessLine,
                    (
                        time.time_ns(),
                        self.request_id,
                        # Without the caller's x-request-id (gateway.http), the id is ours.
                        not headers.get("x-request-id"),
                        client,
                        None if principal is None else principal.tenant_id,
                        kind,
                        name,
                        status,
                        None if outcome == "ok" else outcome,
                        seconds,
                        self.cost,
                        client_name[:64] if client_name else None,
                        client_version[:64] if client_version else None,
                        None if trace is None else trace.span.get_span_context().trace_id,
                    ),
                )
            )


class AccessLine(NamedTuple):
    """One request's access line, as `RequestRecord.finish` found it: what `AccessLog` writes
    (`fields`), kept as it is until then."""

    created_ns: int  # time.time_ns()
    request_id: str
    own_request_id: bool  # made by the gateway (hex), not sent by the caller
    client: str
    tenant: int | None
    operation_type: str | None
    operation_name: str | None
    status: int
    code: str | None
    seconds: float
    cost: int | None  # estimated; None when refused before cost analysis or not priced
    client_name: str | None  # the apollographql-client-name / -version headers (64 chars)
    client_version: str | None
    trace_id: int | None

    def fields(self) -> dict[str, Any]:
        """The line's fields (`extra=` of a stdlib record): the same names, order and values
        as `AccessLog` writes."""
        fields: dict[str, Any] = {
            "request_id": self.request_id,
            "client": self.client,
            "tenant": self.tenant,
            "operation_type": self.operation_type,
            "operation_name": self.operation_name,
            "status": self.status,
            "code": self.code,
            "duration_ms": round(self.seconds * 1000, 3),
            "cost": self.cost,
            "client_name": self.client_name,
            "client_version": self.client_version,
        }
        if self.trace_id is not None:
            fields["trace_id"] = format(self.trace_id, "032x")
        return fields


# A line without a Python-level __new__ call: once per request.
_new_line = tuple.__new__
# What comes between a line's `ts` and its fields (the JSON handler's format).
_HEAD = ',"level":"info","logger":"gateway.access","message":"' + ACCESS_MESSAGE + '"'


class AccessLog:
    """The access lines (logger `gateway.access`, message `graphql request`).

    Written the stdlib way (`logger.info(..., extra=line.fields())`) whenever something else
    than the JSON handler of gateway.json_logs would see them: a test's capture, an
    operator's own logging set-up, the text format. When that handler alone writes them
    (what `gateway serve` sets up), each request's `AccessLine` is kept for up to
    `flush_seconds` (or `max_pending` lines), and the lines are then written to its stream
    together, with its redaction and in its format (the keys, their order and the values
    its formatter would write for `line.fields()`), from a template: no
    LogRecord, dictionary, lock or write per line, and each distinct string value (client,
    operation and client names, codes) redacted and JSON-encoded once. A record made and
    formatted per request cost more than a one-row query's cost analysis, rate limit and
    metrics together (bench/README.md). `flush()` writes what is kept; the app's shutdown
    calls it.
    """

    def __init__(self, *, flush_seconds: float = 0.05, max_pending: int = 512) -> None:
        self.logger = access_logger
        self._flush_seconds = flush_seconds
        self._max_pending = max_pending
        self.pending: list[AccessLine] = []
        # String values as JSON, redacted by `_redacted_by`: names and codes repeat.
        self._json: dict[str | None, str] = {None: "null"}
        self._redacted_by: Callable[[str], str] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def write(self, line: AccessLine) -> None:
        # Checked once a batch: `flush` checks again and logs the stdlib way if it changed.
        pending = self.pending
        if not pending and json_stream_handler(self.logger) is None:
            self.logger.info(ACCESS_MESSAGE, extra=line.fields())
            return
        pending.append(line)
        if len(pending) >= self._max_pending:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # outside the event loop: nothing would flush later
                self.flush()
                return
            self._timer = loop.call_later(self._flush_seconds, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self.pending = self.pending, []
        if not pending:
            return
        handler = json_stream_handler(self.logger)
        if handler is None:  # the logging set-up changed since: the stdlib way after all
            for line in pending:
                self.logger.info(ACCESS_MESSAGE, extra=line.fields())
            return
        redact = cast(JsonFormatter, handler.formatter).redact
        text = "".join(self._lines(pending, redact))
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        except (OSError, ValueError):
            pass  # the stream is gone (closed stderr): so are the lines, as logging's would be
        finally:
            handler.release()

    def _json_of(self, value: str | None, redact: Callable[[str], str] | None) -> str:
        """A string field as JSON, redacted as the handler's formatter redacts it (kept)."""
        if value is None:
            return "null"
        cache = self._json
        if len(cache) >= _JSON_CACHE:
            cache.clear()
            cache[None] = "null"
        found = cache[value] = orjson.dumps(value if redact is None else redact(value)).decode()
        return found

    def _lines(self, pending: list[AccessLine], redact: Callable[[str], str] | None) -> list[str]:
        """Each line as the JSON handler writes the record `line.fields()` makes (the same
        keys, order, escaping and numbers: tests/gateway/test_access_log.py), with its
        newline. (One loop, written out: it runs once per request.)"""
        if redact is not self._redacted_by:  # another formatter since: start over
            self._json = {None: "null"}
            self._redacted_by = redact
        json = self._json
        json_of = self._json_of
        texts = []
        last_millis, ts = -1, ""
        for line in pending:
            (created_ns, request_id, own_id, client, tenant, kind, name, status, code, seconds,
             cost, client_name, client_version, trace_id) = line  # fmt: skip
            millis = created_ns // 1_000_000
            if millis != last_millis:  # lines of the same millisecond share their `ts`
                last_millis, ts = millis, timestamp_of_millis(millis)
            if own_id:  # ours: hex, nothing to redact or escape
                rid = '"' + request_id + '"'
            else:  # the caller's, different on every request: not kept
                rid = orjson.dumps(request_id if redact is None else redact(request_id)).decode()
            client_json = json.get(client) or json_of(client, redact)
            name_json = json.get(name) or json_of(name, redact)
            code_json = json.get(code) or json_of(code, redact)
            cn_json = json.get(client_name) or json_of(client_name, redact)
            cv_json = json.get(client_version) or json_of(client_version, redact)
            kind_json = "null" if kind is None else '"' + kind + '"'  # query, mutation, ...
            trace = "" if trace_id is None else f',"trace_id":"{trace_id:032x}"'
            # duration_ms: the number `fields()` rounds to three places, with its zeros
            texts.append(
                f'{{"ts":"{ts}"{_HEAD},"request_id":{rid},'
                f'"client":{client_json},"tenant":{"null" if tenant is None else tenant},'
                f'"operation_type":{kind_json},'
                f'"operation_name":{name_json},"status":{status},"code":{code_json},'
                f'"duration_ms":{seconds * 1000:.3f},'
                f'"cost":{"null" if cost is None else cost},'
                f'"client_name":{cn_json},"client_version":{cv_json}{trace}}}\n'
            )
        return texts


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
