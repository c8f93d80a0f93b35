"""The compiled path answers exactly as the resolvers do (the reference), on PostgreSQL.

Every operation runs twice over HTTP against the same data and principal: once on the app as
configured (compiled operations on) and once with COMPILED_OPERATIONS=off. The two bodies must
be equal as JSON, key order included. The corpus: the benchmark's queries, GraphiQL's examples,
every GraphQL document written in the tests, hand-picked edge cases (fragments, aliases, bad
pages and cursors, ids of other tenants, masked and unmasked email, missing scopes), and
operations generated from the schema by hypothesis.
"""

from __future__ import annotations

import ast
import base64
import datetime as dt
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
)
from graphql.error import GraphQLSyntaxError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from adapters.ledger.posting import PostingService
from adapters.ledger.tables import customers, ledger_accounts
from adapters.records import TransactionStatus
from gateway.graphiql_examples import EXAMPLE_OPERATIONS
from resolvers.node import encode_global_id
from resolvers.pagination import encode_cursor
from resolvers.principal import SCOPES
from resolvers.schema import schema as strawberry_schema
from tests.factories import make_account, make_customer, make_tenant, post_transfer
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient

ROOT = Path(__file__).resolve().parents[2]
ALL_SCOPES = frozenset(SCOPES)
SCOPE_SETS = [
    ALL_SCOPES,
    ALL_SCOPES - {"pii:read"},
    frozenset({"ledger:read"}),
    frozenset({"ledger:write"}),
]


@dataclass
class World:
    tenant_id: int
    other_tenant_id: int
    ids: dict[str, list[str]]  # GraphQL type -> global ids in the tenant
    foreign: list[str]  # global ids of the other tenant
    cursors: list[str]


