"""Reconciliation from the command line: `gateway reconcile --tenant T --from D --to D`.

Reads every configured card processor's payouts arriving in [from, to), books them into the
tenant's ledger, matches them to the tenant's synced bank credits and stores the results
(adapters.reconciliation.run); prints them as a table or JSON and exits 1 when anything is
UNMATCHED or MISMATCHED (PENDING and MATCHED are not breaks), 2 on bad input.

The configured processor account is the tenant's: its payouts are booked into that tenant's
ledger. Bookings may lie further in the past than API postings may
(`RECONCILIATION_MAX_BACKDATE_DAYS`): processor history is a record of fact.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from adapters.ledger.posting_requests import EffectiveWindow
from adapters.ledger.tables import tenants
from adapters.money import format_minor_units
from adapters.reconciliation.matching import MatchWindow
from adapters.reconciliation.records import ReconciliationItem
from adapters.reconciliation.run import ReconciliationRun, run_reconciliation
from adapters.reconciliation.sources import CardProcessorSettlements
from gateway.env_values import integer

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = [
    "ReconciliationSettings",
    "add_reconcile_command",
    "load_reconciliation_settings",
    "run_reconcile_command",
]


@dataclass(frozen=True, slots=True)
class ReconciliationSettings:
    """RECONCILIATION_WINDOW_BEFORE_DAYS / _AFTER_DAYS: how far a bank credit's date may lie
    before / after a payout's arrival date; RECONCILIATION_LOOKBACK_DAYS: how long before the
    window payouts may have been created; RECONCILIATION_MAX_BACKDATE_DAYS: how old a
    booking's effective time may be."""

    window_before_days: int = 2
    window_after_days: int = 5
    lookback_days: int = 14
    max_backdate_days: int = 3650

    @property
    def window(self) -> MatchWindow:
        return MatchWindow(
            before=dt.timedelta(days=self.window_before_days),
            after=dt.timedelta(days=self.window_after_days),
        )


def load_reconciliation_settings(env: Mapping[str, str]) -> ReconciliationSettings:
    defaults = ReconciliationSettings()
    values: dict[str, int] = {}
    for name, field, bound in (
        ("RECONCILIATION_WINDOW_BEFORE_DAYS", "window_before_days", 366),
        ("RECONCILIATION_WINDOW_AFTER_DAYS", "window_after_days", 366),
        ("RECONCILIATION_LOOKBACK_DAYS", "lookback_days", 3660),
        ("RECONCILIATION_MAX_BACKDATE_DAYS", "max_backdate_days", 36600),
    ):
        values[field] = integer(env, name, getattr(defaults, field), minimum=0, maximum=bound)
    return ReconciliationSettings(**values)


def add_reconcile_command(commands: Any) -> None:
    parser = commands.add_parser(
        "reconcile",
        help="book processor payouts into the ledger and match them to bank credits; "
        "exit 1 on breaks",
    )
    parser.add_argument("--tenant", type=int, required=True)
    parser.add_argument("--from", dest="start", required=True, help="date or time (UTC)")
    parser.add_argument("--to", dest="end", required=True, help="date or time (UTC), excluded")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def _instant(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date or time: {text!r}") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _amount(amount: int | None, exponent: int | None, currency: str | None) -> str | None:
    if amount is None or exponent is None or currency is None:
        return None
    return f"{format_minor_units(amount, exponent)} {currency}"


def item_json(item: ReconciliationItem) -> dict[str, Any]:
    return {
        "status": item.status.name,
        "provider": item.provider,
        "payoutId": item.payout_id,
        "occurredAt": item.occurred_at.isoformat(),
        "missingOn": None if item.missing_on is None else item.missing_on.name,
        "payoutAmount": _amount(item.payout_amount, item.exponent, item.currency),
        "itemsNet": _amount(item.items_net, item.exponent, item.currency),
        "itemCount": item.item_count,
        "bankTransactionId": item.bank_transaction_id,
        "bankAmount": _amount(item.bank_amount, item.bank_exponent, item.bank_currency),
        "bankDate": None if item.bank_date is None else item.bank_date.isoformat(),
        "reasons": [{"code": r.code.name, "message": r.message} for r in item.reasons],
    }


def _print_table(runs: Sequence[ReconciliationRun]) -> None:
    rows = [("STATUS", "PROVIDER", "PAYOUT", "ARRIVAL", "PAYOUT AMOUNT", "BANK", "REASONS")]
    for run in runs:
        for item in run.items:
            data = item_json(item)
            rows.append(
                (
                    data["status"],
                    item.provider,
                    item.payout_id or "-",
                    item.occurred_at.date().isoformat(),
                    data["payoutAmount"] or "-",
                    data["bankAmount"] or "-",
                    "; ".join(f"{r['code']}: {r['message']}" for r in data["reasons"]) or "-",
                )
            )
    widths = [max(len(row[column]) for row in rows) for column in range(6)]
    for row in rows:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        print(cells, row[6])  # noqa: T201
    for run in runs:
        print(  # noqa: T201
            f"{run.provider}: {run.settlements} payouts, {run.movements} movements, "
            f"{run.bookings} bookings checked, {len(run.breaks)} breaks"
        )


async def run_reconcile_command(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.lifespan import open_services

    try:
        start, end = _instant(args.start), _instant(args.end)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201
        return 2
    if end <= start:
        print("error: --to must be after --from", file=sys.stderr)  # noqa: T201
        return 2
    config = settings.reconciliation
    async with open_services(settings) as services:
        async with services.engine.connect() as connection:
            known = await connection.scalar(select(tenants.c.id).where(tenants.c.id == args.tenant))
        if known is None:
            print(f"error: no tenant {args.tenant}", file=sys.stderr)  # noqa: T201
            return 2
        runtime = services.providers
        if runtime is None or not runtime.card_processors:
            print("error: no card processor is configured", file=sys.stderr)  # noqa: T201
            return 2
        window = EffectiveWindow(max_backdate=dt.timedelta(days=config.max_backdate_days))
        runs = []
        for processor in runtime.card_processors.values():
            source = CardProcessorSettlements(
                processor, lookback=dt.timedelta(days=config.lookback_days)
            )
            runs.append(
                await run_reconciliation(
                    engine=services.engine,
                    effective_window=window,
                    source=source,
                    tenant_id=args.tenant,
                    start=start,
                    end=end,
                    window=config.window,
                )
            )
    if args.json:
        body = {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "items": [item_json(item) for run in runs for item in run.items],
            "breaks": sum(len(run.breaks) for run in runs),
        }
        print(json.dumps(body, indent=2))  # noqa: T201
    else:
        _print_table(runs)
    return 1 if any(run.breaks for run in runs) else 0
