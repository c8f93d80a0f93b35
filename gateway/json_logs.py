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
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import orjson

from gateway.log_redaction import RedactingFilter, redact

__all__ = [
    "JsonFormatter",
    "configure_logging",
    "json_line",
    "json_stream_handler",
    "timestamp_of_millis",
]

# Attributes every LogRecord has: whatever else a record carries came from `extra=`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class _Timestamps:
    """`ts` values: RFC 3339 in UTC to the millisecond, exactly as `datetime.isoformat(
    timespec="milliseconds")` writes them, with the part up to the second made once per second
    (a datetime built and formatted per line cost a quarter of an access line)."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, created: float) -> str:
        # Rounded to the microsecond first, as datetime.fromtimestamp rounds.
        fraction, whole = math.modf(created)
        second, micros = int(whole), round(fraction * 1_000_000)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        elif micros < 0:
            second, micros = second - 1, micros + 1_000_000
        if second != self._second:
            self._new_second(second)
        return f"{self._prefix}.{micros // 1000:03d}+00:00"

    def from_millis(self, millis: int) -> str:
        """`ts` of a time in whole milliseconds since the epoch (integers: nothing to round)."""
        second = millis // 1000
        if second != self._second:
            self._new_second(second)
        return f"{self._prefix}.{millis % 1000:03d}+00:00"

    def _new_second(self, second: int) -> None:
        self._prefix = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        self._second = second


_TIMESTAMPS = _Timestamps()
# `ts` of a line created at this many milliseconds since the epoch: the access log's lines
# (gateway.telemetry) are written by their own template, in this format.
timestamp_of_millis = _TIMESTAMPS.from_millis


def json_line(
    created: float,
    level: str,
    logger: str,
    message: str,
    fields: Iterable[tuple[str, Any]],
    redact: Callable[[str], str] | None,
) -> str:
    """One line of this format: `ts`, `level`, `logger`, `message`, then `fields` (string
    values through `redact`)."""
    entry: dict[str, Any] = {
        "ts": _TIMESTAMPS.format(created),
        "level": level,
        "logger": logger,
        "message": message,
    }
    for key, value in fields:
        entry[key] = redact(value) if redact is not None and isinstance(value, str) else value
    return orjson.dumps(entry, default=str).decode()


class JsonFormatter(logging.Formatter):
    def __init__(self, *, redact: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        extra = [
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        ]
        if record.exc_info:
            extra.append(("exception", self.formatException(record.exc_info)))
        elif record.exc_text:
            extra.append(("exception", record.exc_text))
        if record.stack_info:
            extra.append(("stack", self.formatStack(record.stack_info)))
        return json_line(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            extra,
            self.redact,
        )


_json_handler: logging.StreamHandler[TextIO] | None = None


def json_stream_handler(logger: logging.Logger) -> logging.StreamHandler[TextIO] | None:
    """The JSON handler `configure_logging` installed, when it alone writes `logger`'s INFO
    records (no handler, filter or propagation stop of another on the way; the only filter
    on the handler redaction's): a caller may then format such records itself, with
    `json_line` and the handler's `redact`, and write them to its stream. None otherwise (a
    test's capture handler, an operator's own set-up): log through `logger`."""
    handler = _json_handler
    root = logging.root
    if handler is None or len(root.handlers) != 1 or root.handlers[0] is not handler:
        return None
    if not isinstance(handler.formatter, JsonFormatter):
        return None
    if handler.level > logging.INFO or not logger.isEnabledFor(logging.INFO):
        return None
    node: logging.Logger | None = logger
    while node is not None and node is not root:
        if node.handlers or node.filters or not node.propagate:
            return None
        node = node.parent
    if not all(isinstance(each, RedactingFilter) for each in handler.filters):
        return None
    return handler


def configure_logging(level: str, log_format: str = "json") -> None:
    """The root handler on stderr: JSON lines, or `time level logger message` text."""
    global _json_handler
    handler = logging.StreamHandler(sys.stderr)
    _json_handler = None
    if log_format == "json":
        # Redaction masks messages and arguments (a record factory and filter); the fields
        # given with `extra=` are masked here.
        handler.setFormatter(JsonFormatter(redact=redact))
        _json_handler = handler
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Neither format prints where a call was made, nor the thread or process: skip finding
    # them (a stack walk per record, and three look-ups; the logging documentation's own
    # advice for speed).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
