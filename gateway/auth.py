"""Authentication: bearer JWTs to a Principal (tenant and scopes). Knows nothing of GraphQL."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import jwt

from gateway.errors import Forbidden, Unauthenticated
from gateway.settings import Settings

__all__ = ["SCOPES", "Principal", "TokenVerifier", "mint_token"]

# Every scope the gateway knows, with what it allows.
SCOPES = {
    "ledger:read": "read customers, ledger accounts, balances, transactions and entries",
    "ledger:write": "post, confirm, void and reverse ledger transactions",
}
_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: always taken from a verified credential, never from a header."""

    subject: str
    tenant_id: int
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        """Raise Forbidden naming `scope` unless the principal holds it."""
        if scope not in self.scopes:
            raise Forbidden(f"this operation needs the {scope!r} scope", scope=scope)


def mint_token(
    settings: Settings,
    *,
    tenant_id: int,
    scopes: Iterable[str],
    subject: str = "developer",
    ttl: dt.timedelta = dt.timedelta(hours=12),
) -> str:
    """Sign a JWT for `tenant_id` with `scopes` (development tokens and tests)."""
    unknown = set(scopes) - SCOPES.keys()
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    now = dt.datetime.now(dt.UTC)
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        "tenant": str(tenant_id),
        "scope": " ".join(sorted(set(scopes))),
    }
    return jwt.encode(claims, settings.jwt_secret.reveal(), algorithm=_ALGORITHM)


class TokenVerifier:
    """Verifies bearer tokens: signature, issuer, audience, expiry (with leeway), claims.

    A token that verified is remembered (bounded, until it expires), so a client that sends
    the same token on every request pays for the signature check once.
    """

    def __init__(self, settings: Settings, *, max_remembered: int = 10_000) -> None:
        self._key = settings.jwt_secret.reveal()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._max_remembered = max_remembered

    def verify_authorization(self, header: str | None) -> Principal:
        """Principal for an `Authorization: Bearer <jwt>` header value, or Unauthenticated."""
        if not header:
            raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        return self.verify(token.strip())

    def verify(self, token: str) -> Principal:
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, expires_at = remembered
            if time.time() < expires_at:
                return principal
            del self._verified[token]
        principal, expires_at = self._decode(token)
        self._verified[token] = (principal, expires_at)
        if len(self._verified) > self._max_remembered:
            self._verified.popitem(last=False)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("the token is not valid") from None
        tenant = claims.get("tenant")
        scope = claims.get("scope", "")
        if not isinstance(tenant, str) or not tenant.isdigit() or not isinstance(scope, str):
            raise Unauthenticated("the token carries no valid tenant or scope")
        principal = Principal(
            subject=str(claims["sub"]), tenant_id=int(tenant), scopes=frozenset(scope.split())
        )
        return principal, float(claims["exp"]) + self._leeway
