"""Process metrics through prometheus-client, and the per-request SQL statement counter.

Each `Metrics` owns its own `CollectorRegistry` (never the global default one): tests build
many apps in one process, and each gateway process exposes only what it counted. What /metrics
shows (README, "Telemetry"):

- plain counters kept as integers on the hot path and read at scrape time by a collector
  (`gateway_requests_total`, `gateway_sql_statements_total`, `gateway_errors_masked_total`,
  `gateway_operations_total{path="compiled"|"resolvers"}`, and every other integer field as
  `gateway_<field>_total`, such as the response cache's hit and miss counters);
- `gateway_request_duration_seconds{operation, client, outcome}`: one observation per GraphQL
  request (operation name, API client id or `jwt`, `ok` or the first error code);
- `gateway_sql_statement_duration_seconds{system}`, `gateway_provider_call_duration_seconds
  {provider, outcome}`;
- hooks for the rate limiter and cost analysis (`rate_limited`, `observe_cost`).

The histograms are `Histograms`: prometheus-client's `Histogram` takes a lock and walks its
buckets on every observation, three of which every request makes (its duration, its cost, its
SQL statement); these count with one `bisect` and two additions, and are exposed through
prometheus-client's `HistogramMetricFamily` when scraped, in the same text format.
- the provider transports' counters and breaker state (gateway.providers' collector).

The statement hooks also add a child span to the request's trace (gateway.tracing).
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from adapters.http_client import ProviderCall
from gateway.tracing import record_provider_call, record_statement

__all__ = ["BoundedLabel", "HistogramSeries", "Histograms", "Metrics", "StatementTally"]

# Request latencies of a gateway: sub-millisecond cache hits to multi-second provider fan-outs.
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COST = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000)
# Integer fields exposed under another name than `gateway_<field>_total`, or not at all.
_RENAMED = {"compiled_operations": None, "resolver_operations": None}
# Look-ups kept by label values as given (the series themselves stay, bounded by their labels).
_MAX_CACHED_SERIES = 4096


class HistogramSeries:
    """One labelled series of a `Histograms`: per-bucket counts and the sum."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self._bounds, value)] += 1  # bucket `le` is inclusive
        self.sum += value


class Histograms(Collector):
    """A Prometheus histogram with labels, counted without locks on the event loop and
    exposed through prometheus-client when scraped (`collect`)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = tuple(labels)
        self._bounds = tuple(sorted(float(bound) for bound in buckets if not math.isinf(bound)))
        self._series: dict[tuple[str, ...], HistogramSeries] = {}
        registry.register(self)

    def labels(self, *values: str) -> HistogramSeries:
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self._labels):
                raise ValueError(f"{self._name} takes the labels {self._labels}")
            series = self._series[values] = HistogramSeries(self._bounds)
        return series

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labels)
        les = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for values, series in list(self._series.items()):
            cumulative, buckets = 0, []
            for le, count in zip(les, list(series.counts), strict=True):
                cumulative += count
                buckets.append((le, float(cumulative)))
            family.add_metric(list(values), buckets, sum_value=series.sum)
        yield family


@dataclass(slots=True)
class StatementTally:
    """Statements sent to the database while one request (or test block) ran."""

    count: int = 0


class BoundedLabel:
    """Label values a client chooses (operation names): at most `limit` distinct ones, the
    rest reported as `other`, so no client can blow up the number of series."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int = 200) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        value = value[:64]
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return "other"
        self._seen.add(value)
        return value


