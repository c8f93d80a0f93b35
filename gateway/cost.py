"""Cost analysis (demand control): a static estimate of every operation before it runs.

The model is the IBM GraphQL cost specification's, read from the schema's `@cost` and
`@listSize` directives (resolvers.cost_directives):

- a field costs its `@cost` weight, else its type's, else 1 for an object, interface or union
  and 0 for a scalar or enum; plus the cost of its selections;
- a list field costs its own `@cost` once (a provider call fetches the whole list), plus its
  items: (the type's weight + selections) multiplied by its size: the value of its slicing
  argument (`first`; a list argument such as `nodes(ids:)` counts its length), else its
  `assumedSize`, else `default_list_size`; sizes are capped at the page cap (a larger `first`
  is refused by the resolvers anyway);
- with `sizedFields` (connections: `edges`), the slicing argument sizes those child fields
  instead of the field itself;
- an abstract type (`node`) costs its most expensive possible type;
- `@skip`/`@include` are ignored (the estimate is an upper bound).

A document is analysed once per (text, operation name) into a small plan (`CostPlan`); a
request then evaluates the plan on its variables in microseconds. A variable that is not given
takes the variable's default, else the argument's; with no variables at all (`worst_case`:
persisted documents at registration) every variable-sized list counts as the page cap.

`actual` is counted after execution from the response's data with the same plan: each object
present costs its field's weight, lists count the items they hold. It works the same for
operations answered by the compiled SQL path (their JSON is read back) and by the resolvers.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_composite_type,
    parse,
    specified_rules,
    validate,
)

from adapters.access.documents import NewDocument
from gateway.env_values import integer, on_unless_off
from resolvers.cost_directives import Cost, ListSize
from resolvers.errors import GatewayError
from resolvers.principal import Principal

__all__ = [
    "DEFAULT_MAX_COST",
    "CostAnalyzer",
    "CostPlan",
    "CostSettings",
    "CostTooExpensive",
    "load_cost_settings",
    "price_documents",
]

DEFAULT_MAX_COST: dict[str, int] = {"partner": 5_000, "first_party": 10_000, "analyst": 100_000}


@dataclass(frozen=True, slots=True)
class CostSettings:
    """COST_ANALYSIS, COST_MAX_<KIND> (budget of one operation per client kind; a client's own
    `max_cost` overrides it), COST_DEFAULT_LIST_SIZE (lists without @listSize),
    COST_REPORT_ANALYSTS."""

    enabled: bool = True
    max_cost: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_COST))
    default_list_size: int = 20
    # Analysts get `extensions.cost` on every response (others when they ask for it).
    report_to_analysts: bool = True

    def budget(self, principal: Principal) -> int:
        if principal.max_cost is not None:
            return principal.max_cost
        return self.max_cost.get(principal.kind, DEFAULT_MAX_COST["first_party"])


def load_cost_settings(env: Mapping[str, str] | None = None) -> CostSettings:
    env = os.environ if env is None else env
    budgets = {
        kind: integer(env, f"COST_MAX_{kind.upper()}", default, minimum=1)
        for kind, default in DEFAULT_MAX_COST.items()
    }
    return CostSettings(
        enabled=on_unless_off(env, "COST_ANALYSIS"),
        max_cost=budgets,
        default_list_size=integer(env, "COST_DEFAULT_LIST_SIZE", 20, minimum=0),
        report_to_analysts=on_unless_off(env, "COST_REPORT_ANALYSTS"),
    )


class CostTooExpensive(GatewayError):
    """The estimate is over the caller's budget: nothing runs."""

    code = "COST_ESTIMATED_TOO_EXPENSIVE"
    status_code = 400


# ---------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True, slots=True)
class _Size:
    """Where a list's size comes from: a literal, or a variable (with a fallback)."""

    literal: int | None = None
    variable: str | None = None
    fallback: int = 0


@dataclass(slots=True)
class _Node:
    key: str  # response key (alias or name)
    weight: int  # per object (per item of a list)
    size: _Size | None  # multiplies weight + children
    once: int = 0  # a list field's own @cost: counted once, not per item
    # The node's cost when no variable sizes it or anything below it (folded once).
    constant: int | None = None
    # Children per possible type of the field's type; the estimate takes the costliest.
    variants: list[list[_Node]] = field(default_factory=list)
    # All children by response key (for counting `actual` on the response's data).
    by_key: dict[str, _Node] = field(default_factory=dict)


