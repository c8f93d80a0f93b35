"""Plaid webhook verification (pure; the HTTP route lives in the gateway).

A Plaid webhook carries a `Plaid-Verification` header: a JWT signed with ES256 whose header
names the signing key (`kid`) and whose claims hold `iat` and `request_body_sha256`. We accept
a webhook only when the JWT's algorithm is ES256, its signature verifies with the key Plaid
serves for that `kid` (/webhook_verification_key/get, cached), the key has not expired, it was
issued at most five minutes ago, and the SHA-256 of the raw body equals the claim (compared in
constant time). Anything else raises WebhookVerificationError, whose message names the check
that failed and nothing of the body.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm

from adapters.errors import ProviderError

__all__ = [
    "MAX_WEBHOOK_AGE",
    "WebhookKeyCache",
    "WebhookVerificationError",
    "verify_plaid_webhook",
]

MAX_WEBHOOK_AGE = dt.timedelta(minutes=5)
_CLOCK_SKEW = dt.timedelta(seconds=30)

KeyLookup = Callable[[str], Awaitable[Mapping[str, Any]]]


class WebhookVerificationError(Exception):
    """The webhook is not provably from the provider, or is stale: reject it (HTTP 400/401)."""

    code = "WEBHOOK_VERIFICATION_FAILED"


class WebhookKeyCache:
    """Remembers verification keys by `kid` (Plaid rotates rarely; a new kid is fetched once).

    Build one per provider client (not per request); `lookup` is what verify_plaid_webhook
    takes. Failed fetches are not remembered.
    """

    def __init__(self, fetch: KeyLookup, *, max_keys: int = 64) -> None:
        self._fetch = fetch
        self._keys: dict[str, Mapping[str, Any]] = {}
        self._max_keys = max_keys
        self.fetches = 0

    async def lookup(self, key_id: str) -> Mapping[str, Any]:
        key = self._keys.get(key_id)
        if key is None:
            self.fetches += 1
            key = await self._fetch(key_id)
            if len(self._keys) >= self._max_keys:
                self._keys.pop(next(iter(self._keys)))
            self._keys[key_id] = key
        return key


async def verify_plaid_webhook(
    body: bytes, header: str, key_lookup: KeyLookup, now: dt.datetime
) -> dict[str, Any]:
    """Verify a Plaid webhook and return its parsed JSON body (see the module docstring)."""
    try:
        unverified = jwt.get_unverified_header(header)
    except jwt.PyJWTError:
        raise WebhookVerificationError("the verification header is not a JWT") from None
    if unverified.get("alg") != "ES256":
        raise WebhookVerificationError("the verification JWT is not signed with ES256")
    key_id = unverified.get("kid")
    if not isinstance(key_id, str) or not key_id:
        raise WebhookVerificationError("the verification JWT names no key")
    try:
        jwk = await key_lookup(key_id)
    except ProviderError:
        raise WebhookVerificationError("the verification key is unknown") from None
    expired_at = jwk.get("expired_at")
    if isinstance(expired_at, int) and expired_at <= now.timestamp():
        raise WebhookVerificationError("the verification key has expired")
    try:
        public_key = ECAlgorithm.from_jwk(json.dumps(dict(jwk)))
        claims = jwt.decode(
            header,
            public_key,  # type: ignore[arg-type]
            algorithms=["ES256"],
            options={"verify_iat": False, "verify_exp": False, "require": ["iat"]},
        )
    except (jwt.PyJWTError, ValueError):
        raise WebhookVerificationError("the verification signature is invalid") from None
    issued_at = claims.get("iat")
    if not isinstance(issued_at, int):
        raise WebhookVerificationError("the verification JWT has no issue time")
    age = now - dt.datetime.fromtimestamp(issued_at, dt.UTC)
    if age > MAX_WEBHOOK_AGE or age < -_CLOCK_SKEW:
        raise WebhookVerificationError("the webhook is too old (or from the future)")
    claimed = claims.get("request_body_sha256")
    actual = hashlib.sha256(body).hexdigest()
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed, actual):
        raise WebhookVerificationError("the webhook body does not match its signature")
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the webhook body is not a JSON object")
    return payload
