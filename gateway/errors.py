"""Gateway errors and the one place where GraphQL errors are shaped and masked.

The error classes themselves live in `resolvers.errors` (below the runtime).
Adapter errors (adapters.errors) and gateway errors pass through with their code and message
(provider errors add `provider`, the provider's `requestId` and `retryable`);
a value of a variable that its type refuses is `BAD_USER_INPUT` naming the variable and the
path inside it (graphql-core reports it before execution);
a database that could not answer now (lost connection, pool timeout, serialization failure,
deadlock) is `SERVICE_UNAVAILABLE` with `retryable: true`;
anything else is masked to a generic message carrying the request id, which the server log
repeats next to the real exception.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from graphql import GraphQLError

from adapters.database_errors import DatabaseUnavailable, is_transient_database_error
from adapters.errors import AdapterError, ProviderError, ProviderRateLimited
from resolvers.errors import GatewayError

__all__ = ["database_unavailable_message", "format_errors"]

logger = logging.getLogger("gateway.errors")

# graphql-core's message for a variable value its type refuses (coerce_variable_values):
# "Variable '$input' has invalid value at .entries[0].amount: <why>".
_VARIABLE_VALUE = re.compile(
    r"Variable '\$(?P<name>[_A-Za-z][_0-9A-Za-z]*)' has invalid (?:default )?value"
    r"(?: at (?P<path>[^:]*))?:"
)
_PATH_INDEX = re.compile(r"\[(\d+)\]")


def database_unavailable_message(request_id: str) -> str:
    return f"The database could not answer now; retry the request (request id {request_id})."


def _variable_field(name: str, path: str | None) -> str:
    """('input', '.entries[0].amount') -> 'input.entries.0.amount'."""
    if not path:
        return name
    return name + _PATH_INDEX.sub(r".\1", path if path.startswith((".", "[")) else "." + path)


def _camel(path: str) -> str:
    """'entries.0.account_id' -> 'entries.0.accountId' (adapters speak snake_case)."""

    def segment(part: str) -> str:
        head, *rest = part.split("_")
        return head + "".join(word.capitalize() for word in rest)

    return ".".join(segment(part) for part in path.split("."))


def _format(error: GraphQLError, request_id: str) -> dict[str, Any]:
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [
            {"line": location.line, "column": location.column} for location in error.locations
        ]
    if error.path:
        formatted["path"] = error.path
    original = error.original_error
    extensions: dict[str, Any]
    variable = None if error.path else _VARIABLE_VALUE.match(error.message)
    if variable is not None:
        # A request error: the document is fine, a value sent with it is not.
        extensions = {
            "code": "BAD_USER_INPUT",
            "field": _variable_field(variable["name"], variable["path"]),
            "variable": variable["name"],
        }
    elif original is None:
        # Raised by graphql-core itself: syntax, validation or variable coercion.
        extensions = dict(error.extensions or {})
        parse_failed = error.message.startswith("Syntax Error")
        extensions.setdefault(
            "code", "GRAPHQL_PARSE_FAILED" if parse_failed else "GRAPHQL_VALIDATION_FAILED"
        )
    elif isinstance(original, AdapterError):
        formatted["message"] = original.message
        extensions = {"code": original.code}
        if original.field is not None:
            extensions["field"] = _camel(original.field)
        if isinstance(original, ProviderError):
            extensions["provider"] = original.provider
            extensions["requestId"] = original.request_id
            extensions["retryable"] = original.retryable
        elif getattr(original, "retryable", False):  # TIMEOUT, LOCK_TIMEOUT
            extensions["retryable"] = True
        if isinstance(original, ProviderRateLimited) and original.retry_after is not None:
            extensions["retryAfterSeconds"] = original.retry_after
        if isinstance(original, DatabaseUnavailable):
            formatted["message"] = database_unavailable_message(request_id)
            extensions |= {"retryable": True, "requestId": request_id}
    elif isinstance(original, GatewayError):
        formatted["message"] = original.message
        extensions = {"code": original.code, **original.extensions}
    elif isinstance(original, GraphQLError):
        return _format(original, request_id) | {
            k: v for k, v in formatted.items() if k != "message"
        }
    elif is_transient_database_error(original):
        # Not a bug: the client may send the same request again. Logged without the driver's
        # text (it may quote parameters).
        logger.warning(
            "database unavailable, request_id=%s path=%s error=%s",
            request_id,
            error.path,
            type(original).__name__,
        )
        formatted["message"] = database_unavailable_message(request_id)
        extensions = {"code": "SERVICE_UNAVAILABLE", "retryable": True, "requestId": request_id}
    else:
        logger.error(
            "unexpected error, request_id=%s path=%s",
            request_id,
            error.path,
            exc_info=(type(original), original, original.__traceback__),
        )
        formatted["message"] = f"Internal server error (request id {request_id})."
        extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    formatted["extensions"] = extensions
    return formatted


def format_errors(errors: list[GraphQLError], request_id: str) -> list[dict[str, Any]]:
    """Shape every error for the response, masking the unexpected ones (and logging them)."""
    return [_format(error, request_id) for error in errors]
