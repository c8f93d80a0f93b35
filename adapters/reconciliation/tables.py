"""Tables of reconciliation: the ledger chart it books into, and the results of its runs.

`settlement_accounts` maps (tenant, owner, role, currency) to the ledger account that
reconciliation books into ("processor:stripe" clearing, fees, ...; "bank" operating); its
primary key makes concurrent runs agree on one account per role. `reconciliation_items` holds
the outcome of the latest run per payout (or per unexplained bank credit); a run replaces the
rows of its window. `bank_transaction_id` names a `bank_transactions` row of the same tenant.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
)

from adapters.db import Id, UtcDateTime, metadata

__all__ = ["reconciliation_items", "settlement_accounts"]

settlement_accounts = Table(
    "settlement_accounts",
    metadata,
    Column("tenant_id", Id, ForeignKey("tenants.id"), primary_key=True, autoincrement=False),
    Column("owner", String(64), primary_key=True),
    Column("role", String(32), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("ledger_account_id", Id, nullable=False),
    ForeignKeyConstraint(
        ["tenant_id", "ledger_account_id"], ["ledger_accounts.tenant_id", "ledger_accounts.id"]
    ),
)

reconciliation_items = Table(
    "reconciliation_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("provider", String(32), nullable=False),
    # The processor's payout id; null for a bank credit that no payout explains.
    Column("payout_id", String(255)),
    Column("status", String(16), nullable=False),
    Column("missing_on", String(16)),
    # [{"code": ..., "message": ...}], in the order they were found.
    Column("reasons", JSON, nullable=False),
    # The payout's arrival date, or the bank credit's date: what `from`/`to` select on.
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("currency", String(16)),
    Column("currency_exponent", SmallInteger),
    Column("payout_amount", BigInteger),
    Column("items_net", BigInteger),
    Column("item_count", Integer),
    Column("bank_transaction_id", Id),
    Column("bank_amount", BigInteger),
    Column("bank_currency", String(16)),
    Column("bank_currency_exponent", SmallInteger),
    Column("bank_date", Date),
    Column("checked_at", UtcDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "provider", "payout_id"),
    UniqueConstraint("tenant_id", "bank_transaction_id"),
    Index(None, "tenant_id", "occurred_at", "id"),
)
