"""OpenTelemetry traces following the GraphQL semantic conventions.

One SERVER span per GraphQL request, named by the operation (`query`, `mutation`,
`query OperationName`), with `graphql.operation.type`, `graphql.operation.name` and
`graphql.document` (the document printed with every string, number, list and object literal
replaced: `"" 0 [] {}`, so no argument value a client sent reaches the trace). Its children
are the SQL statements (`db.system.name`, `db.operation.name`, `db.query.text`: parameterised
SQL, never values) and the provider calls (`http.request.method`, `server.address`,
`url.path`, `http.response.status_code`, retries), made after the fact from the times the
adapters report. Never one span per resolver or field.

Off unless a span exporter is configured: `Tracing.from_settings` exports over OTLP/HTTP when
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set; tests pass an in-memory
exporter. Off, a request pays one `if`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from graphql import (
    DocumentNode,
    FloatValueNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    StringValueNode,
    Visitor,
    print_ast,
    visit,
)
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from adapters.http_client import ProviderCall

__all__ = [
    "RequestTrace",
    "Tracing",
    "operation_of",
    "record_provider_call",
    "record_statement",
    "sanitized_document",
]

_current: ContextVar[RequestTrace | None] = ContextVar("request_trace", default=None)
_PROPAGATOR = TraceContextTextMapPropagator()
_UNNAMED = "GraphQL Operation"
_MAX_SQL = 2048


class _StripLiterals(Visitor):
    """Replaces literal values by empty ones of their kind (Apollo's operation signature)."""

    def enter_string_value(self, *_: Any) -> StringValueNode:
        return StringValueNode(value="")

    def enter_int_value(self, *_: Any) -> IntValueNode:
        return IntValueNode(value="0")

    def enter_float_value(self, *_: Any) -> FloatValueNode:
        return FloatValueNode(value="0")

    def enter_list_value(self, *_: Any) -> ListValueNode:
        return ListValueNode(values=())

    def enter_object_value(self, *_: Any) -> ObjectValueNode:
        return ObjectValueNode(fields=())


def sanitized_document(document: DocumentNode) -> str:
    """The document as `graphql.document`: printed, with no literal value left in it."""
    return print_ast(visit(document, _StripLiterals()))


def operation_of(
    document: DocumentNode | None, operation_name: str | None
) -> tuple[str | None, str | None]:
    """(type, name) of the operation a request runs; (None, name) when there is none."""
    if document is None:
        return None, operation_name
    chosen = None
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        name = definition.name.value if definition.name else None
        if operation_name is None or name == operation_name:
            if chosen is not None and operation_name is None:
                return None, None  # several operations and no operationName: none runs
            chosen = definition
    if chosen is None:
        return None, operation_name
    return chosen.operation.value, chosen.name.value if chosen.name else None


class RequestTrace:
    """The span of one GraphQL request; current (a context variable) while it is handled."""

    __slots__ = ("_context", "_token", "_tracing", "recording", "span")

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self._tracing = tracing
        self.span = span
        # Not sampled (OTEL_TRACES_SAMPLER): no child span is made at all.
        self.recording = span.is_recording()
        self._context = trace.set_span_in_context(span)
        self._token = _current.set(self)

    def operation(
        self, kind: str | None, name: str | None, text: str | None, document: DocumentNode | None
    ) -> None:
        span = self.span
        if kind is not None:
            span.update_name(f"{kind} {name}" if name else kind)
            span.set_attribute("graphql.operation.type", kind)
        if name:
            span.set_attribute("graphql.operation.name", name)
        if text is not None and document is not None:
            span.set_attribute("graphql.document", self._tracing.sanitized(text, document))

    def child(self, name: str, started_ns: int, attributes: Mapping[str, Any]) -> Span:
        tracer = self._tracing.tracer
        assert tracer is not None  # a RequestTrace exists only when tracing is on
        return tracer.start_span(
            name,
            context=self._context,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=started_ns,
        )

    def finish(self, outcome: str, status_code: int) -> None:
        span = self.span
        span.set_attribute("http.response.status_code", status_code)
        if outcome != "ok":
            span.set_attribute("error.type", outcome)
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        _current.reset(self._token)


class Tracing:
    """The tracer of one app, or none (tracing off)."""

    def __init__(self, provider: TracerProvider | None = None, *, max_documents: int = 512) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("finance-gateway") if provider is not None else None
        self._documents: OrderedDict[str, str] = OrderedDict()
        self._max_documents = max_documents

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @classmethod
    def exporting_to(
        cls, exporter: SpanExporter, *, service_name: str = "finance-gateway", batch: bool = True
    ) -> Tracing:
        """Spans sent to `exporter` (batched in the background, or one by one for tests)."""
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        return cls(provider)

    @classmethod
    def otlp(cls, endpoint: str, *, service_name: str) -> Tracing:
        """Export over OTLP/HTTP (protobuf); the exporter reads the other OTEL_EXPORTER_OTLP_*
        variables (headers, timeout, certificates) itself."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls.exporting_to(OTLPSpanExporter(endpoint=endpoint), service_name=service_name)

    def start(self, headers: Mapping[str, str]) -> RequestTrace | None:
        """The span of a request that starts now (its parent from a `traceparent` header)."""
        if self.tracer is None:
            return None
        parent: Context | None = None
        if "traceparent" in headers:
            parent = _PROPAGATOR.extract({"traceparent": headers["traceparent"]})
        span = self.tracer.start_span(
            _UNNAMED,
            context=parent,
            kind=SpanKind.SERVER,
        )
        return RequestTrace(self, span)

    def sanitized(self, text: str, document: DocumentNode) -> str:
        found = self._documents.get(text)
        if found is None:
            found = self._documents[text] = sanitized_document(document)
            if len(self._documents) > self._max_documents:
                self._documents.popitem(last=False)
        return found

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def record_statement(
    system: str, statement: str, started_ns: int, ended_ns: int, failed: bool
) -> None:
    """A child span for one SQL statement of the current request (none outside a request)."""
    current = _current.get()
    if current is None or not current.recording:
        return
    operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    span = current.child(
        operation,
        started_ns,
        {
            "db.system.name": system,
            "db.operation.name": operation,
            "db.query.text": statement[:_MAX_SQL],
        },
    )
    if failed:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=ended_ns)


def record_provider_call(call: ProviderCall) -> None:
    """A child span for one provider call of the current request."""
    current = _current.get()
    if current is None or not current.recording:
        return
    attributes: dict[str, Any] = {
        "http.request.method": call.method,
        "server.address": call.host,
        "url.path": call.path,
        "gateway.provider": call.provider,
        "http.request.resend_count": max(0, call.attempts - 1),
    }
    if call.status_code is not None:
        attributes["http.response.status_code"] = call.status_code
    span = current.child(f"{call.method} {call.provider}", call.started_ns, attributes)
    if call.outcome != "ok":
        span.set_attribute("error.type", call.outcome)
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=call.ended_ns)
