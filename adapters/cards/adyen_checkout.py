"""The one Checkout API (v72) read the Adyen adapter needs: a shopper's stored cards.

Notifications carry the payment's life; the card's last four digits and expiry ride along only
when the merchant enabled `cardSummary`/`expiryDate` in its webhook's additional settings.
When an authorised payment arrives without them, `GET /storedPaymentMethods` (authenticated
with `X-API-Key`) lists the shopper's tokenised cards, and the one created by that payment
(`firstPspReference`, or the item's `recurring.recurringDetailReference`) fills them in.
Nothing else is ever asked of the API; nothing here stores or returns a card number.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from adapters.cards.records import CardBrand
from adapters.errors import ProviderRejected, ProviderUnavailable

__all__ = ["AdyenCheckout", "StoredCard"]

_BRANDS = {
    "visa": CardBrand.VISA,
    "mc": CardBrand.MASTERCARD,
    "amex": CardBrand.AMEX,
    "discover": CardBrand.DISCOVER,
    "diners": CardBrand.DINERS,
    "jcb": CardBrand.JCB,
    "cup": CardBrand.UNIONPAY,
    "cartebancaire": CardBrand.CARTES_BANCAIRES,
}


@dataclass(frozen=True, slots=True)
class StoredCard:
    brand: CardBrand
    last4: str | None
    exp_month: int | None
    exp_year: int | None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


class AdyenCheckout:
    """Checkout API client over a resilient pooled client (adapters.http_client)."""

    def __init__(self, *, client: httpx.AsyncClient, base_url: str, api_key: str) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key

    async def stored_card(
        self,
        merchant_account: str,
        shopper_reference: str,
        *,
        payment_psp: str,
        recurring_detail_reference: str | None,
    ) -> StoredCard | None:
        """The card the payment `payment_psp` stored for the shopper, if Adyen lists it."""
        try:
            response = await self._client.get(
                f"{self._base_url}/storedPaymentMethods",
                params={"merchantAccount": merchant_account, "shopperReference": shopper_reference},
                headers={"X-API-Key": self._api_key},
            )
        except httpx.HTTPError:
            raise ProviderUnavailable("Adyen Checkout is unreachable", provider="adyen") from None
        request_id = response.headers.get("pspReference")
        if response.status_code in (401, 403, 422):
            raise ProviderRejected(
                "Adyen Checkout refused the call", provider="adyen", request_id=request_id
            )
        if response.status_code != 200:
            raise ProviderUnavailable(
                "Adyen Checkout failed", provider="adyen", request_id=request_id
            )
        methods = response.json().get("storedPaymentMethods") or []
        for method in methods:
            if not isinstance(method, dict):
                continue
            if method.get("firstPspReference") == payment_psp or (
                recurring_detail_reference and method.get("id") == recurring_detail_reference
            ):
                last4 = method.get("lastFour")
                year = _int(method.get("expiryYear"))
                return StoredCard(
                    brand=_BRANDS.get(str(method.get("brand", "")), CardBrand.UNKNOWN),
                    last4=last4 if isinstance(last4, str) and len(last4) == 4 else None,
                    exp_month=_int(method.get("expiryMonth")),
                    exp_year=None if year is None else (year + 2000 if year < 100 else year),
                )
        return None
