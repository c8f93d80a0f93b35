"""Records survive the cache's byte form exactly, nested and generic ones included."""

from __future__ import annotations

import datetime as dt

import pytest

from adapters import record_codec
from adapters.banking.records import BankAccount, BankBalances, BankTransaction, ConnectionStatus
from adapters.cards.records import (
    CardBrand,
    CardFunding,
    CardPage,
    CardPayment,
    CardWallet,
    Dispute,
    DisputeReason,
    DisputeStatus,
    FailureCategory,
    PaymentCard,
    PaymentStatus,
    Refund,
    RefundStatus,
)

NOW = dt.datetime(2026, 11, 29, 12, 30, 15, 123456, tzinfo=dt.UTC)


def make_payment(payment_id: str = "pi_1") -> CardPayment:
    return CardPayment(
        id=payment_id,
        customer_external_id="cus_1",
        amount=1250,
        currency="USD",
        exponent=2,
        amount_captured=1250,
        amount_refunded=250,
        status=PaymentStatus.SUCCEEDED,
        created=NOW,
        card=PaymentCard(
            CardBrand.VISA, "4242", 12, 2030, CardFunding.CREDIT, CardWallet.APPLE_PAY
        ),
        refunds=(Refund("re_1", payment_id, 250, "USD", 2, RefundStatus.SUCCEEDED, NOW),),
        dispute=Dispute(
            "dp_1",
            payment_id,
            1000,
            "USD",
            2,
            DisputeStatus.NEEDS_RESPONSE,
            DisputeReason.FRAUDULENT,
            None,
            NOW,
            "stripe",
            NOW,
        ),
        failure_code=None,
        failure_message=None,
        failure_category=FailureCategory.OTHER,
        fee=66,
        net=1184,
        description=None,
        provider="stripe",
        fetched_at=NOW,
    )


def test_a_generic_page_of_nested_records_round_trips() -> None:
    page = CardPage(items=(make_payment("pi_1"), make_payment("pi_2")), has_more=True,
                    next_cursor="pi_2")  # fmt: skip
    decoded = record_codec.decode(record_codec.encode(page), CardPage[CardPayment])
    assert decoded == page
    assert decoded.items[0].created.tzinfo is not None
    assert isinstance(decoded.items[0].status, PaymentStatus)


def test_bank_records_with_dates_and_defaults_round_trip() -> None:
    account = BankAccount(
        provider_account_id="acc_1", name="Checking", official_name=None, mask="0000",
        type="depository", subtype="checking",
        balances=BankBalances(current=10_000, available=9_000, limit=None, currency="USD",
                              exponent=2),
        as_of=NOW, connection_status=ConnectionStatus.LOGIN_REQUIRED, id=7, customer_id=3,
        provider_link_id=2, provider="plaid",
    )  # fmt: skip
    transaction = BankTransaction(
        "tx_1", "acc_1", -1250, "USD", 2, dt.date(2026, 11, 28), None, "Coffee", None,
        ("Food", "Coffee"), False, None,
    )  # fmt: skip
    assert record_codec.decode(record_codec.encode(account), BankAccount) == account
    assert record_codec.decode(
        record_codec.encode((transaction,)), tuple[BankTransaction, ...]
    ) == (transaction,)


def test_optional_values_decode_none() -> None:
    assert record_codec.decode(b"null", CardPayment | None) is None


def test_unsupported_types_are_refused() -> None:
    with pytest.raises(TypeError, match="optional unions"):
        record_codec.decoder(int | str)
