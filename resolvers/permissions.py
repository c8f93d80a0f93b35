"""Authorization, read from the principal only: the one place where scopes are enforced.

The rule: a read scope belongs to a TYPE and applies wherever an object of that type is
reached (a root field, a nested field, a mutation's payload). `TYPE_SCOPES` gives the scope of
every object type; `FIELD_SCOPES` gives each root field its scope and overrides the type's
scope on the few fields whose value needs another one (the edges into provider data, and from a
write's payload into ledger data). `field_scope(type, field)` reads both: it is the whole rule,
a pure function that the execution-time check below uses and that any other read path (for
example one compiled to SQL) calls to decide statically what a principal may read.

Checks run only on "entry edges": root fields, and fields whose scope differs from their parent
type's (`Customer.bankAccounts`, `LedgerTransactionPayload.transaction`, ...). A field of a
type that needs `s` is only ever reached through an edge that checked `s` (the rules are
verified against the schema when it is built: every field returning a scoped type declares that
type's scope), so leaf fields carry no check and keep their fast direct resolvers. Every
operation, persisted or not, runs through these checks. A missing scope makes the field null
with a FORBIDDEN error at its path naming the scope in `extensions.scope`; the rest of the
response still arrives.

Personal data is masked rather than refused: `MASKED_FIELDS` names the scope that reveals a
field unmasked (`Customer.email` needs `pii:read`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import strawberry
from graphql import (
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    default_field_resolver,
    get_named_type,
    is_abstract_type,
)

from resolvers.principal import Principal

__all__ = [
    "AUDIT_READ",
    "FIELD_SCOPES",
    "LEDGER_READ",
    "LEDGER_WRITE",
    "MASKED_FIELDS",
    "PII_READ",
    "PROVIDERS_READ",
    "PUBLIC_ROOT_FIELDS",
    "RECONCILIATION_READ",
    "TYPE_SCOPES",
    "ScopeRuleError",
    "entry_edges",
    "field_scope",
    "install_scope_checks",
    "mask_scope",
    "masked_email",
    "rule_problems",
]

LEDGER_READ = "ledger:read"
LEDGER_WRITE = "ledger:write"
PROVIDERS_READ = "providers:read"
PII_READ = "pii:read"
AUDIT_READ = "audit:read"
RECONCILIATION_READ = "reconciliation:read"

# Root fields that read nothing of any tenant: a persisted query selecting only these may be
# cached publicly on GET. Everything else is tenant-private.
PUBLIC_ROOT_FIELDS: frozenset[str] = frozenset({"__typename"})

ROOT_TYPES: frozenset[str] = frozenset({"Query", "Mutation", "Subscription"})


def _paged(node_type: str, scope: str) -> dict[str, str | None]:
    """A node type with its connection and edge types: pages read with the scope of their items."""
    return {node_type: scope, f"{node_type}Connection": scope, f"{node_type}Edge": scope}


# The scope needed to see an object of each type, wherever it is reached. None: the type holds
# nothing of its own (an amount, a page's cursors) and is read with whatever holds it.
# Root types are not listed: each root field declares its own scope in FIELD_SCOPES.
TYPE_SCOPES: Mapping[str, str | None] = {
    # Ledger data
    **_paged("Customer", LEDGER_READ),
    **_paged("LedgerAccount", LEDGER_READ),
    "LedgerBalance": LEDGER_READ,
    "LedgerTransaction": LEDGER_READ,
    **_paged("LedgerEntry", LEDGER_READ),
    # Ledger history, statements and aggregates (resolvers.analytics)
    "LedgerBalancePoint": LEDGER_READ,
    "LedgerStatement": LEDGER_READ,
    "LedgerStatementTotals": LEDGER_READ,
    **_paged("LedgerSummaryGroup", LEDGER_READ),
    # The result of a write: what the write itself needs (its ledger objects need ledger:read)
    "LedgerTransactionPayload": LEDGER_WRITE,
    # Provider data: banking
    "BankAccount": PROVIDERS_READ,
    "BankBalances": PROVIDERS_READ,
    "BankInstitution": PROVIDERS_READ,
    **_paged("BankTransaction", PROVIDERS_READ),
    "BankSpend": PROVIDERS_READ,
    # Provider data: cards
    **_paged("CardPayment", PROVIDERS_READ),
    "PaymentCard": PROVIDERS_READ,
    "CardRefund": PROVIDERS_READ,
    "CardDispute": PROVIDERS_READ,
    # Risk signals on card data (adapters.cards.risk)
    "CardRiskSignals": PROVIDERS_READ,
    "CardRiskReason": PROVIDERS_READ,
    "CardRiskSummary": PROVIDERS_READ,
    "CardRiskReasonCount": PROVIDERS_READ,
    # The audit trail (who read personal data unmasked, who posted)
    **_paged("AuditEvent", AUDIT_READ),
    # Reconciliation results: processor payouts against the ledger and the bank (amounts of
    # both, no personal data); a scope of their own, for finance operations
    "Reconciliation": RECONCILIATION_READ,
    **_paged("ReconciliationItem", RECONCILIATION_READ),
    "ReconciliationReason": RECONCILIATION_READ,
    # Values with no scope of their own: read with their holder
    "Money": None,
    "PageInfo": None,
    # The caller's own rate limit (Query.rateLimit): nothing of the tenant's data
    "RateLimit": None,
    # Apollo Federation's `_service { sdl }`: the schema, as introspection shows it (no scope;
    # the client's introspection policy decides, gateway.persisted_documents)
    "_Service": None,
}

# Every root field's scope, and the fields whose value needs another scope than their type's.
# None: public (no tenant data).
FIELD_SCOPES: Mapping[tuple[str, str], str | None] = {
    ("Query", "node"): LEDGER_READ,
    ("Query", "nodes"): LEDGER_READ,
    ("Query", "customer"): LEDGER_READ,
    ("Query", "customers"): LEDGER_READ,
    ("Query", "ledgerAccount"): LEDGER_READ,
    ("Query", "ledgerTransaction"): LEDGER_READ,
    ("Query", "ledgerSummary"): LEDGER_READ,
    ("Query", "rateLimit"): None,
    ("Query", "auditEvents"): AUDIT_READ,
    # Apollo Federation (resolvers.federation): entities are looked up as `node` looks them up
    ("Query", "_entities"): LEDGER_READ,
    ("Query", "_service"): None,
    ("Query", "reconciliation"): RECONCILIATION_READ,
    ("Mutation", "postLedgerTransaction"): LEDGER_WRITE,
    ("Mutation", "postPendingTransaction"): LEDGER_WRITE,
    ("Mutation", "voidPendingTransaction"): LEDGER_WRITE,
    ("Mutation", "reverseLedgerTransaction"): LEDGER_WRITE,
    # Live updates: checked when subscribing and again for every event delivered
    ("Subscription", "ledgerAccountBalanceChanged"): LEDGER_READ,
    ("Subscription", "ledgerTransactionPosted"): LEDGER_READ,
    # Ledger -> provider data
    ("Customer", "bankAccounts"): PROVIDERS_READ,
    ("Customer", "cardPayments"): PROVIDERS_READ,
    ("Customer", "bankSpend"): PROVIDERS_READ,
    ("Customer", "riskSummary"): PROVIDERS_READ,
    # A write's payload -> the ledger objects it wrote
    ("LedgerTransactionPayload", "transaction"): LEDGER_READ,
}

# Fields answered masked, not refused, without a scope: the scope that reveals them.
MASKED_FIELDS: Mapping[tuple[str, str], str] = {
    ("Customer", "email"): PII_READ,
}


def field_scope(parent_type_name: str, field_name: str) -> str | None:
    """The scope a principal must hold to read `field_name` of an object of `parent_type_name`.

    None: the field needs no scope of its own (public at the root, `__typename`, or a field of
    a value type such as Money that is only reached through a field that needed one).
    Raises LookupError for a type with no rule, and for a root field with no rule: what has no
    rule is never readable.
    """
    if field_name == "__typename":
        return None
    key = (parent_type_name, field_name)
    if key in FIELD_SCOPES:
        return FIELD_SCOPES[key]
    if parent_type_name in ROOT_TYPES or parent_type_name not in TYPE_SCOPES:
        raise LookupError(f"no scope rule for {parent_type_name}.{field_name}")
    return TYPE_SCOPES[parent_type_name]


def mask_scope(parent_type_name: str, field_name: str) -> str | None:
    """The scope that reveals a masked field unmasked; None when the field is never masked."""
    return MASKED_FIELDS.get((parent_type_name, field_name))


def masked_email(principal: Principal, email: str | None) -> str | None:
    """`email` for principals with pii:read; else its first letter and domain: 'a***@x.com'."""
    if email is None or principal.has(MASKED_FIELDS["Customer", "email"]):
        return email
    local, at, domain = email.partition("@")
    return f"{local[:1]}***{at}{domain}"


class ScopeRuleError(Exception):
    """The schema has types or fields the scope rules do not cover (or cover wrongly)."""


def _object_types(schema: strawberry.Schema) -> list[GraphQLObjectType]:
    return [
        graphql_type
        for graphql_type in schema._schema.type_map.values()
        if isinstance(graphql_type, GraphQLObjectType) and not graphql_type.name.startswith("__")
    ]


def _possible_types(schema: strawberry.Schema, named: GraphQLNamedType) -> list[str]:
    if is_abstract_type(named):
        return [t.name for t in schema._schema.get_possible_types(named)]
    return [named.name] if isinstance(named, GraphQLObjectType) else []


def rule_problems(schema: strawberry.Schema) -> list[str]:
    """What the rules miss or get wrong for `schema`; empty when every field is covered.

    - every object type has a rule (root types: each of their fields has one);
    - a field returning an object of a scoped type declares exactly that type's scope, so that
      the edge into the type checks it (or its parent already did);
    - no rule names a type or field the schema does not have.
    """
    problems: list[str] = []
    types = {t.name: t for t in _object_types(schema)}
    for name, graphql_type in types.items():
        if name not in ROOT_TYPES and name not in TYPE_SCOPES:
            problems.append(f"type {name} has no entry in TYPE_SCOPES")
            continue
        for field_name, field in graphql_type.fields.items():
            try:
                scope = field_scope(name, field_name)
            except LookupError:
                problems.append(f"field {name}.{field_name} has no entry in FIELD_SCOPES")
                continue
            for target in _possible_types(schema, get_named_type(field.type)):
                needed = TYPE_SCOPES.get(target)
                if needed is not None and scope != needed:
                    problems.append(
                        f"field {name}.{field_name} returns {target}, which needs {needed!r}, "
                        f"but its rule says {scope!r}: declare it in FIELD_SCOPES"
                    )
    for type_name, field_name in [*FIELD_SCOPES, *MASKED_FIELDS]:
        if type_name not in types or field_name not in types[type_name].fields:
            problems.append(f"rule for {type_name}.{field_name}, which the schema does not have")
    for type_name in TYPE_SCOPES:
        if type_name not in types:
            problems.append(f"rule for type {type_name}, which the schema does not have")
    return problems


def entry_edges(schema: strawberry.Schema) -> dict[tuple[str, str], str]:
    """The fields that check a scope, with the scope: those whose scope is not their parent's."""
    edges: dict[tuple[str, str], str] = {}
    for graphql_type in _object_types(schema):
        parent_scope = TYPE_SCOPES.get(graphql_type.name)
        for field_name in graphql_type.fields:
            scope = field_scope(graphql_type.name, field_name)
            if scope is not None and scope != parent_scope:
                edges[graphql_type.name, field_name] = scope
    return edges


