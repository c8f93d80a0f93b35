"""Plaid-shaped banking adapter: HTTP calls, Plaid errors, and mapping to our records.

Every call is a JSON POST with our `client_id` and `secret` in the body (and the item's
`access_token` where one is needed), pinned to API version 2020-09-14. Bodies are parsed with
Decimal for every JSON number, so Plaid's amounts (JSON numbers such as 12.3) become exact
integer minor units: never a float in between.

Normalization:
- transaction amounts: Plaid's positive = money out is flipped to ours, positive = money in;
- minor units use the ISO 4217 exponent of `iso_currency_code`; amounts in a non-ISO currency
  (`unofficial_currency_code`, e.g. crypto) use NON_ISO_EXPONENT decimal places;
- an amount with more decimals than its exponent allows is refused, never rounded.

The HTTP client is injected (base URL, transport, timeouts and any resilience layer are set on
it by the caller), so tests reach the sandbox in-process or over HTTP through the same code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from adapters.banking.protocol import ProviderCredentials
from adapters.banking.records import (
    AccountSet,
    BankAccount,
    BankBalances,
    BankTransaction,
    Institution,
    TransactionUpdates,
)
from adapters.crypto import SecretText
from adapters.errors import (
    InvalidInput,
    ProviderError,
    ProviderRateLimited,
    ProviderReauthRequired,
    ProviderRejected,
    ProviderUnavailable,
)
from adapters.money import currency_exponent

__all__ = ["NON_ISO_EXPONENT", "PLAID_API_VERSION", "PlaidProvider", "SyncPage"]

logger = logging.getLogger("adapters.banking.plaid")

PLAID_API_VERSION = "2020-09-14"
NON_ISO_EXPONENT = 8
_PROVIDER = "plaid"
_MUTATION_DURING_PAGINATION = "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"
# Item errors after which only the user can repair the link (by logging in again).
_REAUTH_CODES = frozenset(
    {"ITEM_LOGIN_REQUIRED", "PENDING_EXPIRATION", "ACCESS_NOT_GRANTED", "ITEM_LOCKED"}
)
_UNAVAILABLE_TYPES = frozenset({"API_ERROR", "INSTITUTION_ERROR"})


class _MutationDuringPagination(Exception):
    """The item changed while we paged through /transactions/sync: start over."""


@dataclass(frozen=True, slots=True)
class SyncPage:
    """One page of /transactions/sync, already mapped."""

    added: tuple[BankTransaction, ...]
    modified: tuple[BankTransaction, ...]
    removed: tuple[str, ...]
    accounts: tuple[BankAccount, ...]
    next_cursor: str
    has_more: bool


def _parse_json(text: str) -> Any:
    # parse_float=Decimal: every JSON number with a fraction or exponent arrives as Decimal.
    return json.loads(text, parse_float=Decimal)


def _exponent_for(iso_code: str | None, unofficial_code: str | None) -> tuple[str, int]:
    if iso_code:
        try:
            return iso_code, currency_exponent(iso_code)
        except InvalidInput:
            raise ProviderError(
                "the bank reported an unknown currency", provider=_PROVIDER
            ) from None
    if unofficial_code:
        return unofficial_code, NON_ISO_EXPONENT
    raise ProviderError("the bank reported no currency", provider=_PROVIDER)


def _minor_units(value: object, exponent: int) -> int:
    """Exact JSON number (int or Decimal) in major units -> integer minor units."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ProviderError("the bank reported a non-numeric amount", provider=_PROVIDER)
    try:
        scaled = Decimal(value).scaleb(exponent)
        integral = scaled.to_integral_value()
    except InvalidOperation:
        raise ProviderError("the bank reported an invalid amount", provider=_PROVIDER) from None
    if scaled != integral:
        raise ProviderError(
            "the bank reported more decimal places than the currency has", provider=_PROVIDER
        )
    return int(integral)


def _optional_minor_units(value: object, exponent: int) -> int | None:
    return None if value is None else _minor_units(value, exponent)


def _date(text: object) -> dt.date | None:
    return dt.date.fromisoformat(text) if isinstance(text, str) and text else None


def _datetime(text: object) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _account(raw: Mapping[str, Any], fetched_at: dt.datetime) -> BankAccount:
    balances = raw["balances"]
    currency, exponent = _exponent_for(
        balances.get("iso_currency_code"), balances.get("unofficial_currency_code")
    )
    mask = raw.get("mask")
    return BankAccount(
        provider_account_id=raw["account_id"],
        name=raw.get("name") or "",
        official_name=raw.get("official_name"),
        # Plaid sends only the last 2-4 digits; anything longer is cut to 4 all the same.
        mask=mask[-4:] if isinstance(mask, str) else None,
        type=raw.get("type") or "other",
        subtype=raw.get("subtype"),
        balances=BankBalances(
            current=_optional_minor_units(balances.get("current"), exponent),
            available=_optional_minor_units(balances.get("available"), exponent),
            limit=_optional_minor_units(balances.get("limit"), exponent),
            currency=currency,
            exponent=exponent,
        ),
        as_of=_datetime(balances.get("last_updated_datetime")) or fetched_at,
        provider=_PROVIDER,
    )


