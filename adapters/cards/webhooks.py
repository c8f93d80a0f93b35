"""Stripe-style webhook signatures: verify the raw body, then parse it. Pure functions.

Header: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`; each v1 is
HMAC-SHA256(secret, f"{t}.{raw body}"). During a secret rotation the sender signs with
every active secret (several v1 values) and we accept any of our secrets; a timestamp
outside `tolerance` seconds of `now` is refused, so a captured request cannot be replayed
later. Comparison is constant-time. The body must be the exact bytes received.

    WebhookSignatureError            WEBHOOK_SIGNATURE_INVALID
    ├── MalformedSignatureHeader     header absent or unparseable
    ├── MalformedPayload             signed, but the body is not a JSON object
    ├── SignatureMismatch            no v1 matches any secret
    └── TimestampOutsideTolerance    too old (replayed) or too far in the future
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "MalformedPayload",
    "MalformedSignatureHeader",
    "SignatureMismatch",
    "TimestampOutsideTolerance",
    "WebhookSignatureError",
    "sign_stripe_payload",
    "stripe_signature_header",
    "verify_stripe_signature",
]

DEFAULT_TOLERANCE_SECONDS = 300


class WebhookSignatureError(Exception):
    """The webhook is not provably from the processor; answer 400 and do nothing."""

    code = "WEBHOOK_SIGNATURE_INVALID"


class MalformedSignatureHeader(WebhookSignatureError):
    pass


class MalformedPayload(WebhookSignatureError):
    pass


class SignatureMismatch(WebhookSignatureError):
    pass


class TimestampOutsideTolerance(WebhookSignatureError):
    pass


def sign_stripe_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """The hex v1 signature of `payload` signed at `timestamp` with `secret`."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def stripe_signature_header(payload: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """A `Stripe-Signature` header value signed with each of `secrets` (as during rotation)."""
    signatures = ",".join(f"v1={sign_stripe_payload(payload, s, timestamp)}" for s in secrets)
    return f"t={timestamp},{signatures}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, separator, value = part.strip().partition("=")
        if not separator:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise MalformedSignatureHeader("signature timestamp is not a number") from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise MalformedSignatureHeader("signature header has no timestamp")
    if not signatures:
        raise MalformedSignatureHeader("signature header has no v1 signature")
    return timestamp, signatures


def verify_stripe_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> dict[str, Any]:
    """Check `header` against the raw `payload` and return the parsed event.

    `secrets` are every endpoint secret currently accepted (old and new during rotation);
    `now` is the current Unix time in seconds. Raises a WebhookSignatureError subclass.
    """
    if not header:
        raise MalformedSignatureHeader("missing signature header")
    if not secrets:
        raise SignatureMismatch("no webhook secret is configured")
    timestamp, signatures = _parse_header(header)
    expected = [sign_stripe_payload(payload, secret, timestamp) for secret in secrets]
    # Compare every pair, without stopping early, so timing says nothing about which matched.
    matched = False
    for candidate in signatures:
        for signature in expected:
            matched |= hmac.compare_digest(candidate.encode(), signature.encode())
    if not matched:
        raise SignatureMismatch("no signature matches")
    if abs(now - timestamp) > tolerance:
        raise TimestampOutsideTolerance("signature timestamp is outside the tolerance")
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise MalformedPayload("webhook body is not JSON") from None
    if not isinstance(event, dict):
        raise MalformedPayload("webhook body is not a JSON object")
    return event
