"""Frozen, provider-neutral records returned by every card processor adapter.

Amounts are integers in minor units of `currency` (upper-case ISO 4217) with the `exponent`
the processor uses for that currency (which may deviate from ISO: Stripe counts ISK in
hundredths). Times are aware UTC datetimes. Full card numbers never exist here: only brand,
last four digits and expiry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

__all__ = [
    "BalanceTransaction",
    "BalanceTransactionStatus",
    "BalanceTransactionType",
    "CardBrand",
    "CardFunding",
    "CardPage",
    "CardPayment",
    "CardWallet",
    "Dispute",
    "DisputeReason",
    "DisputeStatus",
    "FailureCategory",
    "PaymentCard",
    "PaymentStatus",
    "Payout",
    "PayoutStatus",
    "Refund",
    "RefundStatus",
]

T = TypeVar("T")


class PaymentStatus(StrEnum):
    """Where a payment is in its life; FAILED means the last attempt was declined."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"
    FAILED = "failed"


class FailureCategory(StrEnum):
    """A normalized reason for a failed payment, safe to show to a client."""

    CARD_DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"
    INCORRECT_CARD_DETAILS = "incorrect_card_details"
    AUTHENTICATION_REQUIRED = "authentication_required"
    FRAUD_SUSPECTED = "fraud_suspected"
    PROCESSING_ERROR = "processing_error"
    OTHER = "other"


class CardBrand(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    DINERS = "diners"
    JCB = "jcb"
    UNIONPAY = "unionpay"
    CARTES_BANCAIRES = "cartes_bancaires"
    UNKNOWN = "unknown"


class CardFunding(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"
    PREPAID = "prepaid"
    UNKNOWN = "unknown"


class CardWallet(StrEnum):
    APPLE_PAY = "apple_pay"
    GOOGLE_PAY = "google_pay"
    SAMSUNG_PAY = "samsung_pay"
    LINK = "link"
    OTHER = "other"


class RefundStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class DisputeStatus(StrEnum):
    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"


class DisputeReason(StrEnum):
    FRAUDULENT = "fraudulent"
    DUPLICATE = "duplicate"
    PRODUCT_NOT_RECEIVED = "product_not_received"
    PRODUCT_UNACCEPTABLE = "product_unacceptable"
    CREDIT_NOT_PROCESSED = "credit_not_processed"
    SUBSCRIPTION_CANCELED = "subscription_canceled"
    UNRECOGNIZED = "unrecognized"
    GENERAL = "general"
    OTHER = "other"


class PayoutStatus(StrEnum):
    PENDING = "pending"
    IN_TRANSIT = "in_transit"
    PAID = "paid"
    FAILED = "failed"
    CANCELED = "canceled"


class BalanceTransactionType(StrEnum):
    CHARGE = "charge"
    PAYMENT = "payment"
    REFUND = "refund"
    DISPUTE = "dispute"
    PAYOUT = "payout"
    FEE = "fee"
    ADJUSTMENT = "adjustment"
    OTHER = "other"


class BalanceTransactionStatus(StrEnum):
    PENDING = "pending"
    AVAILABLE = "available"


@dataclass(frozen=True, slots=True)
class PaymentCard:
    """The card a payment was made with; never more than brand, last four and expiry."""

    brand: CardBrand
    last4: str
    exp_month: int
    exp_year: int
    funding: CardFunding
    wallet: CardWallet | None


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    payment_id: str
    amount: int
    currency: str
    exponent: int
    status: RefundStatus
    created: dt.datetime


@dataclass(frozen=True, slots=True)
class Dispute:
    id: str
    payment_id: str | None
    amount: int
    currency: str
    exponent: int
    status: DisputeStatus
    reason: DisputeReason
    evidence_due_by: dt.datetime | None
    created: dt.datetime
    provider: str
    fetched_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CardPayment:
    """A card payment (a Stripe payment intent with its latest charge).

    `failure_message` is the processor's free text, kept for support tooling; clients get
    `failure_category`. `fee` and `net` are None until the processor has settled the charge
    into its balance.
    """

    id: str
    customer_external_id: str | None
    amount: int
    currency: str
    exponent: int
    amount_captured: int
    amount_refunded: int
    status: PaymentStatus
    created: dt.datetime
    card: PaymentCard | None
    refunds: tuple[Refund, ...]
    dispute: Dispute | None
    failure_code: str | None
    failure_message: str | None
    failure_category: FailureCategory | None
    fee: int | None
    net: int | None
    description: str | None
    provider: str
    fetched_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    amount: int
    currency: str
    exponent: int
    status: PayoutStatus
    arrival_date: dt.datetime
    created: dt.datetime
    is_automatic: bool
    failure_code: str | None
    provider: str
    fetched_at: dt.datetime
    # What the bank statement shows for this payout, when the processor sets one.
    statement_descriptor: str | None = None


@dataclass(frozen=True, slots=True)
class BalanceTransaction:
    """A movement in the processor balance; `amount` is signed (refunds, payouts negative)."""

    id: str
    amount: int
    fee: int
    net: int
    currency: str
    exponent: int
    type: BalanceTransactionType
    status: BalanceTransactionStatus
    source_id: str | None
    available_on: dt.datetime
    created: dt.datetime
    provider: str
    fetched_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CardPage(Generic[T]):
    """One page of a processor list, newest first.

    `next_cursor` is opaque: pass it back as `starting_after` to read the following page.
    """

    items: tuple[T, ...]
    has_more: bool
    next_cursor: str | None
