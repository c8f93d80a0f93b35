"""The card sandbox: Stripe-shaped auth, errors, search limits, determinism, admin, events."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.cards.webhooks import verify_stripe_signature
from adapters.sandbox.cards_app import SANDBOX_BASE_URL, CardsSandbox
from tests.fixtures.stripe_spec import StripeSpec


def _client(sandbox: CardsSandbox, *, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key or sandbox.secret_key}"}
    return httpx.AsyncClient(
        transport=sandbox.transport(), base_url=SANDBOX_BASE_URL, headers=headers
    )


async def test_a_wrong_key_gets_a_stripe_error_with_a_request_id(stripe_spec: StripeSpec) -> None:
    sandbox = CardsSandbox()
    async with _client(sandbox, key="sk_test_wrong") as client:
        response = await client.get("/v1/payouts")

    stripe_spec.validate(response.request, response)
    assert response.status_code == 401
    assert response.headers["request-id"].startswith("req_")
    assert response.json() == {
        "error": {
            "type": "invalid_request_error",
            "code": "api_key_invalid",
            "message": "Invalid API Key provided.",
        }
    }


async def test_search_refuses_more_than_ten_clauses(stripe_spec: StripeSpec) -> None:
    sandbox = CardsSandbox()
    query = " OR ".join(f"customer:'cus_{n}'" for n in range(11))
    async with _client(sandbox) as client:
        response = await client.get("/v1/payment_intents/search", params={"query": query})

    stripe_spec.validate(response.request, response)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parameter_invalid_string"


async def test_search_pages_with_next_page(stripe_spec: StripeSpec) -> None:
    sandbox = CardsSandbox()
    query = "customer:'cus_1' OR customer:'cus_4'"
    expected = sorted(
        sandbox.data.payment_intents("cus_1") + sandbox.data.payment_intents("cus_4"),
        key=lambda obj: (obj["created"], obj["id"]),
        reverse=True,
    )
    seen: list[str] = []
    params: dict[str, str] = {"query": query, "limit": "3"}
    async with _client(sandbox) as client:
        while True:
            response = await client.get("/v1/payment_intents/search", params=params)
            stripe_spec.validate(response.request, response)
            body = response.json()
            seen += [item["id"] for item in body["data"]]
            if not body["has_more"]:
                break
            params["page"] = body["next_page"]

    assert seen == [obj["id"] for obj in expected]
    assert body["total_count"] == len(expected)


async def test_an_unknown_expansion_is_refused() -> None:
    sandbox = CardsSandbox()
    async with _client(sandbox) as client:
        response = await client.get(
            "/v1/payment_intents", params={"customer": "cus_1", "expand[]": "data.nothing"}
        )

    assert response.status_code == 400


def test_data_are_deterministic_per_seed() -> None:
    first, again, other = CardsSandbox(seed=1), CardsSandbox(seed=1), CardsSandbox(seed=2)

    assert first.data.payment_intents("cus_7") == again.data.payment_intents("cus_7")
    assert first.data.payment_intent_ids("cus_7") != other.data.payment_intent_ids("cus_7")


async def test_admin_sets_faults_and_reports_calls() -> None:
    sandbox = CardsSandbox()
    async with _client(sandbox) as client:
        set_faults = await client.post(
            "/_sandbox/faults", json={"fail_status": 503, "fail_times": 1}
        )
        failed = await client.get("/v1/payouts")
        served = await client.get("/v1/payouts")
        calls = await client.get("/_sandbox/calls")
        unknown = await client.post("/_sandbox/faults", json={"nonsense": 1})

    assert set_faults.json()["fail_status"] == 503
    assert (failed.status_code, served.status_code) == (503, 200)
    assert calls.json() == {"total": 2, "calls": {"GET /v1/payouts": 2}}
    assert unknown.status_code == 400


async def test_signed_events_verify_with_the_sandbox_secrets(stripe_spec: StripeSpec) -> None:
    sandbox = CardsSandbox(webhook_secrets=["whsec_new", "whsec_old"])
    received: list[tuple[bytes, str]] = []

    async def receive(request: Request) -> Response:
        received.append((await request.body(), request.headers["stripe-signature"]))
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/webhooks/stripe", receive, methods=["POST"])])
    charge = next(
        obj
        for n in range(1, 50)
        for obj in sandbox.data.payment_intents(f"cus_{n}")
        if obj["latest_charge"]
    )["latest_charge"]
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        event = await sandbox.send_event(
            "charge.refunded", charge, "http://gateway/webhooks/stripe", client=client
        )

    body, header = received[0]
    verified = verify_stripe_signature(body, header, ["whsec_old"], now=time.time())
    assert verified == event == orjson.loads(body)
    assert (event["type"], event["data"]["object"]["id"]) == ("charge.refunded", charge)
    assert header.count("v1=") == 2
    with pytest.raises(ValueError, match="is not a dispute"):
        sandbox.build_event("charge.dispute.created", charge)
