"""An export of a million ledger entries streams through the real ASGI app in bounded memory.

PostgreSQL only: the rows are made with one INSERT ... SELECT generate_series in the test
run's own database, and read back through the export's server-side cursor. The app is called
as an ASGI server calls it, with a `send` that counts the body and drops it (httpx's
ASGITransport would keep the whole body), sampling the process's resident memory as the chunks
arrive: if rows piled up anywhere (the result, the CSV, the response) a million of them would
take hundreds of megabytes.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import time
from collections.abc import MutableMapping
from typing import Any

import pytest
from sqlalchemy import text

from gateway.app import create_app
from gateway.auth import mint_token
from gateway.lifespan import Services
from gateway.settings import Settings
from tests.factories import make_account, make_tenant, post_transfer
from tests.fixtures.database import Database

pytestmark = pytest.mark.postgres_only
logger = logging.getLogger(__name__)

ROWS = 1_000_000
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MAX_GROWTH_BYTES = 50 * 1024 * 1024
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_SIZE


async def _make_entries(database: Database, tenant_id: int, rows: int) -> None:
    """`rows` entries on two accounts of one transaction, five seconds apart from START."""
    engine = database.engine
    cash = await make_account(engine, tenant_id, name="Cash")
    revenue = await make_account(engine, tenant_id, name="Revenue", normal_balance="credit")
    posted = await post_transfer(
        engine, tenant_id, debit=cash, credit=revenue, amount=1, effective_at=START,
        description='Bulk, "generated"',
    )  # fmt: skip
    async with engine.begin() as connection:
        # The rows name rows that exist (the transaction, the accounts): skip the foreign-key
        # triggers, a third of the insert's time, for this transaction only.
        await connection.execute(text("set local session_replication_role = replica"))
        await connection.execute(
            text(
                "insert into ledger_entries"
                " (tenant_id, transaction_id, account_id, direction, amount, currency, status,"
                "  effective_at)"
                " select cast(:tenant as bigint), cast(:transaction as bigint),"
                "  case when g % 2 = 0 then cast(:cash as bigint)"
                "   else cast(:revenue as bigint) end,"
                "  case when g % 2 = 0 then 'debit' else 'credit' end,"
                "  g, 'USD', 'posted', cast(:start as timestamptz) + g * interval '5 seconds'"
                " from generate_series(1, cast(:rows as integer)) as g"
            ),
            {"tenant": tenant_id, "transaction": posted.transaction.id, "cash": cash,
             "revenue": revenue, "start": START, "rows": rows},
        )  # fmt: skip
        await connection.execute(text("analyze ledger_entries"))


async def test_a_million_entries_stream_in_bounded_memory(
    postgres: Database, settings: Settings, services: Services
) -> None:
    tenant_id = await make_tenant(postgres.engine)
    await _make_entries(postgres, tenant_id, ROWS)
    app = create_app(settings, services)
    token = mint_token(settings, tenant_id=tenant_id, scopes=["ledger:read"])
    last = (START + dt.timedelta(seconds=5 * ROWS)).date()
    query = f"from={START.date().isoformat()}&to={last.isoformat()}"
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/exports/ledger-entries.csv", "raw_path": b"/exports/ledger-entries.csv",
        "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"gateway.test"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000), "server": ("gateway.test", 80),
    }  # fmt: skip
    seen: dict[str, Any] = {
        "status": None,
        "bytes": 0,
        "lines": 0,
        "chunks": 0,
        "ended": False,
        "early": None,
    }
    first_rows = bytearray()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            return
        body: bytes = message.get("body", b"")
        seen["bytes"] += len(body)
        seen["lines"] += body.count(b"\r\n")
        seen["chunks"] += 1
        if len(first_rows) < 1000:
            first_rows.extend(body[:1000])
        if seen["chunks"] % 20 == 0:
            seen["peak"] = max(seen["peak"], _resident_bytes())
            if seen["early"] is None and seen["lines"] >= ROWS // 10:
                seen["early"] = seen["peak"]  # after a tenth of the rows
        if not message.get("more_body", False):
            seen["ended"] = True

    gc.collect()
    baseline = _resident_bytes()
    seen["peak"] = baseline
    started = time.monotonic()
    await app(scope, receive, send)
    elapsed = time.monotonic() - started
    seen["peak"] = max(seen["peak"], _resident_bytes())

    assert seen["status"] == 200
    assert seen["ended"]
    # The header and one line per entry: the million and the two posted through the ledger.
    assert seen["lines"] == 1 + ROWS + 2
    assert first_rows.startswith(b"entry_id,transaction_id,")
    assert b'"Bulk, ""generated"""' in first_rows
    growth = seen["peak"] - baseline
    logger.info(  # shown with --log-cli-level=INFO
        f"{ROWS} rows, {seen['bytes'] / 1e6:.0f} MB of CSV in {seen['chunks']} chunks, "
        f"{elapsed:.1f}s; resident memory grew by {growth / 1e6:.1f} MB at most"
    )
    assert growth < MAX_GROWTH_BYTES
    # Independent of the row count: the last nine tenths of the rows add next to nothing.
    assert seen["peak"] - seen["early"] < MAX_GROWTH_BYTES / 5
