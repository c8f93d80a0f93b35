"""Authorization matrix, generated from the schema: every field of every object type, read by
callers of every client kind over HTTP against seeded data, with every subset of the scopes
(analysts) or with none, each scope alone and all of them (partner and first-party clients).

For each field the generator finds the shortest route to its type from a root field, and
selects the field at the end of that route (one aliased selection per field). Each field is
expected readable exactly when the caller holds every scope that `field_scope` gives along
the route; otherwise the first edge whose scope is missing is null with FORBIDDEN at its path
naming that scope, and nothing below it arrives. A readable field must actually be reached
(the seeded data holds an object of its parent type), so no field passes by being absent.

What the rules must say is stated here too, independently of the table: ledger types need
ledger:read, bank and card types providers:read, mutations ledger:write. A type or field with
no rule fails here (and the schema refuses to build).

Selections under nullable root fields share one document; each non-null root field gets its
own (a forbidden non-null root nulls the whole response). Partner and first-party clients send
registered documents by id, analysts send text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import strawberry
from graphql import GraphQLNonNull, GraphQLObjectType, get_named_type, is_leaf_type
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.schema.config import StrawberryConfig

from adapters.access.clients import DEFAULT_POLICIES, ClientKind
from adapters.audit.records import Actor, posting_event
from adapters.audit.store import AuditStore
from adapters.banking.sync import sync_bank_links
from adapters.cache import Cache, MemoryCache
from adapters.cards.risk import RiskStore
from adapters.cards.risk_rules import PaymentFact, RiskOutcome
from adapters.ledger.posting import PostingService
from adapters.ledger.tables import customers
from adapters.reconciliation.records import (
    MissingOn,
    Reason,
    ReasonCode,
    ReconciliationItem,
    ReconciliationStatus,
)
from adapters.reconciliation.store import ReconciliationStore
from adapters.records import TransactionStatus
from gateway.errors import format_errors
from gateway.lifespan import Services
from gateway.settings import Settings
from resolvers.banking import BankAccount
from resolvers.context import RequestContext
from resolvers.loaders import LedgerLoaders
from resolvers.node import encode_global_id
from resolvers.permissions import (
    AUDIT_READ,
    LEDGER_READ,
    LEDGER_WRITE,
    PROVIDERS_READ,
    RECONCILIATION_READ,
    ScopeRuleError,
    field_scope,
    install_scope_checks,
    mask_scope,
    rule_problems,
)
from resolvers.principal import SCOPES, Principal
from resolvers.scalars import SCALARS
from resolvers.schema import schema
from tests.factories import make_account, make_customer, post_transfer
from tests.fixtures.database import Database
from tests.fixtures.providers import ProviderWorld
from tests.resolvers.conftest import Caller, ProviderGateway, open_provider_gateway

GRAPHQL = schema._schema
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
ROOTS = ("Query", "Mutation", "Subscription")
EMAIL = "ada@example.com"
MASKED_EMAIL = "a***@example.com"
CARD_CUSTOMER = "cus_14"  # its sandbox payments include a card, refund, dispute, fee, failure

# Arguments of root fields, by variable; a root field missing here fails the generator.
ROOT_ARGUMENTS = {
    "node": "(id: $customer)",
    "nodes": "(ids: [$customer])",
    "customer": "(id: $customer)",
    "customers": "(first: 1)",
    "ledgerAccount": "(id: $account)",
    "ledgerTransaction": "(id: $reversal)",
    "ledgerSummary": "",
    "auditEvents": "(first: 1)",
    "reconciliation": '(from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z")',
    "postLedgerTransaction": "(input: {idempotencyKey: $postKey, entries: $entries})",
    "postPendingTransaction": "(id: $pending)",
    "voidPendingTransaction": "(id: $voidable)",
    "reverseLedgerTransaction": "(id: $posted, idempotencyKey: $reverseKey)",
    "rateLimit": "",
    "ledgerAccountBalanceChanged": "(accountIds: [$account])",
    "ledgerTransactionPosted": "",
    "_entities": "(representations: $entities)",
    "_service": "",
}
VARIABLE_TYPES = {
    "customer": "ID!", "account": "ID!", "reversal": "ID!", "entries": "[LedgerEntryInput!]!",
    "pending": "ID!", "voidable": "ID!", "posted": "ID!", "postKey": "String!",
    "reverseKey": "String!", "entities": "[_Any!]!",
}  # fmt: skip
# Root fields that read the schema: the client's introspection policy decides, before scopes.
SCHEMA_ROOTS = frozenset({"_service"})

# Every scope set for analysts (they send text); for the kinds that send registered documents,
# none, each scope alone, and all.
ALL_SETS = [
    frozenset(chosen) for size in range(len(SCOPES) + 1)
    for chosen in itertools.combinations(sorted(SCOPES), size)
]  # fmt: skip
EDGE_SETS = [frozenset(), *(frozenset({scope}) for scope in sorted(SCOPES)), frozenset(SCOPES)]
CALLERS: list[tuple[ClientKind, frozenset[str]]] = [
    *(("analyst", scopes) for scopes in ALL_SETS),
    *(("partner", scopes) for scopes in EDGE_SETS),
    *(("first_party", scopes) for scopes in EDGE_SETS),
]


@dataclass(frozen=True)
class Edge:
    type_name: str
    field_name: str

    @property
    def named_type(self) -> Any:
        parent = GRAPHQL.type_map[self.type_name]
        assert isinstance(parent, GraphQLObjectType)
        return get_named_type(parent.fields[self.field_name].type)


@dataclass(frozen=True)
class Target:
    """One field under test: the route from a root field down to it, and its alias."""

    alias: str
    route: tuple[Edge, ...]

    @property
    def field(self) -> Edge:
        return self.route[-1]

    @property
    def root(self) -> Edge:
        return self.route[0]

    def scopes(self) -> list[str | None]:
        return [field_scope(edge.type_name, edge.field_name) for edge in self.route]


def _object_types() -> list[GraphQLObjectType]:
    return [
        t for t in GRAPHQL.type_map.values()
        if isinstance(t, GraphQLObjectType) and not t.name.startswith("__")
    ]  # fmt: skip


def _routes() -> dict[str, tuple[Edge, ...]]:
    """The shortest route (Query first) to an object of each type, through object fields."""
    routes: dict[str, tuple[Edge, ...]] = dict.fromkeys(ROOTS, ())
    queue = list(ROOTS)
    while queue:
        type_name = queue.pop(0)
        graphql_type = GRAPHQL.type_map[type_name]
        assert isinstance(graphql_type, GraphQLObjectType)
        for field_name, field in graphql_type.fields.items():
            named = get_named_type(field.type)
            if isinstance(named, GraphQLObjectType) and named.name not in routes:
                routes[named.name] = (*routes[type_name], Edge(type_name, field_name))
                queue.append(named.name)
    return routes


def _targets() -> list[Target]:
    routes = _routes()
    targets: list[Target] = []
    for graphql_type in _object_types():
        assert graphql_type.name in routes, f"no route from a root to {graphql_type.name}"
        for field_name in graphql_type.fields:
            route = (*routes[graphql_type.name], Edge(graphql_type.name, field_name))
            targets.append(Target(f"f{len(targets)}", route))
    return targets


TARGETS = _targets()


def _arguments(edge: Edge) -> str:
    if edge.type_name in ROOTS:
        assert edge.field_name in ROOT_ARGUMENTS, f"no arguments for root field {edge.field_name}"
        return ROOT_ARGUMENTS[edge.field_name]
    parent = GRAPHQL.type_map[edge.type_name]
    assert isinstance(parent, GraphQLObjectType)
    for name, argument in parent.fields[edge.field_name].args.items():
        needs_value = isinstance(argument.type, GraphQLNonNull) and argument.default_value is None
        assert not needs_value, f"{edge.type_name}.{edge.field_name}({name}:) needs a value here"
    return ""


def _selection(target: Target) -> str:
    text = "" if is_leaf_type(target.field.named_type) else "__typename"
    for edge in reversed(target.route):
        inner = f" {{ {text} }}" if text else ""
        text = f"{edge.field_name}{_arguments(edge)}{inner}"
    return f"{target.alias}: {text}"


@dataclass(frozen=True)
class Document:
    name: str
    operation: str
    targets: tuple[Target, ...]

    @property
    def text(self) -> str:
        selections = "\n  ".join(_selection(target) for target in self.targets)
        used = dict.fromkeys(re.findall(r"\$(\w+)", selections))
        declared = ", ".join(f"${name}: {VARIABLE_TYPES[name]}" for name in used)
        header = f"({declared})" if declared else ""
        return f"{self.operation} {self.name}{header} {{\n  {selections}\n}}"


def _documents() -> list[Document]:
    """Nullable root fields share one document; each non-null root field has its own."""
    shared: list[Target] = []
    alone: dict[Edge, list[Target]] = {}
    for target in TARGETS:
        root_type = GRAPHQL.type_map[target.root.type_name]
        assert isinstance(root_type, GraphQLObjectType)
        if isinstance(root_type.fields[target.root.field_name].type, GraphQLNonNull):
            alone.setdefault(target.root, []).append(target)
        else:
            shared.append(target)
    documents = [Document("Reads", "query", tuple(shared))]
    for root, targets in alone.items():
        operation = root.type_name.lower()
        documents.append(Document(f"Root_{root.field_name}", operation, tuple(targets)))
    return documents


# Subscriptions run over WebSocket or SSE, not the HTTP requests of the matrix: their root
# fields are checked below by subscribing through the schema; the types they return are
# reached from Query in the matrix.
DOCUMENTS = [d for d in _documents() if d.operation != "subscription"]
SUBSCRIPTIONS = [d for d in _documents() if d.operation == "subscription"]


# The policy in words, independently of the rule table: which scopes reaching each type takes.
def _intended_scopes(target: Target) -> set[str]:
    if target.root.field_name in ("rateLimit", "_service"):
        return set()  # the caller's own rate limit, the schema's SDL: no tenant data
    intended = {LEDGER_WRITE} if target.root.type_name == "Mutation" else {LEDGER_READ}
    for edge in target.route:
        name = edge.named_type.name
        if name.startswith(("Bank", "Card", "PaymentCard")):
            intended.add(PROVIDERS_READ)
        elif name.startswith("Audit"):  # the audit trail needs audit:read, not ledger:read
            intended.discard(LEDGER_READ)
            intended.add(AUDIT_READ)
        elif name.startswith("Reconciliation"):  # its own scope, not ledger:read
            intended.discard(LEDGER_READ)
            intended.add(RECONCILIATION_READ)
        elif name.startswith(("Customer", "Ledger", "Node")) and not name.endswith("Payload"):
            intended.add(LEDGER_READ)
    return intended


def test_every_type_and_field_has_a_rule_and_the_rules_say_what_the_policy_says() -> None:
    assert rule_problems(schema) == []
    covered = {(t.field.type_name, t.field.field_name) for t in TARGETS}
    every = {(t.name, name) for t in _object_types() for name in t.fields}
    assert covered == every
    for target in TARGETS:
        declared = {scope for scope in target.scopes() if scope is not None}
        assert declared == _intended_scopes(target), target


# A schema the rules do not cover: a type with no rule, a root field with no rule, and a ledger
# type with a field into bank data that does not declare providers:read.
@strawberry.type(name="Unruled")
class _Unruled:
    secret: int


@strawberry.type(name="LedgerAccount")
class _LedgerAccountWithBank:
    @strawberry.field
    def bank(self) -> BankAccount:
        raise NotImplementedError


@strawberry.type(name="Query")
class _RogueQuery:
    @strawberry.field
    def rogue(self) -> _Unruled:
        raise NotImplementedError

    @strawberry.field
    def ledger_account(self) -> _LedgerAccountWithBank:
        raise NotImplementedError


def test_a_field_or_type_without_a_rule_refuses_to_build() -> None:
    rogue = strawberry.Schema(query=_RogueQuery, config=StrawberryConfig(scalar_map=SCALARS))

    problems = rule_problems(rogue)
    assert "type Unruled has no entry in TYPE_SCOPES" in problems
    assert "field Query.rogue has no entry in FIELD_SCOPES" in problems
    assert any(p.startswith("field LedgerAccount.bank returns BankAccount") for p in problems)
    with pytest.raises(ScopeRuleError):
        install_scope_checks(rogue)


# Seeded world -----------------------------------------------------------------------------


@dataclass
class World:
    tenant_id: int
    customer: str
    account: str
    reversal: str
    posted: str
    debit_account: int
    credit_account: int


@pytest.fixture
def cache() -> Cache:
    """Authorization does not depend on the cache backend: one is enough here."""
    return MemoryCache()


@pytest.fixture
async def matrix_gateway(
    settings: Settings, services: Services, providers: ProviderWorld, cache: Cache
) -> AsyncIterator[ProviderGateway]:
    # Every field is one alias: the shared document needs more than the production limit.
    roomy = dataclasses.replace(settings, max_aliases=len(TARGETS) + 10)
    async with open_provider_gateway(roomy, services, providers, cache) as gateway:
        yield gateway


async def _world(engine: AsyncEngine, providers: ProviderWorld, tenant_id: int) -> World:
    customer = await make_customer(engine, tenant_id, display_name="Ada")
    async with engine.begin() as connection:
        await connection.execute(
            update(customers).where(customers.c.id == customer).values(email=EMAIL)
        )
    cash = await make_account(engine, tenant_id, customer_id=customer, name="Wallet")
    revenue = await make_account(engine, tenant_id, name="Revenue", normal_balance="credit")
    item = await providers.link_bank(tenant_id, customer, transactions=3)
    # Spend this month (Customer.bankSpend's default range ends today), synced now.
    today = dt.datetime.now(dt.UTC).date()
    providers.banking.add_transaction(item, amount="12.34", day=(today - dt.date(2026, 1, 1)).days)
    runtime = providers.runtime
    await sync_bank_links(engine, runtime.banking_providers, runtime.secret_box,  # type: ignore[arg-type]
                          tenant_id=tenant_id)  # fmt: skip
    await providers.link_card_customer(tenant_id, customer, CARD_CUSTOMER)
    await _risk_facts(engine, providers, tenant_id, customer)
    sale = await post_transfer(engine, tenant_id, debit=cash, credit=revenue, amount=1250)
    reversal = await PostingService(engine).reverse_transaction(
        tenant_id, sale.transaction.id, "reverse-sale"
    )
    to_reverse = await post_transfer(engine, tenant_id, debit=cash, credit=revenue, amount=300)
    # An event for auditEvents to reach (the matrix's own writes record more).
    actor = Actor(tenant_id=tenant_id, subject="matrix", client_id=None, request_id="seed")
    await AuditStore(engine).record([posting_event(actor, "post", sale.transaction.id, NOW)])
    # A stored reconciliation result with every field set, for reconciliation to reach.
    january = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    await ReconciliationStore(engine).replace(
        tenant_id, "stripe", january, january + dt.timedelta(days=31),
        [ReconciliationItem(
            provider="stripe", payout_id="po_matrix", status=ReconciliationStatus.MISMATCHED,
            missing_on=MissingOn.BANK, reasons=(Reason(ReasonCode.BANK_AMOUNT_DIFFERS, "x"),),
            occurred_at=january + dt.timedelta(days=3), currency="USD", exponent=2,
            payout_amount=100, items_net=100, item_count=1, bank_transaction_id=1,
            bank_amount=99, bank_currency="USD", bank_exponent=2,
            bank_date=dt.date(2026, 1, 5), checked_at=january,
        )],
    )  # fmt: skip
    return World(
        tenant_id=tenant_id,
        customer=encode_global_id("Customer", customer),
        account=encode_global_id("LedgerAccount", cash),
        reversal=encode_global_id("LedgerTransaction", reversal.transaction.id),
        posted=encode_global_id("LedgerTransaction", to_reverse.transaction.id),
        debit_account=cash,
        credit_account=revenue,
    )


async def _risk_facts(
    engine: AsyncEngine, providers: ProviderWorld, tenant_id: int, customer: int
) -> None:
    """Risk facts for the card customer's payments, close enough together that rules fire
    (CardPayment.riskSignals and Customer.riskSummary then reach every field)."""
    store = RiskStore(engine)
    payments = providers.cards.data.payment_intent_ids(CARD_CUSTOMER)[:6]
    payments += [f"pi_matrix_{index}" for index in range(6 - len(payments))]
    now = dt.datetime.now(dt.UTC)
    for index, payment in enumerate(reversed(payments)):  # the newest payment last
        fact = PaymentFact(
            provider="stripe", payment_id=payment, customer_id=customer,
            fingerprint="fp_matrix", amount=1000, currency="USD",
            outcome=RiskOutcome.SUCCEEDED, disputed=False,
            created=now - dt.timedelta(minutes=len(payments) - index),
        )  # fmt: skip
        await store.observe(tenant_id, fact)


async def _variables(engine: AsyncEngine, world: World, *, writes: bool) -> dict[str, Any]:
    """The variables of every document. A caller that may write gets two fresh pending
    transactions to confirm and void; the post and the reversal use one idempotency key for
    every caller (the first writes, the others replay), which keeps the matrix cheap. Other
    callers' mutations are refused before any id is used."""
    pending = [world.reversal, world.reversal]
    for index in range(2 if writes else 0):
        result = await post_transfer(
            engine, world.tenant_id, debit=world.debit_account, credit=world.credit_account,
            amount=100, status=TransactionStatus.PENDING,
        )  # fmt: skip
        pending[index] = encode_global_id("LedgerTransaction", result.transaction.id)
    credit = encode_global_id("LedgerAccount", world.credit_account)
    return {
        "customer": world.customer, "account": world.account, "reversal": world.reversal,
        "pending": pending[0], "voidable": pending[1], "posted": world.posted,
        "postKey": "matrix-post", "reverseKey": "matrix-reverse",
        "entities": [{"__typename": "Customer", "id": world.customer}],
        "entries": [
            {"accountId": world.account, "direction": "DEBIT", "amount": "1", "currency": "USD"},
            {"accountId": credit, "direction": "CREDIT", "amount": "1", "currency": "USD"},
        ],
    }  # fmt: skip


