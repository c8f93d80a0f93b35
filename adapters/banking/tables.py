"""Bank data synced from banking providers into our own tables (read from here, not live).

Both tables hang off a provider link of their own tenant (composite foreign keys on
`(tenant_id, ...)`, as in the ledger); provider ids are unique per link, so a re-sync upserts
instead of duplicating. Amounts are BIGINT minor units of `currency` with its exponent;
transaction amounts are signed, positive = money in (adapters.banking.records). A transaction
the provider removed keeps its row with `removed_at` set and is left out of every read.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    func,
)

from adapters.db import Id, UtcDateTime, created_at_column, metadata

__all__ = ["bank_accounts", "bank_transactions"]


def _updated_at_column() -> Column[object]:
    return Column("updated_at", UtcDateTime(), nullable=False, server_default=func.now())


bank_accounts = Table(
    "bank_accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("provider_link_id", Id, nullable=False),
    Column("customer_id", Id, nullable=False),
    Column("provider_account_id", String(255), nullable=False),
    # The link's institution as the provider names it, cached at sync: every account of a link
    # carries the same pair. Null id: the provider did not say; null name: its lookup failed.
    Column("institution_id", String(255)),
    Column("institution_name", String(255)),
    Column("name", String(255), nullable=False),
    Column("official_name", String(255)),
    # The last 2-4 digits only; full account numbers are never stored.
    Column("mask", String(4)),
    Column("type", String(32), nullable=False),
    Column("subtype", String(64)),
    # ISO 4217 code, or the provider's code for a non-ISO currency (crypto).
    Column("currency", String(16), nullable=False),
    Column("currency_exponent", SmallInteger, nullable=False),
    Column("current_balance", BigInteger),
    Column("available_balance", BigInteger),
    Column("credit_limit", BigInteger),
    Column("balances_as_of", UtcDateTime(), nullable=False),
    created_at_column(),
    _updated_at_column(),
    ForeignKeyConstraint(
        ["tenant_id", "provider_link_id"], ["provider_links.tenant_id", "provider_links.id"]
    ),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
    UniqueConstraint("provider_link_id", "provider_account_id"),
    UniqueConstraint("tenant_id", "id"),
    Index(None, "tenant_id", "customer_id"),
)

bank_transactions = Table(
    "bank_transactions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("provider_link_id", Id, nullable=False),
    Column("customer_id", Id, nullable=False),
    Column("bank_account_id", Id, nullable=False),
    Column("provider_transaction_id", String(255), nullable=False),
    # Signed minor units: positive = money in, negative = money out.
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(16), nullable=False),
    Column("currency_exponent", SmallInteger, nullable=False),
    Column("date", Date, nullable=False),
    Column("authorized_date", Date),
    Column("name", String(512), nullable=False),
    Column("merchant_name", String(255)),
    Column("category_primary", String(128)),
    Column("category_detailed", String(128)),
    Column("is_pending", Boolean, nullable=False),
    # Posted transactions name the pending one they replace (the provider's id).
    Column("pending_transaction_id", String(255)),
    # The payment's reference as the bank reports it (Open Banking TransactionReference, e.g.
    # a Faster Payments id or the payer's reference; Plaid payment_meta.reference_number);
    # null when it sent none. What reconciliation matches payouts by, beside `name`.
    Column("reference", String(255)),
    Column("removed_at", UtcDateTime()),
    created_at_column(),
    _updated_at_column(),
    ForeignKeyConstraint(
        ["tenant_id", "provider_link_id"], ["provider_links.tenant_id", "provider_links.id"]
    ),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
    ForeignKeyConstraint(
        ["tenant_id", "bank_account_id"], ["bank_accounts.tenant_id", "bank_accounts.id"]
    ),
    UniqueConstraint("provider_link_id", "provider_transaction_id"),
    # Statement pages: one account, newest first, keyset on (date, id).
    Index(None, "bank_account_id", "date", "id"),
    Index(None, "tenant_id", "customer_id"),
)
