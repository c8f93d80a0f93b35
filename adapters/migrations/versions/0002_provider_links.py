"""provider links

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 19:47:35.909686
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import adapters.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "provider_links",
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
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("sync_cursor", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=24), server_default="active", nullable=False),
        sa.Column("last_synced_at", adapters.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            adapters.db.UtcDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint("kind in ('banking', 'cards')", name=op.f("ck_provider_links_kind")),
        sa.CheckConstraint(
            "status in ('active', 'login_required', 'revoked')",
            name=op.f("ck_provider_links_status"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_provider_links_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_provider_links_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_links")),
        sa.UniqueConstraint(
            "tenant_id",
            "provider",
            "external_id",
            name=op.f("uq_provider_links_tenant_id_provider_external_id"),
        ),
    )
    with op.batch_alter_table("provider_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provider_links_tenant_id_customer_id_kind"),
            ["tenant_id", "customer_id", "kind"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("provider_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_links_tenant_id_customer_id_kind"))

    op.drop_table("provider_links")
