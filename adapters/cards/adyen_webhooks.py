"""Adyen standard notifications: HMAC signatures of each item, and parsing. Pure functions.

A delivery is `{"live": "false", "notificationItems": [{"NotificationRequestItem": {...}}]}`.
Each item is signed on its own: HMAC-SHA256, keyed with the hex-decoded HMAC key, over

    pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success

(an absent field is the empty string), base64 in `additionalData.hmacSignature`. During a key
rotation the merchant accepts several keys; an item is valid when any key reproduces its
signature (compared in constant time, every key tried).

`parse_item` turns a verified item into a `Notification`: only the fields the gateway stores,
nothing else of `additionalData` (which may hold the shopper's name, e-mail or IP address).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MalformedNotification",
    "Notification",
    "decode_hmac_key",
    "hmac_signing_string",
    "notification_items",
    "parse_item",
    "sign_item",
    "verify_item",
]

_PSP = re.compile(r"[A-Za-z0-9_]{1,64}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_EXPIRY = re.compile(r"(\d{1,2})/(\d{2}|\d{4})")
_LAST4 = re.compile(r"\d{4}")


class MalformedNotification(ValueError):
    """A delivery or item that is not an Adyen standard notification."""


def decode_hmac_key(key: str) -> bytes:
    """The bytes of a hex HMAC key as Adyen's Customer Area shows it; ValueError if not hex."""
    try:
        raw = binascii.unhexlify(key.strip())
    except (binascii.Error, ValueError):
        raise ValueError("an Adyen HMAC key must be hexadecimal") from None
    if len(raw) < 16:
        raise ValueError("an Adyen HMAC key must be at least 16 bytes")
    return raw


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def hmac_signing_string(item: Mapping[str, Any]) -> str:
    """The colon-joined fields Adyen signs, in its order."""
    amount = item.get("amount")
    amount = amount if isinstance(amount, Mapping) else {}
    return ":".join(
        _text(value)
        for value in (
            item.get("pspReference"),
            item.get("originalReference"),
            item.get("merchantAccountCode"),
            item.get("merchantReference"),
            amount.get("value"),
            amount.get("currency"),
            item.get("eventCode"),
            item.get("success"),
        )
    )


def sign_item(item: Mapping[str, Any], key: bytes) -> str:
    """The base64 HMAC-SHA256 signature of `item` with the (decoded) key."""
    digest = hmac.new(key, hmac_signing_string(item).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_item(item: Mapping[str, Any], keys: Sequence[bytes]) -> bool:
    """True when any of `keys` produced `additionalData.hmacSignature`; every key is tried."""
    additional = item.get("additionalData")
    signature = additional.get("hmacSignature") if isinstance(additional, Mapping) else None
    if not isinstance(signature, str) or not signature or not keys:
        return False
    given = signature.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, sign_item(item, key).encode())
    return matched


def notification_items(body: Any) -> list[dict[str, Any]]:
    """The NotificationRequestItem objects of a delivery; MalformedNotification otherwise."""
    if not isinstance(body, dict) or not isinstance(body.get("notificationItems"), list):
        raise MalformedNotification("body has no notificationItems")
    items = []
    for wrapper in body["notificationItems"]:
        item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
        if not isinstance(item, dict):
            raise MalformedNotification("a notification item is not an object")
        items.append(item)
    return items


@dataclass(frozen=True, slots=True)
class Notification:
    """One verified notification item, reduced to what the gateway stores.

    `payment_reference` is the payment the event belongs to: `originalReference` for a
    modification (capture, refund, chargeback ...), the item's own `pspReference` otherwise.
    Card fields come from `additionalData.cardSummary`/`expiryDate`/`fundingSource` or, for a
    successful card AUTHORISATION, from `reason` ("authCode:last4:MM/YYYY"); `reason` itself is
    kept only for a failure (the refusal reason).
    """

    psp_reference: str
    original_reference: str | None
    payment_reference: str
    merchant_account: str
    merchant_reference: str
    event_code: str
    success: bool
    amount: int
    currency: str
    event_date: dt.datetime
    payment_method: str | None
    shopper_reference: str | None
    reason: str | None
    card_last4: str | None
    card_exp_month: int | None
    card_exp_year: int | None
    card_funding: str | None
    recurring_detail_reference: str | None
    chargeback_reason_code: str | None
    defense_period_ends_at: dt.datetime | None


