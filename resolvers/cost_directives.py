"""The IBM GraphQL cost directives, declared on the schema where the defaults are not right.

`@cost(weight:)` on a field or an object type: what resolving it costs (default: 1 for an
object, interface or union; 0 for a scalar or enum). `@listSize(...)` on a list or connection
field: how many items to assume (`assumedSize`), which arguments bound it (`slicingArguments`:
their value, or a list argument's length), and which child fields the bound applies to
(`sizedFields`: a connection's `edges`). The runtime (gateway.cost) reads them from the schema
to estimate every operation before it runs; schema.graphql shows them.

What a point means here: one batched read (a row or a page from our database) is 1; a value
that costs nothing to produce (Money, an edge, PageInfo, a balance held on its account's row)
is 0; a field that can call a provider is weighted by the calls it can cause.
"""

from __future__ import annotations

import strawberry
from strawberry.schema_directive import Location

__all__ = [
    "BANK_ACCOUNTS_COST",
    "BANK_TRANSACTIONS_COST",
    "CARD_PAYMENTS_COST",
    "FREE",
    "MUTATION_COST",
    "PAGE",
    "TOTAL_COUNT_COST",
    "Cost",
    "ListSize",
]


@strawberry.schema_directive(
    name="cost",
    locations=[
        Location.ARGUMENT_DEFINITION,
        Location.ENUM,
        Location.FIELD_DEFINITION,
        Location.INPUT_FIELD_DEFINITION,
        Location.OBJECT,
        Location.SCALAR,
    ],
    description="The cost of resolving this field or type (IBM GraphQL cost directive).",
)
class Cost:
    weight: int


@strawberry.schema_directive(
    name="listSize",
    locations=[Location.FIELD_DEFINITION],
    description="How many items a list field holds, for cost estimates (IBM cost directive).",
)
class ListSize:
    # UNSET: left out of the printed schema, as the spec's optional arguments are.
    assumed_size: int | None = strawberry.UNSET
    slicing_arguments: list[str] | None = strawberry.UNSET
    sized_fields: list[str] | None = strawberry.UNSET
    require_one_slicing_argument: bool | None = strawberry.UNSET


FREE = Cost(weight=0)
# A forward connection: `first` bounds its `edges` (it always has a value: its default).
PAGE = ListSize(
    slicing_arguments=["first"], sized_fields=["edges"], require_one_slicing_argument=False
)
# A write: locks, counters, version rows, one transaction.
MUTATION_COST = Cost(weight=10)
# Card payments are read through the cache, but a miss is one call to the card processor.
CARD_PAYMENTS_COST = Cost(weight=10)
# Bank accounts are read from our synced tables; a never-synced link triggers a first sync.
BANK_ACCOUNTS_COST = Cost(weight=5)
# Bank transactions: synced rows, one batched page read.
BANK_TRANSACTIONS_COST = Cost(weight=2)
# `totalCount`: one extra, batched, count statement.
TOTAL_COUNT_COST = Cost(weight=1)
