"""Authentication: a credential to a Principal (tenant, scopes, client, policy).

Two credentials, both in `Authorization: Bearer <credential>` (API keys also in `X-API-Key`):

- An API key (`fgw_live_...`, `fgw_test_...`) names a registered API client: its tenant, kind,
  scopes and operation policy come from the database, read on every request so that a revoked
  or rotated key fails at once in every process (one indexed read, about 0.1 ms).
- A JWT of a signed-in user or a service: verified against the shared secret (HS256,
  development) or a JWKS URL (RS256/ES256, production), with issuer, audience, expiry and
  leeway. It names the tenant (`tenant`), scopes (`scope`) and optionally the kind
  (`client_kind`: `first_party`, the default, or `analyst`; never `partner`, whose operations
  must be registered). JWT principals may send query text and use APQ; verified tokens are
  remembered until they expire, so the JWT path costs no I/O per request.
- A JWT may name a registered API client in its `client_id` claim (RFC 9068; the client's
  numeric id, `gateway token --client N`). Then that client must exist in the token's tenant
  and not be revoked (read on every request, like an API key), and the principal is the
  token's subject acting through the client: the client's kind and operation policy, and the
  scopes both the token and the client hold (intersection). A `client_kind` claim is then
  ignored: the registered kind wins. A token naming an unknown, revoked or other tenant's
  client is refused (UNAUTHENTICATED). `azp` is not read.

Test API keys (`fgw_test_...`), and JWTs naming a client that holds one, are refused in
production (`GATEWAY_ENV=production`).

Knows nothing of GraphQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from adapters.access.clients import ApiClient, ClientKind, ClientStore
from gateway.settings import Settings
from resolvers.errors import Unauthenticated
from resolvers.principal import SCOPES, Principal

__all__ = ["Authenticator", "TokenVerifier", "VerifiedToken", "mint_token"]

_ALGORITHM = "HS256"
_JWKS_ALGORITHMS = ["RS256", "ES256"]
_JWT_KINDS: frozenset[str] = frozenset({"first_party", "analyst"})
_TEST_KEY_PREFIX = "fgw_test_"
_TEST_KEYS_REFUSED = "test API keys (fgw_test_...) are not accepted in production; use a live key"


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A JWT whose signature and claims verified.

    `principal` is what the claims alone say; when `client_id` is set the token names a
    registered API client and must be bound to it (`Authenticator`) before it is used.
    """

    principal: Principal
    client_id: int | None = None


def mint_token(
    settings: Settings,
    *,
    tenant_id: int,
    scopes: Iterable[str],
    subject: str = "developer",
    ttl: dt.timedelta = dt.timedelta(hours=12),
    kind: ClientKind | None = None,
    client_id: int | None = None,
) -> str:
    """Sign a JWT for `tenant_id` with `scopes` (development tokens and tests).

    `client_id` names a registered API client the token acts through (claim `client_id`).
    """
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
    if kind is not None:
        claims["client_kind"] = kind
    if client_id is not None:
        claims["client_id"] = str(client_id)
    return jwt.encode(claims, settings.jwt_secret.reveal(), algorithm=_ALGORITHM)


