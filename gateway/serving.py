"""`gateway serve`: uvicorn with one process, or N worker processes.

Workers share nothing but the database and Redis: uvicorn's supervisor spawns each worker,
which imports `app_from_environment` (the factory below), reads the settings from the same
environment the parent validated, and opens its own engine, read pool, cache client and
provider clients in its own lifespan (gateway/lifespan.py), closing them on shutdown.

Decided limits of several workers:
- SQLite (the embedded default) is refused: it is one file with one writer, and each worker
  would hold its own connections to it (a `:memory:` database would even differ per worker);
  several processes turn concurrent postings into "database is locked" failures.
- Without REDIS_URL the in-process cache is per worker (persisted-query registrations, provider
  cache, webhook de-duplication): allowed, with a warning, since each worker stays correct on
  its own but shares less. Rate-limit budgets cannot be shared without Redis, and N workers
  counting alone would allow N budgets: each worker enforces 1/N of every budget instead
  (RATE_LIMIT_PROCESSES, multiplied by the worker count), and the warning says so.
"""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType

from starlette.applications import Starlette

from gateway.http_protocol import CoalescingHttpToolsProtocol
from gateway.settings import Settings, load_settings

__all__ = [
    "APP_FACTORY",
    "app_from_environment",
    "check_workers",
    "run_uvicorn",
    "worker_environment",
]

logger = logging.getLogger("gateway.serving")

# What each uvicorn worker imports and calls (factory=True).
APP_FACTORY = "gateway.serving:app_from_environment"


class WorkersRefused(ValueError):
    """The configuration cannot be served by more than one process."""


def check_workers(settings: Settings, workers: int) -> list[str]:
    """Warnings for serving `settings` with `workers` processes; raises WorkersRefused when
    it cannot be done safely."""
    if workers < 1:
        raise WorkersRefused("--workers must be at least 1")
    if workers == 1:
        return []
    if settings.is_sqlite:
        raise WorkersRefused(
            "--workers > 1 needs PostgreSQL: SQLite (the embedded default) is a single file "
            "with one writer, so several processes would fail each other's postings; "
            "set DATABASE_URL to PostgreSQL or serve with one worker"
        )
    warnings = []
    if not settings.redis_url:
        warnings.append(
            f"{workers} workers without REDIS_URL: each worker keeps its own in-process cache "
            "(persisted-query registrations, provider cache, webhook de-duplication), and "
            f"enforces 1/{workers} of every rate-limit budget (a caller whose requests reach "
            "one worker more than others is refused before its budget is spent); "
            "set REDIS_URL to share them"
        )
    return warnings


def worker_environment(settings: Settings, workers: int) -> dict[str, str]:
    """What `workers` processes' environment needs beyond the server's: without Redis, the
    number of processes that split each rate-limit budget."""
    if workers == 1 or settings.redis_url:
        return {}
    return {"RATE_LIMIT_PROCESSES": str(settings.rate_limits.processes * workers)}


def app_from_environment() -> Starlette:
    """uvicorn's app factory in each worker process: settings from the environment."""
    from gateway.app import create_app
    from gateway.json_logs import configure_logging
    from gateway.log_redaction import install_log_redaction

    settings = load_settings(require_environment=True)
    configure_logging(settings.log_level, settings.telemetry.log_format)
    install_log_redaction()  # as the parent's logging set-up (gateway.cli) does
    return create_app(settings)


def _exit_cleanly(_signal: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def run_uvicorn(settings: Settings, *, workers: int = 1) -> None:
    """Serve until stopped (SIGINT/SIGTERM stops the workers too, gracefully)."""
    import uvicorn

    # uvicorn needs an import string to start workers; each worker calls the factory itself.
    # One process serves an app built here, so configuration errors surface before binding.
    target: str | Starlette
    if workers == 1:
        from gateway.app import create_app

        target = create_app(settings)
        # uvicorn drains in-flight requests on SIGTERM, then raises the signal again with the
        # handler that was there before it started; make that one a clean exit (status 0), as
        # the multi-worker supervisor's is, instead of death by signal (-15).
        signal.signal(signal.SIGTERM, _exit_cleanly)
    else:
        target = APP_FACTORY
        os.environ.update(worker_environment(settings, workers))  # read by each worker
    uvicorn.run(
        target,
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # uvicorn's loggers propagate to our root handler (gateway.json_logs). Its access log
        # stays off: /graphql writes its own access line (gateway.telemetry, ACCESS_LOG), and
        # uvicorn's builds its line's arguments on every request even when its level drops it
        # (about 2.7 us a request with ACCESS_LOG=off at LOG_LEVEL=warning).
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
        proxy_headers=False,
        server_header=False,
        # one write per response instead of two (gateway.http_protocol)
        http=CoalescingHttpToolsProtocol,
    )
