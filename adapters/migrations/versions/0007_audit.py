"""audit: the append-only audit_events table

Revision ID: 0007_audit
Revises: (base of the "audit" branch; depends on 0001, which creates tenants)
Create Date: 2026-12-10

On PostgreSQL a trigger refuses UPDATE and DELETE of any row, and TRUNCATE, whatever the role
(the table's owner included; only a superuser who disables triggers could bypass it).
`adapters/audit/app_role.sql` creates the application role with INSERT and SELECT only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import adapters.db

revision = "0007_audit"
down_revision = None
branch_labels = ("audit",)
depends_on = "0001"

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_GUARD = """
create function audit_events_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'audit_events is append-only: % refused', tg_op
    using errcode = 'insufficient_privilege';
end
$$
"""


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("occurred_at", adapters.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", _ID, nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("client_id", _ID, nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("operation_name", sa.Text(), nullable=True),
        sa.Column("document_id", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_audit_events_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_events_tenant_id_id"), ["tenant_id", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_events_tenant_id_occurred_at"),
            ["tenant_id", "occurred_at"],
            unique=False,
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_GUARD)
        op.execute(
            "create trigger audit_events_no_update_or_delete before update or delete "
            "on audit_events for each row execute function audit_events_append_only()"
        )
        op.execute(
            "create trigger audit_events_no_truncate before truncate "
            "on audit_events for each statement execute function audit_events_append_only()"
        )
        op.execute("revoke update, delete, truncate on audit_events from public")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("drop trigger audit_events_no_truncate on audit_events")
        op.execute("drop trigger audit_events_no_update_or_delete on audit_events")
        op.execute("drop function audit_events_append_only()")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_tenant_id_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_tenant_id_id"))
    op.drop_table("audit_events")
