"""Adyen HMAC signatures: the signing string, good and bad signatures, rotated keys."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapters.cards.adyen_webhooks import (
    MalformedNotification,
    decode_hmac_key,
    hmac_signing_string,
    parse_item,
    sign_item,
    verify_item,
)
from adapters.sandbox.adyen_app import SANDBOX_HMAC_KEY, AdyenSandbox
from tests.fixtures.adyen_spec import check_notification_body

OLD = decode_hmac_key(SANDBOX_HMAC_KEY)
NEW = decode_hmac_key("00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF")


def _authorisation(**overrides: Any) -> dict[str, Any]:
    _, items = AdyenSandbox().payment("shopper-1", events=("AUTHORISATION",))
    return {**items[0], **overrides}


def test_the_signing_string_is_adyens_field_order_with_empty_strings_for_missing() -> None:
    item = {
        "pspReference": "7914073381342284", "merchantAccountCode": "TestMerchant",
        "merchantReference": "TestPayment-1407325143704", "amount": {"value": 1130,
        "currency": "EUR"}, "eventCode": "AUTHORISATION", "success": "true",
    }  # fmt: skip
    assert hmac_signing_string(item) == (
        "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
    )


def test_a_sandbox_item_verifies_and_a_changed_field_does_not() -> None:
    item = _authorisation()
    assert verify_item(item, [OLD])
    tampered = copy.deepcopy(item)
    tampered["amount"]["value"] += 1
    assert not verify_item(tampered, [OLD])
    unsigned = copy.deepcopy(item)
    del unsigned["additionalData"]["hmacSignature"]
    assert not verify_item(unsigned, [OLD])
    assert not verify_item(item, [])  # no key configured: nothing verifies


def test_during_rotation_either_key_verifies() -> None:
    item = _authorisation()
    assert not verify_item(item, [NEW])
    assert verify_item(item, [NEW, OLD])
    resigned = copy.deepcopy(item)
    resigned["additionalData"]["hmacSignature"] = sign_item(item, NEW)
    assert verify_item(resigned, [NEW, OLD])
    assert not verify_item(resigned, [OLD])


def test_keys_must_be_hex_and_long_enough() -> None:
    with pytest.raises(ValueError, match="hexadecimal"):
        decode_hmac_key("not-hex")
    with pytest.raises(ValueError, match="16 bytes"):
        decode_hmac_key("00ff")


def test_parsing_keeps_card_facts_and_never_the_raw_additional_data() -> None:
    item = _authorisation()
    item["additionalData"]["shopperEmail"] = "someone@example.com"
    parsed = parse_item(item)
    assert (parsed.card_last4, parsed.card_exp_month, parsed.card_exp_year) == ("1111", 3, 2030)
    assert parsed.shopper_reference == "shopper-1"
    assert "example.com" not in repr(parsed)
    with pytest.raises(MalformedNotification):
        parse_item({**item, "amount": {"value": "12", "currency": "EUR"}})


def test_sandbox_notifications_follow_the_webhooks_spec() -> None:
    sandbox = AdyenSandbox()
    items: list[dict[str, Any]] = []
    for events in (
        ("AUTHORISATION", "CAPTURE", "REFUND", "REFUND_FAILED"),
        ("AUTHORISATION", "NOTIFICATION_OF_CHARGEBACK", "CHARGEBACK", "CHARGEBACK_REVERSED"),
        ("AUTHORISATION", "CANCELLATION"),
        ("AUTHORISATION", "CAPTURE", "CAPTURE_FAILED", "SECOND_CHARGEBACK"),
    ):
        items += sandbox.payment("shopper-2", events=events)[1]
    items += sandbox.payment("shopper-3", refused_reason="Not enough balance")[1][:1]
    for body in sandbox.batches(items, size=4):
        check_notification_body(body)
