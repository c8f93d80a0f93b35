"""indexes for balance history, statements and aggregates (analysts)

Its own branch (label "history"), after the ledger tables: other domains add revisions at the
same time, and "heads" upgrades every branch.

- ledger_account_versions (account_id, lock_version) INCLUDE the counters and effective time:
  the history reads (adapters.ledger.history) walk each account's rows in lock_version order
  from the index alone; the rows of one account are otherwise one heap page each.
- ledger_entries (tenant_id, effective_at) INCLUDE what the aggregates sum and group by: a
  tenant-wide summary over a range of days reads only that slice of the index.

On SQLite the INCLUDE columns are ignored (plain indexes).

Revision ID: 0008_history
Revises:
Create Date: 2026-12-01 05:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0008_history"
down_revision = None
branch_labels = ("history",)
depends_on = "0001"

_VERSIONS_INCLUDE = [
    "effective_at", "posted_debits", "posted_credits", "pending_debits", "pending_credits",
]  # fmt: skip
_ENTRIES_INCLUDE = ["account_id", "direction", "status", "currency", "amount"]


def upgrade() -> None:
    op.create_index(
        "ix_ledger_account_versions_account_id_lock_version",
        "ledger_account_versions",
        ["account_id", "lock_version"],
        postgresql_include=_VERSIONS_INCLUDE,
    )
    op.create_index(
        "ix_ledger_entries_tenant_id_effective_at",
        "ledger_entries",
        ["tenant_id", "effective_at"],
        postgresql_include=_ENTRIES_INCLUDE,
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_tenant_id_effective_at", table_name="ledger_entries")
    op.drop_index(
        "ix_ledger_account_versions_account_id_lock_version",
        table_name="ledger_account_versions",
    )