async def _seed(database: Database) -> World:
    engine = database.engine
    tenant = await make_tenant(engine)
    other = await make_tenant(engine)
    emails = ["ada@example.com", None, "no-at-sign", "@starts.with.at", "ünï@例え.jp", "a@b@c"]
    ids: dict[str, list[str]] = {t: [] for t in ("Customer", "LedgerAccount",
                                                  "LedgerTransaction", "LedgerEntry")}  # fmt: skip
    accounts_by_currency: dict[str, list[int]] = {}
    for number, email in enumerate(emails):
        customer = await make_customer(
            engine, tenant, display_name=f"Customer \"{number}\" \\ ✓",
            kind="business" if number % 2 else "individual",
        )  # fmt: skip
        async with engine.begin() as connection:
            await connection.execute(
                update(customers).where(customers.c.id == customer).values(email=email)
            )
        ids["Customer"].append(encode_global_id("Customer", customer))
        for currency, normal in (("USD", "debit"), ("JPY", "credit"), ("BHD", "debit")):
            if number == 5 and currency != "USD":
                continue  # customers with different numbers of accounts
            account = await make_account(
                engine, tenant, customer_id=customer, currency=currency, normal_balance=normal,
                name=f"{currency} {number}",
            )  # fmt: skip
            accounts_by_currency.setdefault(currency, []).append(account)
            ids["LedgerAccount"].append(encode_global_id("LedgerAccount", account))
    await make_customer(engine, tenant, display_name="No accounts")
    start = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
    posting = PostingService(engine)
    statuses = [TransactionStatus.POSTED, TransactionStatus.PENDING]
    for number in range(40):
        currency = ("USD", "JPY", "BHD")[number % 3]
        accounts = accounts_by_currency[currency]
        debit, credit = accounts[number % len(accounts)], accounts[(number + 1) % len(accounts)]
        # whole seconds, and times with microseconds; some entries share an effective time
        at = start + dt.timedelta(minutes=number // 2, microseconds=(number % 4) * 1234)
        result = await post_transfer(
            engine, tenant, debit=debit, credit=credit, amount=1 + number * 997, currency=currency,
            status=statuses[number % 2], effective_at=at,
            description=None if number % 5 == 0 else f"transfer {number} 'quoted'",
        )  # fmt: skip
        transaction = result.transaction
        if number % 8 == 1:
            await posting.post_pending(tenant, transaction.id)
        elif number % 8 == 3:
            await posting.void_pending(tenant, transaction.id)
        elif number % 8 == 4:
            await posting.reverse_transaction(tenant, transaction.id, f"reverse-{number}")
        ids["LedgerTransaction"].append(encode_global_id("LedgerTransaction", transaction.id))
        ids["LedgerEntry"].extend(encode_global_id("LedgerEntry", e.id) for e in result.entries)
    # An account whose stored exponent is not ISO 4217's (as if ISO changed it after the
    # account was opened): amounts show with the account's exponent on both paths, whether the
    # entries are read under their account or under their transaction.
    async with engine.begin() as connection:
        await connection.execute(
            update(ledger_accounts)
            .where(ledger_accounts.c.id == accounts_by_currency["USD"][0])
            .values(currency_exponent=3)
        )
    other_customer = await make_customer(engine, other, display_name="Other tenant")
    other_account = await make_account(engine, other, customer_id=other_customer)
    foreign: list[str] = [
        encode_global_id("Customer", other_customer),
        encode_global_id("LedgerAccount", other_account),
    ]
    cursors = [
        encode_cursor("c", 0), encode_cursor("a", 2), encode_cursor("c", 2**62),
        encode_cursor("e", int(start.timestamp() * 1_000_000) + 600_000_000, 2**40),
        encode_cursor("e", -1, 1), encode_cursor("x", 1), "not-a-cursor", "",
        encode_cursor("e", 10**18, 5),  # a time far past any datetime
    ]  # fmt: skip
    return World(tenant, other, ids, foreign, cursors)


@pytest.fixture(scope="module")
def world_cache() -> dict[str, World]:
    return {}


@pytest.fixture
async def world(postgres: Database, world_cache: dict[str, World]) -> World:
    if "world" not in world_cache:
        world_cache["world"] = await _seed(postgres)
    return world_cache["world"]


@pytest.fixture
def gql(uncached_gql: GraphQLClient) -> GraphQLClient:
    """The compiled app with the response cache off: a cache hit would only repeat an answer
    (and skip the path under test), so every request here executes."""
    return uncached_gql


async def _assert_same(
    gql: GraphQLClient,
    reference_gql: GraphQLClient,
    query: str,
    variables: dict[str, Any],
    tenant_id: int,
    scopes: frozenset[str] = ALL_SCOPES,
) -> None:
    """The compiled app and the reference app answer with the same status and body."""
    bodies = []
    for client in (gql, reference_gql):
        response = await client.http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"authorization": f"Bearer {client.token(tenant_id, scopes)}"},
        )
        body = orjson.loads(response.content)
        for error in body.get("errors", []):  # masked errors carry a per-request id
            error.get("extensions", {}).pop("requestId", None)
            if error.get("extensions", {}).get("code") == "INTERNAL_SERVER_ERROR":
                error["message"] = "masked"
        if "errors" in body:
            # Errors of fields resolved concurrently (two provider fields) come in the order
            # they finish: normalise their order, never their content.
            body["errors"] = sorted(body["errors"], key=lambda e: orjson.dumps(e))
        bodies.append(orjson.dumps([response.status_code, body]))
    compiled, reference = bodies
    assert compiled == reference, f"{query}\n{variables}\nscopes={sorted(scopes)}"


# -- the corpus -----------------------------------------------------------------------------

