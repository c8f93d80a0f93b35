"""Telemetry: /metrics through prometheus-client, OpenTelemetry spans, JSON access log lines,
and who may read /metrics."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.cache import Cache
from adapters.crypto import SecretText
from gateway import metrics as metrics_module
from gateway.app import create_app
from gateway.auth import mint_token
from gateway.json_logs import JsonFormatter
from gateway.lifespan import Services
from gateway.metrics import Metrics
from gateway.settings import Settings, load_settings
from gateway.telemetry import metrics_server
from gateway.telemetry_settings import TelemetrySettings
from gateway.tracing import Tracing, sanitized_document
from resolvers.principal import SCOPES
from tests.factories import make_account, make_customer
from tests.fixtures.database import Database
from tests.fixtures.providers import ProviderWorld

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition (parsed by prometheus-client itself)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@dataclasses.dataclass
class Traced:
    http: httpx.AsyncClient
    spans: InMemorySpanExporter
    settings: Settings

    async def post(self, query: str, tenant_id: int, **headers: str) -> httpx.Response:
        token = mint_token(self.settings, tenant_id=tenant_id, scopes=SCOPES)
        return await self.http.post(
            "/graphql",
            json={"query": query},
            headers={"authorization": f"Bearer {token}", **headers},
        )


@pytest.fixture
async def traced(settings: Settings, services: Services) -> AsyncIterator[Traced]:
    """The app with tracing on, spans kept in memory."""
    exporter = InMemorySpanExporter()
    tracing = Tracing.exporting_to(exporter, batch=False)
    app = create_app(settings, dataclasses.replace(services, tracing=tracing))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield Traced(client, exporter, settings)
    tracing.shutdown()


def _probe_name() -> str:
    return "Probe" + uuid.uuid4().hex[:12]


# -- /metrics -----------------------------------------------------------------------------


async def test_metrics_are_prometheus_text_with_the_names_the_benchmark_reads(
    http: httpx.AsyncClient, settings: Settings, tenant_id: int
) -> None:
    name = _probe_name()
    token = mint_token(settings, tenant_id=tenant_id, scopes=SCOPES)
    before = samples((await http.get("/metrics")).text)
    response = await http.post(
        "/graphql",
        json={"query": f"query {name} {{ customers(first: 1) {{ edges {{ node {{ id }} }} }} }}"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    after = samples((await http.get("/metrics")).text)

    assert value(after, "gateway_requests_total") == value(before, "gateway_requests_total") + 1
    assert value(after, "gateway_sql_statements_total") > value(
        before, "gateway_sql_statements_total"
    )
    operations = sum(
        value(after, "gateway_operations_total", path=path)
        - value(before, "gateway_operations_total", path=path)
        for path in ("compiled", "resolvers")
    )
    assert operations == 1
    labels = {"operation": name, "client": "jwt", "outcome": "ok"}
    assert value(after, "gateway_request_duration_seconds_count", **labels) == 1
    assert value(after, "gateway_request_duration_seconds_sum", **labels) > 0
    # Its estimate (a page of one customer: 2), observed with its duration.
    estimated = {"client": "jwt", "kind": "estimated"}
    for suffix, added in (("count", 1), ("sum", 2)):
        metric = f"gateway_operation_cost_{suffix}"
        assert value(after, metric, **estimated) == value(before, metric, **estimated) + added
    statements = "gateway_sql_statement_duration_seconds_count"
    assert sum(v for (n, _), v in after.items() if n == statements) > sum(
        v for (n, _), v in before.items() if n == statements
    )


async def test_request_outcomes_carry_the_error_code_and_client(
    http: httpx.AsyncClient, settings: Settings, tenant_id: int
) -> None:
    name = _probe_name()
    query = f"query {name} {{ customers(first: 1) {{ nope }} }}"
    token = mint_token(settings, tenant_id=tenant_id, scopes=SCOPES)
    await http.post("/graphql", json={"query": query})  # no credential
    await http.post("/graphql", json={"query": query}, headers={"authorization": f"Bearer {token}"})
    found = samples((await http.get("/metrics")).text)

    count = "gateway_request_duration_seconds_count"
    refused = value(
        found, count, operation="anonymous", client="anonymous", outcome="UNAUTHENTICATED"
    )
    assert refused >= 1
    invalid = {"operation": name, "client": "jwt", "outcome": "GRAPHQL_VALIDATION_FAILED"}
    assert value(found, count, **invalid) == 1


async def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.requests = 3
    first.observe_request("Q", "jwt", "ok", 0.01)
    first.rate_limited("7")
    first.observe_cost("7", 120, actual=80)

    one, two = samples(first.render()), samples(second.render())
    assert value(one, "gateway_requests_total") == 3
    assert value(two, "gateway_requests_total") == 0
    labels = {"operation": "Q", "client": "jwt", "outcome": "ok"}
    assert value(one, "gateway_request_duration_seconds_count", **labels) == 1
    assert value(two, "gateway_request_duration_seconds_count", **labels) == 0
    assert value(one, "gateway_rate_limited_total", client="7") == 1
    assert value(one, "gateway_operation_cost_sum", client="7", kind="actual") == 80


async def test_requests_are_counted_by_their_labels_whatever_the_look_ups_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Series are found by the values a request gives, through look-ups that are dropped
    when too many are kept: the counts stay right across the drops."""
    monkeypatch.setattr(metrics_module, "_MAX_CACHED_SERIES", 3)
    metrics = Metrics()
    for _ in range(4):
        for number in range(5):
            metrics.observe_request(f"Op{number}", "jwt", "ok", 0.001, cost=number)
    found = samples(metrics.render())
    for number in range(5):
        labels = {"operation": f"Op{number}", "client": "jwt", "outcome": "ok"}
        assert value(found, "gateway_request_duration_seconds_count", **labels) == 4
    assert value(found, "gateway_operation_cost_count", client="jwt", kind="estimated") == 20
    assert value(found, "gateway_operation_cost_sum", client="jwt", kind="estimated") == 40


