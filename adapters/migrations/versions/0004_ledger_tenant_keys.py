"""tenant-scoped keys: composite (tenant_id, id) foreign keys between tenant rows

Every reference from one tenant row to another becomes a foreign key on (tenant_id, <parent>)
against a unique (tenant_id, id) of the parent, so the database refuses a row that points into
another tenant. Version rows gain `tenant_id` (filled from their account) for the same purpose.
The single-column foreign keys these replace are dropped (the composite ones imply them), and
the plain (tenant_id, id) indexes of customers and accounts give way to the unique constraints.

SQLite cannot alter constraints: batch mode rebuilds each table (adapters.migrate turns foreign
key enforcement off around the upgrade and checks every key before committing).

Revision ID: 0004_ledger_tenant_keys
Revises: 0002
Depends on: 0003_banking (the bank tables' keys change too)
Create Date: 2026-12-01 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_ledger_tenant_keys"
down_revision = "0002"
branch_labels = None
depends_on = ("0003_banking",)

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# (table, referring columns after tenant_id, parent table, old single-column foreign key)
_REFERENCES = (
    ("ledger_accounts", "customer_id", "customers", "fk_ledger_accounts_customer_id_customers"),
    (
        "ledger_transactions",
        "reverses_transaction_id",
        "ledger_transactions",
        "fk_ledger_transactions_reverses_transaction_id_ledger_transactions",
    ),
    (
        "ledger_entries",
        "transaction_id",
        "ledger_transactions",
        "fk_ledger_entries_transaction_id_ledger_transactions",
    ),
    (
        "ledger_entries",
        "account_id",
        "ledger_accounts",
        "fk_ledger_entries_account_id_ledger_accounts",
    ),
    (
        "ledger_account_versions",
        "account_id",
        "ledger_accounts",
        "fk_ledger_account_versions_account_id_ledger_accounts",
    ),
    (
        "ledger_account_versions",
        "transaction_id",
        "ledger_transactions",
        "fk_ledger_account_versions_transaction_id_ledger_transactions",
    ),
    ("provider_links", "customer_id", "customers", "fk_provider_links_customer_id_customers"),
    (
        "bank_accounts",
        "provider_link_id",
        "provider_links",
        "fk_bank_accounts_provider_link_id_provider_links",
    ),
    ("bank_accounts", "customer_id", "customers", "fk_bank_accounts_customer_id_customers"),
    (
        "bank_transactions",
        "provider_link_id",
        "provider_links",
        "fk_bank_transactions_provider_link_id_provider_links",
    ),
    (
        "bank_transactions",
        "customer_id",
        "customers",
        "fk_bank_transactions_customer_id_customers",
    ),
    (
        "bank_transactions",
        "bank_account_id",
        "bank_accounts",
        "fk_bank_transactions_bank_account_id_bank_accounts",
    ),
)
# Parents, in the order their unique (tenant_id, id) must exist; the index each replaces.
_PARENTS = (
    ("customers", "ix_customers_tenant_id_id"),
    ("ledger_accounts", "ix_ledger_accounts_tenant_id_id"),
    ("ledger_transactions", None),
    ("provider_links", None),
    ("bank_accounts", None),
)
_TABLES = (
    "ledger_accounts",
    "ledger_transactions",
    "ledger_entries",
    "ledger_account_versions",
    "provider_links",
    "bank_accounts",
    "bank_transactions",
)


def _composite_name(table: str, parent: str) -> str:
    # The metadata's convention: fk_<table>_<first column>_<referred table>.
    return f"fk_{table}_tenant_id_{parent}"


def _foreign_key_name(table: str, columns: list[str]) -> str:
    """The name the database gave the foreign key on `columns` (PostgreSQL truncated the long
    names of revision 0001 to 63 characters, SQLite kept them whole)."""
    for key in sa.inspect(op.get_bind()).get_foreign_keys(table):
        if key["constrained_columns"] == columns and key["name"]:
            return str(key["name"])
    raise LookupError(f"no foreign key on {table}{tuple(columns)}")


def upgrade() -> None:
    with op.batch_alter_table("ledger_account_versions") as batch_op:
        batch_op.add_column(sa.Column("tenant_id", _ID, nullable=True))
    op.execute(
        "update ledger_account_versions set tenant_id = (select a.tenant_id"
        " from ledger_accounts a where a.id = ledger_account_versions.account_id)"
    )
    with op.batch_alter_table("ledger_account_versions") as batch_op:
        batch_op.alter_column("tenant_id", existing_type=_ID, nullable=False)
        batch_op.create_foreign_key(
            op.f("fk_ledger_account_versions_tenant_id_tenants"), "tenants", ["tenant_id"], ["id"]
        )

    for table, index in _PARENTS:
        with op.batch_alter_table(table) as batch_op:
            if index is not None:
                batch_op.drop_index(index)
            batch_op.create_unique_constraint(op.f(f"uq_{table}_tenant_id_id"), ["tenant_id", "id"])

    for table in _TABLES:
        references = [r for r in _REFERENCES if r[0] == table]
        old_names = [_foreign_key_name(table, [column]) for _t, column, _p, _o in references]
        with op.batch_alter_table(table) as batch_op:
            for (_table, column, parent, _old), old in zip(references, old_names, strict=True):
                batch_op.drop_constraint(old, type_="foreignkey")
                batch_op.create_foreign_key(
                    op.f(_composite_name(table, parent)),
                    parent,
                    ["tenant_id", column],
                    ["tenant_id", "id"],
                )


def downgrade() -> None:
    for table in reversed(_TABLES):
        references = [r for r in _REFERENCES if r[0] == table]
        with op.batch_alter_table(table) as batch_op:
            for _table, column, parent, old in references:
                batch_op.drop_constraint(op.f(_composite_name(table, parent)), type_="foreignkey")
                batch_op.create_foreign_key(op.f(old), parent, [column], ["id"])

    for table, index in reversed(_PARENTS):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(op.f(f"uq_{table}_tenant_id_id"), type_="unique")
            if index is not None:
                batch_op.create_index(op.f(index), ["tenant_id", "id"], unique=False)

    with op.batch_alter_table("ledger_account_versions") as batch_op:
        batch_op.drop_constraint(
            op.f("fk_ledger_account_versions_tenant_id_tenants"), type_="foreignkey"
        )
        batch_op.drop_column("tenant_id")
