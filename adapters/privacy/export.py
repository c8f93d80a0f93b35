"""Everything the gateway holds about one customer, as one JSON document (GDPR art. 15 / 20).

The document's shape is stable: one section per table that holds the customer's data, rows
ordered by id, money as decimal strings in the account's (or bank row's) stored exponent,
times as ISO 8601 UTC. Secrets are never in it: a provider link's token is reported as
`present` or `absent`, never decrypted; sync cursors are left out (opaque provider state).

Sections (`EXPORTED_TABLES`; a test fails when a table with a `customer_id` column is missing):

- `customer`: the customers row (name, email, metadata as stored);
- `ledger_accounts`: the customer's accounts with their counters and balances;
- `ledger_entries`: every entry on those accounts;
- `ledger_transactions`: the transactions of those entries (header only: description,
  status, times; other customers' legs are not theirs and are left out);
- `ledger_account_versions`: the balance history of those accounts;
- `provider_links`, `bank_accounts`, `bank_transactions`: the provider records;
- `audit_events`: events about the customer (reads of their personal data, their erasure)
  and about their ledger transactions (postings);
- `card_risk_facts`: the risk facts recorded for their card payments (amounts as the
  processor's minor units, with the currency: no exponent is stored with them);
- `card_payments`: the payments of their (not revoked) card links, read from the card
  processor when the caller passes the processors (they are not stored here, only cached);
  `provider_errors` names each processor that could not be read (or was not configured).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.audit.tables import audit_events
from adapters.banking.tables import bank_accounts, bank_transactions
from adapters.cards.protocol import CardProcessor
from adapters.cards.records import CardPayment
from adapters.cards.risk import card_risk_facts
from adapters.errors import NotFound, ProviderError
from adapters.ledger.tables import (
    customers,
    ledger_account_versions,
    ledger_accounts,
    ledger_entries,
    ledger_transactions,
)
from adapters.money import format_minor_units
from adapters.providers.tables import provider_links

__all__ = ["EXPORTED_TABLES", "EXPORT_FORMAT", "SECTIONS", "export_customer"]

EXPORT_FORMAT = "finance-gateway.customer-export/1"
# Table -> the document's section holding its rows.
SECTIONS: dict[str, str] = {
    "customers": "customer",
    "ledger_accounts": "ledger_accounts",
    "ledger_entries": "ledger_entries",
    "ledger_transactions": "ledger_transactions",
    "ledger_account_versions": "ledger_account_versions",
    "provider_links": "provider_links",
    "bank_accounts": "bank_accounts",
    "bank_transactions": "bank_transactions",
    "audit_events": "audit_events",
    "card_risk_facts": "card_risk_facts",
}
EXPORTED_TABLES = frozenset(SECTIONS)
# Pages of a customer's card payments read for one export (100 each): a bound, not a limit
# any real customer reaches.
_MAX_CARD_PAGES = 1_000


def _time(value: dt.datetime | dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _money(minor: int | None, exponent: int) -> str | None:
    return None if minor is None else format_minor_units(int(minor), exponent)


async def _rows(connection: AsyncConnection, query: Any) -> list[RowMapping]:
    return list((await connection.execute(query)).mappings())


def _customer(row: RowMapping) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "kind": row["kind"],
        "display_name": row["display_name"],
        "email": row["email"],
        "created_at": _time(row["created_at"]),
        "metadata": row["metadata"],
    }


def _account(row: RowMapping) -> dict[str, Any]:
    exponent = int(row["currency_exponent"])
    debit_normal = row["normal_balance"] == "debit"

    def balance(debits: int, credits: int) -> str | None:
        return _money(debits - credits if debit_normal else credits - debits, exponent)

    posted = (int(row["posted_debits"]), int(row["posted_credits"]))
    pending = (int(row["pending_debits"]), int(row["pending_credits"]))
    return {
        "id": int(row["id"]),
        "name": row["name"],
        "currency": row["currency"],
        "currency_exponent": exponent,
        "normal_balance": row["normal_balance"],
        "posted_debits": _money(posted[0], exponent),
        "posted_credits": _money(posted[1], exponent),
        "pending_debits": _money(pending[0], exponent),
        "pending_credits": _money(pending[1], exponent),
        "posted_balance": balance(*posted),
        "available_balance": balance(posted[0] + pending[0], posted[1] + pending[1]),
        "created_at": _time(row["created_at"]),
    }


def _entry(row: RowMapping, exponents: dict[int, int]) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "transaction_id": int(row["transaction_id"]),
        "account_id": int(row["account_id"]),
        "direction": row["direction"],
        "amount": _money(row["amount"], exponents[int(row["account_id"])]),
        "currency": row["currency"],
        "status": row["status"],
        "effective_at": _time(row["effective_at"]),
        "created_at": _time(row["created_at"]),
    }


def _transaction(row: RowMapping) -> dict[str, Any]:
    reverses = row["reverses_transaction_id"]
    return {
        "id": int(row["id"]),
        "idempotency_key": row["idempotency_key"],
        "description": row["description"],
        "status": row["status"],
        "effective_at": _time(row["effective_at"]),
        "posted_at": _time(row["posted_at"]),
        "reverses_transaction_id": None if reverses is None else int(reverses),
        "created_at": _time(row["created_at"]),
        "metadata": row["metadata"],
    }


def _version(row: RowMapping, exponents: dict[int, int]) -> dict[str, Any]:
    exponent = exponents[int(row["account_id"])]
    return {
        "account_id": int(row["account_id"]),
        "lock_version": int(row["lock_version"]),
        "transaction_id": int(row["transaction_id"]),
        **{
            name: _money(row[name], exponent)
            for name in ("posted_debits", "posted_credits", "pending_debits", "pending_credits")
        },
        "effective_at": _time(row["effective_at"]),
        "recorded_at": _time(row["recorded_at"]),
    }


def _link(row: RowMapping) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "provider": row["provider"],
        "kind": row["kind"],
        "external_id": row["external_id"],
        "status": row["status"],
        # Never decrypted, never exported: only whether one is held.
        "secret": "present" if row["secret_encrypted"] is not None else "absent",
        "last_synced_at": _time(row["last_synced_at"]),
        "created_at": _time(row["created_at"]),
    }


def _bank_account(row: RowMapping) -> dict[str, Any]:
    exponent = int(row["currency_exponent"])
    return {
        "id": int(row["id"]),
        "provider_link_id": int(row["provider_link_id"]),
        "provider_account_id": row["provider_account_id"],
        "institution_id": row["institution_id"],
        "institution_name": row["institution_name"],
        "name": row["name"],
        "official_name": row["official_name"],
        "mask": row["mask"],
        "type": row["type"],
        "subtype": row["subtype"],
        "currency": row["currency"],
        "current_balance": _money(row["current_balance"], exponent),
        "available_balance": _money(row["available_balance"], exponent),
        "credit_limit": _money(row["credit_limit"], exponent),
        "balances_as_of": _time(row["balances_as_of"]),
        "created_at": _time(row["created_at"]),
        "updated_at": _time(row["updated_at"]),
    }


def _bank_transaction(row: RowMapping) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "bank_account_id": int(row["bank_account_id"]),
        "provider_transaction_id": row["provider_transaction_id"],
        "amount": _money(row["amount"], int(row["currency_exponent"])),
        "currency": row["currency"],
        "date": _time(row["date"]),
        "authorized_date": _time(row["authorized_date"]),
        "name": row["name"],
        "merchant_name": row["merchant_name"],
        "category_primary": row["category_primary"],
        "category_detailed": row["category_detailed"],
        "is_pending": bool(row["is_pending"]),
        "pending_transaction_id": row["pending_transaction_id"],
        "removed_at": _time(row["removed_at"]),
        "created_at": _time(row["created_at"]),
    }


def _audit(row: RowMapping) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "occurred_at": _time(row["occurred_at"]),
        "action": row["action"],
        "object_type": row["object_type"],
        "object_id": None if row["object_id"] is None else int(row["object_id"]),
        "fields": list(row["fields"]),
        "subject": row["subject"],
        "client_id": None if row["client_id"] is None else int(row["client_id"]),
        "request_id": row["request_id"],
        "operation_name": row["operation_name"],
        "document_id": row["document_id"],
    }


def _risk_fact(row: RowMapping) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "provider": row["provider"],
        "payment_id": row["payment_id"],
        "fingerprint": row["fingerprint"],
        "amount_minor_units": int(row["amount"]),
        "currency": row["currency"],
        "outcome": row["outcome"],
        "disputed": bool(row["disputed"]),
        "created_at": _time(row["created_at"]),
        "level": int(row["level"]),
        "reasons": row["reasons"],
        "evaluated_at": _time(row["evaluated_at"]),
    }


def _in(column: Any, ids: Sequence[int]) -> Any:
    return column.in_(list(ids)) if ids else column.in_([-1])


async def export_customer(
    engine: AsyncEngine,
    tenant_id: int,
    customer_id: int,
    *,
    card_processors: Mapping[str, CardProcessor] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The customer's document (see the module docstring); NotFound when the tenant has no
    such customer. All reads run in one transaction (on PostgreSQL, REPEATABLE READ), so the
    sections agree with each other; the card processors are read after it."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execution_options(isolation_level="REPEATABLE READ")
        async with connection.begin():
            document = await _export(connection, tenant_id, customer_id, now)
    payments, errors = await _card_payments(document["provider_links"], card_processors or {})
    document["card_payments"] = payments
    document["provider_errors"] = errors
    return document


async def _card_payments(
    links: Sequence[Mapping[str, Any]], processors: Mapping[str, CardProcessor]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    payments: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for link in links:
        if link["kind"] != "cards" or link["status"] == "revoked":
            continue
        processor = processors.get(link["provider"])
        if processor is None:
            errors.append({"provider": link["provider"], "code": "NOT_CONFIGURED"})
            continue
        after: str | None = None
        try:
            for _ in range(_MAX_CARD_PAGES):
                page = await processor.list_payments(
                    link["external_id"], limit=100, starting_after=after
                )
                payments.extend(_card_payment(payment) for payment in page.items)
                if not page.has_more or page.next_cursor is None:
                    break
                after = page.next_cursor
        except ProviderError as error:
            errors.append({"provider": link["provider"], "code": error.code})
    return payments, errors


def _card_payment(payment: CardPayment) -> dict[str, Any]:
    exponent = payment.exponent
    card = payment.card
    dispute = payment.dispute
    return {
        "provider": payment.provider,
        "processor_id": payment.id,
        "status": payment.status.value,
        "amount": _money(payment.amount, exponent),
        "amount_captured": _money(payment.amount_captured, exponent),
        "amount_refunded": _money(payment.amount_refunded, exponent),
        "currency": payment.currency,
        "created": _time(payment.created),
        "card": None
        if card is None
        else {
            "brand": card.brand.value,
            "last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "funding": card.funding.value,
            "wallet": None if card.wallet is None else card.wallet.value,
        },
        "refunds": [
            {
                "processor_id": refund.id,
                "amount": _money(refund.amount, refund.exponent),
                "status": refund.status.value,
                "created": _time(refund.created),
            }
            for refund in payment.refunds
        ],
        "dispute": None
        if dispute is None
        else {
            "processor_id": dispute.id,
            "amount": _money(dispute.amount, dispute.exponent),
            "status": dispute.status.value,
            "reason": dispute.reason.value,
            "created": _time(dispute.created),
        },
        "fee": _money(payment.fee, exponent),
        "net": _money(payment.net, exponent),
        "description": payment.description,
        "failure_code": payment.failure_code,
        "failure_category": None
        if payment.failure_category is None
        else payment.failure_category.value,
    }


async def _export(
    connection: AsyncConnection, tenant_id: int, customer_id: int, now: dt.datetime | None
) -> dict[str, Any]:
    customer = await _rows(
        connection,
        select(customers).where(customers.c.tenant_id == tenant_id, customers.c.id == customer_id),
    )
    if not customer:
        raise NotFound(f"no customer {customer_id} in tenant {tenant_id}", field="customer")
    accounts = await _rows(
        connection,
        select(ledger_accounts)
        .where(
            ledger_accounts.c.tenant_id == tenant_id, ledger_accounts.c.customer_id == customer_id
        )
        .order_by(ledger_accounts.c.id),
    )
    account_ids = [int(row["id"]) for row in accounts]
    exponents = {int(row["id"]): int(row["currency_exponent"]) for row in accounts}
    entries = await _rows(
        connection,
        select(ledger_entries)
        .where(
            ledger_entries.c.tenant_id == tenant_id, _in(ledger_entries.c.account_id, account_ids)
        )
        .order_by(ledger_entries.c.id),
    )
    transaction_ids = sorted({int(row["transaction_id"]) for row in entries})
    transactions = await _rows(
        connection,
        select(ledger_transactions)
        .where(
            ledger_transactions.c.tenant_id == tenant_id,
            _in(ledger_transactions.c.id, transaction_ids),
        )
        .order_by(ledger_transactions.c.id),
    )
    versions = await _rows(
        connection,
        select(ledger_account_versions)
        .where(
            ledger_account_versions.c.tenant_id == tenant_id,
            _in(ledger_account_versions.c.account_id, account_ids),
        )
        .order_by(ledger_account_versions.c.account_id, ledger_account_versions.c.lock_version),
    )
    owned = {"tenant_id": tenant_id, "customer_id": customer_id}
    links = await _rows(connection, _owned(provider_links, owned))
    banks = await _rows(connection, _owned(bank_accounts, owned))
    bank_rows = await _rows(connection, _owned(bank_transactions, owned))
    risk = await _rows(connection, _owned(card_risk_facts, owned))
    audits = await _rows(
        connection,
        select(audit_events)
        .where(
            audit_events.c.tenant_id == tenant_id,
            or_(
                and_(
                    audit_events.c.object_type == "Customer",
                    audit_events.c.object_id == customer_id,
                ),
                and_(
                    audit_events.c.object_type == "LedgerTransaction",
                    _in(audit_events.c.object_id, transaction_ids),
                ),
            ),
        )
        .order_by(audit_events.c.id),
    )
    return {
        "format": EXPORT_FORMAT,
        "exported_at": (now or dt.datetime.now(dt.UTC)).isoformat(),
        "tenant_id": tenant_id,
        "customer": _customer(customer[0]),
        "ledger_accounts": [_account(row) for row in accounts],
        "ledger_entries": [_entry(row, exponents) for row in entries],
        "ledger_transactions": [_transaction(row) for row in transactions],
        "ledger_account_versions": [_version(row, exponents) for row in versions],
        "provider_links": [_link(row) for row in links],
        "bank_accounts": [_bank_account(row) for row in banks],
        "bank_transactions": [_bank_transaction(row) for row in bank_rows],
        "audit_events": [_audit(row) for row in audits],
        "card_risk_facts": [_risk_fact(row) for row in risk],
    }


def _owned(table: Any, owned: dict[str, int]) -> Any:
    return (
        select(table)
        .where(table.c.tenant_id == owned["tenant_id"], table.c.customer_id == owned["customer_id"])
        .order_by(table.c.id)
    )