async def test_operation_names_cannot_grow_the_series_without_bound() -> None:
    metrics = Metrics()
    for number in range(250):
        metrics.observe_request(f"Op{number}", "jwt", "ok", 0.001)
    names = {
        dict(labels)["operation"]
        for (name, labels) in samples(metrics.render())
        if name == "gateway_request_duration_seconds_count"
    }
    assert len(names) == 201
    assert "other" in names


# -- traces -------------------------------------------------------------------------------


def _operation_span(spans: list[ReadableSpan]) -> ReadableSpan:
    [operation] = [span for span in spans if span.kind is SpanKind.SERVER]
    return operation


async def test_one_span_per_operation_with_sql_children_and_a_sanitised_document(
    traced: Traced, database: Database, tenant_id: int, engine: AsyncEngine
) -> None:
    customer = await make_customer(engine, tenant_id)
    await make_account(engine, tenant_id, customer_id=customer, name="Wallet")
    query = (
        "query Accounts { customers(first: 7) { edges { node { id displayName "
        "ledgerAccounts(first: 3) { edges { node { name } } } } } } "
        'missing: customer(id: "c2VjcmV0LWxpdGVyYWw=") { id } }'
    )
    with database.metrics.measure_statements() as tally:
        response = await traced.post(query, tenant_id)
    assert response.status_code == 200, response.text

    spans = list(traced.spans.get_finished_spans())
    operation = _operation_span(spans)
    assert operation.name == "query Accounts"
    attributes = dict(operation.attributes or {})
    assert attributes["graphql.operation.type"] == "query"
    assert attributes["graphql.operation.name"] == "Accounts"
    document = str(attributes["graphql.document"])
    assert "c2VjcmV0LWxpdGVyYWw" not in document
    assert "7" not in document
    assert "3" not in document
    assert "ledgerAccounts" in document
    assert 'customer(id: "")' in document
    children = [span for span in spans if span is not operation]
    # One child per SQL statement and nothing per resolver or field.
    assert tally.count >= 1
    assert len(children) == tally.count
    context = operation.get_span_context()
    assert context is not None
    for child in children:
        assert child.parent is not None
        assert child.parent.span_id == context.span_id
        assert child.kind is SpanKind.CLIENT
        child_attributes = dict(child.attributes or {})
        assert child_attributes["db.system.name"] == database.backend
        assert child_attributes["db.operation.name"] == "SELECT"


async def test_spans_are_named_by_type_alone_for_anonymous_operations(
    traced: Traced, tenant_id: int
) -> None:
    response = await traced.post("{ customers(first: 1) { edges { node { id } } } }", tenant_id)
    assert response.status_code == 200
    operation = _operation_span(list(traced.spans.get_finished_spans()))
    assert operation.name == "query"
    assert "graphql.operation.name" not in (operation.attributes or {})


