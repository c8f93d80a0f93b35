"""One PostgreSQL statement that builds a whole response's JSON from a projection tree.

The runtime's planner (gateway.compiled) turns a GraphQL operation into a tree of the records
below: which entity, which of its values under which output key, which relations with which
parameters. This module knows only the ledger's tables and how each value is rendered as JSON
text; it knows nothing of GraphQL. `render()` returns the SQL text of a statement whose single
value is the `data` object of the response, as JSON text, built by PostgreSQL (json_build_object
keeps key order).

Every table read is filtered by the caller's tenant (`$1`); `$2` is true when the caller may
read personal data unmasked. Other parameters are numbered by the planner (`Param`).

Renderings match the reference resolvers exactly: global ids are base64 of "Type:pk"; cursors
url-safe base64 of "kind:numbers"; DateTime is RFC 3339 UTC with 'Z' and microseconds only
when not zero (Python's isoformat); Money amounts have exactly `exponent` decimals; enums are
the stored value in capitals. A differential test (tests/gateway/test_compiled_differential.py)
holds the two paths to the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "PII_PARAM",
    "TENANT_PARAM",
    "ById",
    "ByIds",
    "Connection",
    "Const",
    "Expr",
    "ListByIds",
    "MoneyOf",
    "Obj",
    "Param",
    "Relation",
    "Value",
    "render",
]

Entity = Literal["customer", "account", "transaction", "entry"]
TENANT_PARAM = 1
PII_PARAM = 2


@dataclass(frozen=True, slots=True)
class Param:
    """A statement parameter: `$index`, cast to `sql_type`."""

    index: int
    sql_type: str

    def sql(self) -> str:
        return f"${self.index}::{self.sql_type}"


@dataclass(frozen=True, slots=True)
class Const:
    """A constant JSON value (a `__typename`, `hasPreviousPage: false`, `totalCount: null`)."""

    value: str | bool | None


@dataclass(frozen=True, slots=True)
class Value:
    """A named scalar of the current entity's row (see _VALUES for the names)."""

    name: str


@dataclass(frozen=True, slots=True)
class MoneyOf:
    """A Money object of the current row: `source` is a money name of the entity
    (posted, pending, available for accounts; amount for entries); `fields` maps output keys to
    amount, minor_units, currency, exponent or a Const."""

    source: str
    fields: tuple[tuple[str, str | Const], ...]


@dataclass(frozen=True, slots=True)
class Obj:
    """A JSON object of the current row: output keys and what each holds."""

    fields: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class Relation:
    """Another entity reached from the current row: one object (nullable) or a list."""

    name: str  # key of _TO_ONE or _TO_MANY
    node: Obj


@dataclass(frozen=True, slots=True)
class Connection:
    """A page of a list: `name` is a key of _CONNECTIONS; `limit` the page size parameter;
    `after` the parameters of the cursor's position (None when absent: from the start).
    `fields` maps output keys to 'edges' (with `edge` fields), 'pageInfo' (with `page_info`
    fields), 'totalCount' or a Const."""

    name: str
    limit: Param
    after: tuple[Param, ...]
    fields: tuple[tuple[str, str | Const], ...]
    edge: tuple[tuple[str, Obj | str | Const], ...] = ()  # 'cursor', Obj for node, Const
    page_info: tuple[tuple[str, str | Const], ...] = ()


@dataclass(frozen=True, slots=True)
class ById:
    """Root lookup of one `entity` by primary key (a NULL key reads as not found)."""

    entity: Entity
    pk: Param
    node: Obj


@dataclass(frozen=True, slots=True)
class ByIds:
    """Root lookup of a node of any of several entities: `kind` is a text parameter naming
    the entity, `pk` its key; exactly the lookup of the named entity runs."""

    kind: Param
    pk: Param
    nodes: tuple[tuple[Entity, Obj], ...]


@dataclass(frozen=True, slots=True)
class ListByIds:
    """Root lookup of a list of nodes: `kinds` (text[]) and `pks` (bigint[]) name each one;
    the list keeps their order, with null where nothing of the tenant matches."""

    kinds: Param
    pks: Param
    nodes: tuple[tuple[Entity, Obj], ...]


Expr = Const | Value | MoneyOf | Obj | Relation | Connection | ById | ByIds | ListByIds

_TABLES: dict[Entity, str] = {
    "customer": "customers",
    "account": "ledger_accounts",
    "transaction": "ledger_transactions",
    "entry": "ledger_entries",
}
_TYPE_NAMES: dict[Entity, str] = {
    "customer": "Customer",
    "account": "LedgerAccount",
    "transaction": "LedgerTransaction",
    "entry": "LedgerEntry",
}


def _gid(entity: Entity, alias: str) -> str:
    return (
        f"translate(encode(convert_to('{_TYPE_NAMES[entity]}:' || {alias}.id, 'UTF8'), "
        "'base64'), E'\\n', '')"
    )


