"""card risk: one fact per card payment, with the risk reasons evaluated on ingest

Its own branch (label "risk"), after the tables it points at and their (tenant_id, id) keys (0004).
See adapters.cards.risk.

Revision ID: 0009_card_risk
Revises: (base of the "risk" branch; depends on 0004, which makes customers (tenant_id, id) unique)
Create Date: 2026-12-01 08:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import adapters.db

revision = "0009_card_risk"
down_revision = None
branch_labels = ("risk",)
depends_on = "0004_ledger_tenant_keys"

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "card_risk_facts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("customer_id", _ID, nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("payment_id", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=255), nullable=True),
        sa.Column("amount", _ID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("disputed", sa.Boolean(), nullable=False),
        sa.Column("created_at", adapters.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("evaluated_at", adapters.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name=op.f("fk_card_risk_facts_tenant_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_card_risk_facts_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_risk_facts")),
        sa.UniqueConstraint(
            "tenant_id",
            "provider",
            "payment_id",
            name=op.f("uq_card_risk_facts_tenant_id_provider_payment_id"),
        ),
    )
    with op.batch_alter_table("card_risk_facts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_card_risk_facts_tenant_id_customer_id_created_at"),
            ["tenant_id", "customer_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_card_risk_facts_tenant_id_fingerprint_created_at"),
            ["tenant_id", "fingerprint", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    op.drop_table("card_risk_facts")
