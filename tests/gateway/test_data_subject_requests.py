"""Data-subject requests end to end: export everything held about a customer, erase their
personal data, and prove that no answer, cache entry (Redis included), log line or table still
holds it while the ledger keeps every amount.

Runs on every backend pair of the fixtures: SQLite and PostgreSQL, in-process cache and Redis.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.audit.records import Actor
from adapters.audit.tables import audit_events
from adapters.banking.links import bank_links
from adapters.banking.sync import sync_link
from adapters.banking.tables import bank_transactions
from adapters.cache import Cache, MemoryCache
from adapters.errors import NotFound
from adapters.ledger.tables import customers, ledger_accounts
from adapters.privacy.erasure import ERASED, ERASURE_POLICY, erase_customer
from adapters.privacy.export import EXPORT_FORMAT, SECTIONS, export_customer
from gateway.app import create_app
from gateway.cli import _parser
from gateway.lifespan import Services
from gateway.privacy import erase_and_purge
from gateway.privacy_cli import run_privacy_command
from gateway.settings import Settings
from resolvers.node import encode_global_id
from tests.factories import make_account, make_customer, make_tenant, post_transfer
from tests.fixtures.cache import cache_items
from tests.fixtures.gateway import GraphQLClient
from tests.fixtures.providers import ProviderWorld

# Cacheable (no unmasked read, no provider field): the response cache stores its answer.
CUSTOMER = (
    "query($id: ID!) { customer(id: $id) { displayName ledgerAccounts { edges { node "
    "{ name balance { posted { amount currency } } } } } } }"
)
# An unmasked read of personal data (pii:read): audited, never cached.
EMAIL = "query($id: ID!) { customer(id: $id) { displayName email } }"
PROVIDER_DATA = (
    "query($id: ID!) { customer(id: $id) { bankAccounts { name officialName mask "
    "transactions(first: 50) { edges { node { name amount { amount } } } } } "
    "cardPayments(first: 5) { edges { node { processorId status } } } } }"
)


@dataclass
class Subject:
    tenant_id: int
    customer_id: int
    counterparty_id: int
    account_id: int
    item_id: str
    card_customer: str
    name: str
    email: str

    @property
    def global_id(self) -> str:
        return encode_global_id("Customer", self.customer_id)

    def secrets(self) -> list[str]:
        """The personal data that must be gone after the erasure, as searched for."""
        return [self.name, self.email, self.name.lower(), self.email.lower()]


@pytest.fixture
async def gateway(
    settings: Settings, services: Services, providers: ProviderWorld, cache: Cache
) -> AsyncIterator[GraphQLClient]:
    """The app with the providers and the test's cache (Redis or in-process) wired in."""
    app = create_app(settings, dataclasses.replace(services, providers=providers.runtime,
                                                   cache=cache))  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield GraphQLClient(client, settings)


async def _subject(providers: ProviderWorld, engine: AsyncEngine) -> Subject:
    tag = uuid.uuid4().hex[:10]
    name, email = f"Ada Lovelace {tag}", f"ada.{tag}@example.org"
    tenant_id = await make_tenant(engine)
    customer_id = await make_customer(engine, tenant_id, display_name=name)
    async with engine.begin() as connection:
        await connection.execute(
            update(customers)
            .where(customers.c.id == customer_id)
            .values(email=email, metadata={"nickname": f"ada-{tag}"})
        )
    counterparty_id = await make_customer(engine, tenant_id, display_name="Charles Babbage")
    account_id = await make_account(
        engine, tenant_id, customer_id=customer_id, name=f"{name} checking"
    )
    other = await make_account(engine, tenant_id, customer_id=counterparty_id)
    await post_transfer(engine, tenant_id, debit=account_id, credit=other, amount=12_345,
                        description=f"Rent from {name} <{email}>")  # fmt: skip
    await post_transfer(engine, tenant_id, debit=other, credit=account_id, amount=500,
                        description="refund")  # fmt: skip
    # A processor customer with payments (the sandbox gives some customers none).
    card_customer = next(
        external
        for external in (f"cus_{customer_id * 100 + k}" for k in range(100))
        if providers.cards.data.payment_intent_ids(external)
    )
    await providers.link_card_customer(tenant_id, customer_id, card_customer)
    item_id = await providers.link_bank(tenant_id, customer_id, transactions=3)
    return Subject(tenant_id, customer_id, counterparty_id, account_id, item_id, card_customer,
                   name, email)  # fmt: skip