def _datetime(column: str) -> str:
    """RFC 3339 UTC; fraction only when the microseconds are not zero (as isoformat)."""
    utc = f"({column} at time zone 'UTC')"
    return (
        f"(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || case when "
        f"extract(microseconds from {column})::bigint % 1000000 = 0 then '' "
        f"else to_char({utc}, '.US') end || 'Z')"
    )


def _cursor(text: str) -> str:
    """URL-safe base64 of `text`, with padding (base64.urlsafe_b64encode)."""
    return f"translate(encode(convert_to({text}, 'UTF8'), 'base64'), E'+/\\n', '-_')"


def _masked_email(column: str) -> str:
    """'a***@x.com' unless the caller may read personal data (resolvers.permissions)."""
    return (
        f"case when ${PII_PARAM}::boolean or {column} is null then {column} "
        f"when strpos({column}, '@') = 0 then left({column}, 1) || '***' "
        f"else left(split_part({column}, '@', 1), 1) || '***@' "
        f"|| substr({column}, strpos({column}, '@') + 1) end"
    )


def _signed(alias: str, debits: str, credits: str) -> str:
    return (
        f"(case when {alias}.normal_balance = 'debit' then {debits} - {credits} "
        f"else {credits} - {debits} end)"
    )


def _account_money(alias: str, source: str) -> str:
    a = alias
    if source == "posted":
        return _signed(a, f"{a}.posted_debits", f"{a}.posted_credits")
    if source == "pending":
        return _signed(
            a, f"({a}.posted_debits + {a}.pending_debits)",
            f"({a}.posted_credits + {a}.pending_credits)",
        )  # fmt: skip
    if source == "available":
        return (
            f"(case when {a}.normal_balance = 'debit' "
            f"then {a}.posted_debits - {a}.posted_credits - {a}.pending_credits "
            f"else {a}.posted_credits - {a}.posted_debits - {a}.pending_debits end)"
        )
    raise KeyError(source)


def _value(entity: Entity, alias: str, name: str) -> str:
    """SQL of a named scalar of `entity`'s row `alias` (KeyError for an unknown name)."""
    a = alias
    common = {
        "id": _gid(entity, a),
        "created_at": _datetime(f"{a}.created_at"),
    }
    per_entity: dict[Entity, dict[str, str]] = {
        "customer": {
            "kind": f"upper({a}.kind)",
            "display_name": f"{a}.display_name",
            "email": _masked_email(f"{a}.email"),
        },
        "account": {
            "name": f"{a}.name",
            "currency": f"{a}.currency",
            "normal_balance": f"upper({a}.normal_balance)",
            "version": f"{a}.lock_version",
        },
        "transaction": {
            "description": f"{a}.description",
            "status": f"upper({a}.status)",
            "effective_at": _datetime(f"{a}.effective_at"),
            "posted_at": _datetime(f"{a}.posted_at"),
            "idempotency_key": f"{a}.idempotency_key",
        },
        "entry": {
            "direction": f"upper({a}.direction)",
            "status": f"upper({a}.status)",
            "effective_at": _datetime(f"{a}.effective_at"),
        },
    }
    if name in common:
        return common[name]
    return per_entity[entity][name]


def _money_parts(
    entity: Entity, alias: str, source: str, account: str | None
) -> tuple[str, str, str, str | None]:
    """(minor units, currency, exponent, lookup) SQL of a money value of the row: `lookup`,
    when not None, is the FROM clause the exponent is read through (one row). `account`: the
    alias of the ledger account an entry row is known to belong to (its `entries` page)."""
    if entity == "account":
        money = _account_money(alias, source)
        return money, f"{alias}.currency", f"{alias}.currency_exponent", None
    if entity == "entry" and source == "amount" and account is not None:
        return f"{alias}.amount", f"{alias}.currency", f"{account}.currency_exponent", None
    if entity == "entry" and source == "amount":
        # The exponent the amounts were written with: the account's stored one, read once for
        # the whole Money object (the amount needs it twice).
        lookup = (
            f"from ledger_accounts as x "
            f"where x.tenant_id = ${TENANT_PARAM} and x.id = {alias}.account_id"
        )
        return f"{alias}.amount", f"{alias}.currency", "x.currency_exponent", lookup
    raise KeyError(source)


def _json_literal(value: str | bool | None) -> str:
    if value is None:
        return "null::json"
    if isinstance(value, bool):
        return "to_json(true)" if value else "to_json(false)"
    escaped = value.replace("'", "''")
    return f"to_json('{escaped}'::text)"