@dataclass(slots=True)
class Metrics:
    """Counters and histograms of one gateway process, exposed at /metrics."""

    requests: int = 0
    sql_statements: int = 0
    errors_masked: int = 0
    # Operations answered by one JSON-building statement, and by the resolvers (the reference).
    compiled_operations: int = 0
    resolver_operations: int = 0
    response_cache_hits: int = 0
    response_cache_misses: int = 0
    response_cache_stores: int = 0
    # Live updates (gateway.subscriptions): subscriptions started, results sent, subscribers
    # disconnected for falling behind, connections refused over the per-client cap.
    subscriptions_started: int = 0
    subscription_events: int = 0
    subscribers_too_slow: int = 0
    subscription_connections_refused: int = 0
    _current: ContextVar[StatementTally | None] = field(
        default_factory=lambda: ContextVar("statement_tally", default=None)
    )
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=False)
    )
    request_seconds: Histograms = field(init=False)
    statement_seconds: Histograms = field(init=False)
    provider_seconds: Histograms = field(init=False)
    rate_limited_requests: Counter = field(init=False)
    operation_cost: Histograms = field(init=False)
    operation_label: BoundedLabel = field(default_factory=BoundedLabel)
    # A request's duration series and its client's estimated-cost series, by the values the
    # request gives (its operation name unbounded yet): one look-up.
    _request_series: dict[tuple[str, str, str], tuple[HistogramSeries, HistogramSeries]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        registry = self.registry
        registry.register(_IntegerCounters(self))
        self.request_seconds = Histograms(
            "gateway_request_duration_seconds",
            "GraphQL requests by operation name, client (API client id or jwt) and outcome "
            "(ok or the first error code).",
            ["operation", "client", "outcome"],
            buckets=_SECONDS,
            registry=registry,
        )
        self.statement_seconds = Histograms(
            "gateway_sql_statement_duration_seconds",
            "SQL statements sent to the database.",
            ["system"],
            buckets=_SECONDS,
            registry=registry,
        )
        self.provider_seconds = Histograms(
            "gateway_provider_call_duration_seconds",
            "Calls to a provider, retries included, by outcome (ok, 5xx/429 status, error, "
            "circuit_open).",
            ["provider", "outcome"],
            buckets=_SECONDS,
            registry=registry,
        )
        # Hooks for the rate limiter and cost analysis (issue 8, items 1 and 2).
        self.rate_limited_requests = Counter(
            "gateway_rate_limited",
            "Requests refused by the rate limiter.",
            ["client"],
            registry=registry,
        )
        self.operation_cost = Histograms(
            "gateway_operation_cost",
            "Operation cost (demand control), estimated before and actual after execution.",
            ["client", "kind"],
            buckets=_COST,
            registry=registry,
        )

    # -- SQL --------------------------------------------------------------------------------

    def count_statement(self) -> None:
        """Engine hook: one statement went to the database."""
        self.sql_statements += 1
        tally = self._current.get()
        if tally is not None:
            tally.count += 1

    def statement_timer(self, system: str) -> StatementTimerHook:
        """The engine's and reader's `on_statement_timed` hook for a database `system`."""
        return StatementTimerHook(self.statement_seconds.labels(system), system)

    @contextmanager
    def measure_statements(self) -> Iterator[StatementTally]:
        """Count the statements issued inside the block, including by tasks it spawns."""
        tally = StatementTally()
        token = self._current.set(tally)
        try:
            yield tally
        finally:
            self._current.reset(token)

    # -- providers, requests, limits --------------------------------------------------------

    def provider_call(self, call: ProviderCall) -> None:
        """ResilientTransport hook: one provider call ended."""
        seconds = (call.ended_ns - call.started_ns) / 1e9
        self.provider_seconds.labels(call.provider, call.outcome).observe(seconds)
        record_provider_call(call)

    def observe_request(
        self, operation: str, client: str, outcome: str, seconds: float, cost: int | None = None
    ) -> None:
        """One GraphQL request: its duration, and its estimated cost when it was priced."""
        key = (operation, client, outcome)
        found = self._request_series.get(key)  # once per request: one look-up
        if found is None:
            if len(self._request_series) >= _MAX_CACHED_SERIES:
                self._request_series.clear()
            found = self._request_series[key] = (
                self.request_seconds.labels(self.operation_label(operation), client, outcome),
                self.operation_cost.labels(client, "estimated"),
            )
        found[0].observe(seconds)
        if cost is not None:
            found[1].observe(cost)

    def rate_limited(self, client: str) -> None:
        """For the rate limiter: one request refused (HTTP 429)."""
        self.rate_limited_requests.labels(client).inc()

    def observe_cost(self, client: str, estimated: int, actual: int | None = None) -> None:
        """For cost analysis: an operation's estimated (and, after execution, actual) cost."""
        self.operation_cost.labels(client, "estimated").observe(estimated)
        if actual is not None:
            self.operation_cost.labels(client, "actual").observe(actual)

    # -- exposition -------------------------------------------------------------------------

    def exposition(self, *extra: Collector) -> Collector:
        """One collector over this registry and `extra` (the providers' collector)."""
        return _Combined((self.registry, *extra))

    def render(self, *extra: Collector) -> str:
        """Prometheus text format of this registry and `extra` collectors."""
        return generate_latest(self.exposition(*extra)).decode()


class StatementTimerHook:
    """Observes one statement's duration and adds its span to the request's trace."""

    __slots__ = ("_histogram", "_system")

    def __init__(self, histogram: HistogramSeries, system: str) -> None:
        self._histogram = histogram
        self._system = system

    def __call__(self, statement: str, started_ns: int, ended_ns: int, failed: bool) -> None:
        self._histogram.observe((ended_ns - started_ns) / 1e9)
        record_statement(self._system, statement, started_ns, ended_ns, failed)


class _IntegerCounters(Collector):
    """The integer fields of a Metrics, read when scraped (a `+= 1` on the request path)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._names = [
            f.name
            for f in fields(metrics)
            if f.type in ("int", int) and not f.name.startswith("_") and f.name not in _RENAMED
        ]

    def collect(self) -> Iterable[Metric]:
        metrics = self._metrics
        process = GaugeMetricFamily(
            "gateway_process_info", "The process that answered (counters are per process).",
            labels=["pid"],
        )  # fmt: skip
        process.add_metric([str(os.getpid())], 1)
        yield process
        for name in self._names:
            yield CounterMetricFamily(
                f"gateway_{name}", f"Metrics.{name}", value=getattr(metrics, name)
            )
        operations = CounterMetricFamily(
            "gateway_operations",
            "Operations answered by one JSON-building statement (compiled) or the resolvers.",
            labels=["path"],
        )
        operations.add_metric(["compiled"], metrics.compiled_operations)
        operations.add_metric(["resolvers"], metrics.resolver_operations)
        yield operations


class _Combined(Collector):
    def __init__(self, parts: tuple[Collector, ...]) -> None:
        self._parts = parts

    def collect(self) -> Iterable[Metric]:
        for part in self._parts:
            yield from part.collect()