@dataclass(slots=True)
class CostPlan:
    """The cost of one operation as a function of its variables."""

    roots: list[_Node]
    by_key: dict[str, _Node]
    variable_defaults: dict[str, Any]
    max_size: int
    # The estimate when no variable sizes anything (folded once): most operations.
    constant: int | None = None

    def __post_init__(self) -> None:
        if all(node.constant is not None for node in self.roots):
            self.constant = sum(node.constant or 0 for node in self.roots)

    def _size(self, size: _Size, variables: Mapping[str, Any] | None) -> int:
        value: Any
        if size.variable is None:
            value = size.literal
        elif variables is None:
            value = self.max_size  # worst case: the caller may send anything up to the cap
        elif size.variable in variables:
            value = variables[size.variable]
        else:
            value = self.variable_defaults.get(size.variable, size.fallback)
        if isinstance(value, list):
            value = len(value)
        if not isinstance(value, int) or isinstance(value, bool):
            value = size.fallback
        return max(0, min(int(value), self.max_size))

    def _cost(self, node: _Node, variables: Mapping[str, Any] | None) -> int:
        if node.constant is not None:
            return node.constant
        children = max(
            (sum(self._cost(child, variables) for child in variant) for variant in node.variants),
            default=0,
        )
        each = node.weight + children
        if node.size is None:
            return each
        return node.once + each * self._size(node.size, variables)

    def estimate(self, variables: Mapping[str, Any] | None) -> int:
        """The estimate for these variables; `None`: the worst case over all variables."""
        if self.constant is not None:
            return self.constant
        return sum(self._cost(node, variables) for node in self.roots)

    def actual(self, data: Any) -> int:
        """The cost of what the response holds: objects present, list items counted."""
        return _count(self.by_key, data) if isinstance(data, dict) else 0


def _count(by_key: dict[str, _Node], value: dict[str, Any]) -> int:
    total = 0
    for key, child in value.items():
        node = by_key.get(key)
        if node is None or child is None:
            continue
        if isinstance(child, list):
            items = child
            total += node.once
        else:
            items = [child]
        for item in items:
            if item is None:
                continue
            total += node.weight
            if isinstance(item, dict) and node.by_key:
                total += _count(node.by_key, item)
    return total


def _directives(definition: Any) -> list[Any]:
    strawberry = getattr(definition, "extensions", None) or {}
    found = strawberry.get("strawberry-definition")
    return list(getattr(found, "directives", None) or [])


def _type_weight(named: GraphQLNamedType) -> int:
    for directive in _directives(named):
        if isinstance(directive, Cost):
            return directive.weight
    return 1 if is_composite_type(named) else 0


def _is_set(value: Any) -> bool:
    return value is not None and type(value).__name__ != "UnsetType"


class _Planner:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, default_list_size: int, max_size: int
    ) -> None:
        self.schema = schema
        self.max_size = max_size
        self.default_list_size = default_list_size
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def _fields(
        self, selection_set: SelectionSetNode, type_name: str, seen: frozenset[str]
    ) -> list[FieldNode]:
        """Fields selected on an object of `type_name`, through fragments that apply to it."""
        fields: list[FieldNode] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                fields.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or self._applies(condition.name.value, type_name):
                    fields.extend(self._fields(selection.selection_set, type_name, seen))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue
                if self._applies(fragment.type_condition.name.value, type_name):
                    fields.extend(self._fields(fragment.selection_set, type_name, seen | {name}))
        return fields

    def _applies(self, condition: str, type_name: str) -> bool:
        if condition == type_name:
            return True
        abstract = self.schema.get_type(condition)
        concrete = self.schema.get_type(type_name)
        if abstract is None or not is_abstract_type(abstract):
            return False
        return isinstance(concrete, GraphQLObjectType) and self.schema.is_sub_type(
            abstract, concrete
        )

    def nodes(
        self, selection_set: SelectionSetNode, parent: GraphQLObjectType, sized: _SizedFields
    ) -> list[_Node]:
        result = []
        for node in self._fields(selection_set, parent.name, frozenset()):
            name = node.name.value
            key = node.alias.value if node.alias else name
            if name == "__typename":
                continue
            definition = parent.fields.get(name)
            if definition is None:  # introspection (__schema, __type) or unknown
                result.append(_Node(key=key, weight=1, size=None))
                continue
            planned = self.field(node, key, definition, sized.get(name))
            if planned.constant != 0:  # scalars and free leaves cost nothing: leave them out
                result.append(planned)
        return result

    def field(
        self, node: FieldNode, key: str, definition: GraphQLField, size: _Size | None
    ) -> _Node:
        named = get_named_type(definition.type)
        weight = _type_weight(named)
        own: int | None = None
        list_size: ListSize | None = None
        for directive in _directives(definition):
            if isinstance(directive, Cost):
                own = directive.weight
            elif isinstance(directive, ListSize):
                list_size = directive
        is_list = isinstance(get_nullable_type(definition.type), GraphQLList)
        once = 0
        if own is not None and is_list:
            once = own  # the field's cost (a provider call) is paid once for the whole list
        elif own is not None:
            weight = own
        slicing = self._slicing(node, definition, list_size) if list_size is not None else None
        sized_fields: _SizedFields = {}
        if list_size is not None and _is_set(list_size.sized_fields) and slicing is not None:
            sized_fields = dict.fromkeys(list_size.sized_fields or [], slicing)
        elif is_list and is_composite_type(named) and size is None:
            size = slicing or _Size(literal=self.default_list_size)
        plan = _Node(key=key, weight=weight, size=size, once=once)
        fold = size is None or size.variable is None
        if node.selection_set is not None and is_composite_type(named):
            possible = (
                list(self.schema.get_possible_types(named)) if is_abstract_type(named) else [named]
            )
            for object_type in possible:
                assert isinstance(object_type, GraphQLObjectType)
                children = self.nodes(node.selection_set, object_type, sized_fields)
                plan.variants.append(children)
                for child in children:
                    fold = fold and child.constant is not None
                    known = plan.by_key.get(child.key)
                    if known is None or known.weight < child.weight:
                        plan.by_key[child.key] = child
        if fold:
            children_cost = max(
                (sum(child.constant or 0 for child in variant) for variant in plan.variants),
                default=0,
            )
            each = weight + children_cost
            count = 1 if size is None else max(0, min(size.literal or 0, self.max_size))
            plan.constant = each if size is None else once + each * count
        return plan

    def _slicing(
        self, node: FieldNode, definition: GraphQLField, list_size: ListSize
    ) -> _Size | None:
        assumed = list_size.assumed_size if _is_set(list_size.assumed_size) else None
        fallback = assumed if assumed is not None else self.default_list_size
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        names = list_size.slicing_arguments if _is_set(list_size.slicing_arguments) else None
        for name in names or []:
            argument = definition.args.get(name)
            default = argument.default_value if argument is not None else None
            if isinstance(default, list):
                default = len(default)
            if not isinstance(default, int):
                default = fallback
            value = given.get(name)
            if isinstance(value, IntValueNode):
                return _Size(literal=int(value.value), fallback=default)
            if isinstance(value, ListValueNode):
                return _Size(literal=len(value.values), fallback=default)
            if isinstance(value, VariableNode):
                return _Size(variable=value.name.value, fallback=default)
            if value is None and argument is not None and argument.default_value is not None:
                return _Size(literal=default, fallback=default)
        return _Size(literal=assumed) if assumed is not None else None


