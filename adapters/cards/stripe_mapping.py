"""Stripe JSON objects -> provider-neutral card records. Pure functions, no I/O.

Payment intents are read with `latest_charge`, its `balance_transaction`, `refunds` and
`dispute` expanded; a field that arrives as a bare id (not expanded) maps to "unknown"
(None) rather than triggering a follow-up call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from adapters.cards.records import (
    BalanceTransaction,
    BalanceTransactionStatus,
    BalanceTransactionType,
    CardBrand,
    CardFunding,
    CardPayment,
    CardWallet,
    Dispute,
    DisputeReason,
    DisputeStatus,
    FailureCategory,
    PaymentCard,
    PaymentStatus,
    Payout,
    PayoutStatus,
    Refund,
    RefundStatus,
)
from adapters.cards.risk_rules import PaymentFact, RiskOutcome
from adapters.cards.stripe_currencies import stripe_currency_exponent

__all__ = [
    "charge_risk_fact",
    "failure_category",
    "map_balance_transaction",
    "map_dispute",
    "map_payment_intent",
    "map_payout",
    "map_refund",
]

PROVIDER = "stripe"
Json = Mapping[str, Any]

_BRANDS = {
    "visa": CardBrand.VISA,
    "mastercard": CardBrand.MASTERCARD,
    "amex": CardBrand.AMEX,
    "discover": CardBrand.DISCOVER,
    "diners": CardBrand.DINERS,
    "jcb": CardBrand.JCB,
    "unionpay": CardBrand.UNIONPAY,
    "cartes_bancaires": CardBrand.CARTES_BANCAIRES,
}
_WALLETS = {
    "apple_pay": CardWallet.APPLE_PAY,
    "google_pay": CardWallet.GOOGLE_PAY,
    "samsung_pay": CardWallet.SAMSUNG_PAY,
    "link": CardWallet.LINK,
}
_FAILURES = {
    "insufficient_funds": FailureCategory.INSUFFICIENT_FUNDS,
    "expired_card": FailureCategory.EXPIRED_CARD,
    "incorrect_cvc": FailureCategory.INCORRECT_CARD_DETAILS,
    "invalid_cvc": FailureCategory.INCORRECT_CARD_DETAILS,
    "incorrect_number": FailureCategory.INCORRECT_CARD_DETAILS,
    "invalid_number": FailureCategory.INCORRECT_CARD_DETAILS,
    "invalid_expiry_month": FailureCategory.INCORRECT_CARD_DETAILS,
    "invalid_expiry_year": FailureCategory.INCORRECT_CARD_DETAILS,
    "incorrect_zip": FailureCategory.INCORRECT_CARD_DETAILS,
    "authentication_required": FailureCategory.AUTHENTICATION_REQUIRED,
    "fraudulent": FailureCategory.FRAUD_SUSPECTED,
    "stolen_card": FailureCategory.FRAUD_SUSPECTED,
    "lost_card": FailureCategory.FRAUD_SUSPECTED,
    "pickup_card": FailureCategory.FRAUD_SUSPECTED,
    "merchant_blacklist": FailureCategory.FRAUD_SUSPECTED,
    "processing_error": FailureCategory.PROCESSING_ERROR,
    "card_declined": FailureCategory.CARD_DECLINED,
    "generic_decline": FailureCategory.CARD_DECLINED,
    "do_not_honor": FailureCategory.CARD_DECLINED,
    "card_not_supported": FailureCategory.CARD_DECLINED,
    "currency_not_supported": FailureCategory.CARD_DECLINED,
}
_DISPUTE_REASONS = {reason.value: reason for reason in DisputeReason}
_BALANCE_TYPES = {kind.value: kind for kind in BalanceTransactionType}
_BALANCE_TYPES |= {
    "payment_refund": BalanceTransactionType.REFUND,
    "payment_failure_refund": BalanceTransactionType.REFUND,
    "stripe_fee": BalanceTransactionType.FEE,
    "application_fee": BalanceTransactionType.FEE,
    "payout_cancel": BalanceTransactionType.PAYOUT,
    "payout_failure": BalanceTransactionType.PAYOUT,
}


def _balance_type(balance: Json) -> BalanceTransactionType:
    """The movement's type; a dispute's withdrawal or reinstatement is an `adjustment` whose
    reporting category says `dispute`."""
    if balance["type"] == "adjustment" and balance.get("reporting_category") == "dispute":
        return BalanceTransactionType.DISPUTE
    return _BALANCE_TYPES.get(str(balance["type"]), BalanceTransactionType.OTHER)


def _time(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


def _expanded(value: object) -> Json | None:
    """The object of an expandable field, or None when Stripe sent only its id (or null)."""
    return value if isinstance(value, Mapping) else None


def _id_of(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        identifier = value.get("id")
        return identifier if isinstance(identifier, str) else None
    return None


def failure_category(*codes: str | None) -> FailureCategory | None:
    """The first code (decline code before error code) that maps, else OTHER; None if none."""
    present = [code for code in codes if code]
    if not present:
        return None
    for code in present:
        if code in _FAILURES:
            return _FAILURES[code]
    return FailureCategory.OTHER


def _card(charge: Json | None) -> PaymentCard | None:
    details = _expanded(charge.get("payment_method_details")) if charge else None
    card = _expanded(details.get("card")) if details else None
    if card is None:
        return None
    wallet = _expanded(card.get("wallet"))
    wallet_type = wallet.get("type") if wallet else None
    return PaymentCard(
        brand=_BRANDS.get(str(card.get("brand")), CardBrand.UNKNOWN),
        last4=str(card.get("last4") or ""),
        exp_month=int(card.get("exp_month") or 0),
        exp_year=int(card.get("exp_year") or 0),
        funding=CardFunding(card["funding"])
        if card.get("funding") in {"credit", "debit", "prepaid"}
        else CardFunding.UNKNOWN,
        wallet=None if wallet_type is None else _WALLETS.get(str(wallet_type), CardWallet.OTHER),
    )


def map_refund(refund: Json, payment_id: str) -> Refund:
    currency = str(refund["currency"]).upper()
    status = refund.get("status")
    return Refund(
        id=refund["id"],
        payment_id=payment_id,
        amount=int(refund["amount"]),
        currency=currency,
        exponent=stripe_currency_exponent(currency),
        status=RefundStatus(status) if status in set(RefundStatus) else RefundStatus.PENDING,
        created=_time(refund["created"]),
    )


def map_dispute(dispute: Json, *, fetched_at: dt.datetime) -> Dispute:
    currency = str(dispute["currency"]).upper()
    details = _expanded(dispute.get("evidence_details"))
    due_by = details.get("due_by") if details else None
    return Dispute(
        id=dispute["id"],
        payment_id=_id_of(dispute.get("payment_intent")),
        amount=int(dispute["amount"]),
        currency=currency,
        exponent=stripe_currency_exponent(currency),
        status=DisputeStatus(dispute["status"]),
        reason=_DISPUTE_REASONS.get(str(dispute.get("reason")), DisputeReason.OTHER),
        evidence_due_by=_time(due_by) if isinstance(due_by, int) else None,
        created=_time(dispute["created"]),
        provider=PROVIDER,
        fetched_at=fetched_at,
    )


def _status(intent: Json) -> PaymentStatus:
    status = str(intent["status"])
    if status == "requires_payment_method" and intent.get("last_payment_error"):
        return PaymentStatus.FAILED
    return PaymentStatus(status)


def map_payment_intent(intent: Json, *, fetched_at: dt.datetime) -> CardPayment:
    """A payment intent, read with its latest charge expanded, as a CardPayment."""
    currency = str(intent["currency"]).upper()
    charge = _expanded(intent.get("latest_charge"))
    refund_list = _expanded(charge.get("refunds")) if charge else None
    refunds = tuple(
        map_refund(refund, intent["id"]) for refund in (refund_list or {}).get("data", [])
    )
    dispute_object = _expanded(charge.get("dispute")) if charge else None
    balance = _expanded(charge.get("balance_transaction")) if charge else None
    # Fees are in the settlement currency; only report them when that is the payment's.
    has_fee = balance is not None and str(balance["currency"]).upper() == currency
    error = _expanded(intent.get("last_payment_error"))
    failure_code = (charge or {}).get("failure_code") or (error or {}).get("code")
    failure_message = (charge or {}).get("failure_message") or (error or {}).get("message")
    decline_code = (error or {}).get("decline_code") or (
        (_expanded((charge or {}).get("outcome")) or {}).get("reason")
    )
    return CardPayment(
        id=intent["id"],
        customer_external_id=_id_of(intent.get("customer")),
        amount=int(intent["amount"]),
        currency=currency,
        exponent=stripe_currency_exponent(currency),
        amount_captured=int((charge or {}).get("amount_captured") or 0),
        amount_refunded=int((charge or {}).get("amount_refunded") or 0),
        status=_status(intent),
        created=_time(intent["created"]),
        card=_card(charge),
        refunds=refunds,
        dispute=map_dispute(dispute_object, fetched_at=fetched_at) if dispute_object else None,
        failure_code=failure_code,
        failure_message=failure_message,
        failure_category=failure_category(decline_code, failure_code),
        fee=int(balance["fee"]) if balance is not None and has_fee else None,
        net=int(balance["net"]) if balance is not None and has_fee else None,
        description=intent.get("description"),
        provider=PROVIDER,
        fetched_at=fetched_at,
    )


def map_payout(payout: Json, *, fetched_at: dt.datetime) -> Payout:
    currency = str(payout["currency"]).upper()
    return Payout(
        id=payout["id"],
        amount=int(payout["amount"]),
        currency=currency,
        exponent=stripe_currency_exponent(currency),
        status=PayoutStatus(payout["status"]),
        arrival_date=_time(payout["arrival_date"]),
        created=_time(payout["created"]),
        is_automatic=bool(payout.get("automatic")),
        failure_code=payout.get("failure_code"),
        provider=PROVIDER,
        fetched_at=fetched_at,
        statement_descriptor=payout.get("statement_descriptor"),
    )


def map_balance_transaction(balance: Json, *, fetched_at: dt.datetime) -> BalanceTransaction:
    currency = str(balance["currency"]).upper()
    status = balance.get("status")
    return BalanceTransaction(
        id=balance["id"],
        amount=int(balance["amount"]),
        fee=int(balance["fee"]),
        net=int(balance["net"]),
        currency=currency,
        exponent=stripe_currency_exponent(currency),
        type=_balance_type(balance),
        status=BalanceTransactionStatus.AVAILABLE
        if status == "available"
        else BalanceTransactionStatus.PENDING,
        source_id=_id_of(balance.get("source")),
        available_on=_time(balance["available_on"]),
        created=_time(balance["created"]),
        provider=PROVIDER,
        fetched_at=fetched_at,
    )


_CHARGE_OUTCOMES = {
    "succeeded": RiskOutcome.SUCCEEDED,
    "failed": RiskOutcome.DECLINED,
    "pending": RiskOutcome.PENDING,
}


def charge_risk_fact(charge: Json, *, customer_id: int | None) -> PaymentFact | None:
    """What risk keeps of a Stripe charge (keyed by its payment intent when it has one), or
    None for an object that is not a card charge."""
    outcome = _CHARGE_OUTCOMES.get(str(charge.get("status")))
    charge_id = _id_of(charge.get("id"))
    if outcome is None or charge_id is None or charge.get("object") != "charge":
        return None
    details = _expanded(charge.get("payment_method_details"))
    card = _expanded(details.get("card")) if details else None
    fingerprint = card.get("fingerprint") if card else None
    return PaymentFact(
        provider="stripe",
        payment_id=_id_of(charge.get("payment_intent")) or charge_id,
        customer_id=customer_id,
        fingerprint=fingerprint if isinstance(fingerprint, str) and fingerprint else None,
        amount=int(charge["amount"]),
        currency=str(charge["currency"]).upper(),
        outcome=outcome,
        disputed=bool(charge.get("disputed")),
        created=_time(int(charge["created"])),
    )
