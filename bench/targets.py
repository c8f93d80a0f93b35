"""What the benchmark asks for: ids picked from the seeded data, and the JSON request bodies."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from adapters.ledger.engine import create_ledger_engine

__all__ = [
    "ANALYST_QUERIES",
    "MIXED",
    "OPERATIONS",
    "QUERIES",
    "Targets",
    "ensure_provider_links",
    "find_posting_pairs",
    "find_targets",
    "write_bodies",
    "write_posting_bodies",
]

QUERIES = Path(__file__).with_name("queries")
OPERATIONS = {
    "q1": "Dashboard",
    "q2": "Statement",
    "q3": "Lookup",
    "q4": "Mixed",
    "q6": "Summary",
    "q7": "History",
    "e1": "Entities",
    "e100": "Entities",
}
# The analysts' queries (gateway only: the peers have no such fields). One takes a second or
# more, so they run at --analyst-connections, not at the OLTP queries' concurrency.
ANALYST_QUERIES = ("q6", "q7")
# Federation's `_entities` with 1 and 100 representations: one document, two sets of variables.
DOCUMENTS = {"e1": "entities", "e100": "entities"}
ENTITIES = 100
# Q5 mixes 10 % postings into Q1/Q2 reads: not one document, so not an OPERATION.
MIXED = "q5"
POSTING_PAIRS = 16  # postings rotate over this many account pairs (little row-lock contention)
STATEMENT_ENTRIES = 100  # Q2 asks for entries(first: 100): its account must have a full page
LOOKUP_POSITION = 4242  # Q3 reads the 4242nd customer of the tenant, as the peers do
HISTORY_ACCOUNTS = 50  # Q7: a year of daily history of the tenant's first 50 accounts
HISTORY_DAYS = 365


@dataclass(frozen=True, slots=True)
class Targets:
    """The seeded tenant, the rows Q2 and Q3 read, and the analysts' ranges (ISO days): Q6's
    last full calendar month of data, Q7's year of days up to the last entry and accounts."""

    tenant_id: int
    account_id: int
    account_entries: int
    customer_id: int
    month: tuple[str, str] = ("", "")
    year: tuple[str, str] = ("", "")
    history_account_ids: tuple[int, ...] = ()
    # e1/e100: customers spread over the tenant (every 100th by id)
    entity_customer_ids: tuple[int, ...] = ()


async def find_targets(database_url: str) -> Targets:
    """Pick the tenant with the most customers, its first account with >= 100 entries (Q2)
    and its 4242nd customer, or its last when it has fewer (Q3)."""
    engine = create_ledger_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            tenant_id = await connection.scalar(
                text(
                    "select tenant_id from customers group by tenant_id"
                    " order by count(*) desc, tenant_id limit 1"
                )
            )
            if tenant_id is None:
                raise SystemExit("the database has no customers: seed it first")
            account = (
                await connection.execute(
                    text(
                        "select account_id, count(*) from ledger_entries where tenant_id = :t"
                        " group by account_id having count(*) >= :n order by account_id limit 1"
                    ),
                    {"t": tenant_id, "n": STATEMENT_ENTRIES},
                )
            ).first()
            if account is None:
                raise SystemExit(
                    f"no account of tenant {tenant_id} has {STATEMENT_ENTRIES} entries"
                )
            customer_id = await connection.scalar(
                text(
                    "select id from (select id from customers where tenant_id = :t"
                    " order by id limit :n) as first_customers order by id desc limit 1"
                ),
                {"t": tenant_id, "n": LOOKUP_POSITION},
            )
            latest = await connection.scalar(
                text("select max(effective_at) from ledger_entries where tenant_id = :t"),
                {"t": tenant_id},
            )
            history_ids = (
                await connection.scalars(
                    text(
                        "select id from ledger_accounts where tenant_id = :t order by id limit :n"
                    ),
                    {"t": tenant_id, "n": HISTORY_ACCOUNTS},
                )
            ).all()
            spread = await connection.scalars(
                text(
                    "select id from (select id, row_number() over (order by id) as n"
                    " from customers where tenant_id = :t) as numbered"
                    " where n % 100 = 0 order by id limit :n"
                ),
                {"t": tenant_id, "n": ENTITIES},
            )
            entity_customer_ids = tuple(int(pk) for pk in spread)
    finally:
        await engine.dispose()
    last_day = _utc_day(latest)
    return Targets(
        int(tenant_id), int(account[0]), int(account[1]), int(customer_id),
        month=_last_full_month(last_day),
        year=((last_day - dt.timedelta(days=HISTORY_DAYS - 1)).isoformat(), last_day.isoformat()),
        history_account_ids=tuple(int(pk) for pk in history_ids),
        entity_customer_ids=entity_customer_ids,
    )  # fmt: skip


def _utc_day(moment: dt.datetime | str | None) -> dt.date:
    """The UTC day of the latest entry (a naive value, as SQLite gives it, is UTC)."""
    if moment is None:
        raise SystemExit("the tenant has no ledger entries: seed it first")
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.date()


def _last_full_month(last_day: dt.date) -> tuple[str, str]:
    """The last calendar month that ends on or before `last_day`, as (first, last) ISO days."""
    ends_a_month = (last_day + dt.timedelta(days=1)).day == 1
    end = last_day if ends_a_month else last_day.replace(day=1) - dt.timedelta(days=1)
    return end.replace(day=1).isoformat(), end.isoformat()


