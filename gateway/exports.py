"""Streamed CSV exports over a range of days (README, "Exports"):

    GET /exports/ledger-entries.csv?from=YYYY-MM-DD&to=YYYY-MM-DD[&accountId=<LedgerAccount id>]
    GET /exports/ledger-accounts/<LedgerAccount id>/statement.csv?from=...&to=...
    GET /exports/bank-transactions.csv?from=...&to=...[&bankAccountId=...][&customerId=...]

Order of checks; every refusal answers JSON shaped like /graphql's errors (`extensions.code`)
and nothing streams: authentication as on /graphql (401), the export's scopes (403; derived
from the GraphQL fields its columns show, below), the parameters (400 BAD_USER_INPUT: days
`from`..`to` both included, `from` not after `to`, at most EXPORT_MAX_DAYS of them; unknown
parameters are refused), the process's export slots (503 EXPORTS_BUSY), the rate limit (429;
EXPORT_COST points per export, on the caller's /graphql budget), the ids named (404
NOT_FOUND for a missing id or one of another tenant), then the first batch of rows. Past that
the body streams; a failure mid-stream ends the connection without the closing chunk, so a
client never takes a truncated file for a whole one.

The file: UTF-8 CSV as RFC 4180 says (CRLF line ends, a field quoted when it holds a comma,
a quote or a line break, quotes doubled), a header row; money as exact decimal strings with the
exponent the row's account stores; times RFC 3339 UTC; ids the global ids the GraphQL API uses.
A text cell (names, descriptions) that starts with = + - @ or a tab gets a leading apostrophe,
so a spreadsheet shows it as text instead of running it as a formula (CSV injection).

Each column names the GraphQL field it shows: the export needs every scope those fields need
(resolvers.permissions.field_scope), so the rules cannot drift from the API's. No column shows
a masked field (such as Customer.email): this module refuses to load if one does, since an
export has no masking or audit path.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import logging
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import aclosing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from adapters import records
from adapters.banking.exports import BankExports, BankTransactionLine
from adapters.banking.queries import BankReader
from adapters.errors import AdapterError, InvalidInput, NotFound
from adapters.ledger.exports import EntryLine, LedgerExports
from adapters.ledger.history import Counters
from adapters.ledger.periods import day_start
from adapters.money import format_minor_units
from gateway.catch_all import new_request_id
from gateway.lifespan import Services
from gateway.rate_limits import RateLimitDecision, RateLimited, RateLimiter
from resolvers.errors import GatewayError
from resolvers.node import decode_id_of, encode_global_id
from resolvers.permissions import field_scope, mask_scope
from resolvers.principal import Principal
from resolvers.scalars import serialize_datetime

__all__ = [
    "EXPORTS",
    "Column",
    "Export",
    "ExportEndpoints",
    "ExportResponse",
    "ExportsBusy",
    "export_routes",
    "export_scopes",
]

logger = logging.getLogger("gateway.exports")

_CSV_MEDIA_TYPE = "text/csv; charset=utf-8; header=present"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FORMULA_START = frozenset("=+-@\t\r")
_RETRY_AFTER_SECONDS = 5

# A batch of rendered rows: one tuple of cell strings per row.
Rows = list[tuple[str, ...]]


class ExportsBusy(GatewayError):
    """Every export slot of this process is streaming; retry shortly."""

    code = "EXPORTS_BUSY"
    status_code = 503


@dataclass(frozen=True, slots=True)
class Column:
    """A CSV column and the GraphQL field (type, field) whose value it shows; None for a
    column that shows no data of its own (a row's kind)."""

    name: str
    source: tuple[str, str] | None


def export_scopes(columns: Iterable[Column]) -> frozenset[str]:
    """Every scope needed to read the fields the columns show. Raises LookupError for a field
    with no scope rule, and ValueError for a masked field: exports never show one."""
    scopes: set[str] = set()
    for column in columns:
        if column.source is None:
            continue
        if mask_scope(*column.source) is not None:
            raise ValueError(
                f"export column {column.name!r} shows {'.'.join(column.source)}, a masked "
                "field: exports have no masking or audit path for it"
            )
        scope = field_scope(*column.source)
        if scope is not None:
            scopes.add(scope)
    return frozenset(scopes)


def _cached_ids(type_name: str) -> Callable[[int], str]:
    """Global ids of `type_name` for ids that repeat down an export (accounts, transactions)."""

    @lru_cache(maxsize=4096)
    def encode(pk: int) -> str:
        return encode_global_id(type_name, pk)

    return encode


_ACCOUNT_ID = _cached_ids("LedgerAccount")
_TRANSACTION_ID = _cached_ids("LedgerTransaction")
_BANK_ACCOUNT_ID = _cached_ids("BankAccount")
_CUSTOMER_ID = _cached_ids("Customer")
# GraphQL's enum values: DEBIT, POSTED, ...
_ENUM_VALUES: dict[records.Direction | records.TransactionStatus, str] = {
    member: member.name
    for enum in (records.Direction, records.TransactionStatus)
    for member in enum
}


def _text(value: str | None) -> str:
    """A free-text cell, defused for spreadsheets (see the module's docstring)."""
    if not value:
        return ""
    return "'" + value if value[0] in _FORMULA_START else value


def _csv(rows: Iterable[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    # The excel dialect is RFC 4180's: minimal quoting, quotes doubled, CRLF (set explicitly).
    csv.writer(buffer, dialect="excel", lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


def _balances(account: records.LedgerAccount, counters: Counters) -> tuple[int, int]:
    """Posted and pending (posted plus pending) balances, signed by the normal balance."""
    at = dataclasses.replace(
        account,
        posted_debits=counters.posted_debits,
        posted_credits=counters.posted_credits,
        pending_debits=counters.pending_debits,
        pending_credits=counters.pending_credits,
    )
    return at.posted_balance, at.pending_balance


@dataclass(frozen=True, slots=True)
class _Query:
    """What the request asked for, checked: the days and the primary keys of the ids."""

    first: dt.date
    last: dt.date
    ids: Mapping[str, int]


# rows(services, tenant id, query): the rendered rows in batches; ids are looked up first.
RowSource = Callable[["_Sources", int, _Query], AsyncGenerator[Rows]]


@dataclass(frozen=True, slots=True)
class Export:
    """One export: its file name, columns, query parameters and rows."""

    name: str
    columns: tuple[Column, ...]
    # Optional query parameters holding a global id: parameter -> GraphQL type of the id.
    id_parameters: Mapping[str, str]
    rows: RowSource
    # A path parameter holding a global id, and its type (the statement's account).
    path_id: tuple[str, str] | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return export_scopes(self.columns)

    @property
    def header(self) -> bytes:
        return _csv([[column.name for column in self.columns]])


class _Sources:
    """The adapters an export reads, for one process."""

    def __init__(self, services: Services) -> None:
        self.reader = services.reader
        batch_size = services.settings.exports.batch_rows
        self.ledger = LedgerExports(services.engine, batch_size=batch_size)
        self.bank = BankExports(services.engine, batch_size=batch_size)
        self.bank_reader = BankReader(services.engine)

    async def account(self, tenant_id: int, pk: int, parameter: str) -> records.LedgerAccount:
        (account,) = await self.reader.accounts_by_ids(tenant_id, [pk])
        if account is None:
            raise NotFound("no ledger account has this id", field=parameter)
        return account


# -- ledger entries --------------------------------------------------------------------------

_ENTRY_COLUMNS = (
    Column("entry_id", ("LedgerEntry", "id")),
    Column("transaction_id", ("LedgerTransaction", "id")),
    Column("account_id", ("LedgerAccount", "id")),
    Column("account_name", ("LedgerAccount", "name")),
    Column("effective_at", ("LedgerEntry", "effectiveAt")),
    Column("direction", ("LedgerEntry", "direction")),
    Column("amount", ("LedgerEntry", "amount")),
    Column("currency", ("LedgerAccount", "currency")),
    Column("status", ("LedgerEntry", "status")),
    Column("description", ("LedgerTransaction", "description")),
)


def _entry_row(line: EntryLine) -> tuple[str, ...]:
    return (
        encode_global_id("LedgerEntry", line.id),
        _TRANSACTION_ID(line.transaction_id),
        _ACCOUNT_ID(line.account_id),
        _text(line.account_name),
        serialize_datetime(line.effective_at),
        _ENUM_VALUES[line.direction],
        format_minor_units(line.amount, line.currency_exponent),
        line.currency,
        _ENUM_VALUES[line.status],
        _text(line.description),
    )


async def _entry_rows(sources: _Sources, tenant_id: int, query: _Query) -> AsyncGenerator[Rows]:
    account_id = query.ids.get("accountId")
    if account_id is not None:
        await sources.account(tenant_id, account_id, "accountId")
    entries = sources.ledger.entries(tenant_id, query.first, query.last, account_id=account_id)
    async with aclosing(entries) as batches:
        async for batch in batches:
            yield [_entry_row(line) for line in batch]


# -- statements ------------------------------------------------------------------------------

_STATEMENT_COLUMNS = (
    Column("row_type", None),  # opening, entry or closing
    Column("entry_id", ("LedgerEntry", "id")),
    Column("transaction_id", ("LedgerTransaction", "id")),
    Column("effective_at", ("LedgerEntry", "effectiveAt")),
    Column("description", ("LedgerTransaction", "description")),
    Column("status", ("LedgerEntry", "status")),
    Column("debit", ("LedgerEntry", "amount")),
    Column("credit", ("LedgerEntry", "amount")),
    Column("currency", ("LedgerAccount", "currency")),
    Column("posted_balance", ("LedgerBalance", "posted")),
    Column("pending_balance", ("LedgerBalance", "pending")),
)


async def _statement_rows(sources: _Sources, tenant_id: int, query: _Query) -> AsyncGenerator[Rows]:
    """An opening row (balances at the start of `from`), one row per entry of the period
    with the running balances after it, a closing row (the period's debits and credits and
    the balances at the end of `to`): the figures of GraphQL's `LedgerAccount.statement`."""
    account = await sources.account(tenant_id, query.ids["accountId"], "accountId")
    exponent, currency = account.currency_exponent, account.currency

    def money(minor_units: int) -> str:
        return format_minor_units(minor_units, exponent)

    async with sources.ledger.statement(tenant_id, account.id, query.first, query.last) as read:
        posted, pending = _balances(account, read.totals.opening)
        rows: Rows = [
            ("opening", "", "", serialize_datetime(day_start(query.first)), "", "", "", "",
             currency, money(posted), money(pending)),
        ]  # fmt: skip
        async for batch in read.batches:
            for line in batch:
                signed = line.amount if line.direction is account.normal_balance else -line.amount
                pending += signed
                if line.status is records.TransactionStatus.POSTED:
                    posted += signed
                amount = money(line.amount)
                is_debit = line.direction is records.Direction.DEBIT
                rows.append((
                    "entry",
                    encode_global_id("LedgerEntry", line.id),
                    _TRANSACTION_ID(line.transaction_id),
                    serialize_datetime(line.effective_at),
                    _text(line.description),
                    _ENUM_VALUES[line.status],
                    amount if is_debit else "",
                    "" if is_debit else amount,
                    currency,
                    money(posted),
                    money(pending),
                ))  # fmt: skip
            yield rows
            rows = []
        movements = read.totals.movements
        closing = _balances(account, read.totals.closing)
        if closing != (posted, pending):  # the version log and the entries disagree
            logger.error(
                "statement export: entries add up to %s, the version log to %s (account %s)",
                (posted, pending), closing, account.id,
            )  # fmt: skip
        end = day_start(query.last) + dt.timedelta(days=1)
        rows.append(
            ("closing", "", "", serialize_datetime(end), "", "",
             money(movements.posted_debits + movements.pending_debits),
             money(movements.posted_credits + movements.pending_credits),
             currency, money(closing[0]), money(closing[1])),
        )  # fmt: skip
        yield rows


# -- bank transactions -----------------------------------------------------------------------

_BANK_COLUMNS = (
    Column("transaction_id", ("BankTransaction", "id")),
    Column("provider_transaction_id", ("BankTransaction", "providerTransactionId")),
    Column("bank_account_id", ("BankAccount", "id")),
    Column("customer_id", ("Customer", "id")),
    Column("date", ("BankTransaction", "date")),
    Column("authorized_date", ("BankTransaction", "authorizedDate")),
    Column("name", ("BankTransaction", "name")),
    Column("merchant_name", ("BankTransaction", "merchantName")),
    Column("category_primary", ("BankTransaction", "category")),
    Column("category_detailed", ("BankTransaction", "category")),
    Column("amount", ("BankTransaction", "amount")),
    Column("currency", ("BankTransaction", "amount")),
    Column("is_pending", ("BankTransaction", "isPending")),
)


def _bank_row(line: BankTransactionLine) -> tuple[str, ...]:
    authorized = line.authorized_date
    return (
        encode_global_id("BankTransaction", line.id),
        _text(line.provider_transaction_id),
        _BANK_ACCOUNT_ID(line.bank_account_id),
        _CUSTOMER_ID(line.customer_id),
        line.date.isoformat(),
        "" if authorized is None else authorized.isoformat(),
        _text(line.name),
        _text(line.merchant_name),
        _text(line.category_primary),
        _text(line.category_detailed),
        format_minor_units(line.amount, line.currency_exponent),
        line.currency,
        "true" if line.is_pending else "false",
    )


async def _bank_rows(sources: _Sources, tenant_id: int, query: _Query) -> AsyncGenerator[Rows]:
    bank_account_id = query.ids.get("bankAccountId")
    customer_id = query.ids.get("customerId")
    if bank_account_id is not None:
        (found,) = await sources.bank_reader.accounts_by_ids(tenant_id, [bank_account_id])
        if found is None:
            raise NotFound("no bank account has this id", field="bankAccountId")
    if customer_id is not None:
        (customer,) = await sources.reader.customers_by_ids(tenant_id, [customer_id])
        if customer is None:
            raise NotFound("no customer has this id", field="customerId")
    transactions = sources.bank.transactions(
        tenant_id, query.first, query.last, bank_account_id=bank_account_id,
        customer_id=customer_id,
    )  # fmt: skip
    async with aclosing(transactions) as batches:
        async for batch in batches:
            yield [_bank_row(line) for line in batch]


LEDGER_ENTRIES = Export(
    "ledger-entries", _ENTRY_COLUMNS, {"accountId": "LedgerAccount"}, _entry_rows
)
STATEMENT = Export(
    "statement", _STATEMENT_COLUMNS, {}, _statement_rows, path_id=("accountId", "LedgerAccount")
)
BANK_TRANSACTIONS = Export(
    "bank-transactions",
    _BANK_COLUMNS,
    {"bankAccountId": "BankAccount", "customerId": "Customer"},
    _bank_rows,
)
EXPORTS = (LEDGER_ENTRIES, STATEMENT, BANK_TRANSACTIONS)
for _export in EXPORTS:  # a masked or unruled column fails here, at import
    _export.scopes  # noqa: B018


# -- the endpoint ----------------------------------------------------------------------------


def _error(error: GatewayError | AdapterError, request_id: str) -> Response:
    extensions: dict[str, Any] = {"code": error.code}
    headers = {"x-request-id": request_id, "cache-control": "no-store"}
    if isinstance(error, GatewayError):
        status = error.status_code
        extensions |= error.extensions
        if status == 401:
            headers["www-authenticate"] = "Bearer"
        if isinstance(error, RateLimited):
            headers |= error.headers
        if isinstance(error, ExportsBusy):
            headers["retry-after"] = str(_RETRY_AFTER_SECONDS)
    else:
        status = 404 if isinstance(error, NotFound) else 400
        if error.field is not None:
            extensions["field"] = error.field
    body = {"errors": [{"message": error.message, "extensions": extensions}]}
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _day(params: Mapping[str, str], name: str) -> dt.date:
    text = params.get(name)
    if not text:
        raise InvalidInput(f"{name} is required: a day like 2026-03-01", field=name)
    if not _DATE.fullmatch(text):
        raise InvalidInput(f"{name} must be a day like 2026-03-01, got {text!r}", field=name)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} is not a valid day: {text!r}", field=name) from None


def _global_id(text: str, type_name: str, name: str) -> int:
    try:
        return decode_id_of(type_name, text, field=name)
    except NotFound:  # malformed, or an id of another type
        raise InvalidInput(f"{name} is not a {type_name} id", field=name) from None


def _query(request: Request, export: Export, max_days: int) -> _Query:
    params = request.query_params
    allowed = {"from", "to", *export.id_parameters}
    unknown = sorted(set(params.keys()) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown parameter {unknown[0]!r}; this export takes {', '.join(sorted(allowed))}",
            field=unknown[0],
        )
    if any(len(params.getlist(name)) > 1 for name in allowed):
        raise InvalidInput("each parameter may be given once")
    first, last = _day(params, "from"), _day(params, "to")
    if first > last:
        raise InvalidInput("from must not be after to", field="from")
    if (last - first).days + 1 > max_days:
        raise InvalidInput(f"an export covers at most {max_days} days", field="to")
    ids = {
        name: _global_id(params[name], type_name, name)
        for name, type_name in export.id_parameters.items()
        if params.get(name)
    }
    if export.path_id is not None:
        name, type_name = export.path_id
        ids[name] = _global_id(request.path_params[name], type_name, name)
    return _Query(first, last, ids)


class ExportEndpoints:
    """The /exports routes of one process."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._settings = services.settings.exports
        self._sources = _Sources(services)
        self._streaming = 0
        if services.rate_limiter is None:  # tests and embedded use: an in-process one
            services.rate_limiter = RateLimiter(services.settings.rate_limits)
        self._rate_limiter = services.rate_limiter

    def _take_slot(self) -> None:
        if self._streaming >= self._settings.max_concurrent:
            raise ExportsBusy(
                "every export slot is in use; retry after the Retry-After header's seconds",
                retryable=True,
            )
        self._streaming += 1

    async def _charge(self, principal: Principal) -> RateLimitDecision | None:
        settings = self._services.settings
        if not settings.rate_limits.enabled:
            return None
        rate = await self._rate_limiter.charge(principal, self._settings.cost)
        if not rate.allowed:
            client = "jwt" if principal.client_id is None else str(principal.client_id)
            self._services.metrics.rate_limited(client)
            raise RateLimited(
                "rate limit exceeded; retry after the Retry-After header's seconds",
                rate.headers,
                retryAfterSeconds=int(rate.headers["retry-after"]),
            )
        return rate

    async def _body(self, export: Export, tenant_id: int, query: _Query) -> AsyncGenerator[bytes]:
        """The CSV, header first; holds one of the process's export slots until it ends
        (finished, failed or abandoned)."""
        try:
            header: bytes | None = export.header
            async with aclosing(export.rows(self._sources, tenant_id, query)) as batches:
                async for rows in batches:
                    chunk = _csv(rows)
                    if header is not None:
                        chunk, header = header + chunk, None
                    yield chunk
            if header is not None:
                yield header
        finally:
            self._streaming -= 1

    async def serve(self, request: Request, export: Export) -> Response:
        headers = request.headers
        request_id = headers.get("x-request-id", "")[:64] or new_request_id()
        try:
            principal = await self._services.authenticator.authenticate(
                headers.get("authorization"), headers.get("x-api-key")
            )
            if request.path_params.get("format") != "csv":
                raise NotFound("exports are served as .csv", field="format")
            for scope in sorted(export.scopes):
                principal.require(scope)
            query = _query(request, export, self._settings.max_days)
            self._take_slot()
            try:
                rate = await self._charge(principal)
            except BaseException:
                self._streaming -= 1
                raise
            body = self._body(export, principal.tenant_id, query)
            # The id lookups and the first batch: a failure up to here still answers JSON.
            first_chunk = await anext(body)
        except (GatewayError, AdapterError) as error:
            return _error(error, request_id)
        filename = f"{export.name}_{query.first.isoformat()}_{query.last.isoformat()}.csv"
        response_headers = {
            "x-request-id": request_id,
            "cache-control": "no-store",
            "content-disposition": f'attachment; filename="{filename}"',
            "x-content-type-options": "nosniff",
            **({} if rate is None else rate.headers),
        }
        return ExportResponse(first_chunk, body, response_headers)


async def _prepend(first: bytes, rest: AsyncGenerator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


class ExportResponse(StreamingResponse):
    """Streams `first`, then the rest of the body, and closes the body however the response
    ends (finished, failed, or the client gone), so its connection and export slot are
    released at once rather than when the garbage collector finds the body."""

    def __init__(
        self, first: bytes, rest: AsyncGenerator[bytes], headers: Mapping[str, str]
    ) -> None:
        super().__init__(_prepend(first, rest), headers=headers, media_type=_CSV_MEDIA_TYPE)
        self._rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self._rest.aclose()


def export_routes(current: Callable[[], Services]) -> list[BaseRoute]:
    """The /exports routes; the endpoints are built on the first request (services are
    opened by the lifespan)."""
    endpoints: list[ExportEndpoints] = []

    def route(export: Export) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not endpoints:
                endpoints.append(ExportEndpoints(current()))
            return await endpoints[0].serve(request, export)

        return endpoint

    return [
        Route("/exports/ledger-entries.{format}", route(LEDGER_ENTRIES), methods=["GET"]),
        Route(
            "/exports/ledger-accounts/{accountId}/statement.{format}",
            route(STATEMENT),
            methods=["GET"],
        ),
        Route("/exports/bank-transactions.{format}", route(BANK_TRANSACTIONS), methods=["GET"]),
    ]
