"""Plaid webhook verification with keys served by the sandbox (in-process and over HTTP)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import jwt
import pytest

from adapters.banking.plaid import PlaidProvider
from adapters.banking.webhooks import (
    WebhookKeyCache,
    WebhookVerificationError,
    verify_plaid_webhook,
)
from adapters.sandbox.banking_app import BankingSandbox


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def keys(plaid: PlaidProvider) -> WebhookKeyCache:
    return WebhookKeyCache(plaid.get_webhook_verification_key)


async def test_a_signed_webhook_verifies_and_its_key_is_fetched_once(
    keys: WebhookKeyCache, banking_sandbox: BankingSandbox
) -> None:
    body = banking_sandbox.webhook_body("item-1", "TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")
    login = banking_sandbox.webhook_body("item-1", "ITEM", "ERROR")

    payload = await verify_plaid_webhook(
        body, banking_sandbox.sign_webhook(body), keys.lookup, _now()
    )
    item_error = await verify_plaid_webhook(
        login, banking_sandbox.sign_webhook(login), keys.lookup, _now()
    )

    assert (payload["webhook_type"], payload["webhook_code"], payload["item_id"]) == (
        "TRANSACTIONS",
        "SYNC_UPDATES_AVAILABLE",
        "item-1",
    )
    assert item_error["error"]["error_code"] == "ITEM_LOGIN_REQUIRED"
    assert keys.fetches == 1
    assert banking_sandbox.calls["/webhook_verification_key/get"] == 1


async def test_a_signature_by_another_key_with_the_same_kid_is_forged(
    keys: WebhookKeyCache, banking_sandbox: BankingSandbox
) -> None:
    forger = BankingSandbox()
    forger.key_id = banking_sandbox.key_id
    body = banking_sandbox.webhook_body("item-1", "TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")

    with pytest.raises(WebhookVerificationError, match="signature"):
        await verify_plaid_webhook(body, forger.sign_webhook(body), keys.lookup, _now())


async def test_a_jwt_not_signed_with_es256_is_refused_before_any_key_lookup(
    keys: WebhookKeyCache, banking_sandbox: BankingSandbox
) -> None:
    body = b'{"webhook_type": "TRANSACTIONS"}'
    claims = {
        "iat": int(_now().timestamp()),
        "request_body_sha256": hashlib.sha256(body).hexdigest(),
    }
    header = jwt.encode(
        claims, "a-shared-secret-long-enough-for-hs256!", algorithm="HS256",
        headers={"kid": banking_sandbox.key_id},
    )  # fmt: skip

    with pytest.raises(WebhookVerificationError, match="ES256"):
        await verify_plaid_webhook(body, header, keys.lookup, _now())
    assert keys.fetches == 0


async def test_a_stale_webhook_is_refused(
    keys: WebhookKeyCache, banking_sandbox: BankingSandbox
) -> None:
    body = banking_sandbox.webhook_body("item-1", "TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")
    issued = _now() - dt.timedelta(minutes=5, seconds=1)
    header = banking_sandbox.sign_webhook(body, issued_at=int(issued.timestamp()))

    with pytest.raises(WebhookVerificationError, match="too old"):
        await verify_plaid_webhook(body, header, keys.lookup, _now())
    # the same webhook was fine when it was fresh
    fresh = issued + dt.timedelta(minutes=1)
    assert (await verify_plaid_webhook(body, header, keys.lookup, fresh))["item_id"] == "item-1"


async def test_a_tampered_body_is_refused(
    keys: WebhookKeyCache, banking_sandbox: BankingSandbox
) -> None:
    body = banking_sandbox.webhook_body("item-1", "TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")
    header = banking_sandbox.sign_webhook(body)
    tampered = json.dumps({**json.loads(body), "item_id": "item-2"}).encode()

    with pytest.raises(WebhookVerificationError, match="body"):
        await verify_plaid_webhook(tampered, header, keys.lookup, _now())


async def test_an_unknown_kid_is_refused(
    keys: WebhookKeyCache, banking_sandbox: BankingSandbox
) -> None:
    stranger = BankingSandbox()
    body = banking_sandbox.webhook_body("item-1", "TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")

    with pytest.raises(WebhookVerificationError, match="unknown"):
        await verify_plaid_webhook(body, stranger.sign_webhook(body), keys.lookup, _now())


@pytest.mark.parametrize("header", ["", "not.a.jwt", "a.b"], ids=["empty", "garbage", "short"])
async def test_garbage_headers_are_refused(keys: WebhookKeyCache, header: str) -> None:
    with pytest.raises(WebhookVerificationError):
        await verify_plaid_webhook(b"{}", header, keys.lookup, _now())


async def test_send_webhook_posts_a_verifiable_request(
    keys: WebhookKeyCache, banking_sandbox: BankingSandbox
) -> None:
    received: list[tuple[bytes, str]] = []

    async def receiver(scope, receive, send):  # type: ignore[no-untyped-def]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        received.append((body, headers[b"plaid-verification"].decode()))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    import httpx

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=receiver), base_url="http://gateway"
    ) as client:
        response = await banking_sandbox.send_webhook(client, "/webhooks/plaid", "item-9")

    assert response.status_code == 200
    body, header = received[0]
    payload = await verify_plaid_webhook(body, header, keys.lookup, _now())
    assert (payload["webhook_code"], payload["item_id"]) == ("SYNC_UPDATES_AVAILABLE", "item-9")