def _reads_the_schema(document: Document) -> bool:
    return any(target.root.field_name in SCHEMA_ROOTS for target in document.targets)


# Checking a response ----------------------------------------------------------------------


def _parents(value: Any, keys: list[str]) -> Iterator[dict[str, Any]]:
    """The objects reached by following `keys` from `value` (lists are walked, nulls end)."""
    if isinstance(value, list):
        for item in value:
            yield from _parents(item, keys)
    elif isinstance(value, dict):
        if not keys:
            yield value
        else:
            yield from _parents(value.get(keys[0]), keys[1:])


def _check(caller: Caller, document: Document, body: dict[str, Any]) -> list[str]:
    """What in `body` disagrees with the rules, one line per field; empty when all agree."""
    failures: list[str] = []
    errors = body.get("errors", [])
    data = body.get("data")
    for target in document.targets:
        where = f"{target.field.type_name}.{target.field.field_name} via {target.alias}"
        scopes = target.scopes()
        missing = next(
            (i for i, s in enumerate(scopes) if s is not None and s not in caller.scopes), None
        )
        mine = [e for e in errors if e.get("path", [None])[0] == target.alias]
        keys = [target.alias, *(edge.field_name for edge in target.route[1:])]
        if missing is None:
            parents = list(_parents(data, keys[:-1]))
            reached = [parent for parent in parents if keys[-1] in parent]
            if mine or not reached or (len(keys) == 1 and reached[0][keys[0]] is None):
                failures.append(f"{where}: expected readable, got {mine or 'nothing reached'}")
                continue
            unmask = mask_scope(target.field.type_name, target.field.field_name)
            if unmask is not None:
                expected = EMAIL if unmask in caller.scopes else MASKED_EMAIL
                if any(parent[keys[-1]] != expected for parent in reached):
                    failures.append(f"{where}: expected {expected!r}")
            continue
        expected_path = keys[: missing + 1]
        expected_extensions = {"code": "FORBIDDEN", "scope": scopes[missing]}
        if data is None:
            # A non-null root refused: the whole response is null. Only the root can be it.
            if missing != 0:
                failures.append(f"{where}: response nulled, but {expected_path} should refuse")
            continue
        paths = [[p for p in e["path"] if not isinstance(p, int)] for e in mine]
        if not mine or any(path != expected_path for path in paths):
            failures.append(f"{where}: expected FORBIDDEN at {expected_path}, got {mine}")
        elif any(e["extensions"] != expected_extensions for e in mine):
            failures.append(f"{where}: expected {expected_extensions}, got {mine}")
        elif len(expected_path) > 1 and any(
            parent[expected_path[-1]] is not None for parent in _parents(data, expected_path[:-1])
        ):
            failures.append(f"{where}: refused field is not null")
    if data is None:
        root_errors = [e for e in errors if len(e["path"]) == 1]
        if not root_errors or len(root_errors) != len(errors):
            failures.append(f"{document.name}: null response without a refused root: {errors}")
    return failures


