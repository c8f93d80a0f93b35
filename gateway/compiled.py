"""Compiled operations: a validated query planned once into one SQL statement building its JSON.

A query whose every selection the planner knows (customers, ledger accounts, balances, entries,
transactions, connections with cursors and counts, `node`, `__typename`, Money, enums, dates)
is planned once per (document, operation name) into a projection tree, rendered to SQL by
`adapters.ledger.json_sql`. A request then only coerces its variables, checks its arguments
(page caps, cursors, ids), and runs that one statement on PostgreSQL, which returns the
response's `data` as JSON text: no Python object per field. The first two steps depend on the
variables alone, so each plan keeps their outcome per set of variables (`Plan.bound`); the
caller's tenant and pii:read are bound on every request.

Anything else answers `None` and the caller runs the reference executor (Strawberry and the
resolvers): provider fields, mutations, introspection, directives, unknown fields, a document
that does not validate, variables that do not coerce, an argument the resolvers would refuse
(BAD_USER_INPUT), a caller who lacks a scope a field needs by the rule table of
resolvers.permissions (FORBIDDEN with partial data), or a database error. The reference
path then produces the exact errors, so the compiled path only ever answers the cases where it
answers exactly what the resolvers would (the differential test holds the two equal).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    NamedTypeNode,
    NonNullTypeNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    ValueNode,
    VariableNode,
    get_operation_ast,
    specified_rules,
    validate,
    value_from_ast,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values

from adapters.errors import AdapterError, DeadlineExceeded
from adapters.ledger import json_sql as sql
from adapters.ledger.queries import ENTRIES_START
from resolvers.node import decode_global_id, pk_of
from resolvers.pagination import check_first, decode_cursor, decode_time_cursor
from resolvers.permissions import field_scope, mask_scope
from resolvers.principal import Principal

__all__ = ["CompiledOperations", "Plan"]

logger = logging.getLogger("gateway.compiled")

_EPOCH_MICROS_TYPE = "timestamptz"


class _NotCompilable(Exception):
    """The planner does not know a selection: the operation takes the reference path."""


class _Fallback(Exception):
    """This request's arguments need the reference path (it reports the error)."""


# (GraphQL object type, field) -> what the field is in the projection. Scalars map to a value
# name of json_sql; the rest are handled by name in _Planner.
_SCALARS: dict[str, dict[str, str]] = {
    "Customer": {
        "id": "id", "kind": "kind", "displayName": "display_name",
        "createdAt": "created_at", "email": "email",
    },
    "LedgerAccount": {
        "id": "id", "name": "name", "currency": "currency", "normalBalance": "normal_balance",
        "createdAt": "created_at", "version": "version",
    },
    "LedgerTransaction": {
        "id": "id", "description": "description", "status": "status",
        "effectiveAt": "effective_at", "postedAt": "posted_at", "createdAt": "created_at",
        "idempotencyKey": "idempotency_key",
    },
    "LedgerEntry": {
        "id": "id", "direction": "direction", "status": "status", "effectiveAt": "effective_at",
    },
}  # fmt: skip
_ENTITIES: dict[str, sql.Entity] = {
    "Customer": "customer",
    "LedgerAccount": "account",
    "LedgerTransaction": "transaction",
    "LedgerEntry": "entry",
}
_MONEY_FIELDS = {"amount": "amount", "minorUnits": "minor_units", "currency": "currency",
                 "exponent": "exponent"}  # fmt: skip
_PAGE_INFO_FIELDS = {"hasNextPage": "has_next_page", "hasPreviousPage": "has_previous_page",
                     "startCursor": "start_cursor", "endCursor": "end_cursor"}  # fmt: skip
# The arguments the planner reads, per field; a field with any other argument (one added to
# the schema later included) is not compiled, so an argument is never silently ignored.
_ARGUMENTS: dict[tuple[str, str], frozenset[str]] = {
    ("Query", "customer"): frozenset({"id"}),
    ("Query", "ledgerAccount"): frozenset({"id"}),
    ("Query", "ledgerTransaction"): frozenset({"id"}),
    ("Query", "node"): frozenset({"id"}),
    ("Query", "nodes"): frozenset({"ids"}),
    ("Query", "customers"): frozenset({"first", "after"}),
    ("Customer", "ledgerAccounts"): frozenset({"first", "after"}),
    ("LedgerAccount", "entries"): frozenset({"first", "after"}),
}
# Root fields the planner knows: every root field it reads arguments of.
_ROOTS = frozenset(name for parent, name in _ARGUMENTS if parent == "Query")