async def _counters(engine: AsyncEngine, tenant_id: int) -> list[tuple[Any, ...]]:
    query = (
        select(
            ledger_accounts.c.id, ledger_accounts.c.currency, ledger_accounts.c.posted_debits,
            ledger_accounts.c.posted_credits, ledger_accounts.c.pending_debits,
            ledger_accounts.c.pending_credits, ledger_accounts.c.lock_version,
        )
        .where(ledger_accounts.c.tenant_id == tenant_id)
        .order_by(ledger_accounts.c.id)
    )  # fmt: skip
    async with engine.connect() as connection:
        return [tuple(row) for row in (await connection.execute(query)).all()]


def _holds(text: str | bytes, subject: Subject) -> list[str]:
    haystack = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    haystack = haystack.lower()
    return [
        secret for secret in (subject.name.lower(), subject.email.lower()) if secret in haystack
    ]


async def _tables_holding(engine: AsyncEngine, subject: Subject) -> list[str]:
    """Every table.column of the whole database with a value holding the name or email."""
    reflected = MetaData()
    found: list[str] = []
    async with engine.connect() as connection:
        await connection.run_sync(reflected.reflect)
        for table in reflected.sorted_tables:
            for row in (await connection.execute(select(table))).mappings():
                for column, value in row.items():
                    if isinstance(value, str | bytes | dict | list):
                        text = value if isinstance(value, str | bytes) else json.dumps(value)
                        if _holds(text, subject):
                            found.append(f"{table.name}.{column}")
    return found


def _actor(subject: Subject) -> Actor:
    return Actor(tenant_id=subject.tenant_id, subject="dpo@tenant", client_id=None,
                 request_id=f"test-{uuid.uuid4().hex[:8]}")  # fmt: skip


async def test_export_holds_every_table_with_the_customers_data_and_no_secret(
    providers: ProviderWorld, engine: AsyncEngine, gateway: GraphQLClient
) -> None:
    subject = await _subject(providers, engine)
    read = await gateway.post(EMAIL, {"id": subject.global_id}, tenant_id=subject.tenant_id)
    assert read["data"]["customer"]["email"] == subject.email  # an audited pii:read
    await gateway.post(PROVIDER_DATA, {"id": subject.global_id}, tenant_id=subject.tenant_id)

    calls = providers.cards.total_calls
    document = await export_customer(engine, subject.tenant_id, subject.customer_id,
                                     card_processors=providers.runtime.card_processors)  # fmt: skip

    # Card payments are read from the processor (they are cached here, never stored).
    assert providers.cards.total_calls > calls
    assert document["provider_errors"] == []
    payments = document["card_payments"]
    assert payments
    assert all(re.fullmatch(r"\d+\.\d{2}", p["amount"]) for p in payments if p["currency"] == "USD")
    assert all(p["card"] is None or set(p["card"]) == {"brand", "last4", "exp_month", "exp_year",
               "funding", "wallet"} for p in payments)  # fmt: skip
    # Completeness: every table of the migrated database that names a customer is a section,
    # and has rows for this customer. A new table with customer_id fails here until the
    # export (and the erasure policy) cover it.
    async with engine.connect() as connection:
        reflected = MetaData()
        await connection.run_sync(reflected.reflect)
    holding = {name for name, table in reflected.tables.items() if "customer_id" in table.c}
    assert holding | {"customers"} <= set(SECTIONS), holding - set(SECTIONS)
    assert set(SECTIONS) == set(ERASURE_POLICY)
    for table, section in SECTIONS.items():
        # Risk facts are recorded by processor webhooks, which this test does not send.
        assert document[section] or table == "card_risk_facts", f"{section} ({table}) is empty"
    assert document["format"] == EXPORT_FORMAT
    assert document["customer"]["display_name"] == subject.name
    assert document["customer"]["email"] == subject.email
    # Money as decimal strings in the account's exponent.
    account = next(a for a in document["ledger_accounts"] if a["id"] == subject.account_id)
    assert (account["posted_debits"], account["posted_credits"]) == ("123.45", "5.00")
    assert account["posted_balance"] == "118.45"
    assert sorted(e["amount"] for e in document["ledger_entries"]) == ["123.45", "5.00"]
    assert {e["account_id"] for e in document["ledger_entries"]} == {subject.account_id}
    assert all(re.fullmatch(r"-?\d+\.\d{2}", b["amount"]) for b in document["bank_transactions"])
    # Secrets: a token is reported as held, never exported.
    assert {(link["kind"], link["secret"]) for link in document["provider_links"]} == {
        ("cards", "absent"), ("banking", "present"),
    }  # fmt: skip
    text = json.dumps(document)
    assert "access-sandbox" not in text
    assert "sync_cursor" not in text
    read_events = [e for e in document["audit_events"] if e["action"] == "read"]
    assert [(e["object_type"], e["fields"]) for e in read_events] == [("Customer", ["email"])]
    assert json.loads(text) == document  # JSON-ready as it is

    with pytest.raises(NotFound):  # another tenant's id reads like a missing one
        await export_customer(engine, subject.tenant_id + 1_000_000, subject.customer_id)


