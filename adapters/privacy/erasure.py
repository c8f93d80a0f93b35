"""Erasure of one customer's personal data (GDPR art. 17), keeping the ledger whole.

Financial records have retention duties, so nothing that carries an amount is deleted: the
customer row, their ledger accounts, entries, transactions and balance history stay, with every
amount, and the ledger stays balanced. What identifies the person is erased or pseudonymised
(`ERASURE_POLICY` says what happens to each table; a test fails when a table with a
`customer_id` column is not in it):

- the customer's name becomes `[erased]`, their email NULL, their metadata only
  `{"erased_at": ...}` (the marker that makes a second run a no-op);
- the customer's name or email, where it appears inside ledger free text (an account name, a
  transaction description or metadata string), is replaced by `[erased]`;
- provider links: the sealed token and the sync cursor are deleted and the link is `revoked`
  (syncs, webhooks and card reads skip revoked links). Before that, a banking provider that can
  (`RevocableAccess`, Plaid's /item/remove) is asked to revoke the token upstream; when that
  call fails the local erasure still happens and the failure is recorded. Card processors are
  not called: the processor's customer object is the merchant's record there (deleting it
  would also cancel their subscriptions), and the gateway no longer reads it;
- bank accounts: name `[erased]`, official name and mask NULL (balances kept);
- bank transactions: the bank's free-text `name` (which can name a counterparty) becomes the
  merchant name the provider recognised, or `[erased]`; amounts, dates, merchants and
  categories are kept;
- provider ids (a Plaid item id, a Stripe customer id) and idempotency keys are kept: they are
  references that financial records and reconciliation need, not personal data by themselves.

Everything runs in one database transaction, which also appends an `erase` audit event (it
names the fields erased, never their values) and bumps the tenant's data version so that no
cached answer from before can be served. Cache entries are purged by the caller
(gateway/privacy.py), which knows their keys.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.audit.records import Actor
from adapters.audit.store import insert_events
from adapters.banking.protocol import BankingProvider, RevocableAccess
from adapters.banking.tables import bank_accounts, bank_transactions
from adapters.crypto import SecretBox, SecretDecryptionError, link_associated_data
from adapters.errors import NotFound, ProviderError
from adapters.ledger.data_versions import bump_data_version
from adapters.ledger.engine import WRITE_OPTION
from adapters.ledger.tables import customers, ledger_accounts, ledger_entries, ledger_transactions
from adapters.providers.tables import provider_links

__all__ = [
    "ERASED",
    "ERASURE_POLICY",
    "ErasureResult",
    "LinkRevocation",
    "erase_customer",
    "is_erased",
]

logger = logging.getLogger("adapters.privacy.erasure")

ERASED = "[erased]"
_REVOKED = "revoked"
# Free text shorter than this is not searched for (a one-letter name would erase every "a").
_MIN_NEEDLE = 3

ERASURE_POLICY: dict[str, str] = {
    "customers": "display_name '[erased]', email NULL, metadata {'erased_at': ...}",
    "ledger_accounts": "kept with every amount; the name or email inside `name` replaced",
    "ledger_transactions": "kept; the name or email inside description/metadata replaced",
    "ledger_entries": "kept unchanged: amounts, directions, times only",
    "ledger_account_versions": "kept unchanged: counters only",
    "provider_links": "token and cursor deleted, status revoked, upstream revoked if possible",
    "bank_accounts": "name '[erased]', official_name and mask NULL; balances kept",
    "bank_transactions": "name -> merchant name or '[erased]'; amounts, dates, merchant kept",
    "audit_events": "kept (append-only, field names only); the erasure appends its event",
    "card_risk_facts": "kept: payment ids, amounts, card fingerprint, reasons (fraud duty)",
}
# The erasure event's `fields`: names of what was erased, never values.
_ERASED_FIELDS = [
    "Customer.displayName",
    "Customer.email",
    "Customer.metadata",
    "ProviderLink.secret",
    "ProviderLink.status",
    "BankAccount.name",
    "BankAccount.officialName",
    "BankAccount.mask",
    "BankTransaction.name",
    "LedgerAccount.name",
    "LedgerTransaction.description",
    "LedgerTransaction.metadata",
]
_UPSTREAM_FAILED = "ProviderLink.upstreamRevocationFailed"


@dataclass(frozen=True, slots=True)
class LinkRevocation:
    """One provider link of the customer and what happened to its access upstream.

    `upstream`: "revoked" (the provider confirmed), "failed" (`error` says why), "unsupported"
    (the provider has no revocation call), "not_called" (card links; links without a token or
    already revoked).
    """

    link_id: int
    provider: str
    kind: str
    external_id: str
    upstream: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ErasureResult:
    tenant_id: int
    customer_id: int
    already_erased: bool
    links: tuple[LinkRevocation, ...]
    rows_changed: Mapping[str, int]


def is_erased(metadata: Any) -> bool:
    return isinstance(metadata, dict) and "erased_at" in metadata


def _needles(*values: str | None) -> list[re.Pattern[str]]:
    return [
        re.compile(re.escape(value.strip()), re.IGNORECASE)
        for value in values
        if value and len(value.strip()) >= _MIN_NEEDLE and value.strip() != ERASED
    ]


def _redact(value: Any, needles: Sequence[re.Pattern[str]]) -> Any:
    """`value` with every needle inside its strings (recursively, JSON-like) replaced."""
    if isinstance(value, str):
        for needle in needles:
            value = needle.sub(ERASED, value)
        return value
    if isinstance(value, list):
        return [_redact(item, needles) for item in value]
    if isinstance(value, dict):
        return {key: _redact(item, needles) for key, item in value.items()}
    return value


async def _revoke_upstream(
    links: Sequence[Any],
    providers: Mapping[str, BankingProvider],
    box: SecretBox | None,
) -> list[LinkRevocation]:
    outcomes: list[LinkRevocation] = []
    for link in links:
        base = (int(link.id), str(link.provider), str(link.kind), str(link.external_id))
        if link.kind != "banking" or link.secret_encrypted is None or link.status == _REVOKED:
            outcomes.append(LinkRevocation(*base, upstream="not_called"))
            continue
        provider: object = providers.get(link.provider)
        if not isinstance(provider, RevocableAccess):
            outcomes.append(LinkRevocation(*base, upstream="unsupported"))
            continue
        if box is None:
            outcomes.append(LinkRevocation(*base, upstream="failed", error="NO_SECRET_KEY"))
            continue
        try:
            token = box.decrypt(
                link.secret_encrypted, link_associated_data(int(link.tenant_id), int(link.id))
            )
            await provider.revoke_access(token)
        except SecretDecryptionError:
            outcomes.append(LinkRevocation(*base, upstream="failed", error="SECRET_UNREADABLE"))
        except ProviderError as error:
            code = error.provider_code or error.code
            outcomes.append(LinkRevocation(*base, upstream="failed", error=code))
        else:
            outcomes.append(LinkRevocation(*base, upstream="revoked"))
    for outcome in outcomes:
        if outcome.upstream == "failed":
            logger.warning("provider link %s: upstream revocation failed (%s); erasing locally",
                           outcome.link_id, outcome.error)  # fmt: skip
    return outcomes


async def erase_customer(
    engine: AsyncEngine,
    tenant_id: int,
    customer_id: int,
    *,
    actor: Actor,
    banking_providers: Mapping[str, BankingProvider] | None = None,
    box: SecretBox | None = None,
    now: dt.datetime | None = None,
) -> ErasureResult:
    """Erase the customer's personal data (see the module docstring); NotFound when the
    tenant has no such customer. Running it again changes nothing and records nothing."""
    now = now or dt.datetime.now(dt.UTC)
    async with engine.connect() as connection:
        customer = (
            await connection.execute(
                select(customers.c.display_name, customers.c.email, customers.c.metadata).where(
                    customers.c.tenant_id == tenant_id, customers.c.id == customer_id
                )
            )
        ).one_or_none()
        if customer is None:
            raise NotFound(f"no customer {customer_id} in tenant {tenant_id}", field="customer")
        links = (
            await connection.execute(
                select(provider_links)
                .where(
                    provider_links.c.tenant_id == tenant_id,
                    provider_links.c.customer_id == customer_id,
                )
                .order_by(provider_links.c.id)
            )
        ).all()
    outcomes = await _revoke_upstream(links, banking_providers or {}, box)
    async with engine.connect() as plain:
        connection = await plain.execution_options(**{WRITE_OPTION: True})
        async with connection.begin():
            changed, already = await _erase_rows(connection, tenant_id, customer_id, now)
            if not already:
                fields = list(_ERASED_FIELDS)
                if any(outcome.upstream == "failed" for outcome in outcomes):
                    fields.append(_UPSTREAM_FAILED)
                event = {
                    "tenant_id": tenant_id,
                    "occurred_at": now,
                    "action": "erase",
                    "object_type": "Customer",
                    "object_id": customer_id,
                    "fields": fields,
                    "subject": actor.subject,
                    "client_id": actor.client_id,
                    "request_id": actor.request_id,
                    "operation_name": actor.operation_name,
                    "document_id": actor.document_id,
                }
                await insert_events(connection, [event])
            if not already or any(changed.values()):
                await bump_data_version(connection, tenant_id)
    logger.info("customer %s of tenant %s erased (%s)", customer_id, tenant_id,
                "already erased" if already else "first erasure")  # fmt: skip
    return ErasureResult(tenant_id, customer_id, already, tuple(outcomes), changed)


async def _erase_rows(
    connection: AsyncConnection, tenant_id: int, customer_id: int, now: dt.datetime
) -> tuple[dict[str, int], bool]:
    """The erasure's writes inside the caller's transaction; returns rows changed per table
    and whether the customer had been erased before."""
    customer = (
        await connection.execute(
            select(customers.c.display_name, customers.c.email, customers.c.metadata)
            .where(customers.c.tenant_id == tenant_id, customers.c.id == customer_id)
            .with_for_update()
        )
    ).one_or_none()
    if customer is None:  # deleted between the two reads: nothing left to erase
        raise NotFound(f"no customer {customer_id} in tenant {tenant_id}", field="customer")
    already = is_erased(customer.metadata)
    needles = _needles(customer.display_name, customer.email)
    changed: dict[str, int] = {}
    if not already:
        await connection.execute(
            update(customers)
            .where(customers.c.tenant_id == tenant_id, customers.c.id == customer_id)
            .values(display_name=ERASED, email=None, metadata={"erased_at": now.isoformat()})
        )
        changed["customers"] = 1
    owned = {"tenant_id": tenant_id, "customer_id": customer_id}
    changed["provider_links"] = await _update_owned(
        connection, provider_links, owned,
        (provider_links.c.status != _REVOKED) | provider_links.c.secret_encrypted.is_not(None)
        | provider_links.c.sync_cursor.is_not(None),
        {"status": _REVOKED, "secret_encrypted": None, "sync_cursor": None},
    )  # fmt: skip
    changed["bank_accounts"] = await _update_owned(
        connection, bank_accounts, owned,
        (bank_accounts.c.name != ERASED) | bank_accounts.c.official_name.is_not(None)
        | bank_accounts.c.mask.is_not(None),
        {"name": ERASED, "official_name": None, "mask": None, "updated_at": func.now()},
    )  # fmt: skip
    replacement = case(
        (bank_transactions.c.merchant_name.is_not(None), bank_transactions.c.merchant_name),
        else_=ERASED,
    )
    changed["bank_transactions"] = await _update_owned(
        connection, bank_transactions, owned,
        bank_transactions.c.name.is_distinct_from(replacement),
        {"name": replacement, "updated_at": func.now()},
    )  # fmt: skip
    if needles:
        changed.update(await _redact_ledger_text(connection, tenant_id, customer_id, needles))
    return changed, already


async def _update_owned(
    connection: AsyncConnection,
    table: Any,
    owned: Mapping[str, int],
    differs: Any,
    values: Mapping[str, Any],
) -> int:
    result = await connection.execute(
        update(table)
        .where(
            table.c.tenant_id == owned["tenant_id"],
            table.c.customer_id == owned["customer_id"],
            differs,
        )
        .values(**values)
    )
    return int(result.rowcount or 0)


async def _redact_ledger_text(
    connection: AsyncConnection,
    tenant_id: int,
    customer_id: int,
    needles: Sequence[re.Pattern[str]],
) -> dict[str, int]:
    """Replace the customer's name and email inside their ledger free text (account names,
    descriptions and metadata of the transactions that touch their accounts)."""
    accounts = (
        await connection.execute(
            select(ledger_accounts.c.id, ledger_accounts.c.name).where(
                ledger_accounts.c.tenant_id == tenant_id,
                ledger_accounts.c.customer_id == customer_id,
            )
        )
    ).all()
    renamed = 0
    for account in accounts:
        name = _redact(account.name, needles)
        if name != account.name:
            await connection.execute(
                update(ledger_accounts)
                .where(ledger_accounts.c.tenant_id == tenant_id, ledger_accounts.c.id == account.id)
                .values(name=name)
            )
            renamed += 1
    touched = (
        select(ledger_entries.c.transaction_id)
        .where(
            ledger_entries.c.tenant_id == tenant_id,
            ledger_entries.c.account_id.in_([int(account.id) for account in accounts] or [-1]),
        )
        .distinct()
    )
    transactions = (
        await connection.execute(
            select(
                ledger_transactions.c.id,
                ledger_transactions.c.description,
                ledger_transactions.c.metadata,
            ).where(
                ledger_transactions.c.tenant_id == tenant_id, ledger_transactions.c.id.in_(touched)
            )
        )
    ).all()
    rewritten = 0
    for row in transactions:
        description, metadata = _redact(row.description, needles), _redact(row.metadata, needles)
        if description != row.description or metadata != row.metadata:
            await connection.execute(
                update(ledger_transactions)
                .where(
                    ledger_transactions.c.tenant_id == tenant_id,
                    ledger_transactions.c.id == row.id,
                )
                .values(description=description, metadata=metadata)
            )
            rewritten += 1
    return {"ledger_accounts": renamed, "ledger_transactions": rewritten}
