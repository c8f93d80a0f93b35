"""reconciliation: the ledger chart it books into and the results of its runs

Its own branch (label "reconciliation"), after the ledger's tenant keys (settlement accounts
reference ledger accounts by (tenant_id, id)); "heads" upgrades every branch.

Revision ID: 0009_reconciliation
Revises:
Create Date: 2026-12-01 08:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import adapters.db

revision = "0009_reconciliation"
down_revision = None
branch_labels = ("reconciliation",)
depends_on = "0004_ledger_tenant_keys"

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "settlement_accounts",
        sa.Column("tenant_id", _ID, autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("ledger_account_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ledger_account_id"],
            ["ledger_accounts.tenant_id", "ledger_accounts.id"],
            name=op.f("fk_settlement_accounts_tenant_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_settlement_accounts_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "owner", "role", "currency", name=op.f("pk_settlement_accounts")
        ),
    )
    op.create_table(
        "reconciliation_items",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("payout_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("missing_on", sa.String(length=16), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("occurred_at", adapters.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=True),
        sa.Column("currency_exponent", sa.SmallInteger(), nullable=True),
        sa.Column("payout_amount", sa.BigInteger(), nullable=True),
        sa.Column("items_net", sa.BigInteger(), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=True),
        sa.Column("bank_transaction_id", _ID, nullable=True),
        sa.Column("bank_amount", sa.BigInteger(), nullable=True),
        sa.Column("bank_currency", sa.String(length=16), nullable=True),
        sa.Column("bank_currency_exponent", sa.SmallInteger(), nullable=True),
        sa.Column("bank_date", sa.Date(), nullable=True),
        sa.Column("checked_at", adapters.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_reconciliation_items_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_items")),
        sa.UniqueConstraint(
            "tenant_id",
            "bank_transaction_id",
            name=op.f("uq_reconciliation_items_tenant_id_bank_transaction_id"),
        ),
        sa.UniqueConstraint(
            "tenant_id",
            "provider",
            "payout_id",
            name=op.f("uq_reconciliation_items_tenant_id_provider_payout_id"),
        ),
    )
    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_items_tenant_id_occurred_at_id"),
            ["tenant_id", "occurred_at", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_items_tenant_id_occurred_at_id"))
    op.drop_table("reconciliation_items")
    op.drop_table("settlement_accounts")