async def test_erasure_leaves_no_personal_data_in_answers_caches_logs_or_tables(
    providers: ProviderWorld, engine: AsyncEngine, gateway: GraphQLClient, cache: Cache,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    subject = await _subject(providers, engine)
    other_tenant = await make_tenant(engine)
    stranger = await make_customer(engine, other_tenant, display_name="Grace Hopper")
    async with engine.begin() as connection:  # a counterparty's name in the bank's free text
        await connection.execute(
            update(bank_transactions)
            .where(bank_transactions.c.customer_id == subject.customer_id)
            .values(name=f"Transfer from {subject.name}", merchant_name=None)
        )
    variables, tenant = {"id": subject.global_id}, subject.tenant_id
    before = [await gateway.post(CUSTOMER, variables, tenant_id=tenant) for _ in range(2)]
    email_before = await gateway.post(EMAIL, variables, tenant_id=tenant)
    assert email_before["data"]["customer"]["email"] == subject.email
    providers_before = await gateway.post(PROVIDER_DATA, variables, tenant_id=tenant)
    assert before[0] == before[1]
    assert before[0]["data"]["customer"]["displayName"] == subject.name
    banks = providers_before["data"]["customer"]["bankAccounts"]
    assert banks
    assert all(bank["mask"] for bank in banks)
    assert providers_before["data"]["customer"]["cardPayments"]["edges"]
    cached = await cache_items(cache)
    assert any(subject.card_customer in key for key in cached)  # card pages cached
    if not isinstance(cache, MemoryCache):  # the shared cache holds the answer, name and all
        assert any(_holds(value, subject) for value in cached.values())
    counters = await _counters(engine, tenant)
    caplog.clear()

    report = await erase_and_purge(engine, tenant, subject.customer_id, actor=_actor(subject),
                                   providers=providers.runtime, response_cache=cache)  # fmt: skip

    erasure = report.erasure
    assert not erasure.already_erased
    assert {(link.kind, link.upstream) for link in erasure.links} == {
        ("cards", "not_called"), ("banking", "revoked"),
    }  # fmt: skip
    assert providers.banking.removed_items == {subject.item_id}  # Plaid /item/remove
    assert report.provider_entries_purged >= 1

    # Answers: the same queries (the first one was cached) show nothing of the person.
    after = await gateway.post(CUSTOMER, variables, tenant_id=tenant)
    customer = after["data"]["customer"]
    assert customer["displayName"] == ERASED
    email_after = await gateway.post(EMAIL, variables, tenant_id=tenant)
    assert email_after["data"]["customer"] == {"displayName": ERASED, "email": None}
    assert [edge["node"]["name"] for edge in customer["ledgerAccounts"]["edges"]] == [
        f"{ERASED} checking"
    ]
    assert customer["ledgerAccounts"] == {
        "edges": [
            {"node": {**edge["node"], "name": f"{ERASED} checking"}}
            for edge in before[0]["data"]["customer"]["ledgerAccounts"]["edges"]
        ]
    }  # balances unchanged
    provider_after = await gateway.post(PROVIDER_DATA, variables, tenant_id=tenant)
    bank_after = provider_after["data"]["customer"]["bankAccounts"]
    assert {(b["name"], b["officialName"], b["mask"]) for b in bank_after} == {(ERASED, None, None)}
    assert provider_after["data"]["customer"]["cardPayments"]["edges"] == []
    for body in (after, email_after, provider_after):
        assert not _holds(json.dumps(body), subject), body

    # The ledger keeps every amount: counters, versions and the trial balance are unchanged.
    assert await _counters(engine, tenant) == counters
    # Caches: no key or value of the test's keyspace (Redis: SCAN + GET) holds the person.
    for key, value in (await cache_items(cache)).items():
        assert not _holds(key, subject), key
        assert not _holds(value, subject), key
        assert subject.card_customer not in key
    # Logs of the erasure and the reads after it.
    for record in caplog.records:
        assert not _holds(record.getMessage(), subject), record.getMessage()
    # Tables: nowhere in the whole database (audit trail included).
    assert await _tables_holding(engine, subject) == []

    # The erasure is in the audit trail, with field names only.
    async with engine.connect() as connection:
        events = (
            (
                await connection.execute(
                    select(audit_events).where(
                        audit_events.c.tenant_id == tenant, audit_events.c.action == "erase"
                    )
                )
            )
            .mappings()
            .all()
        )
    assert len(events) == 1
    assert events[0]["object_id"] == subject.customer_id
    assert "Customer.email" in events[0]["fields"]
    assert events[0]["subject"] == "dpo@tenant"

    # A revoked card link is no longer read, not even for an export.
    calls = providers.cards.total_calls
    erased = await export_customer(engine, tenant, subject.customer_id,
                                   card_processors=providers.runtime.card_processors)  # fmt: skip
    assert (erased["card_payments"], providers.cards.total_calls) == ([], calls)
    assert not _holds(json.dumps(erased), subject)

    # Idempotent: a second run finds nothing to do and records nothing more.
    exported = await export_customer(engine, tenant, subject.customer_id)
    again = await erase_and_purge(engine, tenant, subject.customer_id, actor=_actor(subject),
                                  providers=providers.runtime, response_cache=cache)  # fmt: skip
    assert again.erasure.already_erased
    assert {link.upstream for link in again.erasure.links} == {"not_called"}
    exported_again = await export_customer(engine, tenant, subject.customer_id)
    assert {**exported_again, "exported_at": None} == {**exported, "exported_at": None}

    # Nobody else was touched: the counterparty and another tenant's customer.
    async with engine.connect() as connection:
        names = dict(
            (await connection.execute(
                select(customers.c.id, customers.c.display_name).where(
                    customers.c.id.in_([subject.counterparty_id, stranger]))
            )).all()
        )  # fmt: skip
    assert names == {subject.counterparty_id: "Charles Babbage", stranger: "Grace Hopper"}


async def test_a_failed_upstream_revocation_still_erases_locally_and_is_recorded(
    providers: ProviderWorld, engine: AsyncEngine
) -> None:
    subject = await _subject(providers, engine)
    providers.banking.faults.fail_next("/item/remove", "5xx", times=10)

    report = await erase_and_purge(engine, subject.tenant_id, subject.customer_id,
                                   actor=_actor(subject), providers=providers.runtime,
                                   response_cache=None)  # fmt: skip

    failed = [link for link in report.erasure.links if link.upstream == "failed"]
    assert len(failed) == 1
    assert failed[0].error == "INTERNAL_SERVER_ERROR"
    document = await export_customer(engine, subject.tenant_id, subject.customer_id)
    assert document["customer"]["display_name"] == ERASED
    assert {link["secret"] for link in document["provider_links"]} == {"absent"}
    assert {link["status"] for link in document["provider_links"]} == {"revoked"}
    erase = [event for event in document["audit_events"] if event["action"] == "erase"]
    assert "ProviderLink.upstreamRevocationFailed" in erase[0]["fields"]


async def test_erasing_an_unknown_or_foreign_customer_touches_nothing(
    providers: ProviderWorld, engine: AsyncEngine
) -> None:
    subject = await _subject(providers, engine)
    foreign_tenant = await make_tenant(engine)
    async with engine.connect() as connection:
        events_before = await connection.scalar(select(func.count()).select_from(audit_events))
    for tenant_id, customer_id in (
        (subject.tenant_id, 10**12),
        (foreign_tenant, subject.customer_id),
    ):
        with pytest.raises(NotFound, match="no customer"):
            await erase_and_purge(engine, tenant_id, customer_id, actor=_actor(subject),
                                  providers=providers.runtime, response_cache=None)  # fmt: skip
    document = await export_customer(engine, subject.tenant_id, subject.customer_id)
    assert document["customer"]["display_name"] == subject.name
    assert providers.banking.removed_items == set()
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(audit_events)) == (
            events_before
        )


