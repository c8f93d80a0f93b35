"""bank accounts and bank transactions (synced from banking providers)

Revision ID: 0003_banking
Revises: 0002
Create Date: 2026-11-29 19:51:22.206250
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import adapters.db

revision = "0003_banking"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bank_accounts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "provider_link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider_account_id", sa.String(length=255), nullable=False),
        sa.Column("institution_id", sa.String(length=255), nullable=True),
        sa.Column("institution_name", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("official_name", sa.String(length=255), nullable=True),
        sa.Column("mask", sa.String(length=4), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("subtype", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("currency_exponent", sa.SmallInteger(), nullable=False),
        sa.Column("current_balance", sa.BigInteger(), nullable=True),
        sa.Column("available_balance", sa.BigInteger(), nullable=True),
        sa.Column("credit_limit", sa.BigInteger(), nullable=True),
        sa.Column("balances_as_of", adapters.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            adapters.db.UtcDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            adapters.db.UtcDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_bank_accounts_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["provider_link_id"],
            ["provider_links.id"],
            name=op.f("fk_bank_accounts_provider_link_id_provider_links"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_bank_accounts_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_accounts")),
        sa.UniqueConstraint(
            "provider_link_id",
            "provider_account_id",
            name=op.f("uq_bank_accounts_provider_link_id_provider_account_id"),
        ),
    )
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bank_accounts_tenant_id_customer_id"),
            ["tenant_id", "customer_id"],
            unique=False,
        )

    op.create_table(
        "bank_transactions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "provider_link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "bank_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider_transaction_id", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("currency_exponent", sa.SmallInteger(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("authorized_date", sa.Date(), nullable=True),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("merchant_name", sa.String(length=255), nullable=True),
        sa.Column("category_primary", sa.String(length=128), nullable=True),
        sa.Column("category_detailed", sa.String(length=128), nullable=True),
        sa.Column("is_pending", sa.Boolean(), nullable=False),
        sa.Column("pending_transaction_id", sa.String(length=255), nullable=True),
        sa.Column("removed_at", adapters.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            adapters.db.UtcDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            adapters.db.UtcDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["bank_accounts.id"],
            name=op.f("fk_bank_transactions_bank_account_id_bank_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_bank_transactions_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_link_id"],
            ["provider_links.id"],
            name=op.f("fk_bank_transactions_provider_link_id_provider_links"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_bank_transactions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_transactions")),
        sa.UniqueConstraint(
            "provider_link_id",
            "provider_transaction_id",
            name=op.f("uq_bank_transactions_provider_link_id_provider_transaction_id"),
        ),
    )
    with op.batch_alter_table("bank_transactions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bank_transactions_bank_account_id_date_id"),
            ["bank_account_id", "date", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_bank_transactions_tenant_id_customer_id"),
            ["tenant_id", "customer_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("bank_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_transactions_tenant_id_customer_id"))
        batch_op.drop_index(batch_op.f("ix_bank_transactions_bank_account_id_date_id"))

    op.drop_table("bank_transactions")
    with op.batch_alter_table("bank_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_accounts_tenant_id_customer_id"))

    op.drop_table("bank_accounts")
