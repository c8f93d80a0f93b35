"""Adyen card payments, built from notifications: an append-only event log and derived state.

`adyen_notifications` holds every verified notification item once per
(tenant, pspReference, eventCode, success), the key Adyen itself deduplicates by; retries and
duplicates hit the unique constraint. Only normalized fields are stored (no raw
`additionalData`: it can hold the shopper's name, e-mail and IP address; no card number, only
the last four digits and expiry).

`adyen_payments` is one row per payment (the AUTHORISATION's pspReference, or the
`originalReference` of its modifications), recomputed from all of the payment's events
whenever one arrives (adapters.cards.adyen_store.fold_payment): a function of the set of
events, so the order they arrived in changes nothing.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
)

from adapters.db import Id, UtcDateTime, created_at_column, metadata

__all__ = ["adyen_notifications", "adyen_payments"]

adyen_notifications = Table(
    "adyen_notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("psp_reference", String(64), nullable=False),
    Column("original_reference", String(64)),
    # The payment this event belongs to (original_reference, else psp_reference).
    Column("payment_reference", String(64), nullable=False),
    Column("merchant_account", String(255), nullable=False),
    Column("merchant_reference", String(255), nullable=False),
    Column("event_code", String(64), nullable=False),
    Column("success", Boolean, nullable=False),
    # Minor units of `currency` as Adyen sent them (never negative).
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("event_date", UtcDateTime(), nullable=False),
    Column("payment_method", String(64)),
    Column("shopper_reference", String(255)),
    # The refusal reason of a failed event; null for a success.
    Column("reason", String(255)),
    Column("card_last4", String(4)),
    Column("card_exp_month", SmallInteger),
    Column("card_exp_year", SmallInteger),
    Column("card_funding", String(16)),
    Column("recurring_detail_reference", String(255)),
    Column("chargeback_reason_code", String(32)),
    Column("defense_period_ends_at", UtcDateTime()),
    created_at_column(),  # when we received it
    CheckConstraint("amount >= 0", name="amount"),
    UniqueConstraint(
        "tenant_id", "psp_reference", "event_code", "success", name="uq_adyen_notifications_dedup"
    ),
    Index("ix_adyen_notifications_payment", "tenant_id", "payment_reference"),
)

adyen_payments = Table(
    "adyen_payments",
    metadata,
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("psp_reference", String(64), nullable=False),
    Column("merchant_account", String(255), nullable=False),
    Column("merchant_reference", String(255), nullable=False),
    # provider_links.external_id of the customer (provider "adyen"); null until an event
    # that carries it (the AUTHORISATION) has arrived.
    Column("shopper_reference", String(255)),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("exponent", SmallInteger, nullable=False),
    Column("amount_captured", BigInteger, nullable=False),
    Column("amount_refunded", BigInteger, nullable=False),
    # adapters.cards.records.PaymentStatus values
    Column("status", String(32), nullable=False),
    # The AUTHORISATION's eventDate; the earliest event's until the AUTHORISATION arrives.
    Column("payment_created_at", UtcDateTime(), nullable=False),
    Column("authorised", Boolean, nullable=False),
    Column("card_brand", String(32)),
    Column("card_last4", String(4)),
    Column("card_exp_month", SmallInteger),
    Column("card_exp_year", SmallInteger),
    Column("card_funding", String(16)),
    Column("card_wallet", String(16)),
    Column("failure_code", String(64)),
    Column("failure_category", String(32)),
    # [{"id", "amount", "status", "created"}], newest first
    Column("refunds", JSON, nullable=False),
    Column("dispute_psp_reference", String(64)),
    Column("dispute_status", String(32)),
    Column("dispute_reason", String(32)),
    Column("dispute_amount", BigInteger),
    Column("dispute_created_at", UtcDateTime()),
    Column("dispute_evidence_due_by", UtcDateTime()),
    Column("event_count", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("tenant_id", "psp_reference"),
    Index(
        "ix_adyen_payments_shopper",
        "tenant_id",
        "shopper_reference",
        "payment_created_at",
        "psp_reference",
    ),
)
