"""Settings of the streamed exports (gateway.exports).

- `EXPORT_MAX_DAYS` (366): the longest range of days one export may cover.
- `EXPORT_COST` (1000): rate-limit points charged to the caller per export, before it starts
  (the budgets of gateway.rate_limits: 20,000 points a minute for a partner by default).
- `EXPORT_MAX_CONCURRENT` (2): exports streaming at once in one process; each holds a database
  connection for as long as it streams. Over it: 503 `EXPORTS_BUSY` with Retry-After.
- `EXPORT_BATCH_ROWS` (2000): rows fetched, rendered and sent at a time; an export holds about
  one batch in memory whatever its length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.env_values import integer

__all__ = ["ExportSettings", "load_export_settings"]


@dataclass(frozen=True, slots=True)
class ExportSettings:
    max_days: int = 366
    cost: int = 1000
    max_concurrent: int = 2
    batch_rows: int = 2000


def load_export_settings(env: Mapping[str, str]) -> ExportSettings:
    defaults = ExportSettings()
    return ExportSettings(
        max_days=integer(env, "EXPORT_MAX_DAYS", defaults.max_days, minimum=1),
        cost=integer(env, "EXPORT_COST", defaults.cost, minimum=1),
        max_concurrent=integer(env, "EXPORT_MAX_CONCURRENT", defaults.max_concurrent, minimum=1),
        batch_rows=integer(env, "EXPORT_BATCH_ROWS", defaults.batch_rows, minimum=1),
    )
