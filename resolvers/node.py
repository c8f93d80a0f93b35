"""The Relay Node interface and opaque global ids ("Type:pk" in base64)."""

from __future__ import annotations

import base64
import binascii
import re

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet

from adapters.errors import NotFound

__all__ = [
    "ENTITY_KEY",
    "Node",
    "decode_global_id",
    "decode_id_of",
    "encode_global_id",
    "pk_of",
]

_PK = re.compile(r"[1-9][0-9]{0,18}")


@strawberry.interface(description="An object with a globally unique, opaque id.")
class Node:
    id: strawberry.ID = strawberry.field(
        description="Opaque global id; pass it to `node(id:)` to fetch the object again."
    )


# Apollo Federation: the entity types (Customer, LedgerAccount, LedgerTransaction) are keyed by
# their global id, so a representation carries exactly what `node(id:)` takes
# (resolvers.federation resolves them the way `node` does).
ENTITY_KEY = Key(fields=FieldSet("id"))


def encode_global_id(type_name: str, pk: int) -> strawberry.ID:
    # binascii directly: exports encode millions of ids, and base64.b64encode adds a call.
    return strawberry.ID(binascii.b2a_base64(f"{type_name}:{pk}".encode(), newline=False).decode())


def decode_global_id(global_id: str, *, field: str = "id") -> tuple[str, int]:
    """Split a global id into (type name, primary key).

    A malformed id reads as not found: ids are opaque, and a client that made one up is
    told nothing more than for an id of another tenant.
    """
    try:
        raw = base64.b64decode(global_id, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise NotFound("no object has this id", field=field) from None
    type_name, separator, pk = raw.partition(":")
    if not separator or not _PK.fullmatch(pk) or int(pk) >= 2**63:
        raise NotFound("no object has this id", field=field)
    return type_name, int(pk)


def decode_id_of(type_name: str, global_id: str, *, field: str = "id") -> int:
    """The primary key of a global id that must name `type_name`; otherwise NotFound."""
    found_type, pk = decode_global_id(global_id, field=field)
    if found_type != type_name:
        raise NotFound(f"no {type_name} has this id", field=field)
    return pk


def pk_of(type_name: str, global_id: str) -> int | None:
    """The primary key of a global id naming `type_name`, or None for any other id.

    Root lookups answer null for such ids, exactly as for an id of another tenant.
    """
    try:
        return decode_id_of(type_name, global_id)
    except NotFound:
        return None
