"""An Adyen-shaped sandbox: signed standard notifications and the Checkout API's stored cards.

`AdyenSandbox` plays Adyen's side of the integration:

- it builds payment lives as notification items (`payment`: AUTHORISATION, then CAPTURE,
  REFUND, CHARGEBACK ... as asked), each signed with the sandbox's current HMAC key, in the
  shapes of Adyen's Webhooks v1 spec;
- it delivers them in batches (`deliver`) to a webhook URL with Basic auth, as Adyen does,
  and checks the answer is `[accepted]`; fault knobs (`AdyenSandboxFaults`) add duplicates,
  reorder items across batches, corrupt signatures and send everything at once (a burst);
- it serves `GET /v72/storedPaymentMethods` (Checkout API 72, `X-API-Key`) from the cards it
  tokenised, for the details a merchant's notifications can lack.

Every delivered body is kept in `delivered` and every Checkout exchange is counted in `calls`,
so tests can validate them against the specs.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.cards.adyen_webhooks import decode_hmac_key, sign_item

__all__ = [
    "SANDBOX_API_KEY",
    "SANDBOX_CHECKOUT_URL",
    "SANDBOX_HMAC_KEY",
    "SANDBOX_MERCHANT_ACCOUNT",
    "SANDBOX_WEBHOOK_PASSWORD",
    "SANDBOX_WEBHOOK_USERNAME",
    "AdyenSandbox",
    "AdyenSandboxFaults",
]

SANDBOX_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
SANDBOX_MERCHANT_ACCOUNT = "FinanceGatewaySandbox"
SANDBOX_WEBHOOK_USERNAME = "adyen-sandbox"
SANDBOX_WEBHOOK_PASSWORD = "sandbox-webhook-password"  # noqa: S105 (a sandbox credential)
SANDBOX_API_KEY = "AQE-sandbox-checkout-key"
SANDBOX_CHECKOUT_URL = "http://adyen.sandbox/v72"

_METHODS = ("visa", "mc", "amex", "visa_applepay", "mc_googlepay")


@dataclass
class AdyenSandboxFaults:
    """What goes wrong on delivery. Rates are fractions of items, drawn from `seed`."""

    duplicate_rate: float = 0.0  # items delivered a second time, in a later batch
    reorder: bool = False  # shuffle items across batches (a CAPTURE before its AUTHORISATION)
    bad_signature_rate: float = 0.0  # items whose hmacSignature is corrupted
    burst: bool = False  # every batch sent at once, concurrently
    seed: int = 7


@dataclass
class AdyenSandbox:
    merchant_account: str = SANDBOX_MERCHANT_ACCOUNT
    hmac_key: str = SANDBOX_HMAC_KEY
    username: str = SANDBOX_WEBHOOK_USERNAME
    password: str = SANDBOX_WEBHOOK_PASSWORD
    api_key: str = SANDBOX_API_KEY
    faults: AdyenSandboxFaults = field(default_factory=AdyenSandboxFaults)
    # Leave cardSummary/expiryDate out of AUTHORISATION items (the merchant did not enable
    # them): the gateway then asks the Checkout API for the stored card.
    omit_card_details: bool = False
    delivered: list[dict[str, Any]] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    _stored: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    sequence: int = 0  # pspReferences count up from here

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[Route("/v72/storedPaymentMethods", self._stored_methods, methods=["GET"])]
        )

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.app)

    # -- notifications ---------------------------------------------------------------------

    def _psp(self) -> str:
        self.sequence += 1
        return f"SBX{self.sequence:013d}"

    def _item(
        self,
        event_code: str,
        *,
        psp: str,
        original: str | None,
        amount: int,
        currency: str,
        when: dt.datetime,
        reference: str,
        success: bool = True,
        additional: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "amount": {"currency": currency, "value": amount},
            "eventCode": event_code,
            "eventDate": when.isoformat(timespec="seconds"),
            "merchantAccountCode": self.merchant_account,
            "merchantReference": reference,
            "pspReference": psp,
            "success": "true" if success else "false",
            **fields,
        }
        if original is not None:
            item["originalReference"] = original
        item["additionalData"] = dict(additional or {})
        item["additionalData"]["hmacSignature"] = sign_item(item, decode_hmac_key(self.hmac_key))
        return item

    def payment(
        self,
        shopper_reference: str,
        *,
        amount: int = 1250,
        currency: str = "EUR",
        created: dt.datetime | None = None,
        events: Sequence[str] = ("AUTHORISATION", "CAPTURE"),
        refused_reason: str | None = None,
        last4: str = "1111",
        expiry: tuple[int, int] = (3, 2030),
        method: str | None = None,
        chargeback_reason: str = "10.4",
    ) -> tuple[str, list[dict[str, Any]]]:
        """One payment's life as signed items, in the order Adyen would send them.

        `events` names what happens after the AUTHORISATION (CAPTURE, REFUND, CANCELLATION,
        NOTIFICATION_OF_CHARGEBACK, CHARGEBACK, CHARGEBACK_REVERSED, SECOND_CHARGEBACK,
        REFUND_FAILED, CAPTURE_FAILED), each a minute after the previous. Returns the payment's
        pspReference and the items.
        """
        when = created or dt.datetime.now(dt.UTC).replace(microsecond=0)
        payment_psp = self._psp()
        method = method or _METHODS[self.sequence % len(_METHODS)]
        reference = f"order-{payment_psp[-6:]}"
        month, year = expiry
        detail = f"RD{payment_psp[3:]}"
        items: list[dict[str, Any]] = []
        last_refund: str | None = None
        last_capture: str | None = None
        common: dict[str, Any] = {"amount": amount, "currency": currency, "reference": reference}
        for step, code in enumerate(events):
            at = when + dt.timedelta(minutes=step)
            if code == "AUTHORISATION":
                success = refused_reason is None
                additional: dict[str, Any] = {
                    "shopperReference": shopper_reference,
                    "fundingSource": "CREDIT",
                    "recurring.recurringDetailReference": detail,
                }
                if not self.omit_card_details:
                    additional |= {"cardSummary": last4, "expiryDate": f"{month}/{year}"}
                reason = f"A{step:05d}:{last4}:{month}/{year}" if success else refused_reason
                if self.omit_card_details and success:
                    reason = f"A{step:05d}"
                items.append(
                    self._item(
                        code,
                        psp=payment_psp,
                        original=None,
                        when=at,
                        success=success,
                        additional=additional,
                        paymentMethod=method,
                        reason=reason,
                        **common,
                    )
                )
                self._stored.setdefault((self.merchant_account, shopper_reference), []).append(
                    {
                        "id": detail,
                        "brand": method.split("_")[0],
                        "lastFour": last4,
                        "expiryMonth": f"{month:02d}",
                        "expiryYear": f"{year % 100:02d}",
                        "firstPspReference": payment_psp,
                        "type": "scheme",
                    }
                )
                continue
            psp = self._psp()
            original = payment_psp
            additional = {}
            if code in (
                "NOTIFICATION_OF_CHARGEBACK",
                "CHARGEBACK",
                "CHARGEBACK_REVERSED",
                "SECOND_CHARGEBACK",
            ):
                additional = {
                    "chargebackReasonCode": chargeback_reason,
                    "defensePeriodEndsAt": (at + dt.timedelta(days=14)).isoformat(
                        timespec="seconds"
                    ),
                }
            if code == "REFUND_FAILED" and last_refund:
                psp = last_refund
            if code == "CAPTURE_FAILED" and last_capture:
                psp = last_capture
            items.append(
                self._item(
                    code,
                    psp=psp,
                    original=original,
                    when=at,
                    additional=additional,
                    paymentMethod=method,
                    **common,
                )
            )
            if code == "REFUND":
                last_refund = psp
            if code == "CAPTURE":
                last_capture = psp
        return payment_psp, items

    def resign(self, item: dict[str, Any], **changes: Any) -> dict[str, Any]:
        """`item` with `changes` applied, signed again with the sandbox's current key."""
        changed = {**item, **changes}
        additional = {k: v for k, v in item["additionalData"].items() if k != "hmacSignature"}
        changed["additionalData"] = additional
        additional["hmacSignature"] = sign_item(changed, decode_hmac_key(self.hmac_key))
        return changed

    def batches(self, items: Sequence[dict[str, Any]], size: int = 10) -> list[dict[str, Any]]:
        """The delivery bodies for `items`, with the fault knobs applied."""
        rng = random.Random(self.faults.seed)  # noqa: S311 (fault injection, not secrets)
        out = [dict(item) for item in items]
        for item in list(out):
            if self.faults.duplicate_rate and rng.random() < self.faults.duplicate_rate:
                out.append(dict(item))
        if self.faults.reorder:
            rng.shuffle(out)
        if self.faults.bad_signature_rate:
            for index, item in enumerate(out):
                if rng.random() < self.faults.bad_signature_rate:
                    additional = dict(item["additionalData"])
                    additional["hmacSignature"] = "A" + additional["hmacSignature"][1:]
                    if additional["hmacSignature"] == item["additionalData"]["hmacSignature"]:
                        additional["hmacSignature"] = "B" + additional["hmacSignature"][1:]
                    out[index] = {**item, "additionalData": additional}
        return [
            {
                "live": "false",
                "notificationItems": [{"NotificationRequestItem": i} for i in out[s : s + size]],
            }
            for s in range(0, len(out), size)
        ]

    async def deliver(
        self,
        client: httpx.AsyncClient,
        url: str,
        items: Sequence[dict[str, Any]],
        *,
        batch_size: int = 10,
    ) -> list[httpx.Response]:
        """POST the items in batches as Adyen does; returns every answer, in batch order."""
        import asyncio

        auth = httpx.BasicAuth(self.username, self.password)

        async def post(body: dict[str, Any]) -> httpx.Response:
            self.delivered.append(body)
            return await client.post(url, json=body, auth=auth)

        bodies = self.batches(items, batch_size)
        if self.faults.burst:
            return list(await asyncio.gather(*(post(body) for body in bodies)))
        return [await post(body) for body in bodies]

    # -- Checkout API ----------------------------------------------------------------------

    async def _stored_methods(self, request: Request) -> JSONResponse:
        self.calls["GET /v72/storedPaymentMethods"] += 1
        if request.headers.get("x-api-key") != self.api_key:
            return JSONResponse(
                {
                    "status": 401,
                    "errorCode": "000",
                    "message": "HTTP Status Response - Unauthorized",
                    "errorType": "security",
                },
                status_code=401,
            )
        merchant = request.query_params.get("merchantAccount", "")
        shopper = request.query_params.get("shopperReference", "")
        return JSONResponse(
            {
                "merchantAccount": merchant,
                "shopperReference": shopper,
                "storedPaymentMethods": self._stored.get((merchant, shopper), []),
            }
        )