def _category(raw: Mapping[str, Any]) -> tuple[str, ...]:
    personal = raw.get("personal_finance_category")
    if isinstance(personal, Mapping) and personal.get("primary"):
        return tuple(str(part) for part in (personal["primary"], personal.get("detailed")) if part)
    legacy = raw.get("category")
    return tuple(str(part) for part in legacy) if isinstance(legacy, list) else ()


def _transaction(raw: Mapping[str, Any]) -> BankTransaction:
    currency, exponent = _exponent_for(
        raw.get("iso_currency_code"), raw.get("unofficial_currency_code")
    )
    posted_on = _date(raw.get("date"))
    if posted_on is None:
        raise ProviderError("the bank reported a transaction without a date", provider=_PROVIDER)
    return BankTransaction(
        provider_transaction_id=raw["transaction_id"],
        provider_account_id=raw["account_id"],
        amount=-_minor_units(raw["amount"], exponent),  # Plaid: positive = out; ours: in.
        currency=currency,
        exponent=exponent,
        date=posted_on,
        authorized_date=_date(raw.get("authorized_date")),
        name=raw.get("name") or raw.get("merchant_name") or "",
        merchant_name=raw.get("merchant_name"),
        category=_category(raw),
        is_pending=bool(raw.get("pending")),
        pending_transaction_id=raw.get("pending_transaction_id"),
        reference=(raw.get("payment_meta") or {}).get("reference_number") or None,
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_from(response: httpx.Response, body: Any) -> ProviderError | _MutationDuringPagination:
    """Translate a Plaid error response; Plaid's own message never reaches our message."""
    error = body if isinstance(body, Mapping) else {}
    error_type = str(error.get("error_type") or "")
    code = str(error.get("error_code") or "") or None
    request_id = error.get("request_id")
    request_id = str(request_id) if request_id else None
    if code == _MUTATION_DURING_PAGINATION:
        return _MutationDuringPagination()
    if response.status_code == 429 or error_type == "RATE_LIMIT_EXCEEDED":
        return ProviderRateLimited(
            "the bank data provider is rate limiting us",
            provider=_PROVIDER,
            request_id=request_id,
            provider_code=code,
            retry_after=_retry_after(response),
        )
    failure: type[ProviderError] = ProviderRejected
    message = "the bank data provider refused the request"
    if code in _REAUTH_CODES:
        failure, message = ProviderReauthRequired, "the customer must log in to their bank again"
    elif response.status_code >= 500 or error_type in _UNAVAILABLE_TYPES:
        failure, message = ProviderUnavailable, "the bank data provider is unavailable"
    return failure(message, provider=_PROVIDER, request_id=request_id, provider_code=code)


class PlaidProvider:
    """The Plaid API over an injected httpx client (see the module docstring)."""

    provider_name = _PROVIDER

    def __init__(
        self,
        http_client: httpx.AsyncClient,
        credentials: ProviderCredentials,
        *,
        sync_page_size: int = 500,
        max_sync_restarts: int = 5,
        max_sync_pages: int = 10_000,
    ) -> None:
        if not 1 <= sync_page_size <= 500:
            raise ValueError("sync_page_size must be 1..500 (Plaid's limits)")
        self._http = http_client
        self._credentials = credentials
        self._sync_page_size = sync_page_size
        self._max_sync_restarts = max_sync_restarts
        self._max_sync_pages = max_sync_pages

    def __repr__(self) -> str:
        return f"PlaidProvider(base_url={str(self._http.base_url)!r})"

    @property
    def name(self) -> str:
        return _PROVIDER

    async def _call(self, path: str, payload: Mapping[str, Any]) -> Any:
        body = {
            "client_id": self._credentials.client_id,
            "secret": self._credentials.secret.reveal(),
            **payload,
        }
        try:
            response = await self._http.post(
                path,
                content=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Plaid-Version": PLAID_API_VERSION},
            )
        except httpx.TimeoutException as error:
            raise ProviderUnavailable(
                "the bank data provider timed out", provider=_PROVIDER
            ) from error
        except httpx.TransportError as error:
            raise ProviderUnavailable(
                "the bank data provider is unreachable", provider=_PROVIDER
            ) from error
        try:
            parsed = _parse_json(response.text)
        except ValueError:
            parsed = None
        if response.status_code != 200:
            failure = _error_from(response, parsed)
            logger.info(
                "plaid %s failed: status %s, code %s, request %s",
                path,
                response.status_code,
                getattr(failure, "provider_code", "MUTATION_DURING_PAGINATION"),
                getattr(failure, "request_id", None),
            )
            raise failure
        if not isinstance(parsed, Mapping):
            raise ProviderUnavailable(
                "the bank data provider sent an unreadable answer", provider=_PROVIDER
            )
        return parsed

    async def _accounts(
        self, path: str, access_token: SecretText, options: Mapping[str, Any]
    ) -> AccountSet:
        payload: dict[str, Any] = {"access_token": access_token.reveal()}
        if options:
            payload["options"] = dict(options)
        body = await self._call(path, payload)
        fetched_at = dt.datetime.now(dt.UTC)
        item = body.get("item") or {}
        return AccountSet(
            item_id=str(item.get("item_id") or ""),
            institution_id=item.get("institution_id"),
            accounts=tuple(_account(raw, fetched_at) for raw in body["accounts"]),
        )

    async def get_accounts(self, access_token: SecretText) -> AccountSet:
        return await self._accounts("/accounts/get", access_token, {})

    async def get_live_balances(
        self, access_token: SecretText, account_ids: Sequence[str] | None = None
    ) -> AccountSet:
        options = {"account_ids": list(account_ids)} if account_ids else {}
        return await self._accounts("/accounts/balance/get", access_token, options)

    async def get_institution(
        self, institution_id: str, country_codes: Sequence[str] = ("US",)
    ) -> Institution:
        body = await self._call(
            "/institutions/get_by_id",
            {
                "institution_id": institution_id,
                "country_codes": list(country_codes),
                "options": {"include_optional_metadata": True},
            },
        )
        raw = body["institution"]
        return Institution(
            institution_id=raw["institution_id"],
            name=raw["name"],
            country_codes=tuple(raw.get("country_codes") or ()),
            url=raw.get("url"),
            primary_color=raw.get("primary_color"),
            products=tuple(raw.get("products") or ()),
        )

    async def revoke_access(self, access_token: SecretText) -> None:
        """/item/remove: the access token and the item stop working at Plaid."""
        await self._call("/item/remove", {"access_token": access_token.reveal()})

    async def get_webhook_verification_key(self, key_id: str) -> Mapping[str, Any]:
        """The public JWK that signs Plaid webhooks with this `kid` (see webhooks.py)."""
        body = await self._call("/webhook_verification_key/get", {"key_id": key_id})
        key = body.get("key")
        if not isinstance(key, Mapping):
            raise ProviderUnavailable("webhook key answer without a key", provider=_PROVIDER)
        return key

    async def sync_page(self, access_token: SecretText, cursor: str | None) -> SyncPage:
        """One page of /transactions/sync after `cursor` (None or "": from the beginning)."""
        payload: dict[str, Any] = {
            "access_token": access_token.reveal(),
            "count": self._sync_page_size,
            "options": {"include_personal_finance_category": True},
        }
        if cursor:
            payload["cursor"] = cursor
        body = await self._call("/transactions/sync", payload)
        fetched_at = dt.datetime.now(dt.UTC)
        return SyncPage(
            added=tuple(_transaction(raw) for raw in body["added"]),
            modified=tuple(_transaction(raw) for raw in body["modified"]),
            removed=tuple(str(raw["transaction_id"]) for raw in body["removed"]),
            accounts=tuple(_account(raw, fetched_at) for raw in body.get("accounts") or ()),
            next_cursor=str(body["next_cursor"]),
            has_more=bool(body["has_more"]),
        )

    async def sync_transactions(
        self, access_token: SecretText, cursor: str | None
    ) -> TransactionUpdates:
        """Page until `has_more` is false; start again from `cursor` whenever Plaid reports
        that the item changed during pagination (up to `max_sync_restarts` times)."""
        restarts = 0
        while True:
            try:
                return await self._sync_from(access_token, cursor, restarts)
            except _MutationDuringPagination:
                restarts += 1
                if restarts > self._max_sync_restarts:
                    raise ProviderUnavailable(
                        "bank data kept changing during sync; try again later",
                        provider=_PROVIDER,
                        provider_code=_MUTATION_DURING_PAGINATION,
                    ) from None
                logger.info("plaid transactions changed during pagination; restarting sync")

    async def _sync_from(
        self, access_token: SecretText, cursor: str | None, restarts: int
    ) -> TransactionUpdates:
        # Latest state per transaction id across the page set: a transaction or None (removed).
        latest: dict[str, BankTransaction | None] = {}
        first_seen_as_added: set[str] = set()
        accounts: dict[str, BankAccount] = {}
        page_cursor = cursor
        for pages in range(1, self._max_sync_pages + 1):
            page = await self.sync_page(access_token, page_cursor)
            for transaction in page.added:
                if transaction.provider_transaction_id not in latest:
                    first_seen_as_added.add(transaction.provider_transaction_id)
                latest[transaction.provider_transaction_id] = transaction
            for transaction in page.modified:
                latest[transaction.provider_transaction_id] = transaction
            for transaction_id in page.removed:
                latest[transaction_id] = None
            accounts.update((account.provider_account_id, account) for account in page.accounts)
            if not page.has_more:
                kept = [t for t in latest.values() if t is not None]
                return TransactionUpdates(
                    added=tuple(
                        t for t in kept if t.provider_transaction_id in first_seen_as_added
                    ),
                    modified=tuple(
                        t for t in kept if t.provider_transaction_id not in first_seen_as_added
                    ),
                    removed=tuple(tid for tid, t in latest.items() if t is None),
                    accounts=tuple(accounts.values()),
                    next_cursor=page.next_cursor,
                    pages=pages,
                    restarts=restarts,
                )
            page_cursor = page.next_cursor
        raise ProviderUnavailable("bank data sync did not finish", provider=_PROVIDER)