def _short(value: Any, limit: int = 255) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _datetime(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _expiry(value: str | None) -> tuple[int | None, int | None]:
    match = _EXPIRY.fullmatch(value or "")
    if match is None:
        return None, None
    month, year = int(match.group(1)), int(match.group(2))
    if year < 100:
        year += 2000
    return (month, year) if 1 <= month <= 12 else (None, None)


def parse_item(item: Mapping[str, Any]) -> Notification:
    """A verified item as a Notification; MalformedNotification when a required field is off."""
    psp = item.get("pspReference")
    if not isinstance(psp, str) or not _PSP.fullmatch(psp):
        raise MalformedNotification("pspReference is missing or malformed")
    original = item.get("originalReference") or None
    if original is not None and (not isinstance(original, str) or not _PSP.fullmatch(original)):
        raise MalformedNotification("originalReference is malformed")
    event_code = item.get("eventCode")
    if not isinstance(event_code, str) or not re.fullmatch(r"[A-Z_]{1,64}", event_code):
        raise MalformedNotification("eventCode is missing or malformed")
    success = item.get("success")
    if success not in ("true", "false"):
        raise MalformedNotification("success must be 'true' or 'false'")
    amount = item.get("amount")
    value = amount.get("value") if isinstance(amount, Mapping) else None
    currency = amount.get("currency") if isinstance(amount, Mapping) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**62:
        raise MalformedNotification("amount.value must be a non-negative integer")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise MalformedNotification("amount.currency must be an ISO 4217 code")
    event_date = _datetime(item.get("eventDate"))
    if event_date is None:
        raise MalformedNotification("eventDate is missing or malformed")
    merchant = item.get("merchantAccountCode")
    if not isinstance(merchant, str) or not merchant:
        raise MalformedNotification("merchantAccountCode is missing")
    additional = item.get("additionalData")
    extra: Mapping[str, Any] = additional if isinstance(additional, Mapping) else {}
    succeeded = success == "true"
    reason = _short(item.get("reason"))
    last4 = _short(extra.get("cardSummary"), 4)
    month, year = _expiry(_short(extra.get("expiryDate"), 7))
    if succeeded and event_code == "AUTHORISATION" and reason:
        # "authCode:last4:MM/YYYY" for card payments
        parts = reason.split(":")
        if len(parts) == 3:
            last4 = last4 or parts[1]
            if month is None:
                month, year = _expiry(parts[2])
    if last4 is not None and not _LAST4.fullmatch(last4):
        last4 = None
    shopper = _short(extra.get("shopperReference")) or _short(
        extra.get("recurring.shopperReference")
    )
    funding = _short(extra.get("fundingSource"), 16)
    return Notification(
        psp_reference=psp,
        original_reference=original,
        payment_reference=original or psp,
        merchant_account=merchant[:255],
        merchant_reference=_short(item.get("merchantReference")) or "",
        event_code=event_code,
        success=succeeded,
        amount=value,
        currency=currency,
        event_date=event_date,
        payment_method=_short(item.get("paymentMethod"), 64),
        shopper_reference=shopper,
        reason=None if succeeded else reason,
        card_last4=last4,
        card_exp_month=month,
        card_exp_year=year,
        card_funding=funding.lower() if funding else None,
        recurring_detail_reference=_short(extra.get("recurring.recurringDetailReference")),
        chargeback_reason_code=_short(extra.get("chargebackReasonCode"), 32),
        defense_period_ends_at=_datetime(extra.get("defensePeriodEndsAt")),
    )
