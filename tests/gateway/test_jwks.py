"""JWTs verified against a JWKS URL (production): the JWKS is served by a local HTTP server,
the outside world for the gateway; issuer, audience, expiry and key id are all checked."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.app import create_app
from gateway.auth import Authenticator, TokenVerifier, mint_token
from gateway.lifespan import Services
from gateway.settings import Settings
from resolvers.errors import Unauthenticated

ISSUER = "https://login.example.test/"
AUDIENCE = "finance-gateway"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    public = jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key(), as_dict=True)
    document = orjson.dumps({"keys": [{**public, "kid": "key-1", "use": "sig", "alg": "RS256"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def verifier(jwks_url: str) -> TokenVerifier:
    settings = dataclasses.replace(
        Settings(environment="test"), jwt_jwks_url=jwks_url, jwt_issuer=ISSUER
    )
    return TokenVerifier(settings)


def _token(key: Any, *, kid: str = "key-1", algorithm: str = "RS256", **claims: Any) -> str:
    now = dt.datetime.now(dt.UTC)
    payload: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now,
        "exp": now + dt.timedelta(minutes=5), "tenant": "3",
        "scope": "ledger:read", "client_kind": "analyst",
    }  # fmt: skip
    payload.update(claims)
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


async def test_a_token_signed_by_a_jwks_key_verifies(
    verifier: TokenVerifier, signing_key: rsa.RSAPrivateKey
) -> None:
    principal = await verifier.verify_async(_token(signing_key))
    assert (principal.subject, principal.tenant_id, principal.scopes, principal.kind) == (
        "user-1", 3, frozenset({"ledger:read"}), "analyst",
    )  # fmt: skip
    assert principal.client_id is None


def _other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda key: _token(_other_key()), "not valid", id="other_key_case"),
        pytest.param(lambda key: _token(key, kid="key-9"), "not valid", id="unknown_kid_case"),
        pytest.param(lambda key: _token(key, aud="someone-else"), "not valid",
                     id="wrong_audience_case"),
        pytest.param(lambda key: _token(key, iss="https://evil.test/"), "not valid",
                     id="wrong_issuer_case"),
        pytest.param(lambda key: _token(key, exp=dt.datetime.now(dt.UTC)
                                        - dt.timedelta(minutes=5)), "expired", id="expired_case"),
        pytest.param(lambda key: _token("s" * 40, algorithm="HS256"), "not valid",
                     id="shared_secret_refused_case"),
    ],
)  # fmt: skip
async def test_bad_tokens_are_refused(
    verifier: TokenVerifier, signing_key: rsa.RSAPrivateKey, make: Any, message: str
) -> None:
    with pytest.raises(Unauthenticated, match=message):
        await verifier.verify_async(make(signing_key))


async def test_clock_skew_within_the_leeway_is_accepted(
    verifier: TokenVerifier, signing_key: rsa.RSAPrivateKey
) -> None:
    token = _token(signing_key, exp=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=10))
    assert (await verifier.verify_async(token)).tenant_id == 3


async def test_an_unreachable_jwks_is_unauthenticated_not_an_error(
    signing_key: rsa.RSAPrivateKey,
) -> None:
    settings = dataclasses.replace(
        Settings(environment="test"), jwt_jwks_url="http://127.0.0.1:1/jwks", jwt_issuer=ISSUER
    )
    with pytest.raises(Unauthenticated, match="cannot be fetched"):
        await TokenVerifier(settings).verify_async(_token(signing_key))


async def test_the_gateway_accepts_a_jwks_signed_token_end_to_end(
    jwks_url: str, signing_key: rsa.RSAPrivateKey, services: Services, settings: Settings,
    tenant_id: int,
) -> None:  # fmt: skip
    production = dataclasses.replace(settings, jwt_jwks_url=jwks_url, jwt_issuer=ISSUER)
    verifier = TokenVerifier(production)
    app = create_app(
        production,
        dataclasses.replace(
            services, settings=production, verifier=verifier,
            authenticator=Authenticator(verifier, services.clients),
        ),
    )  # fmt: skip
    token = _token(signing_key, tenant=str(tenant_id))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        response = await client.post(
            "/graphql",
            json={"query": "{ customers { totalCount } }"},
            headers={"authorization": f"Bearer {token}"},
        )
        shared_secret = await client.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={
                "authorization": f"Bearer {mint_token(settings, tenant_id=tenant_id, scopes=[])}"
            },
        )
    assert response.json() == {"data": {"customers": {"totalCount": 0}}}
    assert shared_secret.status_code == 401
