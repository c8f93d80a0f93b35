"""Resource caps on a request: variables (bytes, nesting, list lengths), document tokens and
list literals. Depth, alias and query-byte limits are the older `Settings.max_query_depth`,
`max_aliases` and `max_query_bytes` (validation rules and the size cap of gateway.http).

Configured by `LimitSettings` (from the environment: `load_limit_settings`), enforced by
`RequestLimits` at one point of the request path (gateway.http, "Order of checks" in the
README): variables right after the request is read, tokens and list literals when the document
is parsed (once per distinct document: the parse cache keeps the verdict).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import DocumentNode, GraphQLError, ListValueNode, Visitor, parse, visit

from gateway.env_values import integer
from resolvers.errors import BadRequest

__all__ = ["LimitExceeded", "LimitSettings", "RequestLimits", "load_limit_settings"]


class LimitExceeded(BadRequest):
    """A request over one of the resource caps; `extensions.limit` names which."""

    code = "LIMIT_EXCEEDED"


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Caps beyond depth, aliases and query bytes (those stay on Settings)."""

    # Lexical tokens of a document (graphql-core's parse(max_tokens=)): bounds parse cost.
    max_tokens: int = 5_000
    # Size of the variables, as compact JSON, and how deeply objects and lists nest in them.
    max_variables_bytes: int = 64_000
    max_variables_depth: int = 10
    # Items of any list given as an argument, in the variables or as a literal in the document.
    max_list_length: int = 100


def _cap(env: Mapping[str, str], name: str, default: int) -> int:
    # These caps have always read an empty value as their default.
    return integer(env, name, default, minimum=1, empty_is_default=True)


def load_limit_settings(env: Mapping[str, str]) -> LimitSettings:
    defaults = LimitSettings()
    return LimitSettings(
        max_tokens=_cap(env, "MAX_TOKENS", defaults.max_tokens),
        max_variables_bytes=_cap(env, "MAX_VARIABLES_BYTES", defaults.max_variables_bytes),
        max_variables_depth=_cap(env, "MAX_VARIABLES_DEPTH", defaults.max_variables_depth),
        max_list_length=_cap(env, "MAX_LIST_LENGTH", defaults.max_list_length),
    )


class _LongestList(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.longest = 0

    def enter_list_value(self, node: ListValueNode, *_args: Any) -> None:
        self.longest = max(self.longest, len(node.values))


def _depth_and_longest_list(value: Any) -> tuple[int, int]:
    """Nesting depth of objects/lists in a JSON value, and its longest list (iteratively)."""
    depth = longest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, level = stack.pop()
        if isinstance(current, dict):
            depth = max(depth, level)
            stack.extend((item, level + 1) for item in current.values())
        elif isinstance(current, list):
            depth = max(depth, level)
            longest = max(longest, len(current))
            stack.extend((item, level + 1) for item in current)
    return depth, longest


class RequestLimits:
    """The caps of `LimitSettings`, checked on a request's variables and document."""

    def __init__(self, settings: LimitSettings) -> None:
        self.settings = settings

    def check_variables(self, variables: dict[str, Any] | None) -> None:
        """Raise LimitExceeded when the variables are too large (as compact JSON), too deep
        or hold a long list."""
        if not variables:
            return
        settings = self.settings
        size = len(orjson.dumps(variables))
        if size > settings.max_variables_bytes:
            raise LimitExceeded(
                f"the variables are larger than {settings.max_variables_bytes} bytes",
                limit="variablesBytes",
            )
        # The variables object itself is level 1.
        depth, longest = _depth_and_longest_list(variables)
        if depth > settings.max_variables_depth:
            raise LimitExceeded(
                f"the variables nest deeper than {settings.max_variables_depth} levels",
                limit="variablesDepth",
            )
        if longest > settings.max_list_length:
            raise LimitExceeded(
                f"a list in the variables has more than {settings.max_list_length} items",
                limit="listLength",
            )

    def parse(self, text: str) -> DocumentNode | None:
        """The parsed document; None when it is not valid GraphQL (execution reports the
        syntax error). Raises LimitExceeded over the token cap or with a long list literal."""
        settings = self.settings
        try:
            document = parse(text, max_tokens=settings.max_tokens)
        except GraphQLError as error:
            if "Document contains more than" in error.message:
                raise LimitExceeded(
                    f"the document has more than {settings.max_tokens} tokens", limit="tokens"
                ) from None
            return None
        lists = _LongestList()
        visit(document, lists)
        if lists.longest > settings.max_list_length:
            raise LimitExceeded(
                f"a list in the document has more than {settings.max_list_length} items",
                limit="listLength",
            )
        return document
