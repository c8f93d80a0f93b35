"""Resolve simple fields without Strawberry's per-field wrapper chain.

Strawberry wraps every field in several Python calls (argument conversion, field extensions,
Info construction). For the canonical dashboard query (~1,900 fields) that wrapper costs more
than the resolvers themselves. After the schema is built, fields that need none of it are
given a direct resolver:

- plain attributes: one getattr of the Python name (what Strawberry's default resolver does);
- methods whose only parameters are `self`, optionally `info`, and scalar arguments (Int,
  String, ID, Boolean; their GraphQL and Python values are the same): the method is called
  with a real `strawberry.Info` and the arguments renamed to their Python names.

A field with extensions or permission classes, or one that already carries a scope check
(resolvers.permissions), keeps its resolver, so authorization is never bypassed; so does any
field with input-object, enum or list arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLField, GraphQLObjectType, GraphQLResolveInfo
from strawberry.types.field import StrawberryField
from strawberry.types.info import Info

__all__ = ["resolve_simple_fields_directly"]

_SCALAR_ARGUMENTS = {int, str, bool, strawberry.ID}


def resolve_simple_fields_directly(schema: strawberry.Schema) -> int:
    """Replace the resolvers that qualify (see the module docstring); returns how many."""
    replaced = 0
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        for field in graphql_type.fields.values():
            resolver = _direct_resolver(field)
            if resolver is not None:
                field.resolve = resolver
                replaced += 1
    return replaced


def _direct_resolver(field: GraphQLField) -> Callable[..., Any] | None:
    definition = field.extensions.get("strawberry-definition")
    if not isinstance(definition, StrawberryField):
        return None
    if definition.extensions or definition.permission_classes or definition.is_subscription:
        return None
    if getattr(field.resolve, "scope_checked", False):  # resolvers.permissions put it there
        return None
    if getattr(field.resolve, "_is_default", False):
        return _attribute_reader(definition.python_name)
    method = definition.base_resolver
    if method is None or method.root_parameter is not None or method.parent_parameter:
        return None
    if method.self_parameter is None:
        return None
    names: dict[str, str] = {}
    for argument in definition.arguments:
        annotation = argument.type_annotation.annotation if argument.type_annotation else None
        plain = _unwrap_optional(annotation)
        if plain not in _SCALAR_ARGUMENTS:
            return None
        names[argument.graphql_name or _camel(argument.python_name)] = argument.python_name
    function: Callable[..., Any] = method.wrapped_func  # type: ignore[assignment]
    wants_info = method.info_parameter is not None
    info_name = method.info_parameter.name if method.info_parameter is not None else "info"

    def resolve(source: Any, info: GraphQLResolveInfo[Any], **arguments: Any) -> Any:
        keywords = {names[name]: value for name, value in arguments.items()}
        if wants_info:
            keywords[info_name] = Info(_raw_info=info, _field=definition)
        return function(source, **keywords)

    return resolve


def _attribute_reader(name: str) -> Callable[[Any, Any], Any]:
    def read(source: Any, _info: Any) -> Any:
        return getattr(source, name)

    return read


def _unwrap_optional(annotation: Any) -> Any:
    arguments = getattr(annotation, "__args__", None)
    if arguments and type(None) in arguments and len(arguments) == 2:
        return next(a for a in arguments if a is not type(None))
    return annotation


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)
