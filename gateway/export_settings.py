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

__all__ = ["ExportSettings", "load_export_settings"]


@dataclass(frozen=True, slots=True)
class ExportSettings:
    max_days: int = 366
    cost: int = 1000
    max_concurrent: int = 2
    batch_rows: int = 2000


def _at_least_one(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def load_export_settings(env: Mapping[str, str]) -> ExportSettings:
    defaults = ExportSettings()
    return ExportSettings(
        max_days=_at_least_one(env, "EXPORT_MAX_DAYS", defaults.max_days),
        cost=_at_least_one(env, "EXPORT_COST", defaults.cost),
        max_concurrent=_at_least_one(env, "EXPORT_MAX_CONCURRENT", defaults.max_concurrent),
        batch_rows=_at_least_one(env, "EXPORT_BATCH_ROWS", defaults.batch_rows),
    )
