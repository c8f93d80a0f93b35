"""Provider webhooks: verify the raw body, deduplicate, answer fast, act in the background.

`POST /webhooks/stripe`: Stripe-Signature (HMAC over the raw body, timestamp tolerance) checked
by adapters.cards.webhooks; a payment, charge or dispute event drops the cached payments of the
customer it concerns, in every tenant linked to that customer; a charge's outcome or a dispute
is recorded as a risk fact there too (adapters.cards.risk).

`POST /webhooks/plaid`: Plaid-Verification (an ES256 JWT over the body's SHA-256) checked by
adapters.banking.webhooks; SYNC_UPDATES_AVAILABLE syncs the item's links, ITEM_LOGIN_REQUIRED
marks them LOGIN_REQUIRED.

Each delivery is handled once. Stripe's event id identifies an event (its retries reuse it),
and is remembered for `webhook_dedup_seconds` (7 days). Plaid sends no id, and its bodies say
only "this item has news" (SYNC_UPDATES_AVAILABLE, ITEM_LOGIN_REQUIRED), so the same body
arrives again every time there is news: a delivery is its verification JWT's `iat` with the
body's SHA-256 (both signed by Plaid), remembered just longer than a JWT is accepted (five
minutes, plus the clock skew allowed); after that the verifier refuses a replay as stale.
A repeat answers 200 `{"duplicate": true}` and does nothing. When the cache cannot tell (it is
down), the delivery is processed again: everything done here is idempotent.
Bodies are read with a cap (`webhook_max_body_bytes`; 413 `PAYLOAD_TOO_LARGE` without reading
the rest). Forged, malformed or stale deliveries get 400 and change nothing. The provider gets
its 2xx before the work starts (it retries slow endpoints).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.banking.links import bank_links_for_item, set_link_status
from adapters.banking.records import ConnectionStatus
from adapters.banking.sync import sync_link
from adapters.banking.webhooks import (
    MAX_WEBHOOK_AGE,
    WebhookVerificationError,
    verify_plaid_webhook,
)
from adapters.cache import cache_key
from adapters.cards.risk import RiskStore
from adapters.cards.stripe_mapping import charge_risk_fact
from adapters.cards.webhooks import WebhookSignatureError, verify_stripe_signature
from adapters.errors import NotFound, ProviderError
from gateway.providers import ProviderRuntime
from gateway.request_body import error_body, read_capped_body
from resolvers.errors import GatewayError
from resolvers.loaders.cards import card_payment_kinds

__all__ = ["PLAID_DEDUP_SECONDS", "WebhookHandlers"]

logger = logging.getLogger("gateway.webhooks")

# A Plaid JWT is accepted up to MAX_WEBHOOK_AGE after its `iat`, and `iat` may be up to 30 s
# ahead of our clock: a delivery must be remembered at least that long, and a little more.
PLAID_DEDUP_SECONDS = (MAX_WEBHOOK_AGE + dt.timedelta(seconds=90)).total_seconds()
_EVENT_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
_CUSTOMER_EVENTS = ("payment_intent.", "charge.")
# Charge events whose object is the charge: its outcome is a risk fact.
_RISK_CHARGE_EVENTS = frozenset(
    {"charge.succeeded", "charge.failed", "charge.pending", "charge.captured", "charge.updated"}
)


def _refused(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _id_of(value: Any) -> str | None:
    """An id from a field that may be an id or an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and _STRIPE_ID.fullmatch(value) else None