_SizedFields = dict[str, _Size]


# Not in the plan cache (None is: a document that does not validate).
_UNPLANNED = CostPlan(roots=[], by_key={}, variable_defaults={}, max_size=0)


class CostAnalyzer:
    """Plans per document (cached), estimates per request, `actual` from a response."""

    def __init__(
        self,
        schema: GraphQLSchema,
        settings: CostSettings,
        *,
        max_page_size: int,
        rules: Sequence[type[ASTValidationRule]] = (),
        max_plans: int = 1024,
    ) -> None:
        """`rules`: validation rules beyond the spec's (the depth and alias limits), so that a
        document breaking them is left for execution to refuse, not priced."""
        self._schema = schema
        self._rules = [*specified_rules, *rules]
        self.settings = settings
        self._max_page_size = max_page_size
        self._plans: OrderedDict[tuple[str, str | None], CostPlan | None] = OrderedDict()
        self._max_plans = max_plans

    def plan(
        self, text: str, document: DocumentNode, operation_name: str | None
    ) -> CostPlan | None:
        """The plan of the operation; None when the document does not validate or names no
        single operation (execution then reports why, and the operation costs the minimum)."""
        key = (text, operation_name)
        plans = self._plans
        found = plans.get(key, _UNPLANNED)
        if found is not _UNPLANNED:
            plans.move_to_end(key)
            return found
        plan = self._build(document, operation_name)
        self._plans[key] = plan
        if len(self._plans) > self._max_plans:
            self._plans.popitem(last=False)
        return plan

    def _build(self, document: DocumentNode, operation_name: str | None) -> CostPlan | None:
        operations = [
            d
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
            and (operation_name is None or (d.name is not None and d.name.value == operation_name))
        ]
        if len(operations) != 1 or validate(self._schema, document, self._rules):
            return None
        operation = operations[0]
        root = self._schema.get_root_type(operation.operation)
        if root is None:
            return None
        planner = _Planner(
            self._schema, document, self.settings.default_list_size, self._max_page_size
        )
        roots = planner.nodes(operation.selection_set, root, {})
        defaults: dict[str, Any] = {}
        for definition in operation.variable_definitions or ():
            value = definition.default_value
            if isinstance(value, IntValueNode):
                defaults[definition.variable.name.value] = int(value.value)
            elif isinstance(value, ListValueNode):
                defaults[definition.variable.name.value] = len(value.values)
        return CostPlan(
            roots=roots,
            by_key={node.key: node for node in roots},
            variable_defaults=defaults,
            max_size=self._max_page_size,
        )

    def worst_case(self, text: str, document: DocumentNode) -> int | None:
        """The estimate over every variable value (registration of persisted documents)."""
        plan = self.plan(text, document, None)
        return None if plan is None else plan.estimate(None)


def price_documents(
    analyzer: CostAnalyzer, documents: Sequence[NewDocument], budget: int
) -> list[NewDocument]:
    """The documents with their worst-case cost, computed once here and stored with them;
    CostTooExpensive naming the first document whose cost is over `budget` (nothing is
    registered then)."""
    priced = []
    for document in documents:
        cost = analyzer.worst_case(document.body, parse(document.body))
        if cost is not None and cost > budget:
            raise CostTooExpensive(
                f"document {document.document_id!r} may cost {cost}, over the client's "
                f"budget of {budget}",
                cost={"estimated": cost, "maxCost": budget},
            )
        priced.append(dataclasses.replace(document, cost=cost))
    return priced
