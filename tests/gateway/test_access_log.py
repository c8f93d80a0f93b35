"""The access log (gateway.telemetry.AccessLog): batched straight to the JSON handler's stream
when that handler alone writes it, the stdlib way otherwise; the same lines either way."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from gateway import json_logs
from gateway.app import create_app
from gateway.auth import mint_token
from gateway.json_logs import JsonFormatter, configure_logging, json_stream_handler
from gateway.lifespan import Services
from gateway.log_redaction import redact
from gateway.settings import Settings
from gateway.telemetry import ACCESS_MESSAGE, AccessLine, AccessLog
from resolvers.principal import SCOPES


@contextmanager
def _json_logging() -> Iterator[io.StringIO]:
    """`gateway serve`'s logging set-up (JSON lines at INFO), its stream captured, in place of
    the test's own (pytest's capture handlers, restored afterwards)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, json_logs._json_handler, logging._srcfile)
    saved_flags = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    configure_logging("info", "json")
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        json_logs._json_handler = saved[2]
        logging._srcfile = saved[3]
        logging.logThreads, logging.logProcesses, logging.logMultiprocessing = saved_flags


def _line(**changes: Any) -> AccessLine:
    values: dict[str, Any] = {
        "created_ns": time.time_ns(),
        "request_id": "req-1",
        "own_request_id": False,
        "client": "jwt",
        "tenant": 7,
        "operation_type": "query",
        "operation_name": "Lookup",
        "status": 200,
        "code": None,
        "seconds": 0.000412,
        "cost": 2,
        "client_name": None,
        "client_version": None,
        "trace_id": None,
    }
    return AccessLine(**(values | changes))


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    # Split at newlines only: a line may hold U+2028 (JSON need not escape it), which
    # str.splitlines() would split at too.
    return [json.loads(line) for line in stream.getvalue().split("\n") if line]


def _formatted(line: AccessLine) -> dict[str, Any]:
    """What the JSON handler's formatter writes for the stdlib record of `line`."""
    record = logging.makeLogRecord(
        {"name": "gateway.access", "levelno": logging.INFO, "levelname": "INFO",
         "msg": ACCESS_MESSAGE, "created": line.created_ns / 1e9, **line.fields()}
    )  # fmt: skip
    written: dict[str, Any] = json.loads(JsonFormatter(redact=redact).format(record))
    return written


async def test_lines_are_kept_then_written_together_in_the_json_handlers_format() -> None:
    with _json_logging() as json_logging:
        access = AccessLog(flush_seconds=60)
        secret = "Bearer abc.def.ghi"
        access.write(_line(request_id="req-1"))
        access.write(_line(request_id="req-2", operation_name=secret, client_name="me@example.com"))
        assert json_logging.getvalue() == ""  # kept: nothing written per request

        access.flush()
        first, second = _lines(json_logging)
        # Exactly what the handler's formatter writes for the same record (but the time).
        expected = _formatted(_line(request_id="req-1"))
        assert {k: v for k, v in first.items() if k != "ts"} == {
            k: v for k, v in expected.items() if k != "ts"
        }
        assert list(first) == list(expected)
        # Redacted as the formatter redacts every string field.
        assert second["request_id"] == "req-2"
        assert secret not in json_logging.getvalue()
        assert "abc.def.ghi" not in second["operation_name"]
        assert second["client_name"] == "[EMAIL]"
        assert first["ts"] <= second["ts"]
        access.flush()  # nothing left: nothing written twice
        assert len(_lines(json_logging)) == 2

        # The gateway's own request ids are written as they are; a caller's is redacted.
        access.write(_line(request_id="Bearer x", own_request_id=True))
        access.write(_line(request_id="Bearer x"))
        access.flush()
        assert [line["request_id"] for line in _lines(json_logging)[2:]] == [
            "Bearer x", "Bearer [REDACTED]"
        ]  # fmt: skip


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"seconds": 0.0, "cost": None, "tenant": None, "operation_type": None},
        {"seconds": 12.0, "status": 429, "code": "RATE_LIMITED", "operation_name": None},
        {"seconds": 1234.5678905, "client_name": "web", "client_version": "1.2.3"},
        {"seconds": 0.0000004, "trace_id": 0x0AF7651916CD43DD8448EB211C80319C},
        {"operation_name": 'quote " backslash \\ newline \n tab \t é ✓ \u2028 \x00'},
        {"client_name": "x" * 100, "client_version": "v" * 64 + "w"},
        {"client_name": "", "client_version": "", "request_id": 'caller "id" \\ é'},
        {"request_id": "fgw_live_abcdefghijklmnop", "client": "42", "code": "BAD_REQUEST"},
        {"own_request_id": True, "request_id": "0123456789abcdef0123456789abcdef"},
    ],
)
def test_a_written_line_is_the_record_the_json_formatter_writes(changes: dict[str, Any]) -> None:
    """The template (`AccessLog`, every request) and the formatter (the stdlib way, any other
    log line) write the same keys in the same order with the same values: escaping, numbers,
    nulls, truncated client names, trace ids and redaction included. The time is the line's
    own: the same instant, to the millisecond."""
    line = _line(**changes)
    with _json_logging() as json_logging:
        access = AccessLog(flush_seconds=60)
        access.write(line)
        access.flush()
        (written,) = _lines(json_logging)
    expected = _formatted(line)
    if line.own_request_id:  # the formatter would redact it; the gateway's own hex is left
        expected["request_id"] = line.request_id
    assert list(written) == list(expected)
    assert {k: v for k, v in written.items() if k != "ts"} == {
        k: v for k, v in expected.items() if k != "ts"
    }
    millis = line.created_ns // 1_000_000
    stamp = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=millis)
    assert written["ts"] == stamp.isoformat(timespec="milliseconds")


