from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest

from adapters.crypto import SecretText
from gateway.auth import TokenVerifier, VerifiedToken, mint_token
from gateway.settings import Settings
from resolvers.errors import Forbidden, Unauthenticated
from resolvers.principal import Principal

SETTINGS = Settings(environment="test", jwt_secret=SecretText("s" * 40), jwt_issuer="iss-test")


def test_a_minted_token_verifies_to_its_tenant_and_scopes() -> None:
    token = mint_token(SETTINGS, tenant_id=7, scopes=["ledger:read"], subject="ana")
    principal = TokenVerifier(SETTINGS).verify_authorization(f"Bearer {token}")
    assert (principal.subject, principal.tenant_id, principal.scopes) == (
        "ana", 7, frozenset({"ledger:read"}),
    )  # fmt: skip


def test_a_missing_scope_is_forbidden_and_named() -> None:
    token = mint_token(SETTINGS, tenant_id=7, scopes=["ledger:read"])
    principal = TokenVerifier(SETTINGS).verify(token)
    with pytest.raises(Forbidden) as raised:
        principal.require("ledger:write")
    assert raised.value.extensions == {"scope": "ledger:write"}


def test_unknown_scopes_are_not_minted() -> None:
    with pytest.raises(ValueError, match="unknown scopes: admin"):
        mint_token(SETTINGS, tenant_id=1, scopes=["admin"])


def _claims(**overrides: object) -> dict[str, object]:
    now = dt.datetime.now(dt.UTC)
    claims: dict[str, object] = {
        "iss": "iss-test", "aud": "finance-gateway", "sub": "x", "iat": now,
        "exp": now + dt.timedelta(hours=12), "tenant": "1", "scope": "ledger:read",
    }  # fmt: skip
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param(None, "missing bearer token", id="missing_case"),
        pytest.param("Basic abc", "must be 'Bearer <token>'", id="wrong_scheme_case"),
        pytest.param("Bearer ", "must be 'Bearer <token>'", id="empty_case"),
        pytest.param("Bearer not-a-jwt", "not valid", id="garbage_case"),
        pytest.param(
            "Bearer " + jwt.encode(_claims(), "another-secret-" + "y" * 30, algorithm="HS256"),
            "not valid", id="wrong_key_case",
        ),
        pytest.param(
            "Bearer " + jwt.encode(
                _claims(exp=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)),
                "s" * 40, algorithm="HS256"),
            "expired", id="expired_case",
        ),
        pytest.param(
            "Bearer " + jwt.encode(_claims(aud="someone-else"), "s" * 40, algorithm="HS256"),
            "not valid", id="wrong_audience_case",
        ),
        pytest.param(
            "Bearer " + jwt.encode(_claims(iss="evil"), "s" * 40, algorithm="HS256"),
            "not valid", id="wrong_issuer_case",
        ),
        pytest.param(
            "Bearer " + jwt.encode(_claims(tenant=None), "s" * 40, algorithm="HS256"),
            "no valid tenant", id="no_tenant_case",
        ),
        pytest.param(
            "Bearer " + jwt.encode(_claims(tenant="1 or 1=1"), "s" * 40, algorithm="HS256"),
            "no valid tenant", id="bad_tenant_case",
        ),
        pytest.param(
            "Bearer " + jwt.encode(_claims(), "", algorithm="none"),  # unsigned
            "not valid", id="alg_none_case",
        ),
    ],
)  # fmt: skip
def test_bad_credentials_are_unauthenticated(header: str | None, message: str) -> None:
    with pytest.raises(Unauthenticated, match=message):
        TokenVerifier(SETTINGS).verify_authorization(header)


def test_secrets_never_print() -> None:
    assert "s" * 40 not in repr(SETTINGS)
    assert "s" * 40 not in str(SETTINGS.jwt_secret)


def test_a_remembered_token_is_forgotten_when_it_expires() -> None:
    verifier = TokenVerifier(SETTINGS)
    token = mint_token(SETTINGS, tenant_id=3, scopes=["ledger:read"], ttl=dt.timedelta(minutes=-5))
    principal = Principal(subject="x", tenant_id=3, scopes=frozenset())
    # Remembered, but its time is up.
    verifier._verified[token] = (VerifiedToken(principal), time.time() - 1)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(token)
    assert token not in verifier._verified


def test_a_verified_token_is_remembered_until_expiry_plus_leeway() -> None:
    verifier = TokenVerifier(SETTINGS)
    token = mint_token(SETTINGS, tenant_id=3, scopes=["ledger:read"])
    first = verifier.verify(token)
    assert verifier.verify(token) is first
    claims = jwt.decode(token, options={"verify_signature": False})
    assert verifier._verified[token][1] == claims["exp"] + SETTINGS.jwt_leeway_seconds


def test_a_token_naming_a_client_is_never_a_principal_on_its_claims_alone() -> None:
    verifier = TokenVerifier(SETTINGS)
    token = mint_token(SETTINGS, tenant_id=3, scopes=["ledger:read"], client_id=12)

    verified = verifier.verify_token(token)

    assert verified.client_id == 12
    with pytest.raises(Unauthenticated, match="names an API client"):
        verifier.verify(token)
