"""Whether a document selects any of a set of fields, wherever they are (every operation and
fragment, through aliases): the response cache and the audit trail both ask it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from graphql import (
    BREAK,
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    visit,
)

__all__ = ["selects_any"]


class _Finder(Visitor):
    def __init__(self, type_info: TypeInfo, fields: Collection[tuple[str, str]]) -> None:
        super().__init__()
        self._type_info = type_info
        self._fields = fields
        self.found = False

    def enter_field(self, node: FieldNode, *_args: Any) -> Any:
        parent = self._type_info.get_parent_type()
        if parent is not None and (parent.name, node.name.value) in self._fields:
            self.found = True
            return BREAK
        return None


def selects_any(
    schema: GraphQLSchema, document: DocumentNode, fields: Collection[tuple[str, str]]
) -> bool:
    """True when the document selects a field named by (parent type, field) in `fields`."""
    type_info = TypeInfo(schema)
    finder = _Finder(type_info, fields)
    visit(document, TypeInfoVisitor(type_info, finder))
    return finder.found