async def test_kept_lines_are_written_by_the_loop_after_flush_seconds() -> None:
    with _json_logging() as json_logging:
        access = AccessLog(flush_seconds=0.01)
        access.write(_line())
        assert json_logging.getvalue() == ""
        await asyncio.sleep(0.2)
        assert [line["request_id"] for line in _lines(json_logging)] == ["req-1"]


async def test_at_max_pending_lines_are_written_at_once() -> None:
    with _json_logging() as json_logging:
        access = AccessLog(flush_seconds=60, max_pending=3)
        for number in range(7):
            access.write(_line(request_id=f"req-{number}"))
        assert [line["request_id"] for line in _lines(json_logging)] == [
            f"req-{number}" for number in range(6)
        ]
        access.flush()
        assert len(_lines(json_logging)) == 7


def test_outside_an_event_loop_a_line_is_written_at_once() -> None:
    with _json_logging() as json_logging:
        AccessLog(flush_seconds=60).write(_line())
        assert len(_lines(json_logging)) == 1


async def test_any_other_handler_gets_records_the_stdlib_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _json_logging() as json_logging:
        access = AccessLog(flush_seconds=60)
        logging.getLogger().addHandler(caplog.handler)  # a second handler on the root
        with caplog.at_level(logging.INFO, logger="gateway.access"):
            access.write(_line(request_id="seen"))
            records = [r for r in caplog.records if r.name == "gateway.access"]
            assert [getattr(r, "request_id", None) for r in records] == ["seen"]
            # and the JSON handler wrote it through logging at once, not kept
            assert [line["request_id"] for line in _lines(json_logging)] == ["seen"]


async def test_kept_lines_go_the_stdlib_way_when_the_set_up_changed_before_the_flush() -> None:
    with _json_logging() as json_logging:
        access = AccessLog(flush_seconds=60)
        access.write(_line(request_id="kept"))
        other = io.StringIO()
        extra = logging.StreamHandler(other)
        extra.setFormatter(logging.Formatter("%(name)s %(message)s %(request_id)s"))
        logging.getLogger().addHandler(extra)
        try:
            access.flush()
        finally:
            logging.getLogger().removeHandler(extra)
        assert other.getvalue() == f"gateway.access {ACCESS_MESSAGE} kept\n"
        assert [line["request_id"] for line in _lines(json_logging)] == ["kept"]