async def test_every_field_is_readable_exactly_when_the_rules_say_so(
    matrix_gateway: ProviderGateway, providers: ProviderWorld, engine: AsyncEngine,
    tenant_id: int, database: Database,
) -> None:  # fmt: skip
    world = await _world(engine, providers, tenant_id)
    manifest = {document.name: document.text for document in DOCUMENTS}

    async def run_as(kind: ClientKind, scopes: frozenset[str]) -> list[str]:
        caller = await matrix_gateway.api_key(tenant_id, kind, scopes, manifest)
        variables = await _variables(engine, world, writes=LEDGER_WRITE in scopes)
        failures = []
        for document in DOCUMENTS:
            label = f"{kind} {sorted(scopes)} {document.name}"
            if not DEFAULT_POLICIES[kind].introspection and _reads_the_schema(document):
                refused = await matrix_gateway.http.post(
                    "/graphql", json=caller.body(document.name, document.text, variables),
                    headers={"authorization": f"Bearer {caller.credential}"},
                )  # fmt: skip
                codes = [e["extensions"]["code"] for e in refused.json().get("errors", [])]
                if refused.status_code != 403 or codes != ["INTROSPECTION_DISABLED"]:
                    failures.append(f"{label}: expected INTROSPECTION_DISABLED, got {codes}")
                continue
            body = await matrix_gateway.run(caller, document.name, document.text, variables)
            failures += [f"{label}: {failure}" for failure in _check(caller, document, body)]
        return failures

    # Callers are independent (their own client, keys and transactions): on PostgreSQL a few
    # run at once; SQLite has one writer, so there they take turns.
    at_once = asyncio.Semaphore(6 if database.backend == "postgresql" else 1)

    async def limited(kind: ClientKind, scopes: frozenset[str]) -> list[str]:
        async with at_once:
            return await run_as(kind, scopes)

    results = await asyncio.gather(*(limited(kind, scopes) for kind, scopes in CALLERS))
    assert [failure for failures in results for failure in failures] == []