EDGE_CASES = [
    "{ customers(first: 100) { totalCount edges { node { ledgerAccounts { totalCount } "
    'empty: ledgerAccounts(first: 1, after: "YTo5OTk5OTk5OQ==") { totalCount pageInfo { '
    "hasNextPage startCursor } } } } } }",
    "{ __typename customers(first: 3) { __typename totalCount edges { __typename cursor node "
    "{ __typename id kind displayName createdAt email } } pageInfo { __typename hasNextPage "
    "hasPreviousPage startCursor endCursor } } }",
    "{ a: customers(first: 0) { edges { cursor } pageInfo { hasNextPage startCursor "
    "endCursor } totalCount } b: customers(first: 100) { totalCount pageInfo { endCursor } } }",
    "query($c: String) { customers(first: 2, after: $c) { edges { cursor node { id } } "
    "pageInfo { hasNextPage endCursor } } }",
    "query($f: Int!) { customers(first: $f) { edges { node { id } } } }",
    "fragment A on LedgerAccount { id name normalBalance version createdAt currency "
    "balance { posted { amount minorUnits currency exponent __typename } pending { amount "
    "minorUnits } available { amount exponent } } } "
    "query Q($id: ID!) { ledgerAccount(id: $id) { ...A ... on LedgerAccount { name } "
    "entries(first: 7) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor "
    "endCursor } edges { cursor node { id direction status effectiveAt amount { amount "
    "minorUnits currency exponent } account { id name } transaction { id description "
    "status effectiveAt postedAt createdAt idempotencyKey reverses { id status } entries { "
    "id direction amount { amount } } } } } } } }",
    "query($id: ID!, $after: String) { ledgerAccount(id: $id) { entries(first: 3, after: "
    "$after) { edges { cursor node { id effectiveAt } } pageInfo { endCursor hasNextPage } "
    "} } }",
    "query($id: ID!) { customer(id: $id) { id email displayName ledgerAccounts { totalCount "
    "edges { node { id } } } x: ledgerAccounts(first: 1) { edges { cursor } pageInfo { "
    "hasNextPage } } } }",
    "query($id: ID!) { node(id: $id) { __typename id ... on Customer { displayName email } "
    "... on LedgerAccount { name balance { posted { amount } } } ... on LedgerTransaction { "
    "status entries { id } } ... on LedgerEntry { direction amount { amount currency } } } }",
    "query($id: ID!) { ledgerTransaction(id: $id) { id status postedAt reverses { id "
    "reverses { id } } entries { id status effectiveAt account { currency } } } }",
    "query($id: ID!) { c: customer(id: $id) { id } t: ledgerTransaction(id: $id) { id } "
    "a: ledgerAccount(id: $id) { id } n: node(id: $id) { id } }",
    "query($id: ID!) { customer(id: $id) { id ledgerAccounts(first: -1) { totalCount } } }",
    "query($id: ID!) { customer(id: $id) { ledgerAccounts(first: 101) { totalCount } } }",
    "query($id: ID!) { customer(id: $id) { id bankAccounts { id } } }",
    "query($id: ID!) { customer(id: $id) { id @include(if: true) displayName } }",
    "query($id: ID!) { customer(id: $id) { id doesNotExist } }",
    'query($id: ID!) { nodes(ids: [$id, $id, "bm90LWFuLWlk", "UGFnZUluZm86MQ=="]) { '
    "__typename id ... on LedgerAccount { currency } ... on Customer { kind } } }",
    "{ nodes(ids: []) { id } }",
    "query { customers(first: 2) { edges { node { ...F } } } } "
    "fragment F on Node { id ... on Customer { kind } }",
]


def _harvested_documents() -> list[str]:
    """GraphQL query documents written as string constants anywhere in the tests."""
    found: list[str] = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            text = node.value
            if "{" not in text or len(text) < 10:
                continue
            if "rateLimit" in text:  # the caller's budget and the time: never the same twice
                continue
            try:
                document = parse(text)
            except (GraphQLSyntaxError, RecursionError):
                continue
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if operations and all(o.operation is OperationType.QUERY for o in operations):
                found.append(text)
    return sorted(set(found))


def _corpus() -> list[str]:
    bench = [p.read_text() for p in sorted((ROOT / "bench" / "queries").glob("*.graphql"))]
    examples = [text for _name, text in EXAMPLE_OPERATIONS if "mutation" not in text]
    return [*bench, *examples, *EDGE_CASES, *_harvested_documents()]


