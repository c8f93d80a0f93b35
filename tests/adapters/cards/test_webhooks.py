"""Stripe-style webhook signatures: valid, forged, stale or replayed, rotated, several v1."""

from __future__ import annotations

import json

import pytest

from adapters.cards.webhooks import (
    MalformedPayload,
    MalformedSignatureHeader,
    SignatureMismatch,
    TimestampOutsideTolerance,
    sign_stripe_payload,
    stripe_signature_header,
    verify_stripe_signature,
)

NOW = 1_700_000_000
SECRET = "whsec_current"
OLD_SECRET = "whsec_previous"
EVENT = {"id": "evt_1", "type": "charge.refunded", "data": {"object": {"id": "ch_1"}}}
PAYLOAD = json.dumps(EVENT, separators=(",", ":")).encode()


def test_valid_signature_returns_the_parsed_event() -> None:
    header = stripe_signature_header(PAYLOAD, [SECRET], NOW)

    event = verify_stripe_signature(PAYLOAD, header, [SECRET], now=NOW)

    assert event == EVENT


def test_known_vector_matches_hmac_sha256_of_timestamp_dot_body() -> None:
    # `printf '1.{}' | openssl dgst -sha256 -hmac secret`
    assert sign_stripe_payload(b"{}", "secret", 1) == (
        "1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908"
    )


def test_a_changed_body_is_refused() -> None:
    header = stripe_signature_header(PAYLOAD, [SECRET], NOW)
    forged = PAYLOAD.replace(b"ch_1", b"ch_2")

    with pytest.raises(SignatureMismatch):
        verify_stripe_signature(forged, header, [SECRET], now=NOW)


def test_a_signature_made_with_another_secret_is_refused() -> None:
    header = stripe_signature_header(PAYLOAD, ["whsec_attacker"], NOW)

    with pytest.raises(SignatureMismatch):
        verify_stripe_signature(PAYLOAD, header, [SECRET], now=NOW)


def test_a_retimed_header_is_refused() -> None:
    """Replaying a captured signature with a fresh timestamp breaks the HMAC."""
    signature = sign_stripe_payload(PAYLOAD, SECRET, NOW - 3600)

    with pytest.raises(SignatureMismatch):
        verify_stripe_signature(PAYLOAD, f"t={NOW},v1={signature}", [SECRET], now=NOW)


@pytest.mark.parametrize("age", [301, -301, 86_400], ids=["stale_case", "future_case", "day_case"])
def test_a_timestamp_outside_tolerance_is_refused(age: int) -> None:
    header = stripe_signature_header(PAYLOAD, [SECRET], NOW - age)

    with pytest.raises(TimestampOutsideTolerance):
        verify_stripe_signature(PAYLOAD, header, [SECRET], now=NOW)


def test_tolerance_is_inclusive_and_configurable() -> None:
    header = stripe_signature_header(PAYLOAD, [SECRET], NOW - 300)
    assert verify_stripe_signature(PAYLOAD, header, [SECRET], now=NOW) == EVENT

    with pytest.raises(TimestampOutsideTolerance):
        verify_stripe_signature(PAYLOAD, header, [SECRET], now=NOW, tolerance=60)


def test_rotation_accepts_either_of_our_secrets() -> None:
    signed_with_old = stripe_signature_header(PAYLOAD, [OLD_SECRET], NOW)
    signed_with_new = stripe_signature_header(PAYLOAD, [SECRET], NOW)

    assert verify_stripe_signature(PAYLOAD, signed_with_old, [SECRET, OLD_SECRET], now=NOW)
    assert verify_stripe_signature(PAYLOAD, signed_with_new, [SECRET, OLD_SECRET], now=NOW)


def test_several_v1_values_match_when_any_one_does() -> None:
    header = stripe_signature_header(PAYLOAD, ["whsec_other", SECRET], NOW)
    assert header.count("v1=") == 2

    assert verify_stripe_signature(PAYLOAD, header, [SECRET], now=NOW) == EVENT


def test_unknown_schemes_are_ignored_but_do_not_count() -> None:
    v0 = sign_stripe_payload(PAYLOAD, SECRET, NOW)

    with pytest.raises(MalformedSignatureHeader):
        verify_stripe_signature(PAYLOAD, f"t={NOW},v0={v0}", [SECRET], now=NOW)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=abc,v1=00", "v1=00", f"t={NOW}"],
    ids=["none_case", "empty_case", "garbage_case", "bad_time_case", "no_time_case", "no_v1_case"],
)
def test_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(MalformedSignatureHeader):
        verify_stripe_signature(PAYLOAD, header, [SECRET], now=NOW)


def test_no_configured_secret_refuses_everything() -> None:
    header = stripe_signature_header(PAYLOAD, [SECRET], NOW)

    with pytest.raises(SignatureMismatch):
        verify_stripe_signature(PAYLOAD, header, [], now=NOW)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]"], ids=["text_case", "array_case"])
def test_a_signed_body_that_is_not_an_object_is_refused(body: bytes) -> None:
    header = stripe_signature_header(body, [SECRET], NOW)

    with pytest.raises(MalformedPayload):
        verify_stripe_signature(body, header, [SECRET], now=NOW)