@pytest.mark.parametrize("scopes", EDGE_SETS, ids=lambda scopes: "+".join(sorted(scopes)) or "none")
@pytest.mark.parametrize("document", SUBSCRIPTIONS, ids=lambda document: document.name)
async def test_a_subscription_starts_exactly_when_its_root_field_scope_is_held(
    document: Document, scopes: frozenset[str], services: Services, tenant_id: int
) -> None:
    """Subscribing checks the root field's scope before any event (the per-event check and
    delivery are tested in tests/gateway/test_subscriptions.py). Here the context has no event
    source: a subscription that passed the check ends with SUBSCRIPTIONS_UNAVAILABLE."""
    (target,) = document.targets
    (scope,) = target.scopes()
    account = await make_account(services.engine, tenant_id)
    context = RequestContext(
        request_id="matrix",
        principal=Principal(subject="matrix", tenant_id=tenant_id, scopes=scopes),
        ledger=LedgerLoaders(services.reader, tenant_id),
        posting=services.posting,
        max_page_size=100,
    )
    variables = {"account": encode_global_id("LedgerAccount", account)}
    results = await schema.subscribe(document.text, variables, context_value=context)
    first = await anext(results)
    await results.aclose()

    assert first.errors is not None
    (error,) = format_errors(first.errors, "matrix")
    if scope in scopes:
        assert error["extensions"] == {"code": "SUBSCRIPTIONS_UNAVAILABLE"}
    else:
        assert error["extensions"] == {"code": "FORBIDDEN", "scope": scope}
        assert error["path"] == [target.alias]