async def test_an_incoming_traceparent_is_the_parent_of_the_operation_span(
    traced: Traced, tenant_id: int
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    await traced.post(
        "{ customers(first: 1) { edges { node { id } } } }",
        tenant_id,
        traceparent=f"00-{trace_id}-00f067aa0ba902b7-01",
    )
    operation = _operation_span(list(traced.spans.get_finished_spans()))
    context = operation.get_span_context()
    assert context is not None
    assert format(context.trace_id, "032x") == trace_id


def test_the_sanitised_document_keeps_variables_and_drops_literals() -> None:
    from graphql import parse

    document = parse(
        'query Q($id: ID!) { a: customer(id: $id) { id } b: customer(id: "x1") { id } '
        "customers(first: 50) { edges { node { id } } } }"
    )
    assert sanitized_document(document) == (
        "query Q($id: ID!) {\n  a: customer(id: $id) {\n    id\n  }\n"
        '  b: customer(id: "") {\n    id\n  }\n'
        "  customers(first: 0) {\n    edges {\n      node {\n        id\n      }\n    }\n  }\n}"
    )


QUERY_WITH_CARDS = """query Cards { customers(first: 1) { edges { node {
  cardPayments(first: 2) { edges { node { processorId } } }
} } } }"""


async def test_provider_calls_are_child_spans_and_metrics(
    settings: Settings,
    services: Services,
    providers: ProviderWorld,
    cache: Cache,
    engine: AsyncEngine,
    tenant_id: int,
) -> None:
    customer = await make_customer(engine, tenant_id)
    await providers.link_card_customer(tenant_id, customer, "cus_1")
    exporter = InMemorySpanExporter()
    tracing = Tracing.exporting_to(exporter, batch=False)
    app = create_app(
        settings,
        dataclasses.replace(services, providers=providers.runtime, cache=cache, tracing=tracing),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        before = samples((await client.get("/metrics")).text)
        token = mint_token(settings, tenant_id=tenant_id, scopes=SCOPES)
        response = await client.post(
            "/graphql",
            json={"query": QUERY_WITH_CARDS},
            headers={"authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        assert "errors" not in response.json()
        after = samples((await client.get("/metrics")).text)
    tracing.shutdown()

    spans = list(exporter.get_finished_spans())
    operation = _operation_span(spans)
    calls = [s for s in spans if (s.attributes or {}).get("gateway.provider") == "stripe"]
    assert calls, [s.name for s in spans]
    for call in calls:
        assert call.parent is not None
        assert call.parent.span_id == operation.get_span_context().span_id  # type: ignore[union-attr]
        assert (call.attributes or {})["http.response.status_code"] == 200
    observed = "gateway_provider_call_duration_seconds_count"
    assert value(after, observed, provider="stripe", outcome="ok") - value(
        before, observed, provider="stripe", outcome="ok"
    ) == len(calls)
    assert value(after, "gateway_provider_attempts_total", provider="stripe") >= len(calls)
    assert value(after, "gateway_provider_circuit_state", provider="stripe", state="closed") == 1
    assert value(after, "gateway_provider_circuit_state", provider="stripe", state="open") == 0
    assert "gateway_provider_upstream_attempts_total" in {name for name, _ in after}


# -- access log ---------------------------------------------------------------------------


async def test_one_json_access_line_per_request(
    http: httpx.AsyncClient, settings: Settings, tenant_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    name = _probe_name()
    token = mint_token(settings, tenant_id=tenant_id, scopes=SCOPES)
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        await http.post(
            "/graphql",
            json={
                "query": f"query {name} {{ customers(first: 1) {{ edges {{ node {{ id }} }} }} }}"
            },
            headers={
                "authorization": f"Bearer {token}",
                "x-request-id": "req-telemetry-1",
                "apollographql-client-name": "web-app",
                "apollographql-client-version": "1.2.3",
            },
        )
        await http.post("/graphql", json={"query": "{ customers { x } }"})
    records = [r for r in caplog.records if r.name == "gateway.access"]
    assert len(records) == 2
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["logger"] == "gateway.access"
    assert line["level"] == "info"
    assert {key: line[key] for key in (
        "request_id", "client", "tenant", "operation_type", "operation_name", "status", "code",
        "cost", "client_name", "client_version",
    )} == {
        "request_id": "req-telemetry-1", "client": "jwt", "tenant": tenant_id,
        "operation_type": "query", "operation_name": name, "status": 200, "code": None,
        "cost": 2, "client_name": "web-app", "client_version": "1.2.3",
    }  # fmt: skip
    assert line["duration_ms"] > 0
    refused = json.loads(JsonFormatter().format(records[1]))
    assert (refused["client"], refused["status"], refused["code"]) == (
        "anonymous",
        401,
        "UNAUTHENTICATED",
    )


async def test_the_access_line_keeps_64_characters_of_the_client_headers(
    http: httpx.AsyncClient, settings: Settings, tenant_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint_token(settings, tenant_id=tenant_id, scopes=SCOPES)
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        await http.post(
            "/graphql",
            json={"query": "{ customers(first: 1) { totalCount } }"},
            headers={
                "authorization": f"Bearer {token}",
                "apollographql-client-name": "n" * 100,
                "apollographql-client-version": "",
            },
        )
    [record] = [r for r in caplog.records if r.name == "gateway.access"]
    line = json.loads(JsonFormatter().format(record))
    assert (line["client_name"], line["client_version"]) == ("n" * 64, None)


def test_the_json_formatter_redacts_extra_fields_when_given_a_redactor() -> None:
    record = logging.makeLogRecord({"msg": "hello %s", "args": ("world",), "client_name": "k-1"})
    line = json.loads(JsonFormatter(redact=lambda text: text.replace("k-1", "[X]")).format(record))
    assert line["message"] == "hello world"
    assert line["client_name"] == "[X]"


# -- who may read /metrics ----------------------------------------------------------------


async def _metrics_status(settings: Settings, services: Services, **headers: str) -> httpx.Response:
    app = create_app(settings, dataclasses.replace(services, settings=settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        return await client.get("/metrics", headers=headers)


async def test_metrics_are_closed_in_production_without_a_token_or_port(
    settings: Settings, services: Services
) -> None:
    production = dataclasses.replace(settings, environment="production")
    assert (await _metrics_status(production, services)).status_code == 403


async def test_metrics_need_the_bearer_token_when_one_is_set(
    settings: Settings, services: Services
) -> None:
    telemetry = TelemetrySettings(metrics_token=SecretText("m" * 40))
    production = dataclasses.replace(settings, environment="production", telemetry=telemetry)
    assert (await _metrics_status(production, services)).status_code == 401
    wrong = await _metrics_status(production, services, authorization="Bearer " + "n" * 40)
    assert wrong.status_code == 401
    right = await _metrics_status(production, services, authorization="Bearer " + "m" * 40)
    assert right.status_code == 200
    assert "gateway_requests_total" in right.text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_metrics_on_their_own_port(settings: Settings, services: Services) -> None:
    port = _free_port()
    telemetry = TelemetrySettings(metrics_port=port)
    production = dataclasses.replace(settings, environment="production", telemetry=telemetry)
    assert (await _metrics_status(production, services)).status_code == 404
    async with (
        metrics_server(production, lambda: services),
        httpx.AsyncClient() as client,
    ):
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    assert value(samples(response.text), "gateway_requests_total") >= 0
    assert "gateway_request_duration_seconds" in response.text


# -- settings -----------------------------------------------------------------------------


def test_telemetry_settings_from_the_environment() -> None:
    settings = load_settings(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/",
            "METRICS_PORT": "9464",
            "METRICS_TOKEN": "t" * 40,
            "LOG_FORMAT": "text",
            "ACCESS_LOG": "off",
        }
    )
    telemetry = settings.telemetry
    assert telemetry.otlp_traces_endpoint == "http://127.0.0.1:4318/v1/traces"
    assert telemetry.metrics_port == 9464
    assert telemetry.metrics_token is not None
    assert "t" * 40 not in repr(telemetry)
    assert (telemetry.log_format, telemetry.access_log) == ("text", False)
    assert load_settings({}).telemetry.otlp_traces_endpoint is None  # export off by default
    with pytest.raises(ValueError, match="METRICS_PORT"):
        load_settings({"METRICS_PORT": "http"})
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        load_settings({"LOG_FORMAT": "xml"})


def test_histograms_expose_what_prometheus_clients_histogram_exposes() -> None:
    """The lock-free histograms give the same samples as prometheus-client's own Histogram
    for the same observations: bucket bounds inclusive, counts cumulative, sum and count."""
    from prometheus_client import CollectorRegistry, Histogram

    from gateway.metrics import Histograms

    bounds = (0.001, 0.01, 0.1, 1.0)
    observations = [0.0, 0.001, 0.0010001, 0.01, 0.05, 0.1, 0.99, 1.0, 1.5, 42.0]
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = Histograms("h", "doc", ["kind"], buckets=bounds, registry=ours_registry)
    theirs = Histogram("h", "doc", ["kind"], buckets=bounds, registry=theirs_registry)
    for observed in observations:
        ours.labels("a").observe(observed)
        theirs.labels("a").observe(observed)

    def without_created(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {
            (sample.name, json.dumps(sample.labels, sort_keys=True)): sample.value
            for family in registry.collect()
            for sample in family.samples
            if not sample.name.endswith("_created")
        }

    assert without_created(ours_registry) == without_created(theirs_registry)
    with pytest.raises(ValueError, match="labels"):
        ours.labels("a", "b")
