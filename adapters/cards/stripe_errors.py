"""Translate Stripe HTTP failures into `adapters.errors`, once, most specific first.

Stripe error bodies are `{"error": {"type", "code", "message", ...}}`; their `message` is
provider text and never becomes ours. Retryable: transport errors, timeouts, 5xx, 429 (after
`Retry-After`). Terminal: every other 4xx. A 401 means our secret key is wrong or revoked:
no user can fix that by logging in again, so it is a rejection (an operator must rotate the
key), not PROVIDER_REAUTH_REQUIRED.
"""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime

import httpx

from adapters.errors import (
    AdapterError,
    NotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

__all__ = ["error_from_response", "error_from_transport", "parse_retry_after"]

PROVIDER = "stripe"


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    current = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - current).total_seconds())


def _stripe_error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if not isinstance(error, dict):
        return None
    code = error.get("code") or error.get("type")
    return code if isinstance(code, str) else None


def error_from_response(response: httpx.Response) -> AdapterError:
    """The error to raise for a non-2xx Stripe response."""
    status = response.status_code
    request_id = response.headers.get("request-id")
    code = _stripe_error_code(response)
    if status == 429:
        return ProviderRateLimited(
            "the card processor is rate limiting us",
            provider=PROVIDER,
            request_id=request_id,
            provider_code=code,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status >= 500:
        return ProviderUnavailable(
            "the card processor is unavailable",
            provider=PROVIDER,
            request_id=request_id,
            provider_code=code,
        )
    if status == 404 or code == "resource_missing":
        return NotFound("no such card processor object")
    if status == 401:
        return ProviderRejected(
            "the card processor refused our credentials",
            provider=PROVIDER,
            request_id=request_id,
            provider_code=code,
        )
    # 409 lock_timeout is Stripe's only retryable 4xx.
    return ProviderRejected(
        "the card processor rejected the request",
        provider=PROVIDER,
        request_id=request_id,
        provider_code=code,
        retryable=status == 409,
    )


def error_from_transport(exc: httpx.TransportError) -> ProviderUnavailable:
    """Timeouts, refused and reset connections: the call may succeed later."""
    if isinstance(exc, httpx.TimeoutException):
        return ProviderUnavailable("the card processor timed out", provider=PROVIDER)
    return ProviderUnavailable("the card processor could not be reached", provider=PROVIDER)
