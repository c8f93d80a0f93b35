"""bank_transactions.reference: the payment reference the bank reported

Open Banking's TransactionReference (and Plaid's payment_meta.reference_number), kept so that
reconciliation can match payouts by reference as well as by the statement text.

Its own branch ("bankref"), after the bank tables and their tenant keys.

Revision ID: 0009_bank_reference
Revises: (new branch; depends on 0004_ledger_tenant_keys)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_bank_reference"
down_revision = None
branch_labels = ("bankref",)
depends_on = "0004_ledger_tenant_keys"


def upgrade() -> None:
    with op.batch_alter_table("bank_transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bank_transactions", schema=None) as batch_op:
        batch_op.drop_column("reference")