def _variable_sets(text: str, world: World) -> list[dict[str, Any]]:
    """Values for the document's variables: ids of every kind, both tenants, junk."""
    names = {
        definition.variable.name.value: definition.type
        for operation in parse(text).definitions
        if isinstance(operation, OperationDefinitionNode)
        for definition in operation.variable_definitions or []
    }
    ids = [ids[0] for ids in world.ids.values()] + [world.ids["LedgerAccount"][1]]
    ids += [world.foreign[0], "bm90LWFuLWlk", "!!", encode_global_id("PageInfo", 1)]
    sets: list[dict[str, Any]] = []
    for position in range(len(ids)):
        values: dict[str, Any] = {}
        for name, type_node in names.items():
            type_text = str(type_node.to_dict().get("name", {}).get("value", "")) or "ID"
            if "id" in name.lower():
                values[name] = ids[position]
            elif name in ("first", "f"):
                values[name] = (5, 0, 100, 101, -3)[position % 5]
            elif name in ("after", "c"):
                values[name] = world.cursors[position % len(world.cursors)]
            elif type_text == "Int":
                values[name] = 3
        sets.append(values)
    return sets


async def test_the_corpus_answers_the_same_on_both_paths(
    postgres: Database, world: World, gql: GraphQLClient, reference_gql: GraphQLClient
) -> None:
    corpus = _corpus()
    assert len(corpus) > 30
    before = _compiled_count((await gql.http.get("/metrics")).text)
    requests = 0
    for text in corpus:
        for variables in _variable_sets(text, world):
            for scopes in SCOPE_SETS:
                await _assert_same(gql, reference_gql, text, variables, world.tenant_id, scopes)
                requests += 1
    compiled = _compiled_count((await gql.http.get("/metrics")).text) - before
    # Not a vacuous comparison: a large share of the corpus took the compiled path.
    assert compiled > requests // 4, (compiled, requests)


VARIABLE_FORMS: list[dict[str, Any]] = [
    {"f": "5"}, {"f": 5.0}, {"f": True}, {"f": 2**31}, {"f": None}, {}, {"f": 2, "c": None},
    {"f": 2, "c": 7}, {"f": 1, "c": ["x"]}, {"f": 2, "extra": 1},
]  # fmt: skip


async def test_variables_of_every_form_answer_the_same(
    postgres: Database, world: World, gql: GraphQLClient, reference_gql: GraphQLClient
) -> None:
    """Variable coercion (done here without graphql-core for plain ID/String/Int)."""
    query = (
        "query($f: Int!, $c: String) { customers(first: $f, after: $c) { edges { node { id } } } }"
    )
    for variables in VARIABLE_FORMS:
        await _assert_same(gql, reference_gql, query, variables, world.tenant_id)
    by_id = (
        "query($id: ID!, $n: Int) { customer(id: $id) { ledgerAccounts(first: $n) { "
        "totalCount edges { node { id } } } } }"
    )
    customer = world.ids["Customer"][0]
    pk = int(base64.b64decode(customer).decode().split(":")[1])
    by_id_forms: list[dict[str, Any]] = [
        {"id": customer}, {"id": customer, "n": None}, {"id": pk}, {"id": None},
        {"id": customer, "n": 1}, {"id": [customer]},
    ]  # fmt: skip
    for variables in by_id_forms:
        await _assert_same(gql, reference_gql, by_id, variables, world.tenant_id)


