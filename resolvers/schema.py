"""The schema: root types merged from each domain module, the Node entry point and the
Apollo Federation subgraph fields (`_service`, `_entities`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any

import strawberry
from graphql import ASTValidationRule, ExecutionResult, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from adapters.errors import InvalidInput
from resolvers.analytics import AnalyticsQuery
from resolvers.audit import AuditQuery
from resolvers.context import Info
from resolvers.cost_directives import ListSize
from resolvers.customers import Customer, CustomerQuery
from resolvers.fast_paths import resolve_simple_fields_directly
from resolvers.federation import (
    FEDERATION_SCALARS,
    Entity,
    FederationAny,
    Service,
    entity_keys,
    subgraph_sdl,
)
from resolvers.ledger_accounts import LedgerAccount, LedgerAccountQuery
from resolvers.ledger_mutations import LedgerMutation
from resolvers.ledger_transactions import LedgerEntry, LedgerTransaction, LedgerTransactionQuery
from resolvers.node import Node, decode_global_id, pk_of
from resolvers.permissions import install_scope_checks
from resolvers.rate_limit import RateLimit, RateLimitQuery
from resolvers.reconciliation import ReconciliationQuery
from resolvers.scalars import SCALARS
from resolvers.selection_sets import refusing_empty_selection_sets
from resolvers.subscriptions import Subscription

__all__ = ["build_schema", "limit_rules", "schema"]


async def _resolve_node(info: Info, global_id: str) -> Node | None:
    try:
        type_name, pk = decode_global_id(global_id)
    except LookupError:
        return None
    ledger = info.context.ledger
    if type_name == "Customer":
        customer = await ledger.customer_by_id.load(pk)
        return None if customer is None else Customer.from_record(customer)
    if type_name == "LedgerAccount":
        account = await ledger.ledger_account_by_id.load(pk)
        return None if account is None else LedgerAccount.from_record(account)
    if type_name == "LedgerTransaction":
        transaction = await ledger.ledger_transaction_by_id.load(pk)
        return None if transaction is None else LedgerTransaction.from_record(transaction)
    if type_name == "LedgerEntry":
        entry = await ledger.ledger_entry_by_id.load(pk)
        return None if entry is None else LedgerEntry.from_record(entry)
    return None


@strawberry.type
class NodeQuery:
    @strawberry.field(
        description="Any object by its global id; null when it does not exist in your tenant.",
    )
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The object's global id.")],
    ) -> Node | None:
        return await _resolve_node(info, id)

    @strawberry.field(
        directives=[ListSize(slicing_arguments=["ids"], require_one_slicing_argument=False)],
        description="Several objects by global id, in the order asked (null where not found).",
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(description="Global ids, at most the page cap (100 by default)."),
        ],
    ) -> list[Node | None]:
        if len(ids) > info.context.max_page_size:
            raise InvalidInput(f"at most {info.context.max_page_size} ids per call", field="ids")
        return list(await asyncio.gather(*(_resolve_node(info, i) for i in ids)))


async def _resolve_entity(info: Info, type_name: str, global_id: str) -> Node | None:
    """An entity as `node(id:)` finds it; null when the id does not name an object of the
    representation's type (another type, another tenant, made up)."""
    if pk_of(type_name, global_id) is None:
        return None
    return await _resolve_node(info, global_id)


@strawberry.type
class FederationQuery:
    """The Apollo Federation v2 subgraph fields (resolvers.federation)."""

    @strawberry.field(
        name="_service",
        description=(
            "This subgraph's SDL, for Apollo Federation (the introspection policy applies)."
        ),
    )
    def service(self, info: Info) -> Service:
        return Service(sdl=subgraph_sdl(info.schema))

    @strawberry.field(
        name="_entities",
        directives=[
            ListSize(slicing_arguments=["representations"], require_one_slicing_argument=False)
        ],
        description=(
            "Entities by key, for Apollo Federation: each representation is "
            '{"__typename", "id"} with a global id; null where `node(id:)` would be null.'
        ),
    )
    async def entities(
        self, info: Info, representations: list[FederationAny]
    ) -> list[Entity | None]:
        keys = entity_keys(representations, limit=info.context.max_page_size)
        found = await asyncio.gather(*(_resolve_entity(info, *key) for key in keys))
        return list(found)  # type: ignore[arg-type]  # Node is one of the entity types here


@strawberry.type(description="Read the ledger: customers, accounts, transactions and entries.")
class Query(
    NodeQuery,
    CustomerQuery,
    LedgerAccountQuery,
    LedgerTransactionQuery,
    AnalyticsQuery,
    RateLimitQuery,
    AuditQuery,
    FederationQuery,
    ReconciliationQuery,
):
    pass


@strawberry.type(description="Write to the ledger. Every mutation needs the ledger:write scope.")
class Mutation(LedgerMutation):
    pass


class PartialErrors(SchemaExtension):
    """Add the errors of fields that answered partially (RequestContext.partial_errors)."""

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        partial = getattr(self.execution_context.context, "partial_errors", None)
        if partial and isinstance(result, ExecutionResult):
            result.errors = [*(result.errors or []), *partial]


class _Schema(strawberry.federation.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Errors are shaped and logged once, by the HTTP layer (gateway.errors)."""


def limit_rules(*, max_depth: int, max_aliases: int) -> list[type[ASTValidationRule]]:
    """The validation rules that bound a document's depth and aliases (beyond the spec's)."""
    return [
        *map(
            refusing_empty_selection_sets, QueryDepthLimiter(max_depth=max_depth).validation_rules
        ),
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]


def build_schema(*, max_depth: int = 12, max_aliases: int = 30) -> strawberry.Schema:
    """The schema with its limits; parse and validation results are cached per document.

    The limit rules are built once, so the validation cache (keyed by the rule classes) hits
    on every request with the same document; each request gets fresh extension instances.
    """
    rules = limit_rules(max_depth=max_depth, max_aliases=max_aliases)
    extensions: list[Any] = [
        partial(ParserCache, maxsize=1024),
        partial(AddValidationRules, rules),
        partial(ValidationCache, maxsize=1024),
        PartialErrors,
    ]
    schema = _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Customer, LedgerAccount, LedgerTransaction, LedgerEntry, RateLimit],
        config=StrawberryConfig(scalar_map=SCALARS),
        scalar_overrides=dict(FEDERATION_SCALARS),
        extensions=extensions,
    )
    resolve_simple_fields_directly(schema)
    install_scope_checks(schema)  # after: it wraps whatever resolver each entry edge has
    return schema


schema = build_schema()
