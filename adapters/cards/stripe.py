"""The Stripe-shaped card processor: pooled async HTTP, expand, list and search pagination.

Every call goes through one seam, `send(request) -> response`; by default that is the
pooled `httpx.AsyncClient.send`, and the resilient HTTP layer (retries, breaker, caps) can
be passed in instead without touching the mapping. Reads expand the latest charge with its
balance transaction, refunds and dispute, so one call returns everything a CardPayment holds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import httpx

from adapters.cards.protocol import MAX_PAGE_SIZE
from adapters.cards.records import (
    BalanceTransaction,
    CardPage,
    CardPayment,
    Dispute,
    Payout,
)
from adapters.cards.stripe_errors import PROVIDER, error_from_response, error_from_transport
from adapters.cards.stripe_mapping import (
    map_balance_transaction,
    map_dispute,
    map_payment_intent,
    map_payout,
)
from adapters.errors import InvalidInput, ProviderUnavailable

__all__ = [
    "DEFAULT_BASE_URL",
    "PAYMENT_EXPANSIONS",
    "SEARCH_CLAUSE_LIMIT",
    "STRIPE_API_VERSION",
    "Send",
    "StripeCardProcessor",
]

Send = Callable[[httpx.Request], Awaitable[httpx.Response]]
Json = Mapping[str, Any]

DEFAULT_BASE_URL = "https://api.stripe.com"
STRIPE_API_VERSION = "2023-08-16"
# Stripe's search query language accepts at most 10 clauses per query.
SEARCH_CLAUSE_LIMIT = 10
# Relative to one payment intent; list and search responses prefix them with "data.".
PAYMENT_EXPANSIONS = (
    "latest_charge",
    "latest_charge.balance_transaction",
    "latest_charge.refunds",
    "latest_charge.dispute",
)
_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,255}")


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


_T = TypeVar("_T", bound=_HasId)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _checked_id(value: str, field: str) -> str:
    if not _STRIPE_ID.fullmatch(value):
        raise InvalidInput(f"{field} is not a card processor id", field=field)
    return value


def _page_size(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE_SIZE))


class StripeCardProcessor:
    """A `CardProcessor` over Stripe's REST API (or the sandbox that mimics it).

    Pass `client` to share a pool (it is then not closed by `aclose`), `send` to route calls
    through a resilience layer; otherwise the adapter owns a pooled client with explicit
    timeouts and a connection cap.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        client: httpx.AsyncClient | None = None,
        send: Send | None = None,
        timeout: float = 10.0,
        max_connections: int = 20,
        search_clause_limit: int = SEARCH_CLAUSE_LIMIT,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        self._send: Send = send or self._client.send
        self._base_url = httpx.URL(base_url)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Stripe-Version": STRIPE_API_VERSION,
            "Accept": "application/json",
        }
        self._search_clause_limit = search_clause_limit
        self._clock = clock

    @property
    def name(self) -> str:
        return PROVIDER

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _get(self, path: str, params: Sequence[tuple[str, str]]) -> Json:
        request = self._client.build_request(
            "GET", self._base_url.join(path), params=list(params), headers=self._headers
        )
        try:
            response = await self._send(request)
        except httpx.TransportError as exc:
            raise error_from_transport(exc) from exc
        if not response.is_success:
            raise error_from_response(response)
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderUnavailable(
                "the card processor sent an unreadable answer",
                provider=PROVIDER,
                request_id=response.headers.get("request-id"),
                retryable=False,
            ) from exc
        if not isinstance(body, dict):
            raise ProviderUnavailable(
                "the card processor sent an unreadable answer", provider=PROVIDER, retryable=False
            )
        return body

    @staticmethod
    def _list_params(
        limit: int, starting_after: str | None, expand: Sequence[str] = ()
    ) -> list[tuple[str, str]]:
        params = [("limit", str(_page_size(limit)))]
        if starting_after is not None:
            params.append(("starting_after", _checked_id(starting_after, "after")))
        params.extend(("expand[]", path) for path in expand)
        return params

    async def list_payments(
        self, customer_id: str, *, limit: int = 20, starting_after: str | None = None
    ) -> CardPage[CardPayment]:
        params = [("customer", _checked_id(customer_id, "customer_id"))]
        params += self._list_params(
            limit, starting_after, [f"data.{path}" for path in PAYMENT_EXPANSIONS]
        )
        body = await self._get("/v1/payment_intents", params)
        fetched_at = self._clock()
        items = tuple(map_payment_intent(item, fetched_at=fetched_at) for item in body["data"])
        return _page(items, has_more=bool(body["has_more"]))

    async def get_payment(self, payment_id: str) -> CardPayment:
        path = f"/v1/payment_intents/{_checked_id(payment_id, 'payment_id')}"
        body = await self._get(path, [("expand[]", path) for path in PAYMENT_EXPANSIONS])
        return map_payment_intent(body, fetched_at=self._clock())

    async def payments_by_customers(
        self, customer_ids: Sequence[str], *, limit: int = 20
    ) -> Mapping[str, CardPage[CardPayment]]:
        unique = list(dict.fromkeys(_checked_id(id_, "customer_id") for id_ in customer_ids))
        size = self._search_clause_limit
        chunks = [unique[start : start + size] for start in range(0, len(unique), size)]
        found: dict[str, list[CardPayment]] = {customer: [] for customer in unique}
        for chunk_result in await asyncio.gather(
            *(self._search_chunk(chunk, _page_size(limit)) for chunk in chunks)
        ):
            for customer, payments in chunk_result.items():
                found[customer].extend(payments)
        pages: dict[str, CardPage[CardPayment]] = {}
        for customer, payments in found.items():
            payments.sort(key=lambda payment: (payment.created, payment.id), reverse=True)
            items = tuple(payments[: _page_size(limit)])
            pages[customer] = _page(items, has_more=len(payments) > len(items))
        return pages

    async def _search_chunk(
        self, customers: Sequence[str], limit: int
    ) -> dict[str, list[CardPayment]]:
        """Page through one OR-query until each customer has more than `limit` or none remain."""
        query = " OR ".join(f"customer:'{customer}'" for customer in customers)
        expand = [("expand[]", f"data.{path}") for path in PAYMENT_EXPANSIONS]
        found: dict[str, list[CardPayment]] = {customer: [] for customer in customers}
        page_token: str | None = None
        while True:
            params = [("query", query), ("limit", str(MAX_PAGE_SIZE)), *expand]
            if page_token is not None:
                params.append(("page", page_token))
            body = await self._get("/v1/payment_intents/search", params)
            fetched_at = self._clock()
            for item in body["data"]:
                payment = map_payment_intent(item, fetched_at=fetched_at)
                if payment.customer_external_id in found:
                    found[payment.customer_external_id].append(payment)
            page_token = body.get("next_page")
            if not body["has_more"] or not page_token:
                return found
            if all(len(payments) > limit for payments in found.values()):
                return found

    async def list_disputes(
        self, *, limit: int = 20, starting_after: str | None = None
    ) -> CardPage[Dispute]:
        body = await self._get("/v1/disputes", self._list_params(limit, starting_after))
        fetched_at = self._clock()
        items = tuple(map_dispute(item, fetched_at=fetched_at) for item in body["data"])
        return _page(items, has_more=bool(body["has_more"]))

    async def list_payouts(
        self, *, limit: int = 20, starting_after: str | None = None
    ) -> CardPage[Payout]:
        body = await self._get("/v1/payouts", self._list_params(limit, starting_after))
        fetched_at = self._clock()
        items = tuple(map_payout(item, fetched_at=fetched_at) for item in body["data"])
        return _page(items, has_more=bool(body["has_more"]))

    async def list_balance_transactions(
        self,
        *,
        limit: int = 20,
        starting_after: str | None = None,
        payout_id: str | None = None,
    ) -> CardPage[BalanceTransaction]:
        params = self._list_params(limit, starting_after)
        if payout_id is not None:
            params.append(("payout", _checked_id(payout_id, "payout_id")))
        body = await self._get("/v1/balance_transactions", params)
        fetched_at = self._clock()
        items = tuple(map_balance_transaction(item, fetched_at=fetched_at) for item in body["data"])
        return _page(items, has_more=bool(body["has_more"]))


def _page(items: tuple[_T, ...], *, has_more: bool) -> CardPage[_T]:
    next_cursor = items[-1].id if has_more and items else None
    return CardPage(items=items, has_more=has_more, next_cursor=next_cursor)