@dataclass(frozen=True, slots=True)
class _Inputs:
    """A request's variables: graphql-core's coercion, or (fast path) plain coerced values."""

    values: VariableValues | None
    coerced: dict[str, Any]


# How many variable sets a plan keeps bound (Plan.bound).
_MAX_BOUND = 256

# A parameter slot: from the request's variables, the values of its statement parameters.
_Slot = Callable[[_Inputs], list[Any]]
# Variable types coerced without graphql-core: (named type, value types accepted).
_SIMPLE_VARIABLES: dict[str, tuple[type, ...]] = {"ID": (str, int), "String": (str,), "Int": (int,)}
_INT_RANGE = range(-(2**31), 2**31)


class _ArgumentReader:
    """A field's argument values for a request, as graphql-core's get_argument_values gives
    them; precomputed from literals and read from plain `$variable` references when it can."""

    def __init__(self, definition: GraphQLField, node: FieldNode) -> None:
        self.definition = definition
        self.node = node
        self.literals: dict[str, Any] | None = {}
        # argument -> (variable, default, whether null is refused)
        self.references: dict[str, tuple[str, Any, bool]] = {}
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        for name, argument in definition.args.items():
            value = given.get(name)
            default = argument.default_value
            if isinstance(value, VariableNode):
                non_null = isinstance(argument.type, GraphQLNonNull)
                self.references[name] = (value.name.value, default, non_null)
            elif value is not None:
                literal = value_from_ast(value, argument.type)
                if literal is Undefined or _has_variable(value):
                    self.literals = None
                    break
                self.literals[name] = literal
            elif default is not Undefined:
                self.literals[name] = default

    @property
    def fast(self) -> bool:
        return self.literals is not None

    def __call__(self, inputs: _Inputs) -> dict[str, Any]:
        if inputs.values is not None or self.literals is None:
            try:
                return get_argument_values(self.definition, self.node, inputs.values)
            except GraphQLError:
                raise _Fallback from None
        found = dict(self.literals)
        for name, (variable, default, non_null) in self.references.items():
            if variable in inputs.coerced:
                value = inputs.coerced[variable]
                if value is None and non_null:  # a field error on the reference path
                    raise _Fallback
                found[name] = value
            elif default is not Undefined:
                found[name] = default
        return found


def _has_variable(node: ValueNode) -> bool:
    if isinstance(node, VariableNode):
        return True
    if isinstance(node, ListValueNode):
        return any(_has_variable(value) for value in node.values)
    if isinstance(node, ObjectValueNode):
        return any(_has_variable(field.value) for field in node.fields)
    return False


def _simple_variables(
    operation: OperationDefinitionNode,
) -> tuple[tuple[str, tuple[type, ...], bool, bool], ...] | None:
    """(name, accepted types, non-null, is Int) of each variable when every one is an ID,
    String or Int without a default: those are coerced here without graphql-core."""
    simple = []
    for definition in operation.variable_definitions or []:
        type_node = definition.type
        non_null = isinstance(type_node, NonNullTypeNode)
        named = type_node.type if isinstance(type_node, NonNullTypeNode) else type_node
        if (
            not isinstance(named, NamedTypeNode)
            or named.name.value not in _SIMPLE_VARIABLES
            or definition.default_value is not None
            or definition.directives
        ):
            return None
        name = named.name.value
        simple.append(
            (definition.variable.name.value, _SIMPLE_VARIABLES[name], non_null, name == "Int")
        )
    return tuple(simple)


def _coerce_simple(
    specs: tuple[tuple[str, tuple[type, ...], bool, bool], ...], raw: dict[str, Any]
) -> dict[str, Any] | None:
    """Coerced values as graphql-core would give them, or None: let graphql-core decide."""
    coerced: dict[str, Any] = {}
    for name, accepted, non_null, is_int in specs:
        if name not in raw:
            if non_null:
                return None
            continue
        value = raw[name]
        if value is None:
            if non_null:
                return None
            coerced[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, accepted):
            return None
        if is_int:
            if value not in _INT_RANGE:
                return None
        elif not isinstance(value, str):
            value = str(value)  # an Int given for an ID
        coerced[name] = value
    return coerced


