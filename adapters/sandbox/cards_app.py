"""A Stripe-shaped card processor sandbox: an ASGI app with seeded data and fault injection.

In-process (the embedded default and most tests):

    sandbox = CardsSandbox()
    client = httpx.AsyncClient(transport=sandbox.transport(), base_url=SANDBOX_BASE_URL)

As a real HTTP server: `python -m adapters.sandbox.cards_app --port 12111`, or run
`sandbox.app` under uvicorn from a test fixture.

Served (GET, `Authorization: Bearer <secret key>`): /v1/payment_intents (customer filter),
/v1/payment_intents/search (`customer:'cus_1' OR ...`, at most 10 clauses),
/v1/payment_intents/{id}, /v1/disputes, /v1/payouts, /v1/balance_transactions (payout
filter). Lists take `limit` (1-100), `starting_after`, `expand[]`; errors are
`{"error": {"type", "code", "message"}}`; every answer carries `Request-Id`.

Admin (no key; never counted, never faulted): GET /_sandbox/calls, POST /_sandbox/faults
(JSON with any CardsSandboxFaults field), POST /_sandbox/reset, POST /_sandbox/events
(`{"type", "object_id", "url"}`: sends a signed webhook event to `url`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.cards.webhooks import stripe_signature_header
from adapters.sandbox.cards_data import CardsSandboxData, Json

__all__ = [
    "DEFAULT_SECRET_KEY",
    "DEFAULT_WEBHOOK_SECRET",
    "SANDBOX_BASE_URL",
    "SEARCH_CLAUSE_LIMIT",
    "CardsSandbox",
    "CardsSandboxFaults",
    "main",
]

DEFAULT_SECRET_KEY = "sk_test_sandbox"  # noqa: S105 (a sandbox key, not a secret)
DEFAULT_WEBHOOK_SECRET = "whsec_sandbox"  # noqa: S105
SANDBOX_BASE_URL = "http://cards.sandbox"
SEARCH_CLAUSE_LIMIT = 10
_CLAUSE = re.compile(r"(customer|status|currency):'([^'\\]*)'")
_EVENT_OBJECTS = {
    "payment_intent.succeeded": "payment_intent",
    "payment_intent.payment_failed": "payment_intent",
    "charge.refunded": "charge",
    "charge.succeeded": "charge",
    "charge.dispute.created": "dispute",
    "charge.dispute.closed": "dispute",
    "payout.paid": "payout",
}


@dataclass
class CardsSandboxFaults:
    """What goes wrong, and for how many calls (`fail_times` None: every call)."""

    latency_seconds: float = 0.0
    error_rate: float = 0.0
    fail_status: int | None = None
    fail_times: int | None = None
    retry_after_seconds: float | None = None
    hang_seconds: float | None = None
    # Settlement faults (for reconciliation): balance transaction ids left out of, or listed
    # twice in, their payout's listing; payout ids answered with another amount.
    payout_missing_items: list[str] = field(default_factory=list)
    payout_duplicated_items: list[str] = field(default_factory=list)
    payout_amounts: dict[str, int] = field(default_factory=dict)


class _StripeError(Exception):
    def __init__(self, status: int, kind: str, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.code, self.message = status, kind, code, message


class CardsSandbox:
    """One sandbox instance: its data, faults, call counts and the ASGI app serving them."""

    def __init__(
        self,
        *,
        seed: int = 0,
        secret_key: str = DEFAULT_SECRET_KEY,
        webhook_secrets: Sequence[str] = (DEFAULT_WEBHOOK_SECRET,),
        faults: CardsSandboxFaults | None = None,
    ) -> None:
        self.seed = seed
        self.secret_key = secret_key
        self.webhook_secrets = list(webhook_secrets)
        self.faults = faults or CardsSandboxFaults()
        self.data = CardsSandboxData(seed=seed)
        self.calls: Counter[str] = Counter()
        self.requests: list[httpx.URL] = []
        self._random = random.Random(seed)  # noqa: S311 (fault injection, not security)
        self._request_number = 0
        self.app = Starlette(
            routes=[
                Route("/v1/payment_intents", self._payment_intents),
                Route("/v1/payment_intents/search", self._search_payment_intents),
                Route("/v1/payment_intents/{intent}", self._payment_intent),
                Route("/v1/disputes", self._disputes),
                Route("/v1/payouts", self._payouts),
                Route("/v1/balance_transactions", self._balance_transactions),
                Route("/_sandbox/calls", self._admin_calls),
                Route("/_sandbox/faults", self._admin_faults, methods=["POST"]),
                Route("/_sandbox/reset", self._admin_reset, methods=["POST"]),
                Route("/_sandbox/events", self._admin_events, methods=["POST"]),
            ]
        )

    def transport(self) -> httpx.ASGITransport:
        """An httpx transport that serves this sandbox in-process."""
        return httpx.ASGITransport(app=self.app)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        """Forget call counts and faults; the data stay as generated."""
        self.calls.clear()
        self.requests.clear()
        self.faults = CardsSandboxFaults()

    # Plumbing -------------------------------------------------------------------------

    def _json(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        self._request_number += 1
        all_headers = {"Request-Id": f"req_sbx{self.seed}x{self._request_number:08d}"}
        all_headers |= headers or {}
        return Response(
            orjson.dumps(body), status, headers=all_headers, media_type="application/json"
        )

    def _error(self, error: _StripeError, headers: dict[str, str] | None = None) -> Response:
        body = {"error": {"type": error.kind, "code": error.code, "message": error.message}}
        if error.code is None:
            del body["error"]["code"]
        return self._json(body, error.status, headers)

    async def _serve(self, request: Request, handler: Any) -> Response:
        """Count, authenticate, inject faults, then answer with `handler(request)`."""
        self.calls[f"{request.method} {request.url.path}"] += 1
        self.requests.append(httpx.URL(str(request.url)))
        faults = self.faults
        if faults.latency_seconds:
            await asyncio.sleep(faults.latency_seconds)
        if faults.hang_seconds is not None:
            await asyncio.sleep(faults.hang_seconds)
        if faults.fail_status is not None and faults.fail_times != 0:
            if faults.fail_times is not None:
                faults.fail_times -= 1
            return self._fault_response(faults.fail_status)
        if faults.error_rate and self._random.random() < faults.error_rate:
            return self._fault_response(500)
        authorization = request.headers.get("authorization", "")
        if authorization != f"Bearer {self.secret_key}":
            code = "api_key_invalid" if authorization else None
            return self._error(
                _StripeError(401, "invalid_request_error", code, "Invalid API Key provided.")
            )
        try:
            return self._json(handler(request))
        except _StripeError as error:
            return self._error(error)

    def _fault_response(self, status: int) -> Response:
        headers: dict[str, str] = {}
        if self.faults.retry_after_seconds is not None:
            headers["Retry-After"] = f"{self.faults.retry_after_seconds:g}"
        if status == 429:
            error = _StripeError(
                429, "invalid_request_error", "rate_limit", "Too many requests hit the API."
            )
        elif status == 401:
            error = _StripeError(401, "invalid_request_error", "api_key_expired", "Key expired.")
        else:
            error = _StripeError(status, "api_error", None, "An error occurred on our side.")
        return self._error(error, headers)

    # Parameters -----------------------------------------------------------------------

    @staticmethod
    def _expand(request: Request, *, prefix: str = "") -> list[str]:
        paths = request.query_params.getlist("expand[]")
        if prefix:
            bad = [path for path in paths if not path.startswith(prefix)]
            if bad:
                raise _StripeError(
                    400, "invalid_request_error", "parameter_invalid_string",
                    f"This property cannot be expanded ({bad[0]}).",
                )  # fmt: skip
            paths = [path.removeprefix(prefix) for path in paths]
        return paths

    @staticmethod
    def _limit(request: Request) -> int:
        text = request.query_params.get("limit", "10")
        if not text.isdigit() or not 1 <= int(text) <= 100:
            raise _StripeError(
                400, "invalid_request_error", "parameter_invalid_integer",
                "Invalid limit: must be between 1 and 100.",
            )  # fmt: skip
        return int(text)

    def _render_all(self, objects: list[Json], expand: list[str]) -> list[Json]:
        try:
            return [self.data.render(obj, expand) for obj in objects]
        except KeyError as exc:
            raise _StripeError(
                400, "invalid_request_error", "parameter_invalid_string",
                f"This property cannot be expanded ({exc.args[0]}).",
            ) from None  # fmt: skip

    def _list(self, request: Request, objects: list[Json]) -> Json:
        limit = self._limit(request)
        start = 0
        after = request.query_params.get("starting_after")
        if after is not None:
            ids = [obj["id"] for obj in objects]
            if after not in ids:
                raise _StripeError(
                    400, "invalid_request_error", "resource_missing",
                    f"No such object: '{after}'",
                )  # fmt: skip
            start = ids.index(after) + 1
        page = objects[start : start + limit]
        return {
            "object": "list",
            "data": self._render_all(page, self._expand(request, prefix="data.")),
            "has_more": start + limit < len(objects),
            "url": request.url.path,
        }

    # Endpoints ------------------------------------------------------------------------

    async def _payment_intents(self, request: Request) -> Response:
        def answer(request: Request) -> Json:
            customer = request.query_params.get("customer")
            objects = self.data.payment_intents(customer) if customer else []
            return self._list(request, objects)

        return await self._serve(request, answer)

    async def _payment_intent(self, request: Request) -> Response:
        def answer(request: Request) -> Json:
            intent_id = request.path_params["intent"]
            intent = self.data.get(intent_id)
            if intent is None or intent.get("object") != "payment_intent":
                raise _StripeError(
                    404, "invalid_request_error", "resource_missing",
                    f"No such payment_intent: '{intent_id}'",
                )  # fmt: skip
            return self._render_all([intent], self._expand(request))[0]

        return await self._serve(request, answer)

    async def _search_payment_intents(self, request: Request) -> Response:
        return await self._serve(request, self._search)

    def _search(self, request: Request) -> Json:
        query = request.query_params.get("query", "")
        clauses = self._parse_query(query)
        customers = [value for field, value in clauses if field == "customer"]
        filters = [(field, value) for field, value in clauses if field != "customer"]
        found = [
            intent
            for customer in dict.fromkeys(customers)
            for intent in self.data.payment_intents(customer)
            if all(intent.get(field) == value for field, value in filters)
        ]
        found.sort(key=lambda obj: (obj["created"], obj["id"]), reverse=True)
        limit = self._limit(request)
        token = request.query_params.get("page")
        start = int(base64.urlsafe_b64decode(token.encode())) if token else 0
        page = found[start : start + limit]
        has_more = start + limit < len(found)
        next_page = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        return {
            "object": "search_result",
            "data": self._render_all(page, self._expand(request, prefix="data.")),
            "has_more": has_more,
            "next_page": next_page if has_more else None,
            "total_count": len(found),
            "url": request.url.path,
        }

    @staticmethod
    def _parse_query(query: str) -> list[tuple[str, str]]:
        """`customer:'a' OR customer:'b'` (or AND, never both) as (field, value) clauses."""

        def invalid(message: str) -> _StripeError:
            return _StripeError(400, "invalid_request_error", "parameter_invalid_string", message)

        has_or, has_and = " OR " in query, " AND " in query
        if has_or and has_and:
            raise invalid("Search queries cannot mix AND and OR.")
        parts = query.split(" OR " if has_or else " AND ")
        if len(parts) > SEARCH_CLAUSE_LIMIT:
            raise invalid(f"Search queries can have at most {SEARCH_CLAUSE_LIMIT} clauses.")
        clauses = []
        for part in parts:
            match = _CLAUSE.fullmatch(part.strip())
            if match is None:
                raise invalid(f"Unsupported search clause: {part.strip()!r}")
            clauses.append((match[1], match[2]))
        if has_and and sum(field == "customer" for field, _ in clauses) > 1:
            return []
        return clauses

    async def _disputes(self, request: Request) -> Response:
        return await self._serve(request, lambda r: self._list(r, self.data.disputes()))

    async def _payouts(self, request: Request) -> Response:
        def answer(request: Request) -> Json:
            amounts = self.faults.payout_amounts
            payouts = [
                {**payout, "amount": amounts[payout["id"]]} if payout["id"] in amounts else payout
                for payout in self.data.payouts()
            ]
            return self._list(request, payouts)

        return await self._serve(request, answer)

    async def _balance_transactions(self, request: Request) -> Response:
        def answer(request: Request) -> Json:
            payout = request.query_params.get("payout")
            found = self.data.balance_transactions(payout_id=payout)
            if payout is not None:
                missing = set(self.faults.payout_missing_items)
                twice = set(self.faults.payout_duplicated_items)
                found = [
                    copy
                    for item in found
                    if item["id"] not in missing
                    for copy in ([item, item] if item["id"] in twice else [item])
                ]
            return self._list(request, found)

        return await self._serve(request, answer)

    # Admin and webhooks ---------------------------------------------------------------

    async def _admin_calls(self, request: Request) -> Response:
        return self._json({"total": self.total_calls, "calls": dict(self.calls)})

    async def _admin_faults(self, request: Request) -> Response:
        changes = orjson.loads(await request.body())
        known = {field.name for field in dataclasses.fields(CardsSandboxFaults)}
        unknown = sorted(set(changes) - known)
        if unknown:
            return self._json(
                {"error": {"type": "invalid_request_error", "message": f"unknown {unknown}"}}, 400
            )
        self.faults = dataclasses.replace(self.faults, **changes)
        return self._json(dataclasses.asdict(self.faults))

    async def _admin_reset(self, request: Request) -> Response:
        self.reset()
        return self._json({"reset": True})

    async def _admin_events(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        async with httpx.AsyncClient(timeout=10.0) as client:
            event = await self.send_event(
                body["type"], body["object_id"], body["url"], client=client
            )
        return self._json(event)

    def build_event(self, event_type: str, object_id: str, *, created: int | None = None) -> Json:
        """A Stripe `event` envelope for `event_type` carrying the current object."""
        kind = _EVENT_OBJECTS.get(event_type)
        if kind is None:
            raise ValueError(f"unsupported event type {event_type!r}")
        obj = self.data.get(object_id)
        if obj is None or obj.get("object") != kind:
            raise ValueError(f"{object_id!r} is not a {kind}")
        created = int(time.time()) if created is None else created
        number = self._random.getrandbits(48)
        return {
            "id": f"evt_sbx{number:012x}",
            "object": "event",
            "api_version": "2023-08-16",
            "created": created,
            "data": {"object": self.data.render(obj, [])},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    async def send_event(
        self,
        event_type: str,
        object_id: str,
        url: str,
        *,
        client: httpx.AsyncClient,
        timestamp: int | None = None,
    ) -> Json:
        """POST a signed event to `url` through `client` (any transport); returns the event."""
        event = self.build_event(event_type, object_id)
        payload = orjson.dumps(event)
        signed_at = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": stripe_signature_header(payload, self.webhook_secrets, signed_at),
        }
        await client.post(url, content=payload, headers=headers)
        return event


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a sandbox over HTTP: `python -m adapters.sandbox.cards_app --port 12111`."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY)
    args = parser.parse_args(argv)
    sandbox = CardsSandbox(seed=args.seed, secret_key=args.secret_key)
    uvicorn.run(sandbox.app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
