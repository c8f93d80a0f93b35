"""Per-operation deadlines: how long one GraphQL request may run, by client kind.

`DeadlineSettings` (from `OPERATION_TIMEOUT_SECONDS` and the per-kind overrides) gives each
principal a budget; the request's deadline is an absolute time on the event loop's clock
(`loop.time()`), fixed when the request arrives and handed down as a plain float:

- the ledger reader passes what is left to asyncpg (`timeout=`, which cancels the statement on
  the server), the posting service to `SET LOCAL statement_timeout` in its transaction;
- every per-request dataloader batch (ledger and providers) runs under `asyncio.timeout_at`,
  which cancels its provider HTTP calls;
- a batch that runs out answers `TIMEOUT` for the fields waiting on it: those fields are null
  with an error at their path, and every field that finished keeps its data (partial data);
- the whole execution runs under the deadline plus `grace_seconds` as a backstop (CPU-bound
  work no I/O timeout sees): past it the request answers `TIMEOUT` without data (HTTP 504).

A compiled operation (gateway.compiled) is one SQL statement: when it runs out, the request
answers `TIMEOUT` without data (no fallback to the resolvers, which would only run longer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.env_values import integer, positive_float
from resolvers.errors import GatewayError

__all__ = ["DeadlineSettings", "OperationTimedOut", "load_deadline_settings"]


class OperationTimedOut(GatewayError):
    """The whole operation ran past its deadline: nothing of it can be answered."""

    code = "TIMEOUT"
    status_code = 504


@dataclass(frozen=True, slots=True)
class DeadlineSettings:
    """Seconds an operation may run, per client kind; lock wait of postings in milliseconds."""

    first_party_seconds: float = 10.0
    partner_seconds: float = 10.0
    # Analysts send any query they like: long queries are bounded, but allowed longer.
    analyst_seconds: float = 30.0
    # Beyond the deadline, time left for fields that timed out to be answered as errors.
    grace_seconds: float = 1.0
    # How long a posting waits for a row lock before answering LOCK_TIMEOUT (retryable).
    lock_timeout_ms: int = 2_000

    def seconds_for(self, kind: str) -> float:
        if kind == "analyst":
            return self.analyst_seconds
        if kind == "partner":
            return self.partner_seconds
        return self.first_party_seconds

    def deadline(self, kind: str, started: float) -> float:
        """The absolute deadline (event-loop clock) of an operation of `kind` begun `started`."""
        return started + self.seconds_for(kind)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    # Up to an hour; an empty value has always meant the default.
    return positive_float(env, name, default, maximum=3600, empty_is_default=True)


def load_deadline_settings(env: Mapping[str, str]) -> DeadlineSettings:
    defaults = DeadlineSettings()

    def kind(name: str, default: float) -> float:
        # OPERATION_TIMEOUT_SECONDS sets every kind; OPERATION_TIMEOUT_SECONDS_<KIND> one.
        common = _seconds(env, "OPERATION_TIMEOUT_SECONDS", default)
        return _seconds(env, f"OPERATION_TIMEOUT_SECONDS_{name}", common)

    return DeadlineSettings(
        first_party_seconds=kind("FIRST_PARTY", defaults.first_party_seconds),
        partner_seconds=kind("PARTNER", defaults.partner_seconds),
        analyst_seconds=kind("ANALYST", defaults.analyst_seconds),
        grace_seconds=_seconds(env, "OPERATION_TIMEOUT_GRACE_SECONDS", defaults.grace_seconds),
        lock_timeout_ms=integer(env, "LOCK_TIMEOUT_MS", defaults.lock_timeout_ms, minimum=1),
    )


def now() -> float:
    """The clock deadlines are measured on: the running event loop's."""
    return asyncio.get_running_loop().time()
