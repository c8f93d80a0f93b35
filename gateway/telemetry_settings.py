"""Telemetry settings: trace export, log format, and who may read /metrics.

- `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`: traces are exported
  over OTLP/HTTP there (the base endpoint gets `/v1/traces` appended, as the OpenTelemetry
  specification says); unset, tracing is off. `OTEL_SERVICE_NAME` names the service.
- `LOG_FORMAT`: `json` (one JSON object a line; the default) or `text`.
- `ACCESS_LOG`: one JSON line per GraphQL request (`on` by default).
- `METRICS_TOKEN`: /metrics then needs `Authorization: Bearer <token>`.
- `METRICS_PORT` (and `METRICS_HOST`, default 127.0.0.1): /metrics is served on that port only,
  and the main port answers 404 there.

/metrics on the main port without a token is open in development and test only; elsewhere,
with neither METRICS_TOKEN nor METRICS_PORT, it answers 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from adapters.crypto import SecretText
from gateway.env_values import flag, optional_integer

__all__ = ["OPEN_METRICS_ENVIRONMENTS", "TelemetrySettings", "load_telemetry_settings"]

OPEN_METRICS_ENVIRONMENTS = frozenset({"development", "test"})


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    otlp_traces_endpoint: str | None = None
    service_name: str = "finance-gateway"
    log_format: str = "json"
    access_log: bool = True
    metrics_token: SecretText | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"


def load_telemetry_settings(env: Mapping[str, str]) -> TelemetrySettings:
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or None
    if endpoint is None and env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    log_format = env.get("LOG_FORMAT", "json").strip().lower()
    if log_format not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be json or text, got {log_format!r}")
    token = env.get("METRICS_TOKEN") or None
    return TelemetrySettings(
        otlp_traces_endpoint=endpoint,
        service_name=env.get("OTEL_SERVICE_NAME", "finance-gateway"),
        log_format=log_format,
        access_log=flag(env, "ACCESS_LOG", True),
        metrics_token=SecretText(token) if token else None,
        # Unset or empty: /metrics stays on the main port.
        metrics_port=optional_integer(env, "METRICS_PORT", minimum=1, maximum=65535),
        metrics_host=env.get("METRICS_HOST", "127.0.0.1"),
    )
