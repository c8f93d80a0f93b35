"""tenant data versions (the response cache's per-tenant write counter)

Its own branch ("dataversion"), on top of the ledger tables (it references tenants).

Revision ID: 0005_data_versions
Revises:
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_data_versions"
down_revision = None
branch_labels = ("dataversion",)
depends_on = "0001"


def upgrade() -> None:
    op.create_table(
        "tenant_data_versions",
        sa.Column(
            "tenant_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_data_versions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_data_versions")),
    )


def downgrade() -> None:
    op.drop_table("tenant_data_versions")
