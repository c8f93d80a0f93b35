"""Gateway errors and the one place where GraphQL errors are shaped and masked.

The error classes themselves live in `resolvers.errors` (below the runtime).
Adapter errors (adapters.errors) and gateway errors pass through with their code and message
(provider errors add `provider`, the provider's `requestId` and `retryable`);
anything else is masked to a generic message carrying the request id, which the server log
repeats next to the real exception.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from adapters.errors import AdapterError, ProviderError, ProviderRateLimited
from resolvers.errors import GatewayError

__all__ = ["format_errors"]

logger = logging.getLogger("gateway.errors")


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
    if original is None:
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
        if isinstance(original, ProviderRateLimited) and original.retry_after is not None:
            extensions["retryAfterSeconds"] = original.retry_after
    elif isinstance(original, GatewayError):
        formatted["message"] = original.message
        extensions = {"code": original.code, **original.extensions}
    elif isinstance(original, GraphQLError):
        return _format(original, request_id) | {
            k: v for k, v in formatted.items() if k != "message"
        }
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