def test_the_direct_way_only_when_the_json_handler_alone_writes_the_logger() -> None:
    with _json_logging():
        access_logger = logging.getLogger("gateway.access")
        handler = logging.getLogger().handlers[0]
        assert json_stream_handler(access_logger) is handler

        parent = logging.getLogger("gateway")
        parent.addHandler(logging.NullHandler())
        assert json_stream_handler(access_logger) is None
        parent.handlers.clear()

        access_logger.addFilter(logging.Filter("nothing"))
        assert json_stream_handler(access_logger) is None
        access_logger.filters.clear()

        access_logger.propagate = False
        assert json_stream_handler(access_logger) is None
        access_logger.propagate = True

        handler.setLevel(logging.WARNING)
        assert json_stream_handler(access_logger) is None
        handler.setLevel(logging.NOTSET)

        access_logger.setLevel(logging.WARNING)
        assert json_stream_handler(access_logger) is None
        access_logger.setLevel(logging.NOTSET)

        formatter = handler.formatter
        handler.setFormatter(logging.Formatter())
        assert json_stream_handler(access_logger) is None
        handler.setFormatter(formatter)
        assert json_stream_handler(access_logger) is handler


def test_the_text_format_has_no_direct_way() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, json_logs._json_handler)
    try:
        configure_logging("info", "text")
        assert json_stream_handler(logging.getLogger("gateway.access")) is None
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        json_logs._json_handler = saved[2]


async def test_the_apps_shutdown_writes_the_kept_lines(
    settings: Settings, services: Services, tenant_id: int
) -> None:
    app = create_app(settings, services)
    token = mint_token(settings, tenant_id=tenant_id, scopes=SCOPES)
    before = dt.datetime.now(dt.UTC)
    with _json_logging() as json_logging:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.post(
                    "/graphql",
                    json={"query": "query Shutdown { customers(first: 1) { totalCount } }"},
                    # A caller's request id is the caller's text: redacted like any other.
                    headers={
                        "authorization": f"Bearer {token}",
                        "x-request-id": "at-exit Bearer s3cr3t",
                        "apollographql-client-name": "web",
                        "apollographql-client-version": "v" * 70,
                    },
                )
            assert response.status_code == 200, response.text
            after = dt.datetime.now(dt.UTC)
        lines = [line for line in _lines(json_logging) if line["logger"] == "gateway.access"]
    # The kept line has the fields the stdlib way gives (test_telemetry) and the time the
    # request finished.
    [line] = lines
    written = dt.datetime.fromisoformat(line.pop("ts"))  # (in whole milliseconds)
    assert before - dt.timedelta(milliseconds=1) <= written <= after
    assert 0 < line.pop("duration_ms") < (after - before).total_seconds() * 1000
    assert line == {
        "level": "info", "logger": "gateway.access", "message": ACCESS_MESSAGE,
        "request_id": "at-exit Bearer [REDACTED]", "client": "jwt", "tenant": tenant_id,
        "operation_type": "query", "operation_name": "Shutdown", "status": 200, "code": None,
        "cost": 2, "client_name": "web", "client_version": "v" * 64,
    }  # fmt: skip


def test_timestamps_are_written_as_isoformat_writes_them() -> None:
    """`ts` is made once per second and the milliseconds added; it must match datetime's own
    rounding, including times a hair below a millisecond or a second."""
    stamps = json_logs._Timestamps()
    rng = random.Random(8)
    base = 1_764_646_149.0
    moments = [base + 0.9995, base + 0.0004999, base + 0.9999996, base - 0.0000004, 0.5, 4e9]
    moments += [rng.uniform(0, 4e9) for _ in range(20_000)]
    moments += [
        base + rng.randrange(3_000_000) / 1e6 + rng.choice((0, 5e-7, -5e-7)) for _ in range(20_000)
    ]
    for created in moments:
        expected = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")
        assert stamps.format(created) == expected, created


def test_timestamps_of_whole_milliseconds_share_the_seconds_prefix() -> None:
    """The access lines' `ts` (integer milliseconds) and every other line's (a float) come
    from one `_Timestamps`, whose prefix is made once a second: in any order, each is right."""
    stamps = json_logs._Timestamps()
    rng = random.Random(9)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    for _ in range(20_000):
        millis = rng.choice((1_764_646_149_000, 0, 4_000_000_000_000)) + rng.randrange(3_000)
        expected = (epoch + dt.timedelta(milliseconds=millis)).isoformat(timespec="milliseconds")
        assert stamps.from_millis(millis) == expected, millis
        created = millis / 1000 + rng.choice((0.0, 0.0004, -0.0004))
        expected = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")
        assert stamps.format(created) == expected, created