@dataclass(frozen=True, slots=True)
class _Connection:
    table: Entity
    parent_column: str | None  # column equal to the parent row's id; None at the root
    order: str  # order of the page, with {a} for the alias
    after: str  # condition for the position after the cursor, {a} alias, {p0}.. params
    cursor: str  # text of the cursor before encoding
    count: str | None  # SQL of the whole list's size, {a} the parent alias; None: null


_CONNECTIONS: dict[str, _Connection] = {
    "customers": _Connection(
        "customer",
        None,
        "{a}.id",
        "{a}.id > {p0}",
        "'c:' || {a}.id",
        f"(select count(*) from customers where tenant_id = ${TENANT_PARAM})",
    ),
    "customer.ledger_accounts": _Connection(
        "account",
        "customer_id",
        "{a}.id",
        "{a}.id > {p0}",
        "'a:' || {a}.id",
        "(select count(*) from ledger_accounts as n "
        f"where n.tenant_id = ${TENANT_PARAM} and n.customer_id = {{parent}}.id)",
    ),
    "account.entries": _Connection(
        "entry",
        "account_id",
        "{a}.effective_at desc, {a}.id desc",
        "({a}.effective_at, {a}.id) < ({p0}, {p1})",
        "'e:' || (extract(epoch from {a}.effective_at) * 1000000)::bigint || ':' || {a}.id",
        None,
    ),
}
# name -> (entity reached, its key column, the parent's column holding the key)
_TO_ONE: dict[str, tuple[Entity, str, str]] = {
    "entry.account": ("account", "id", "account_id"),
    "entry.transaction": ("transaction", "id", "transaction_id"),
    "transaction.reverses": ("transaction", "id", "reverses_transaction_id"),
}
# name -> (entity reached, its column holding the parent's id, order)
_TO_MANY: dict[str, tuple[Entity, str, str]] = {
    "transaction.entries": ("entry", "transaction_id", "{a}.id"),
}


