"""limits: a cost budget per API client, the stored cost of each persisted document

`api_clients.max_cost`: most one operation of the client may cost (None: its kind's default);
`persisted_documents.cost`: the worst-case estimate computed at registration.

Its own branch ("limits"), after the access tables it alters.

Revision ID: 0006_client_limits
Revises: (new branch; depends on 0003_access)
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_client_limits"
down_revision = None
branch_labels = ("limits",)
depends_on = "0003_access"


def upgrade() -> None:
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_cost", sa.Integer(), nullable=True))
    with op.batch_alter_table("persisted_documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cost", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("persisted_documents", schema=None) as batch_op:
        batch_op.drop_column("cost")
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_column("max_cost")
