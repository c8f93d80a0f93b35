"""The schema: root types merged from each domain module, plus the Node entry point."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
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
from resolvers.ledger_accounts import LedgerAccount, LedgerAccountQuery
from resolvers.ledger_mutations import LedgerMutation
from resolvers.ledger_transactions import LedgerEntry, LedgerTransaction, LedgerTransactionQuery
from resolvers.node import Node, decode_global_id
from resolvers.permissions import install_scope_checks
from resolvers.rate_limit import RateLimit, RateLimitQuery
from resolvers.reconciliation import ReconciliationQuery
from resolvers.scalars import SCALARS
from resolvers.selection_sets import refusing_empty_selection_sets

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
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await _resolve_node(info, id)

    @strawberry.field(
        directives=[ListSize(slicing_arguments=["ids"], require_one_slicing_argument=False)],
        description="Several objects by global id, in the order asked (null where not found).",
    )
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > info.context.max_page_size:
            raise InvalidInput(f"at most {info.context.max_page_size} ids per call", field="ids")
        return list(await asyncio.gather(*(_resolve_node(info, i) for i in ids)))


@strawberry.type(description="Read the ledger: customers, accounts, transactions and entries.")
class Query(
    NodeQuery,
    CustomerQuery,
    LedgerAccountQuery,
    LedgerTransactionQuery,
    AnalyticsQuery,
    RateLimitQuery,
    AuditQuery,
    ReconciliationQuery,
):
    pass


@strawberry.type(description="Write to the ledger. Every mutation needs the ledger:write scope.")
class Mutation(LedgerMutation):
    pass


class _Schema(strawberry.Schema):
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
    ]
    schema = _Schema(
        query=Query,
        mutation=Mutation,
        types=[Customer, LedgerAccount, LedgerTransaction, LedgerEntry, RateLimit],
        config=StrawberryConfig(scalar_map=SCALARS),
        extensions=extensions,
    )
    resolve_simple_fields_directly(schema)
    install_scope_checks(schema)  # after: it wraps whatever resolver each entry edge has
    return schema


schema = build_schema()