@dataclass(frozen=True, slots=True)
class Plan:
    """One operation planned: its SQL, how to fill its parameters, the scopes it needs."""

    sql: str
    slots: tuple[_Slot, ...]
    scopes: frozenset[str]
    operation: OperationDefinitionNode
    # Set when the variables and arguments are simple enough to skip graphql-core's coercion.
    simple_variables: tuple[tuple[str, tuple[type, ...], bool, bool], ...] | None
    # Scopes that reveal a masked field the plan reads (Customer.email: pii:read). A principal
    # holding one reads personal data unmasked: the resolvers answer, and audit the read.
    unmask_scopes: frozenset[str] = frozenset()

    # The slots' values by the request's variables (as compact JSON): they are a function of
    # the variables alone, and a client sends the same few again and again. None: the
    # variables do not bind (the reference path answers). Emptied when full.
    bound: dict[bytes, tuple[Any, ...] | None] = field(default_factory=dict, compare=False)

    def bind(self, variables: _Inputs) -> tuple[Any, ...]:
        """The values of the slots' parameters (after the tenant and pii:read ones);
        _Fallback when the reference path must answer."""
        values: list[Any] = []
        for slot in self.slots:
            values.extend(slot(variables))
        return tuple(values)


class _Planner:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, max_page_size: int) -> None:
        self.schema = schema
        self.max_page_size = max_page_size
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.slots: list[_Slot] = []
        self.next_param = sql.PII_PARAM + 1
        self.scopes: set[str] = set()
        self.readers: list[_ArgumentReader] = []
        self.unmask_scopes: set[str] = set()

    # -- selections ---------------------------------------------------------------------

    def collect(
        self, type_name: str, selection_sets: Sequence[SelectionSetNode]
    ) -> OrderedDict[str, list[FieldNode]]:
        """Fields by response key in first-seen order, fragments applied (collect_fields)."""
        fields: OrderedDict[str, list[FieldNode]] = OrderedDict()
        for selection_set in selection_sets:
            self._collect(type_name, selection_set, fields, set())
        parent = self.schema.type_map.get(type_name)
        for nodes in fields.values():
            name = nodes[0].name.value
            if name != "__typename" and isinstance(parent, GraphQLObjectType):
                definition = parent.fields.get(name)
                known = _ARGUMENTS.get((type_name, name), frozenset())
                if definition is None or not set(definition.args) <= known:
                    raise _NotCompilable(f"{type_name}.{name} takes arguments it does not know")
            # The same rule table the resolvers enforce (resolvers.permissions).
            try:
                scope = field_scope(type_name, name)
            except LookupError:
                raise _NotCompilable(f"no scope rule for {type_name}") from None
            if scope is not None:
                self.scopes.add(scope)
        return fields

    def _collect(
        self,
        type_name: str,
        selection_set: SelectionSetNode,
        fields: OrderedDict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if selection.directives:
                raise _NotCompilable("directives")
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or self._applies(condition.name.value, type_name):
                    self._collect(type_name, selection.selection_set, fields, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None:
                    raise _NotCompilable("unknown fragment")
                if name in visited:
                    continue
                visited.add(name)
                if self._applies(fragment.type_condition.name.value, type_name):
                    self._collect(type_name, fragment.selection_set, fields, visited)

    def _applies(self, condition: str, type_name: str) -> bool:
        if condition == type_name:
            return True
        if condition == "Node":
            return type_name in _ENTITIES
        return False

    @staticmethod
    def _sets(nodes: list[FieldNode]) -> list[SelectionSetNode]:
        return [n.selection_set for n in nodes if n.selection_set is not None]

    # -- parameters -----------------------------------------------------------------------

    def param(self, sql_type: str) -> sql.Param:
        param = sql.Param(self.next_param, sql_type)
        self.next_param += 1
        return param

    def field_def(self, type_name: str, name: str) -> GraphQLField:
        parent = self.schema.type_map[type_name]
        assert isinstance(parent, GraphQLObjectType)
        found: GraphQLField = parent.fields[name]
        return found

    def arguments(self, type_name: str, node: FieldNode) -> _ArgumentReader:
        reader = _ArgumentReader(self.field_def(type_name, node.name.value), node)
        self.readers.append(reader)
        return reader

    # -- objects --------------------------------------------------------------------------

    def root(self, selection_set: SelectionSetNode) -> sql.Obj:
        fields: list[tuple[str, sql.Expr]] = []
        for key, nodes in self.collect("Query", [selection_set]).items():
            name = nodes[0].name.value
            if name == "__typename":
                fields.append((key, sql.Const("Query")))
                continue
            if name not in _ROOTS:
                raise _NotCompilable(f"root field {name}")
            arguments = self.arguments("Query", nodes[0])
            sets = self._sets(nodes)
            if name == "customers":
                fields.append((key, self.connection("customers", "Customer", arguments, sets)))
            elif name == "node":
                fields.append((key, self.node(arguments, sets)))
            elif name == "nodes":
                fields.append((key, self.nodes(arguments, sets)))
            else:
                type_name = {"customer": "Customer", "ledgerAccount": "LedgerAccount",
                             "ledgerTransaction": "LedgerTransaction"}[name]  # fmt: skip
                pk = self.param("bigint")

                def slot(
                    variables: _Inputs,
                    arguments: _ArgumentReader = arguments,
                    type_name: str = type_name,
                ) -> list[Any]:
                    return [pk_of(type_name, arguments(variables)["id"])]

                self.slots.append(slot)
                entity = _ENTITIES[type_name]
                fields.append((key, sql.ById(entity, pk, self.entity(type_name, sets))))
        return sql.Obj(tuple(fields))

    def node(self, arguments: _ArgumentReader, sets: list[SelectionSetNode]) -> sql.ByIds:
        kind = self.param("text")
        pk = self.param("bigint")

        def slot(variables: _Inputs) -> list[Any]:
            try:
                type_name, found = decode_global_id(arguments(variables)["id"])
            except AdapterError:  # a malformed id: the reference path reports NOT_FOUND
                raise _Fallback from None
            entity = _ENTITIES.get(type_name)
            return [entity, found] if entity is not None else [None, None]

        self.slots.append(slot)
        nodes = tuple((_ENTITIES[t], self.entity(t, sets)) for t in _ENTITIES)
        return sql.ByIds(kind, pk, nodes)

    def nodes(self, arguments: _ArgumentReader, sets: list[SelectionSetNode]) -> sql.ListByIds:
        kinds = self.param("text[]")
        pks = self.param("bigint[]")
        max_page_size = self.max_page_size

        def slot(variables: _Inputs) -> list[Any]:
            ids = arguments(variables)["ids"]
            if len(ids) > max_page_size:
                raise _Fallback  # BAD_USER_INPUT on the reference path
            kind_list: list[str | None] = []
            pk_list: list[int | None] = []
            for global_id in ids:
                try:
                    type_name, found = decode_global_id(global_id)
                except AdapterError:  # NOT_FOUND at its index, on the reference path
                    raise _Fallback from None
                entity = _ENTITIES.get(type_name)
                kind_list.append(entity)
                pk_list.append(found if entity is not None else None)
            return [kind_list, pk_list]

        self.slots.append(slot)
        nodes = tuple((_ENTITIES[t], self.entity(t, sets)) for t in _ENTITIES)
        return sql.ListByIds(kinds, pks, nodes)

    def entity(self, type_name: str, sets: list[SelectionSetNode]) -> sql.Obj:
        scalars = _SCALARS[type_name]
        fields: list[tuple[str, sql.Expr]] = []
        for key, nodes in self.collect(type_name, sets).items():
            name = nodes[0].name.value
            child_sets = self._sets(nodes)
            if name == "__typename":
                fields.append((key, sql.Const(type_name)))
            elif name in scalars:
                unmask = mask_scope(type_name, name)
                if unmask is not None:
                    self.unmask_scopes.add(unmask)
                fields.append((key, sql.Value(scalars[name])))
            elif (type_name, name) == ("Customer", "ledgerAccounts"):
                arguments = self.arguments(type_name, nodes[0])
                fields.append(
                    (key, self.connection(
                        "customer.ledger_accounts", "LedgerAccount", arguments, child_sets
                    ))
                )  # fmt: skip
            elif (type_name, name) == ("LedgerAccount", "entries"):
                arguments = self.arguments(type_name, nodes[0])
                fields.append(
                    (key, self.connection("account.entries", "LedgerEntry", arguments, child_sets))
                )
            elif (type_name, name) == ("LedgerAccount", "balance"):
                fields.append((key, self.balance(child_sets)))
            elif (type_name, name) == ("LedgerEntry", "amount"):
                fields.append((key, self.money("amount", child_sets)))
            elif (type_name, name) == ("LedgerEntry", "account"):
                fields.append(
                    (key, sql.Relation("entry.account", self.entity("LedgerAccount", child_sets)))
                )
            elif (type_name, name) == ("LedgerEntry", "transaction"):
                node = self.entity("LedgerTransaction", child_sets)
                fields.append((key, sql.Relation("entry.transaction", node)))
            elif (type_name, name) == ("LedgerTransaction", "entries"):
                node = self.entity("LedgerEntry", child_sets)
                fields.append((key, sql.Relation("transaction.entries", node)))
            elif (type_name, name) == ("LedgerTransaction", "reverses"):
                node = self.entity("LedgerTransaction", child_sets)
                fields.append((key, sql.Relation("transaction.reverses", node)))
            else:
                raise _NotCompilable(f"{type_name}.{name}")
        return sql.Obj(tuple(fields))

    def balance(self, sets: list[SelectionSetNode]) -> sql.Obj:
        fields: list[tuple[str, sql.Expr]] = []
        for key, nodes in self.collect("LedgerBalance", sets).items():
            name = nodes[0].name.value
            if name == "__typename":
                fields.append((key, sql.Const("LedgerBalance")))
            elif name in ("posted", "pending", "available"):
                fields.append((key, self.money(name, self._sets(nodes))))
            else:
                raise _NotCompilable(f"LedgerBalance.{name}")
        return sql.Obj(tuple(fields))

    def money(self, source: str, sets: list[SelectionSetNode]) -> sql.MoneyOf:
        fields: list[tuple[str, str | sql.Const]] = []
        for key, nodes in self.collect("Money", sets).items():
            name = nodes[0].name.value
            if name == "__typename":
                fields.append((key, sql.Const("Money")))
            elif name in _MONEY_FIELDS:
                fields.append((key, _MONEY_FIELDS[name]))
            else:
                raise _NotCompilable(f"Money.{name}")
        return sql.MoneyOf(source, tuple(fields))

    def connection(
        self,
        name: str,
        node_type: str,
        arguments: _ArgumentReader,
        sets: list[SelectionSetNode],
    ) -> sql.Connection:
        limit = self.param("bigint")
        cursor_kind, cursor_size = {"customers": ("c", 1), "customer.ledger_accounts": ("a", 1),
                                    "account.entries": ("e", 2)}[name]  # fmt: skip
        after_types = ("bigint",) if cursor_size == 1 else (_EPOCH_MICROS_TYPE, "bigint")
        after = tuple(self.param(t) for t in after_types)
        max_page_size = self.max_page_size

        def slot(variables: _Inputs) -> list[Any]:
            values = arguments(variables)
            cursor = values.get("after")
            try:  # the resolvers' own checks; they answer BAD_USER_INPUT on the reference path
                first = check_first(values["first"], max_page_size)
                if cursor_size == 1:
                    return [
                        first,
                        0 if cursor is None else decode_cursor(cursor_kind, cursor, 1)[0],
                    ]
                at, pk = (
                    ENTRIES_START if cursor is None else decode_time_cursor(cursor_kind, cursor)
                )
            except AdapterError:
                raise _Fallback from None
            return [first, at, pk]

        self.slots.append(slot)
        connection_type = {"customers": "CustomerConnection",
                           "customer.ledger_accounts": "LedgerAccountConnection",
                           "account.entries": "LedgerEntryConnection"}[name]  # fmt: skip
        edge_type = connection_type.replace("Connection", "Edge")
        fields: list[tuple[str, str | sql.Const]] = []
        edge: list[tuple[str, sql.Obj | str | sql.Const]] = []
        page_info: list[tuple[str, str | sql.Const]] = []
        for key, nodes in self.collect(connection_type, sets).items():
            field = nodes[0].name.value
            child_sets = self._sets(nodes)
            if field == "__typename":
                fields.append((key, sql.Const(connection_type)))
            elif field == "totalCount":
                fields.append((key, "totalCount"))
            elif field == "edges":
                if edge:
                    raise _NotCompilable("edges twice under two keys")
                fields.append((key, "edges"))
                for edge_key, edge_nodes in self.collect(edge_type, child_sets).items():
                    edge_field = edge_nodes[0].name.value
                    if edge_field == "__typename":
                        edge.append((edge_key, sql.Const(edge_type)))
                    elif edge_field == "cursor":
                        edge.append((edge_key, "cursor"))
                    elif edge_field == "node":
                        edge.append((edge_key, self.entity(node_type, self._sets(edge_nodes))))
                    else:
                        raise _NotCompilable(f"{edge_type}.{edge_field}")
            elif field == "pageInfo":
                if page_info:
                    raise _NotCompilable("pageInfo twice under two keys")
                fields.append((key, "pageInfo"))
                for info_key, info_nodes in self.collect("PageInfo", child_sets).items():
                    info_field = info_nodes[0].name.value
                    if info_field == "__typename":
                        page_info.append((info_key, sql.Const("PageInfo")))
                    elif info_field in _PAGE_INFO_FIELDS:
                        page_info.append((info_key, _PAGE_INFO_FIELDS[info_field]))
                    else:
                        raise _NotCompilable(f"PageInfo.{info_field}")
            else:
                raise _NotCompilable(f"{connection_type}.{field}")
        return sql.Connection(name, limit, after, tuple(fields), tuple(edge), tuple(page_info))


class CompiledOperations:
    """Plans per (document text, operation name), and the execution of a plan.

    `run` answers the response body, or None when the request must take the reference path.
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        rules: Sequence[type[ASTValidationRule]],
        max_page_size: int,
        fetch_json: Callable[..., Any],
        max_plans: int = 1024,
    ) -> None:
        self._schema = schema
        self._rules = [*specified_rules, *rules]
        self._max_page_size = max_page_size
        self._fetch_json = fetch_json
        self._plans: OrderedDict[tuple[str, str | None], Plan | None] = OrderedDict()
        self._max_plans = max_plans

    def plan(self, text: str, document: DocumentNode, operation_name: str | None) -> Plan | None:
        key = (text, operation_name)
        plans = self._plans
        if key in plans:
            plans.move_to_end(key)
            return plans[key]
        plan = self._plan(document, operation_name)
        plans[key] = plan
        if len(plans) > self._max_plans:
            plans.popitem(last=False)
        return plan

    def _plan(self, document: DocumentNode, operation_name: str | None) -> Plan | None:
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        if validate(self._schema, document, self._rules):
            return None
        planner = _Planner(self._schema, document, self._max_page_size)
        try:
            if operation.directives:
                raise _NotCompilable("operation directives")
            root = planner.root(operation.selection_set)
            statement = sql.render(root)
        except (_NotCompilable, KeyError) as reason:
            logger.debug("not compiled: %s", reason)
            return None
        simple = _simple_variables(operation)
        if not all(reader.fast for reader in planner.readers):
            simple = None
        return Plan(
            statement,
            tuple(planner.slots),
            frozenset(planner.scopes),
            operation,
            simple,
            frozenset(planner.unmask_scopes),
        )

    async def run(
        self,
        plan: Plan,
        principal: Principal,
        raw_variables: dict[str, Any] | None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - passed to asyncpg, which cancels
    ) -> bytes | None:
        """The response body, or None: the reference path must answer this request.

        `timeout` (seconds) bounds the statement: past it, DeadlineExceeded propagates (the
        request answers TIMEOUT; running the resolvers after it would only take longer).
        """
        if not plan.scopes <= principal.scopes:
            return None
        if plan.unmask_scopes and not plan.unmask_scopes.isdisjoint(principal.scopes):
            return None  # an unmasked personal-data read: the resolvers record it
        raw = raw_variables or {}
        try:
            key: bytes | None = orjson.dumps(raw)
        except orjson.JSONEncodeError:  # not JSON's values (an int past 64 bits): not kept
            key = None
        if key is not None and key in plan.bound:
            bound = plan.bound[key]
        else:
            bound = self._bind(plan, raw)
            if key is not None:
                if len(plan.bound) >= _MAX_BOUND:
                    plan.bound.clear()
                plan.bound[key] = bound
        if bound is None:
            return None
        try:
            text: str = await self._fetch_json(
                plan.sql, principal.tenant_id, principal.has("pii:read"), *bound, timeout=timeout
            )
        except DeadlineExceeded:
            raise
        except Exception:  # the reference path reports database failures
            logger.warning("compiled statement failed; answering on the reference path",
                           exc_info=True)  # fmt: skip
            return None
        return b'{"data":' + text.encode() + b"}"

    def _bind(self, plan: Plan, raw: dict[str, Any]) -> tuple[Any, ...] | None:
        """The plan's parameters for these variables, or None: the reference path answers."""
        fast = None if plan.simple_variables is None else _coerce_simple(plan.simple_variables, raw)
        if fast is not None:
            inputs = _Inputs(None, fast)
        else:
            coerced = get_variable_values(
                self._schema, plan.operation.variable_definitions or [], raw
            )
            if isinstance(coerced, list):  # variable errors: the reference path reports them
                return None
            inputs = _Inputs(coerced, coerced.coerced)
        try:
            return plan.bind(inputs)
        except _Fallback:
            return None