class TokenVerifier:
    """Verifies bearer tokens: signature, issuer, audience, expiry (with leeway), claims.

    A token that verified is remembered (bounded, until it expires), so a client that sends
    the same token on every request pays for the signature check once. With a JWKS URL the
    keys are fetched (and cached by key id) by PyJWKClient; `verify_async` fetches them in a
    worker thread so that the event loop never waits on the network.
    """

    def __init__(self, settings: Settings, *, max_remembered: int = 10_000) -> None:
        self._key = settings.jwt_secret.reveal()
        self._jwks = (
            jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=300, timeout=5)
            if settings.jwt_jwks_url
            else None
        )
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._verified: OrderedDict[str, tuple[VerifiedToken, float]] = OrderedDict()
        self._max_remembered = max_remembered

    def verify_authorization(self, header: str | None) -> Principal:
        """Principal for an `Authorization: Bearer <jwt>` header value, or Unauthenticated."""
        if not header:
            raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        return self.verify(token.strip())

    def remembered(self, token: str) -> VerifiedToken | None:
        """A token verified before and not yet expired, without any work."""
        remembered = self._verified.get(token)
        if remembered is None:
            return None
        verified, expires_at = remembered
        if time.time() < expires_at:
            return verified
        del self._verified[token]
        return None

    def verify(self, token: str) -> Principal:
        """The principal of a token that names no API client (those need `Authenticator`)."""
        return _unbound(self.verify_token(token))

    async def verify_async(self, token: str) -> Principal:
        """As `verify`, fetching JWKS keys (when configured) off the event loop."""
        return _unbound(await self.verify_token_async(token))

    def verify_token(self, token: str) -> VerifiedToken:
        verified = self.remembered(token)
        if verified is not None:
            return verified
        return self._remember(token, self._decode(token, self._signing_key(token)))

    async def verify_token_async(self, token: str) -> VerifiedToken:
        """As `verify_token`, fetching JWKS keys (when configured) off the event loop."""
        verified = self.remembered(token)
        if verified is not None:
            return verified
        key = self._key if self._jwks is None else await asyncio.to_thread(self._signing_key, token)
        return self._remember(token, self._decode(token, key))

    def _remember(self, token: str, decoded: tuple[VerifiedToken, float]) -> VerifiedToken:
        self._verified[token] = decoded
        if len(self._verified) > self._max_remembered:
            self._verified.popitem(last=False)
        return decoded[0]

    def _signing_key(self, token: str) -> Any:
        if self._jwks is None:
            return self._key
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError:
            raise Unauthenticated("the token's signing keys cannot be fetched now") from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError):
            raise Unauthenticated("the token is not valid") from None

    def _decode(self, token: str, key: Any) -> tuple[VerifiedToken, float]:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM] if self._jwks is None else _JWKS_ALGORITHMS,
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
        kind = claims.get("client_kind", "first_party")
        if kind not in _JWT_KINDS:
            raise Unauthenticated("the token's client_kind must be first_party or analyst")
        principal = Principal(
            subject=str(claims["sub"]),
            tenant_id=int(tenant),
            scopes=frozenset(scope.split()),
            kind=kind,
        )
        client_id = _client_claim(claims.get("client_id"))
        return VerifiedToken(principal, client_id), float(claims["exp"]) + self._leeway


def _client_claim(value: object) -> int | None:
    """The `client_id` claim as a client id: absent is None, anything not an id is refused."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0:
        return int(value)
    raise Unauthenticated("the token's client_id does not name a registered API client")


def _unbound(verified: VerifiedToken) -> Principal:
    if verified.client_id is not None:
        raise Unauthenticated("the token names an API client and must be checked against it")
    return verified.principal


class Authenticator:
    """Credential to Principal: API keys through the client store, JWTs through the verifier."""

    def __init__(
        self, verifier: TokenVerifier, clients: ClientStore, *, accept_test_keys: bool = False
    ) -> None:
        """`accept_test_keys`: whether `fgw_test_` keys (and clients holding one) may
        authenticate; the lifespan allows them everywhere but in production."""
        self.verifier = verifier
        self._clients = clients
        self._accept_test_keys = accept_test_keys

    async def authenticate(
        self, authorization: str | None, api_key: str | None = None
    ) -> Principal:
        """Principal for the request's `Authorization` and `X-API-Key` header values."""
        if api_key is not None:
            if authorization:
                raise Unauthenticated("send one credential: Authorization or X-API-Key")
            return await self._client(api_key.strip())
        if not authorization:
            raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        if credential.startswith("fgw_"):
            return await self._client(credential)
        verified = await self.verifier.verify_token_async(credential)
        if verified.client_id is None:
            return verified.principal
        return await self._bound(verified.principal, verified.client_id)

    async def _client(self, key: str) -> Principal:
        if key.startswith(_TEST_KEY_PREFIX) and not self._accept_test_keys:
            raise Unauthenticated(_TEST_KEYS_REFUSED)
        client = await self._clients.by_key(key)
        if client is None:
            raise Unauthenticated("the API key is not valid or has been revoked")
        return Principal.of_client(client)

    async def _bound(self, token: Principal, client_id: int) -> Principal:
        """The token's subject acting through the registered client the token names."""
        client: ApiClient | None = await self._clients.get(client_id)
        if client is None or client.is_revoked or client.tenant_id != token.tenant_id:
            # One answer for all three: a token must not learn which clients exist elsewhere.
            raise Unauthenticated(
                "the token's client_id names no active API client of the token's tenant"
            )
        if client.key_prefix.startswith(_TEST_KEY_PREFIX) and not self._accept_test_keys:
            raise Unauthenticated(_TEST_KEYS_REFUSED)
        return Principal(
            subject=token.subject,
            tenant_id=client.tenant_id,
            scopes=token.scopes & client.scopes,
            kind=client.kind,
            client_id=client.id,
            policy=client.policy,
        )
