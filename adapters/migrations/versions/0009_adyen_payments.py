"""Adyen card payments: the notification log and the payments derived from it

Its own branch (label "adyen"), on top of the ledger tables (it references tenants).

Revision ID: 0009_adyen_payments
Revises:
Create Date: 2026-12-01 08:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_adyen_payments"
down_revision = None
branch_labels = ("adyen",)
depends_on = "0001"

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "adyen_notifications",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("psp_reference", sa.String(64), nullable=False),
        sa.Column("original_reference", sa.String(64), nullable=True),
        sa.Column("payment_reference", sa.String(64), nullable=False),
        sa.Column("merchant_account", sa.String(255), nullable=False),
        sa.Column("merchant_reference", sa.String(255), nullable=False),
        sa.Column("event_code", sa.String(64), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _time("event_date", nullable=False),
        sa.Column("payment_method", sa.String(64), nullable=True),
        sa.Column("shopper_reference", sa.String(255), nullable=True),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("card_last4", sa.String(4), nullable=True),
        sa.Column("card_exp_month", sa.SmallInteger(), nullable=True),
        sa.Column("card_exp_year", sa.SmallInteger(), nullable=True),
        sa.Column("card_funding", sa.String(16), nullable=True),
        sa.Column("recurring_detail_reference", sa.String(255), nullable=True),
        sa.Column("chargeback_reason_code", sa.String(32), nullable=True),
        _time("defense_period_ends_at"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_adyen_notifications_amount")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_adyen_notifications_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adyen_notifications")),
        sa.UniqueConstraint(
            "tenant_id",
            "psp_reference",
            "event_code",
            "success",
            name="uq_adyen_notifications_dedup",
        ),
    )
    op.create_index(
        "ix_adyen_notifications_payment",
        "adyen_notifications",
        ["tenant_id", "payment_reference"],
    )
    op.create_table(
        "adyen_payments",
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("psp_reference", sa.String(64), nullable=False),
        sa.Column("merchant_account", sa.String(255), nullable=False),
        sa.Column("merchant_reference", sa.String(255), nullable=False),
        sa.Column("shopper_reference", sa.String(255), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("exponent", sa.SmallInteger(), nullable=False),
        sa.Column("amount_captured", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        _time("payment_created_at", nullable=False),
        sa.Column("authorised", sa.Boolean(), nullable=False),
        sa.Column("card_brand", sa.String(32), nullable=True),
        sa.Column("card_last4", sa.String(4), nullable=True),
        sa.Column("card_exp_month", sa.SmallInteger(), nullable=True),
        sa.Column("card_exp_year", sa.SmallInteger(), nullable=True),
        sa.Column("card_funding", sa.String(16), nullable=True),
        sa.Column("card_wallet", sa.String(16), nullable=True),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("failure_category", sa.String(32), nullable=True),
        sa.Column("refunds", sa.JSON(), nullable=False),
        sa.Column("dispute_psp_reference", sa.String(64), nullable=True),
        sa.Column("dispute_status", sa.String(32), nullable=True),
        sa.Column("dispute_reason", sa.String(32), nullable=True),
        sa.Column("dispute_amount", sa.BigInteger(), nullable=True),
        _time("dispute_created_at"),
        _time("dispute_evidence_due_by"),
        sa.Column("event_count", sa.Integer(), nullable=False),
        _time("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_adyen_payments_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "psp_reference", name=op.f("pk_adyen_payments")),
    )
    op.create_index(
        "ix_adyen_payments_shopper",
        "adyen_payments",
        ["tenant_id", "shopper_reference", "payment_created_at", "psp_reference"],
    )


def downgrade() -> None:
    op.drop_index("ix_adyen_payments_shopper", table_name="adyen_payments")
    op.drop_table("adyen_payments")
    op.drop_index("ix_adyen_notifications_payment", table_name="adyen_notifications")
    op.drop_table("adyen_notifications")