def global_id(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def _representations(customer_ids: tuple[int, ...]) -> list[dict[str, str]]:
    return [{"__typename": "Customer", "id": global_id("Customer", pk)} for pk in customer_ids]


def write_bodies(directory: Path, targets: Targets) -> dict[str, Path]:
    """Write q1.json, q2.json, ... (query without comments, operationName, variables) to
    `directory`, one per OPERATION."""
    variables = {
        "q1": None,
        "q2": {"id": global_id("LedgerAccount", targets.account_id)},
        "q3": {"id": global_id("Customer", targets.customer_id)},
        "q4": {"id": global_id("Customer", targets.customer_id)},
        "q6": {"from": targets.month[0], "to": targets.month[1]},
        "q7": {
            "ids": [global_id("LedgerAccount", pk) for pk in targets.history_account_ids],
            "from": targets.year[0],
            "to": targets.year[1],
        },
        "e1": {"representations": _representations(targets.entity_customer_ids[:1])},
        "e100": {"representations": _representations(targets.entity_customer_ids)},
    }
    directory.mkdir(parents=True, exist_ok=True)
    bodies: dict[str, Path] = {}
    for name, operation in OPERATIONS.items():
        lines = (QUERIES / f"{DOCUMENTS.get(name, name)}.graphql").read_text().splitlines()
        document = "\n".join(line for line in lines if not line.lstrip().startswith("#")) + "\n"
        body: dict[str, object] = {"query": document, "operationName": operation}
        if variables[name] is not None:
            body["variables"] = variables[name]
        path = directory / f"{name}.json"
        path.write_text(json.dumps(body) + "\n")
        bodies[name] = path
    return bodies


async def ensure_provider_links(database_url: str, targets: Targets) -> None:
    """Link Q4's customer (Q3's) to a sandbox card customer and a sandbox bank item, once.

    The sandboxes derive their data from the ids alone, so a gateway serving them in-process
    (PROVIDERS=sandbox) answers for these links; the bank token is sealed with the development
    keyring, which the benchmark gateway is given (sandbox tokens are not secrets).
    """
    from adapters.banking.links import bank_links, create_bank_link
    from adapters.crypto import DEV_SECRET_KEYRING, SecretBox, SecretText
    from adapters.providers.tables import provider_links
    from adapters.sandbox.banking_app import access_token_for_item

    engine = create_ledger_engine(database_url, pool_size=1)
    tenant, customer = targets.tenant_id, targets.customer_id
    try:
        async with engine.begin() as connection:
            card = await connection.scalar(
                text("select id from provider_links where tenant_id = :t and customer_id = :c"
                     " and kind = 'cards'"), {"t": tenant, "c": customer},
            )  # fmt: skip
            if card is None:
                await connection.execute(
                    provider_links.insert().values(
                        tenant_id=tenant, customer_id=customer, provider="stripe", kind="cards",
                        external_id=f"cus_{customer % 1000 + 1}",
                    )
                )  # fmt: skip
        if not await bank_links(engine, tenant_id=tenant, customer_ids=[customer]):
            item_id = f"bench-item-{customer}"
            await create_bank_link(
                engine, SecretBox.from_keyring(DEV_SECRET_KEYRING), tenant_id=tenant,
                customer_id=customer, provider="plaid", item_id=item_id,
                access_token=SecretText(access_token_for_item(item_id)),
            )  # fmt: skip
    finally:
        await engine.dispose()


async def find_posting_pairs(database_url: str, targets: Targets) -> list[tuple[int, int, str]]:
    """Q5's writes: pairs (debit account, credit account, currency) of the tenant's accounts
    read by Q1 (its first 50 customers) and Q2's account, same currency, without overdraft
    guards, so that every balanced posting of one unit succeeds and touches read data."""
    engine = create_ledger_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "select id, currency from ledger_accounts where tenant_id = :t"
                        " and not debits_must_not_exceed_credits"
                        " and not credits_must_not_exceed_debits"
                        " and (id = :a or customer_id in (select id from customers"
                        "   where tenant_id = :t order by id limit 50))"
                        " order by id = :a desc, id"
                    ),
                    {"t": targets.tenant_id, "a": targets.account_id},
                )
            ).all()
    finally:
        await engine.dispose()
    by_currency: dict[str, list[int]] = {}
    for account_id, currency in rows:
        by_currency.setdefault(str(currency), []).append(int(account_id))
    pairs = []
    for currency, ids in by_currency.items():
        pairs += [(ids[i], ids[i + 1], currency) for i in range(0, len(ids) - 1, 2)]
    if not pairs:
        raise SystemExit(
            f"tenant {targets.tenant_id} has no two unguarded accounts in one currency"
        )
    # Q2's account first (when unguarded), then the others in id order.
    return pairs[:POSTING_PAIRS]


def write_posting_bodies(directory: Path, pairs: list[tuple[int, int, str]]) -> list[Path]:
    """One body template per pair; "@KEY@" is replaced by a fresh idempotency key per request."""
    lines = (QUERIES / "q5-post.graphql").read_text().splitlines()
    document = "\n".join(line for line in lines if not line.lstrip().startswith("#")) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (debit, credit, currency) in enumerate(pairs):
        # "1": one whole unit, valid whatever the currency's exponent (no decimals).
        entries = [
            {"accountId": global_id("LedgerAccount", debit), "direction": "DEBIT",
             "amount": "1", "currency": currency},
            {"accountId": global_id("LedgerAccount", credit), "direction": "CREDIT",
             "amount": "1", "currency": currency},
        ]  # fmt: skip
        body = {
            "query": document,
            "operationName": "Post",
            "variables": {
                "input": {"idempotencyKey": "@KEY@", "entries": entries, "description": "bench Q5"}
            },
        }
        path = directory / f"q5-post-{index}.json"
        path.write_text(json.dumps(body) + "\n")
        paths.append(path)
    return paths