def _checked(resolve: Callable[..., Any], scope: str) -> Callable[..., Any]:

    def resolve_in_scope(source: Any, info: GraphQLResolveInfo[Any], **arguments: Any) -> Any:
        principal: Principal = info.context.principal
        principal.require(scope)  # raises FORBIDDEN naming the scope: null at this path
        return resolve(source, info, **arguments)

    resolve_in_scope.scope_checked = True  # type: ignore[attr-defined]  # see fast_paths
    return resolve_in_scope


def install_scope_checks(schema: strawberry.Schema) -> int:
    """Check the rules against `schema` and put a scope check on every entry edge.

    Run after any other replacement of resolvers (resolvers.fast_paths): the check wraps
    whatever resolver the field ends up with. Raises ScopeRuleError, naming every problem,
    when a type or field has no rule. Returns the number of fields checked.
    """
    problems = rule_problems(schema)
    if problems:
        raise ScopeRuleError("scope rules do not cover the schema:\n  " + "\n  ".join(problems))
    edges = entry_edges(schema)
    type_map = schema._schema.type_map
    for (type_name, field_name), scope in edges.items():
        graphql_type = type_map[type_name]
        assert isinstance(graphql_type, GraphQLObjectType)
        field = graphql_type.fields[field_name]
        field.resolve = _checked(field.resolve or default_field_resolver, scope)
        if field.subscribe is not None:  # a subscription: checked when it starts, and per event
            field.subscribe = _checked(field.subscribe, scope)
    return len(edges)