async def test_a_repeated_request_is_answered_for_its_own_caller(
    postgres: Database, world: World, gql: GraphQLClient, reference_gql: GraphQLClient
) -> None:
    """The same body again and again (the HTTP layer keeps what it read of a body, a plan keeps
    the parameters its variables bound): each caller's tenant, scopes and pii:read still
    decide the answer, and a body refused once is refused again."""
    query = (
        "query($id: ID!, $c: String) { customer(id: $id) { id email ledgerAccounts(first: 2, "
        "after: $c) { totalCount edges { node { id } } } } }"
    )
    mine = {"id": world.ids["Customer"][0], "c": None}
    bad_cursor = {"id": world.ids["Customer"][0], "c": "not-a-cursor"}
    callers = [
        (world.tenant_id, ALL_SCOPES),
        (world.other_tenant_id, ALL_SCOPES),  # the same id reads as null in another tenant
        (world.tenant_id, ALL_SCOPES - {"pii:read"}),  # email masked
        (world.tenant_id, frozenset({"ledger:write"})),  # forbidden
        (world.tenant_id, ALL_SCOPES),
    ]
    for _round in range(2):
        for tenant_id, scopes in callers:
            for variables in (mine, bad_cursor):
                await _assert_same(gql, reference_gql, query, variables, tenant_id, scopes)
    answers = [
        await gql.post(query, mine, tenant_id=tenant_id, scopes=scopes)
        for tenant_id, scopes in callers[:3]
    ]
    assert answers[0]["data"]["customer"]["email"] == "ada@example.com"
    assert answers[1]["data"]["customer"] is None
    assert answers[2]["data"]["customer"]["email"] != "ada@example.com"
    refused = await gql.post(query, bad_cursor, tenant_id=world.tenant_id)
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_cursors_from_one_path_page_the_same_on_the_other(
    postgres: Database, world: World, gql: GraphQLClient, reference_gql: GraphQLClient
) -> None:
    query = (
        "query($id: ID!, $after: String) { ledgerAccount(id: $id) { entries(first: 2, after: "
        "$after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }"
    )
    for account in world.ids["LedgerAccount"][:4]:
        after = None
        for _page in range(20):
            variables = {"id": account, "after": after}
            await _assert_same(gql, reference_gql, query, variables, world.tenant_id)
            body = await gql.post(query, variables, tenant_id=world.tenant_id)
            info = body["data"]["ledgerAccount"]["entries"]["pageInfo"]
            if not info["hasNextPage"]:
                break
            after = info["endCursor"]


async def test_the_benchmark_queries_are_compiled(
    postgres: Database, world: World, gql: GraphQLClient
) -> None:
    """Not a vacuous comparison: the canonical queries take the compiled path."""
    http_app = gql.http
    for name in ("q1", "q2", "q3"):
        text = (ROOT / "bench" / "queries" / f"{name}.graphql").read_text()
        variables = _variable_sets(text, world)[0]
        metrics = await http_app.get("/metrics")
        before = _compiled_count(metrics.text)
        body = await gql.post(text, variables, tenant_id=world.tenant_id)
        assert "errors" not in body
        after = _compiled_count((await http_app.get("/metrics")).text)
        assert after == before + 1, name


def _compiled_count(metrics: str) -> int:
    for line in metrics.splitlines():
        if line.startswith('gateway_operations_total{path="compiled"}'):
            return int(float(line.split()[-1]))
    raise AssertionError("no compiled operations counter")


# -- generated operations ------------------------------------------------------------------

_COMPILABLE_TYPES = {
    "Customer", "LedgerAccount", "LedgerTransaction", "LedgerEntry", "LedgerBalance", "Money",
    "CustomerConnection", "CustomerEdge", "LedgerAccountConnection", "LedgerAccountEdge",
    "LedgerEntryConnection", "LedgerEntryEdge", "PageInfo", "Query",
}  # fmt: skip