class WebhookHandlers:
    """The two webhook endpoints over one process's provider runtime."""

    def __init__(
        self,
        runtime: ProviderRuntime,
        *,
        dedup_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._runtime = runtime
        self._dedup_seconds = dedup_seconds
        self._max_body_bytes = runtime.settings.webhook_max_body_bytes
        self._clock = clock
        self._risk = RiskStore(runtime.engine)

    async def _first_delivery(self, seconds: float, provider: str, *delivery: str | int) -> bool:
        """False only when the cache positively remembers this delivery."""
        key = cache_key("v1", "webhook", provider, *delivery)
        cache = self._runtime.cache
        if await cache.add(key, b"1", seconds):
            return True
        return (await cache.get_many([key]))[0] is None  # absent: the cache is down

    async def stripe(self, request: Request) -> Response:
        try:
            body = await read_capped_body(request, self._max_body_bytes)
        except GatewayError as error:
            return JSONResponse(error_body(error), status_code=error.status_code)
        try:
            event = verify_stripe_signature(
                body,
                request.headers.get("stripe-signature"),
                self._runtime.stripe_webhook_secrets,
                now=self._clock(),
            )
        except WebhookSignatureError as error:
            logger.info("stripe webhook refused: %s", type(error).__name__)
            return _refused("signature verification failed")
        event_id = event.get("id")
        if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
            return _refused("event has no id")
        if not await self._first_delivery(self._dedup_seconds, "stripe", event_id):
            return JSONResponse({"received": True, "duplicate": True})
        self._runtime.spawn(self._apply_stripe(event), name=f"stripe-webhook-{event_id}")
        return JSONResponse({"received": True})

    async def _apply_stripe(self, event: dict[str, Any]) -> None:
        event_type = str(event.get("type", ""))
        data = event.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if not isinstance(obj, dict):
            return
        customer = _id_of(obj.get("customer"))
        if customer is None and event_type.startswith("charge.dispute."):
            customer = await self._customer_of_payment(_id_of(obj.get("payment_intent")))
        elif customer is None and not event_type.startswith(_CUSTOMER_EVENTS):
            return
        if customer is None:
            return
        head_kind, _ = card_payment_kinds("stripe", self._runtime.card_policy)
        links = await self._runtime.links.links_by_external_id("stripe", customer)
        for link in links:
            await self._runtime.reads.invalidate(head_kind, link.tenant_id, [customer])
            await self._record_risk(event_type, obj, link.tenant_id, link.customer_id)
        logger.info("stripe %s: cached payments of one customer dropped", event_type)

    async def _record_risk(
        self, event_type: str, obj: dict[str, Any], tenant_id: int, customer_id: int
    ) -> None:
        """A charge's outcome, or a dispute, becomes a risk fact (adapters.cards.risk)."""
        if event_type.startswith("charge.dispute."):
            payment = _id_of(obj.get("payment_intent")) or _id_of(obj.get("charge"))
            if payment is not None:
                await self._risk.mark_disputed(tenant_id, "stripe", payment)
            return
        if event_type in _RISK_CHARGE_EVENTS:
            fact = charge_risk_fact(obj, customer_id=customer_id)
            if fact is not None:
                await self._risk.observe(tenant_id, fact)

    async def _customer_of_payment(self, payment_id: str | None) -> str | None:
        processor = self._runtime.card_processors.get("stripe")
        if payment_id is None or processor is None:
            return None
        try:
            return (await processor.get_payment(payment_id)).customer_external_id
        except (NotFound, ProviderError) as error:
            logger.warning("dispute webhook: payment lookup failed (%s)", type(error).__name__)
            return None

    async def plaid(self, request: Request) -> Response:
        runtime = self._runtime
        try:
            body = await read_capped_body(request, self._max_body_bytes)
        except GatewayError as error:
            return JSONResponse(error_body(error), status_code=error.status_code)
        keys = runtime.plaid_webhook_keys
        header = request.headers.get("plaid-verification")
        if keys is None or not header:
            return _refused("verification failed")
        try:
            now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
            payload = await verify_plaid_webhook(body, header, keys.lookup, now)
        except WebhookVerificationError as error:
            logger.info("plaid webhook refused: %s", error)
            return _refused("verification failed")
        item_id = payload.get("item_id")
        if not isinstance(item_id, str) or not item_id:
            return _refused("webhook names no item")
        # Verified above: the claims are Plaid's. Same `iat` and body: the same delivery (keyed on
        # claims, not on the JWT's bytes: an ECDSA signature has a second valid encoding).
        issued_at = jwt.decode(header, options={"verify_signature": False})["iat"]
        body_sha256 = hashlib.sha256(body).hexdigest()
        if not await self._first_delivery(PLAID_DEDUP_SECONDS, "plaid", issued_at, body_sha256):
            return JSONResponse({"received": True, "duplicate": True})
        runtime.spawn(self._apply_plaid(payload, item_id), name="plaid-webhook")
        return JSONResponse({"received": True})

    async def _apply_plaid(self, payload: dict[str, Any], item_id: str) -> None:
        runtime = self._runtime
        kind = (payload.get("webhook_type"), payload.get("webhook_code"))
        error = payload.get("error")
        error_code = error.get("error_code") if isinstance(error, dict) else None
        links = await bank_links_for_item(runtime.engine, "plaid", item_id)
        if kind == ("ITEM", "ERROR") and error_code == "ITEM_LOGIN_REQUIRED":
            for link in links:
                await set_link_status(
                    runtime.engine,
                    tenant_id=link.tenant_id,
                    link_id=link.id,
                    status=ConnectionStatus.LOGIN_REQUIRED,
                )
            return
        if payload.get("webhook_type") != "TRANSACTIONS":
            return
        provider = runtime.banking_providers.get("plaid")
        if provider is None or runtime.secret_box is None:
            return
        for link in links:
            if link.status is ConnectionStatus.REVOKED:
                continue
            try:
                await sync_link(runtime.engine, provider, runtime.secret_box, link)
            except ProviderError as failure:
                logger.warning("bank link %s failed to sync: %s", link.id, failure.code)