async def test_the_cli_exports_to_a_private_file_and_refuses_an_unknown_customer(
    settings: Settings, engine: AsyncEngine, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant_id = await make_tenant(engine)
    customer_id = await make_customer(engine, tenant_id, display_name="Export Me")
    output = tmp_path / "export.json"
    parser = _parser()

    args = parser.parse_args(["customers", "export", "--tenant", str(tenant_id),
                              "--customer", str(customer_id), "--output", str(output)])  # fmt: skip
    assert await run_privacy_command(args, settings) == 0
    assert json.loads(output.read_text())["customer"]["display_name"] == "Export Me"
    assert output.stat().st_mode & 0o777 == 0o600

    for action in ("export", "erase"):
        args = parser.parse_args(["customers", action, "--tenant", str(tenant_id),
                                  "--customer", str(10**12)])  # fmt: skip
        assert await run_privacy_command(args, settings) == 2
        assert f"no customer {10**12} in tenant {tenant_id}" in capsys.readouterr().err

    erase = ["customers", "erase", "--tenant", str(tenant_id), "--customer", str(customer_id)]
    args = parser.parse_args([*erase, "--requested-by", "ticket-42"])
    assert await run_privacy_command(args, settings) == 0
    assert f"customer {customer_id} of tenant {tenant_id} erased" in capsys.readouterr().out
    assert await run_privacy_command(args, settings) == 0
    assert "was already erased" in capsys.readouterr().out


async def test_a_sync_that_raced_the_erasure_writes_nothing_back(
    providers: ProviderWorld, engine: AsyncEngine
) -> None:
    """A sync that read the link (and its token) before the erasure commits after it: the
    compare-and-set on the link refuses a revoked link, so no name comes back."""
    subject = await _subject(providers, engine)
    assert providers.runtime.secret_box is not None
    # Read before the erasure, never synced: its cursor is null, as the erasure leaves it.
    [stale] = await bank_links(engine, tenant_id=subject.tenant_id,
                               customer_ids=[subject.customer_id])  # fmt: skip
    assert stale.sync_cursor is None
    # No upstream revocation here (the provider is not passed), so the stale token still works.
    await erase_customer(engine, subject.tenant_id, subject.customer_id, actor=_actor(subject))

    result = await sync_link(engine, providers.runtime.banking_providers["plaid"],
                             providers.runtime.secret_box, stale)  # fmt: skip

    assert result.is_superseded
    document = await export_customer(engine, subject.tenant_id, subject.customer_id)
    assert document["bank_accounts"] == []  # the sync's accounts were rolled back
    assert document["bank_transactions"] == []
    assert {link["status"] for link in document["provider_links"]} == {"revoked"}
