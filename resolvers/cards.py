"""Card processor types: CardPayment with its card, refunds and dispute, and the payments field.

Provider data: every node names its `provider` and when it was `fetchedAt` (it may come from
the gateway's cache, up to the cache TTL old, or older when served stale: see the response's
`extensions.staleData`). Amounts use the processor's exponent for the currency.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated

import strawberry

from adapters.cards import records
from adapters.errors import InvalidInput, ProviderUnavailable
from resolvers.context import Info
from resolvers.cost_directives import FREE, ListSize
from resolvers.money import Money
from resolvers.pagination import Connection, check_first, make_connection

if TYPE_CHECKING:
    from resolvers.risk import CardRiskSignals

_RISK_SIGNALS = Annotated["CardRiskSignals", strawberry.lazy("resolvers.risk")]

__all__ = ["CardPayment", "card_payments_of"]

_PROCESSOR_ID = re.compile(r"[A-Za-z0-9_]{1,255}")

strawberry.enum(records.PaymentStatus, name="CardPaymentStatus",
                description="Where a card payment is in its life.")  # fmt: skip
strawberry.enum(records.FailureCategory, name="CardFailureCategory",
                description="Why a card payment failed, normalized across processors.")  # fmt: skip
strawberry.enum(records.CardBrand, name="CardBrand", description="The card network.")
strawberry.enum(records.CardFunding, name="CardFunding",
                description="Whether the card is credit, debit or prepaid.")  # fmt: skip
strawberry.enum(records.CardWallet, name="CardWallet",
                description="The wallet the card was presented through, if any.")  # fmt: skip
strawberry.enum(records.RefundStatus, name="CardRefundStatus",
                description="Where a refund is in its life.")  # fmt: skip
strawberry.enum(records.DisputeStatus, name="CardDisputeStatus",
                description="Where a dispute (chargeback) is in its life.")  # fmt: skip
strawberry.enum(records.DisputeReason, name="CardDisputeReason",
                description="The reason the cardholder's bank gave for a dispute.")  # fmt: skip

# Our own words for each category: the processor's free text never reaches a client.
FAILURE_MESSAGES = {
    records.FailureCategory.CARD_DECLINED: "The card was declined.",
    records.FailureCategory.INSUFFICIENT_FUNDS: "The card has insufficient funds.",
    records.FailureCategory.EXPIRED_CARD: "The card has expired.",
    records.FailureCategory.INCORRECT_CARD_DETAILS: "The card details are incorrect.",
    records.FailureCategory.AUTHENTICATION_REQUIRED: "The cardholder must authenticate it.",
    records.FailureCategory.FRAUD_SUSPECTED: "The payment was blocked as suspected fraud.",
    records.FailureCategory.PROCESSING_ERROR: "The processor could not process the card.",
    records.FailureCategory.OTHER: "The payment failed.",
}


@strawberry.type(
    directives=[FREE], description="The card a payment was made with: never more than these fields."
)
class PaymentCard:
    brand: records.CardBrand = strawberry.field(description="Card network.")
    last4: str = strawberry.field(description="Last four digits of the card number.")
    exp_month: int = strawberry.field(description="Expiry month, 1-12.")
    exp_year: int = strawberry.field(description="Expiry year, four digits.")
    funding: records.CardFunding = strawberry.field(description="Credit, debit or prepaid.")
    wallet: records.CardWallet | None = strawberry.field(
        description="Wallet used (Apple Pay, Google Pay ...); null for a card used directly."
    )


@strawberry.type(directives=[FREE], description="A refund of (part of) a card payment.")
class CardRefund:
    processor_id: str = strawberry.field(description="The processor's id of the refund.")
    amount: Money = strawberry.field(description="Amount refunded.")
    status: records.RefundStatus = strawberry.field(description="Refund status.")
    created_at: dt.datetime = strawberry.field(description="When the refund was created.")


@strawberry.type(
    directives=[FREE], description="A dispute (chargeback) raised against a card payment."
)
class CardDispute:
    processor_id: str = strawberry.field(description="The processor's id of the dispute.")
    amount: Money = strawberry.field(description="Amount disputed.")
    status: records.DisputeStatus = strawberry.field(description="Dispute status.")
    reason: records.DisputeReason = strawberry.field(description="Reason given by the bank.")
    evidence_due_by: dt.datetime | None = strawberry.field(
        description="Deadline for submitting evidence; null when none is pending."
    )
    created_at: dt.datetime = strawberry.field(description="When the dispute was opened.")
    provider: str = strawberry.field(description='The card processor ("stripe").')
    fetched_at: dt.datetime = strawberry.field(
        description="When the gateway read this from the processor."
    )


def _money(amount: int, payment: records.CardPayment) -> Money:
    return Money.of(amount, payment.currency, payment.exponent)


@strawberry.type(description="A card payment at a card processor, with its refunds and dispute.")
class CardPayment:
    processor_id: str = strawberry.field(description="The processor's id of the payment.")
    provider: str = strawberry.field(description='The card processor ("stripe").')
    fetched_at: dt.datetime = strawberry.field(
        description=(
            "When the gateway read this from the processor (cached reads keep the time of "
            "the original read)."
        )
    )
    amount: Money = strawberry.field(description="Amount the customer was asked to pay.")
    captured: Money = strawberry.field(description="Amount captured so far.")
    refunded: Money = strawberry.field(description="Amount refunded so far.")
    status: records.PaymentStatus = strawberry.field(description="Payment status.")
    created_at: dt.datetime = strawberry.field(description="When the payment was created.")
    card: PaymentCard | None = strawberry.field(
        description="The card used; null when no card was attached yet."
    )
    refunds: list[CardRefund] = strawberry.field(
        description="Refunds, newest first.", directives=[ListSize(assumed_size=3)]
    )
    dispute: CardDispute | None = strawberry.field(
        description="The dispute against this payment; null when there is none."
    )
    failure_code: str | None = strawberry.field(
        description="The processor's decline code for a failed payment (machine-readable)."
    )
    failure_category: records.FailureCategory | None = strawberry.field(
        description="Why the payment failed, normalized; null unless it failed."
    )
    failure_message: str | None = strawberry.field(
        description="A message for the failure category in our words; null unless it failed."
    )
    fee: Money | None = strawberry.field(
        description="Processor fee; null until the processor has settled the charge."
    )
    net: Money | None = strawberry.field(
        description="Amount less fees; null until the processor has settled the charge."
    )
    description: str | None = strawberry.field(description="Description given at creation.")

    @strawberry.field(
        description=(
            "The risk rules evaluated when the gateway recorded this payment (from the "
            "processor's events); null when it has not recorded it. Never calls the processor."
        )
    )
    async def risk_signals(self, info: Info) -> _RISK_SIGNALS | None:
        from resolvers.risk import payment_risk_signals

        return await payment_risk_signals(info, self.provider, self.processor_id)

    @classmethod
    def from_record(cls, payment: records.CardPayment) -> CardPayment:
        card = payment.card
        dispute = payment.dispute
        category = payment.failure_category
        return cls(
            processor_id=payment.id,
            provider=payment.provider,
            fetched_at=payment.fetched_at,
            amount=_money(payment.amount, payment),
            captured=_money(payment.amount_captured, payment),
            refunded=_money(payment.amount_refunded, payment),
            status=payment.status,
            created_at=payment.created,
            card=None
            if card is None
            else PaymentCard(
                brand=card.brand,
                last4=card.last4,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
                funding=card.funding,
                wallet=card.wallet,
            ),
            refunds=[
                CardRefund(
                    processor_id=refund.id,
                    amount=Money.of(refund.amount, refund.currency, refund.exponent),
                    status=refund.status,
                    created_at=refund.created,
                )
                for refund in payment.refunds
            ],
            dispute=None
            if dispute is None
            else CardDispute(
                processor_id=dispute.id,
                amount=Money.of(dispute.amount, dispute.currency, dispute.exponent),
                status=dispute.status,
                reason=dispute.reason,
                evidence_due_by=dispute.evidence_due_by,
                created_at=dispute.created,
                provider=dispute.provider,
                fetched_at=dispute.fetched_at,
            ),
            failure_code=payment.failure_code,
            failure_category=category,
            failure_message=None if category is None else FAILURE_MESSAGES[category],
            fee=None if payment.fee is None else _money(payment.fee, payment),
            net=None if payment.net is None else _money(payment.net, payment),
            description=payment.description,
        )


def _encode_cursor(payment_id: str) -> str:
    return base64.urlsafe_b64encode(f"p:{payment_id}".encode()).decode()


def _decode_cursor(cursor: str) -> str:
    try:
        kind, _, payment_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        kind, payment_id = "", ""
    if kind != "p" or not _PROCESSOR_ID.fullmatch(payment_id):
        raise InvalidInput("after is not a cursor of this list", field="after")
    return payment_id


async def card_payments_of(
    info: Info, customer_pk: int, first: int, after: str | None
) -> Connection[CardPayment]:
    """One page of a customer's card payments, newest first (raises the provider's error)."""
    context = info.context
    limit = check_first(first, context.max_page_size)
    after_id = None if after is None else _decode_cursor(after)
    if context.cards is None:
        raise ProviderUnavailable("card processing is not configured", provider="cards")
    page = await context.cards.card_payments_by_customer_id(limit, after_id).load(customer_pk)
    return make_connection(
        page.items,
        page.has_more,
        CardPayment.from_record,
        lambda payment: _encode_cursor(payment.id),
    )