def _named(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


@st.composite
def _selection(draw: st.DrawFn, graphql: GraphQLSchema, type_name: str, depth: int) -> str:
    object_type = graphql.type_map[type_name]
    assert isinstance(object_type, GraphQLObjectType)
    # rateLimit answers the caller's budget at that moment: it differs between any two requests.
    names = sorted(name for name in object_type.fields if name != "rateLimit")
    if type_name not in _COMPILABLE_TYPES:
        names = ["__typename"]
    chosen = draw(st.lists(st.sampled_from([*names, "__typename"]), min_size=1, max_size=5))
    parts = []
    for number, name in enumerate(chosen):
        alias = draw(st.sampled_from(["", f"k{number}: "]))
        if name == "__typename":
            parts.append(f"{alias}__typename")
            continue
        field = object_type.fields[name]
        arguments = ""
        if "first" in field.args:
            first = draw(st.sampled_from([0, 1, 2, 3, 20, -1, 101]))
            arguments = f"(first: {first})"
        elif "id" in field.args:
            arguments = "(id: $id)"
        elif field.args:
            continue  # lists of ids, provider filters: not generated
        target = _named(field.type)
        if isinstance(target, GraphQLObjectType) or hasattr(target, "fields"):
            if depth >= 4 or not isinstance(target, GraphQLObjectType):
                if name == "node":
                    parts.append(f"{alias}{name}{arguments} {{ id }}")
                continue
            inner = draw(_selection(graphql, target.name, depth + 1))
            parts.append(f"{alias}{name}{arguments} {{ {inner} }}")
        else:
            parts.append(f"{alias}{name}{arguments}")
    return " ".join(parts) or "__typename"


GRAPHQL = strawberry_schema._schema


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    selection=_selection(GRAPHQL, "Query", 0),
    pick=st.integers(min_value=0, max_value=10_000),
    scopes=st.sampled_from(SCOPE_SETS),
)
async def test_generated_operations_answer_the_same_on_both_paths(
    postgres: Database,
    world: World,
    gql: GraphQLClient,
    reference_gql: GraphQLClient,
    selection: str,
    pick: int,
    scopes: frozenset[str],
) -> None:
    uses_id = "$id" in selection
    query = f"query{'($id: ID!)' if uses_id else ''} {{ {selection} }}"
    every_id = [*itertools.chain(*world.ids.values()), *world.foreign]
    variables = {"id": every_id[pick % len(every_id)]} if uses_id else {}
    await _assert_same(gql, reference_gql, query, variables, world.tenant_id, scopes)


# -- the SQL itself --------------------------------------------------------------------------

_TABLE_ALIAS = re.compile(
    r"\bfrom (customers|ledger_accounts|ledger_transactions|ledger_entries)(?: as (\w+))?"
)


def test_every_table_in_a_compiled_statement_is_filtered_by_the_tenant() -> None:
    """Each table the statement reads (whatever its alias) carries `tenant_id = $1`."""
    from gateway.compiled import CompiledOperations
    from resolvers.schema import limit_rules

    async def never(statement: str, *arguments: Any) -> str:
        raise AssertionError("planning runs no SQL")

    compiled = CompiledOperations(
        GRAPHQL, rules=limit_rules(max_depth=12, max_aliases=30), max_page_size=100,
        fetch_json=never,
    )  # fmt: skip
    statements = 0
    for text in [*EDGE_CASES, *(p.read_text() for p in (ROOT / "bench" / "queries").glob("q*"))]:
        plan = compiled.plan(text, parse(text), None)
        if plan is None:
            continue
        statements += 1
        tables = _TABLE_ALIAS.findall(plan.sql)
        assert tables
        for table, alias in tables:
            column = f"{alias}.tenant_id = $1" if alias else "tenant_id = $1"
            assert column in plan.sql, (table, alias, plan.sql)
    assert statements >= 10


def test_a_field_with_an_argument_the_planner_does_not_read_is_not_compiled() -> None:
    """`balanceAt(asOf:)` and the analysts' fields take the resolvers; so would `balance` if it
    ever grew an argument: an argument is never silently ignored."""
    from gateway.compiled import CompiledOperations
    from resolvers.schema import limit_rules

    async def never(statement: str, *arguments: Any) -> str:
        raise AssertionError("planning runs no SQL")

    compiled = CompiledOperations(
        GRAPHQL, rules=limit_rules(max_depth=12, max_aliases=30), max_page_size=100,
        fetch_json=never,
    )  # fmt: skip
    known = "query($id: ID!) { ledgerAccount(id: $id) { balance { posted { amount } } } }"
    assert compiled.plan(known, parse(known), None) is not None
    for field in ("balanceAt { posted { amount } }", "balanceHistory { __typename }"):
        text = f"query($id: ID!) {{ ledgerAccount(id: $id) {{ {field} }} }}"
        assert compiled.plan(text, parse(text), None) is None, field
