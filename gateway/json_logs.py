"""Logs as JSON lines, with stdlib logging.

`JsonFormatter` writes one JSON object a line: `ts` (RFC 3339, UTC), `level`, `logger`,
`message`, every field passed with `extra=` (the access log's request id, client, operation,
duration, cost, code), and `exception` when there is one. `configure_logging` installs it on
the root handler; `gateway serve` then lets uvicorn's loggers propagate there too.

Redaction (gateway.log_redaction) is a record factory and a `logging.Filter` that mask a
record's message, arguments and exception before any formatter runs: it works with this
formatter unchanged. Fields given with `extra=` are added to the record after the record
factory ran, so this formatter takes a `redact` function for their string values as well
(`configure_logging` passes gateway.log_redaction.redact).
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["JsonFormatter", "configure_logging"]

# Attributes every LogRecord has: whatever else a record carries came from `extra=`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, *, redact: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        redact = self._redact
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_"):
                continue
            entry[key] = redact(value) if redact is not None and isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, log_format: str = "json") -> None:
    """The root handler on stderr: JSON lines, or `time level logger message` text."""
    from gateway.log_redaction import redact

    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        # Redaction masks messages and arguments (a record factory and filter); the fields
        # given with `extra=` are masked here.
        handler.setFormatter(JsonFormatter(redact=redact))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Neither format prints where a call was made: skip finding it (a stack walk per record,
    # the logging documentation's own advice for speed).
    logging._srcfile = None