@dataclass
class _Renderer:
    aliases: int = 0
    # Entry row alias -> the alias of the account row they all belong to (`account.entries`).
    _account_of: dict[str, str] = field(default_factory=dict)

    def alias(self, entity: Entity) -> str:
        self.aliases += 1
        return f"{entity[0]}{self.aliases}"

    def obj(self, node: Obj, entity: Entity, alias: str) -> str:
        if not node.fields:
            return "json_build_object()"
        parts = []
        for key, expr in node.fields:
            escaped = key.replace("'", "''")
            parts.append(f"'{escaped}', {self.expr(expr, entity, alias)}")
        return f"json_build_object({', '.join(parts)})"

    def expr(self, expr: Expr, entity: Entity, alias: str) -> str:
        if isinstance(expr, Const):
            return _json_literal(expr.value)
        if isinstance(expr, Value):
            return _value(entity, alias, expr.name)
        if isinstance(expr, MoneyOf):
            account = self._account_of.get(alias)
            minor, currency, exponent, lookup = _money_parts(entity, alias, expr.source, account)
            money: list[str] = []
            for key, part in expr.fields:
                if isinstance(part, Const):
                    sql = _json_literal(part.value)
                elif part == "amount":
                    sql = (
                        f"round(({minor})::numeric / power(10::numeric, {exponent}), "
                        f"{exponent})::text"
                    )
                elif part == "minor_units":
                    sql = f"({minor})::text"
                elif part == "currency":
                    sql = currency
                elif part == "exponent":
                    sql = exponent
                else:
                    raise KeyError(part)
                money.append(f"'{key}', {sql}")
            built = f"json_build_object({', '.join(money)})"
            return built if lookup is None else f"(select {built} {lookup})"
        if isinstance(expr, Obj):
            return self.obj(expr, entity, alias)
        if isinstance(expr, Relation):
            return self.relation(expr, entity, alias)
        if isinstance(expr, Connection):
            return self.connection(expr, alias)
        if isinstance(expr, ById):
            return self.by_id(expr.entity, expr.pk.sql(), expr.node)
        if isinstance(expr, ByIds):
            return self.any_of(expr.kind.sql(), expr.pk.sql(), expr.nodes)
        if isinstance(expr, ListByIds):
            k = f"k{self.alias('entry')}"
            found = self.any_of(f"{k}.kind", f"{k}.pk", expr.nodes)
            return (
                f"(select coalesce(json_agg({found} order by {k}.position), '[]'::json) "
                f"from unnest({expr.kinds.sql()}, {expr.pks.sql()}) with ordinality "
                f"as {k}(kind, pk, position))"
            )
        raise TypeError(expr)

    def any_of(self, kind: str, pk: str, nodes: tuple[tuple[Entity, Obj], ...]) -> str:
        """The lookup of the entity that `kind` names (null for none of them)."""
        lookups = [
            f"case when {kind} = '{name}' then {self.by_id(name, pk, node)} end"
            for name, node in nodes
        ]
        return f"coalesce({', '.join(lookups)})" if len(lookups) > 1 else lookups[0]

    def by_id(self, entity: Entity, pk: str, node: Obj) -> str:
        a = self.alias(entity)
        return (
            f"(select {self.obj(node, entity, a)} from {_TABLES[entity]} as {a} "
            f"where {a}.tenant_id = ${TENANT_PARAM} and {a}.id = {pk})"
        )

    def relation(self, relation: Relation, parent: Entity, parent_alias: str) -> str:
        if relation.name in _TO_ONE:
            entity, key, parent_column = _TO_ONE[relation.name]
            a = self.alias(entity)
            return (
                f"(select {self.obj(relation.node, entity, a)} from {_TABLES[entity]} as {a} "
                f"where {a}.tenant_id = ${TENANT_PARAM} "
                f"and {a}.{key} = {parent_alias}.{parent_column})"
            )
        entity, column, order = _TO_MANY[relation.name]
        a = self.alias(entity)
        ordering = order.format(a=a)
        return (
            f"(select coalesce(json_agg({self.obj(relation.node, entity, a)} "
            f"order by {ordering}), '[]'::json) from {_TABLES[entity]} as {a} "
            f"where {a}.tenant_id = ${TENANT_PARAM} and {a}.{column} = {parent_alias}.id)"
        )

    def connection(self, connection: Connection, parent_alias: str) -> str:
        spec = _CONNECTIONS[connection.name]
        entity = spec.table
        a = self.alias(entity)
        if connection.name == "account.entries":
            self._account_of[a] = parent_alias
        limit = connection.limit.sql()
        conditions = [f"{a}.tenant_id = ${TENANT_PARAM}"]
        if spec.parent_column is not None:
            conditions.append(f"{a}.{spec.parent_column} = {parent_alias}.id")
        if connection.after:
            params = {f"p{i}": p.sql() for i, p in enumerate(connection.after)}
            conditions.append(spec.after.format(a=a, **params))
        order = spec.order.format(a=a)
        cursor = _cursor(spec.cursor.format(a=a))
        in_page = f"{a}.rn_ <= {limit}"
        parts: list[str] = []
        for key, part in connection.fields:
            if isinstance(part, Const):
                sql = _json_literal(part.value)
            elif part == "edges":
                edge_parts = []
                for edge_key, edge_part in connection.edge:
                    if isinstance(edge_part, Obj):
                        edge_sql = self.obj(edge_part, entity, a)
                    elif isinstance(edge_part, Const):
                        edge_sql = _json_literal(edge_part.value)
                    elif edge_part == "cursor":
                        edge_sql = cursor
                    else:
                        raise KeyError(edge_part)
                    edge_parts.append(f"'{edge_key}', {edge_sql}")
                edge = f"json_build_object({', '.join(edge_parts)})"
                sql = (
                    f"coalesce(json_agg({edge} order by {a}.rn_) filter (where {in_page}), "
                    "'[]'::json)"
                )
            elif part == "pageInfo":
                info = []
                for info_key, info_part in connection.page_info:
                    if isinstance(info_part, Const):
                        info_sql = _json_literal(info_part.value)
                    elif info_part == "has_next_page":
                        info_sql = f"count(*) > {limit}"
                    elif info_part == "has_previous_page":
                        info_sql = "false"
                    elif info_part == "start_cursor":
                        info_sql = (
                            f"(array_agg({cursor} order by {a}.rn_) filter (where {in_page}))[1]"
                        )
                    elif info_part == "end_cursor":
                        info_sql = (
                            f"(array_agg({cursor} order by {a}.rn_ desc) "
                            f"filter (where {in_page}))[1]"
                        )
                    else:
                        raise KeyError(info_part)
                    info.append(f"'{info_key}', {info_sql}")
                sql = f"json_build_object({', '.join(info)})"
            elif part == "totalCount":
                sql = (
                    "null::bigint" if spec.count is None else spec.count.format(parent=parent_alias)
                )
            else:
                raise KeyError(part)
            parts.append(f"'{key}', {sql}")
        page = (
            f"select {a}.*, row_number() over (order by {order}) as rn_ from ("
            f"select * from {_TABLES[entity]} as {a} where {' and '.join(conditions)} "
            f"order by {order} limit {limit} + 1) as {a}"
        )
        # group by (): one row even for an empty page, whatever the fields aggregate.
        return f"(select json_build_object({', '.join(parts)}) from ({page}) as {a} group by ())"


def render(root: Obj) -> str:
    """SQL of one statement returning the response's `data` object as JSON text."""
    renderer = _Renderer()
    # The root object has no row: its fields are lookups, connections and constants.
    # Naming both fixed parameters types them even when no field uses them.
    return (
        f"select {renderer.obj(root, 'customer', '_root')}::text "
        f"from (select ${TENANT_PARAM}::bigint, ${PII_PARAM}::boolean) as fixed_"
    )
