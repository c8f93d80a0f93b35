"""SQLAlchemy Core tables of the ledger (DESIGN.md, "Core ledger model").

Amounts are BIGINT minor units, each balance counter is CHECKed >= 0 and the overdraft guards
are row CHECKs on the counters, so the database refuses a broken balance whatever the code does.
Every row that belongs to a tenant carries `tenant_id`; entries and version rows carry it too
(denormalised from their transaction and account) so that every read can filter by tenant
without a join. References between tenant rows are composite foreign keys on
`(tenant_id, <parent>_id)` against a unique `(tenant_id, id)` of the parent, so the database
itself refuses a row that points into another tenant, whatever the code does.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from adapters.db import Id, UtcDateTime, created_at_column, metadata

__all__ = [
    "customers",
    "ledger_account_versions",
    "ledger_accounts",
    "ledger_entries",
    "ledger_transactions",
    "tenants",
]

tenants = Table(
    "tenants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    created_at_column(),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("display_name", Text, nullable=False),
    Column("email", Text),
    created_at_column(),
    Column("metadata", JSON, nullable=False, default=dict),
    CheckConstraint("kind in ('individual', 'business')", name="kind"),
    UniqueConstraint("tenant_id", "id"),
)

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", Id),
    Column("name", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("currency_exponent", Integer, nullable=False),
    Column("normal_balance", String(6), nullable=False),
    Column("posted_debits", BigInteger, nullable=False, default=0),
    Column("posted_credits", BigInteger, nullable=False, default=0),
    Column("pending_debits", BigInteger, nullable=False, default=0),
    Column("pending_credits", BigInteger, nullable=False, default=0),
    Column("lock_version", BigInteger, nullable=False, default=0),
    Column("debits_must_not_exceed_credits", Boolean, nullable=False, default=False),
    Column("credits_must_not_exceed_debits", Boolean, nullable=False, default=False),
    created_at_column(),
    CheckConstraint("normal_balance in ('debit', 'credit')", name="normal_balance"),
    CheckConstraint("currency_exponent between 0 and 4", name="currency_exponent"),
    CheckConstraint(
        "posted_debits >= 0 and posted_credits >= 0 and pending_debits >= 0"
        " and pending_credits >= 0",
        name="counters_non_negative",
    ),
    CheckConstraint("lock_version >= 0", name="lock_version_non_negative"),
    # TigerBeetle's guards: what may still be debited (or credited) must be covered by posted
    # credits (or debits); pending amounts count against the guard.
    CheckConstraint(
        "not debits_must_not_exceed_credits or pending_debits + posted_debits <= posted_credits",
        name="debits_must_not_exceed_credits",
    ),
    CheckConstraint(
        "not credits_must_not_exceed_debits or pending_credits + posted_credits <= posted_debits",
        name="credits_must_not_exceed_debits",
    ),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
    UniqueConstraint("tenant_id", "id"),
    Index(None, "customer_id", "id"),
)

ledger_transactions = Table(
    "ledger_transactions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_fingerprint", String(64), nullable=False),
    Column("description", Text),
    Column("status", String(8), nullable=False),
    Column("effective_at", UtcDateTime(), nullable=False),
    Column("posted_at", UtcDateTime()),
    Column("reverses_transaction_id", Id, unique=True),
    created_at_column(),
    Column("metadata", JSON, nullable=False, default=dict),
    CheckConstraint("status in ('pending', 'posted', 'voided')", name="status"),
    ForeignKeyConstraint(
        ["tenant_id", "reverses_transaction_id"],
        ["ledger_transactions.tenant_id", "ledger_transactions.id"],
    ),
    UniqueConstraint("tenant_id", "idempotency_key"),
    UniqueConstraint("tenant_id", "id"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("transaction_id", Id, nullable=False),
    Column("account_id", Id, nullable=False),
    Column("direction", String(6), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(8), nullable=False),
    Column("effective_at", UtcDateTime(), nullable=False),
    created_at_column(),
    CheckConstraint("direction in ('debit', 'credit')", name="direction"),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("status in ('pending', 'posted', 'voided')", name="status"),
    ForeignKeyConstraint(
        ["tenant_id", "transaction_id"],
        ["ledger_transactions.tenant_id", "ledger_transactions.id"],
    ),
    ForeignKeyConstraint(
        ["tenant_id", "account_id"], ["ledger_accounts.tenant_id", "ledger_accounts.id"]
    ),
    Index(None, "account_id", "effective_at", "id"),
    Index(None, "transaction_id"),
    # Aggregates over a tenant's range of days (migration 0008_history).
    Index(
        None,
        "tenant_id",
        "effective_at",
        postgresql_include=["account_id", "direction", "status", "currency", "amount"],
    ),
)

ledger_account_versions = Table(
    "ledger_account_versions",
    metadata,
    Column("account_id", Id, primary_key=True, autoincrement=False),
    Column("lock_version", BigInteger, primary_key=True, autoincrement=False),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("transaction_id", Id, nullable=False),
    Column("posted_debits", BigInteger, nullable=False),
    Column("posted_credits", BigInteger, nullable=False),
    Column("pending_debits", BigInteger, nullable=False),
    Column("pending_credits", BigInteger, nullable=False),
    Column("effective_at", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(
        ["tenant_id", "account_id"], ["ledger_accounts.tenant_id", "ledger_accounts.id"]
    ),
    ForeignKeyConstraint(
        ["tenant_id", "transaction_id"],
        ["ledger_transactions.tenant_id", "ledger_transactions.id"],
    ),
    # History reads walk an account's rows from the index alone (migration 0008_history).
    Index(
        None,
        "account_id",
        "lock_version",
        postgresql_include=[
            "effective_at",
            "posted_debits",
            "posted_credits",
            "pending_debits",
            "pending_credits",
        ],
    ),
)
