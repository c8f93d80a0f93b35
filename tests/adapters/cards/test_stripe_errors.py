"""Stripe failures become our provider errors: 429, 5xx, bad keys, hangs, unreadable bodies."""

from __future__ import annotations

import httpx
import pytest

from adapters.cards.stripe import StripeCardProcessor
from adapters.errors import (
    InvalidInput,
    NotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from adapters.sandbox.cards_app import SANDBOX_BASE_URL, CardsSandbox, CardsSandboxFaults
from tests.fixtures.cards_sandbox import CardsSandboxServer


async def test_429_is_rate_limited_with_retry_after_and_request_id(
    stripe_processor: StripeCardProcessor, cards_sandbox: CardsSandbox
) -> None:
    cards_sandbox.faults = CardsSandboxFaults(fail_status=429, retry_after_seconds=7)

    with pytest.raises(ProviderRateLimited) as caught:
        await stripe_processor.list_payments("cus_1")

    error = caught.value
    assert (error.code, error.retryable, error.retry_after) == ("PROVIDER_RATE_LIMITED", True, 7.0)
    assert (error.provider, error.provider_code) == ("stripe", "rate_limit")
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    assert "Too many" not in error.message


@pytest.mark.parametrize("status", [500, 502, 503], ids=["500_case", "502_case", "503_case"])
async def test_5xx_is_unavailable_and_retryable(
    stripe_processor: StripeCardProcessor, cards_sandbox: CardsSandbox, status: int
) -> None:
    cards_sandbox.faults = CardsSandboxFaults(fail_status=status, fail_times=1)

    with pytest.raises(ProviderUnavailable) as caught:
        await stripe_processor.payments_by_customers(["cus_1"])

    assert (caught.value.code, caught.value.retryable) == ("PROVIDER_UNAVAILABLE", True)
    # The fault was for one call only: the next one succeeds.
    page = (await stripe_processor.payments_by_customers(["cus_1"]))["cus_1"]
    assert [p.id for p in page.items] == cards_sandbox.data.payment_intent_ids("cus_1")[:20]
    assert cards_sandbox.total_calls == 2


async def test_an_invalid_key_is_a_terminal_rejection(cards_sandbox: CardsSandbox) -> None:
    processor = StripeCardProcessor(
        api_key="sk_test_wrong",
        base_url=SANDBOX_BASE_URL,
        client=httpx.AsyncClient(transport=cards_sandbox.transport()),
    )

    with pytest.raises(ProviderRejected) as caught:
        await processor.list_payouts()

    error = caught.value
    assert (error.code, error.retryable, error.provider_code) == (
        "PROVIDER_REJECTED",
        False,
        "api_key_invalid",
    )
    assert error.message == "the card processor refused our credentials"


async def test_bad_parameters_are_rejected_before_any_call(
    stripe_processor: StripeCardProcessor, cards_sandbox: CardsSandbox
) -> None:
    with pytest.raises(InvalidInput):
        await stripe_processor.payments_by_customers(["cus_1' OR customer:'cus_2"])
    with pytest.raises(InvalidInput):
        await stripe_processor.list_payments("cus_1", starting_after="../x")

    assert cards_sandbox.total_calls == 0


async def test_an_unknown_cursor_is_rejected_by_the_processor(
    stripe_processor: StripeCardProcessor,
) -> None:
    with pytest.raises(NotFound):
        await stripe_processor.list_payouts(starting_after="po_nothere")


async def test_a_hanging_processor_times_out_as_unavailable(
    cards_sandbox_server: CardsSandboxServer,
) -> None:
    sandbox = CardsSandbox(faults=CardsSandboxFaults(hang_seconds=1.0))
    cards_sandbox_server.sandbox = sandbox
    processor = StripeCardProcessor(
        api_key=sandbox.secret_key, base_url=cards_sandbox_server.base_url, timeout=0.1
    )

    with pytest.raises(ProviderUnavailable) as caught:
        await processor.list_payments("cus_1")

    await processor.aclose()
    assert caught.value.message == "the card processor timed out"
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)
    assert sandbox.total_calls == 1


async def test_a_refused_connection_is_unavailable() -> None:
    processor = StripeCardProcessor(api_key="sk_test_x", base_url="http://127.0.0.1:9", timeout=1)

    with pytest.raises(ProviderUnavailable) as caught:
        await processor.list_payouts()

    await processor.aclose()
    assert caught.value.message == "the card processor could not be reached"
