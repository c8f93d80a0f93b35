"""Apollo Federation v2: the pieces of the subgraph protocol the schema adds to `Query`.

- `_service { sdl }`: the subgraph's SDL with its federation directives (`@link`, `@key`), the
  same text as schema.graphql. It reads no tenant data (no scope), but it is the schema, so
  the introspection policy applies to it (gateway.persisted_documents.uses_introspection).
- `_entities(representations:)`: entities by key. `Customer`, `LedgerAccount` and
  `LedgerTransaction` are keyed by `id`, their global Node id (resolvers.node.ENTITY_KEY), so a
  representation is `{"__typename": "Customer", "id": "<global id>"}`. The schema resolves each
  one as `node(id:)` does (same loaders, so N representations batch into the statements of
  one; same tenancy: another tenant's id, a made-up id or an id of another type is null), and
  the field needs ledger:read like `node` (resolvers.permissions).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.federation.schema import FederationAny
from strawberry.printer import print_schema
from strawberry.types.scalar import ScalarDefinition, ScalarWrapper, scalar

from adapters.errors import InvalidInput
from resolvers.customers import Customer
from resolvers.ledger_accounts import LedgerAccount
from resolvers.ledger_transactions import LedgerTransaction

__all__ = [
    "DIRECTIVE_ARGUMENT_TYPES",
    "ENTITY_TYPE_NAMES",
    "FEDERATION_SCALARS",
    "Entity",
    "FederationAny",
    "Service",
    "entity_keys",
    "subgraph_sdl",
]

if TYPE_CHECKING:
    from strawberry.schema import BaseSchema

ENTITY_TYPE_NAMES: frozenset[str] = frozenset({"Customer", "LedgerAccount", "LedgerTransaction"})
_REPRESENTATION_KEYS = frozenset({"__typename", "id"})
# Types of the arguments of `@key` and `@link`, as the Federation and link specs define them
# (introspection shows them; the SDL imports them with `@link` instead of printing them).
DIRECTIVE_ARGUMENT_TYPES: frozenset[str] = frozenset({"_FieldSet", "link__Import", "link__Purpose"})

FEDERATION_SCALARS: Mapping[object, type | ScalarDefinition | ScalarWrapper] = {
    FederationAny: scalar(
        name="_Any",
        description=(
            "An entity representation (Apollo Federation): "
            '{"__typename": "Customer", "id": "<global id>"}.'
        ),
        serialize=lambda value: value,
        parse_value=lambda value: value,
    ),
}

Entity = Annotated[
    Customer | LedgerAccount | LedgerTransaction,
    strawberry.union(
        "_Entity", description="The types other subgraphs may reference by key (Federation)."
    ),
]


@strawberry.type(name="_Service", description="This subgraph, as Apollo Federation sees it.")
class Service:
    sdl: str = strawberry.field(
        description="The subgraph's SDL with its federation directives (as schema.graphql)."
    )


@lru_cache(maxsize=4)
def subgraph_sdl(schema: BaseSchema) -> str:
    """The schema's SDL with its federation directives; printed once per schema."""
    return print_schema(schema)


def entity_keys(representations: list[Any], *, limit: int) -> list[tuple[str, str]]:
    """(type name, global id) of each representation; BAD_USER_INPUT for a malformed one.

    A well-formed representation names an entity type and carries its `id` key, nothing
    else; whether that id exists (in the caller's tenant) is the lookup's business.
    """
    if len(representations) > limit:
        raise InvalidInput(f"at most {limit} representations per call", field="representations")
    keys = []
    for index, representation in enumerate(representations):
        if (
            not isinstance(representation, dict)
            or representation.keys() != _REPRESENTATION_KEYS
            or not isinstance(representation["__typename"], str)
            or representation["__typename"] not in ENTITY_TYPE_NAMES
            or not isinstance(representation["id"], str)
        ):
            raise InvalidInput(
                f"representations[{index}] must be {{__typename, id}} with __typename one of "
                f"{', '.join(sorted(ENTITY_TYPE_NAMES))} and id its global id",
                field="representations",
            )
        keys.append((representation["__typename"], representation["id"]))
    return keys
