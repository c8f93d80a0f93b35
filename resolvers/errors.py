"""The client-facing error vocabulary that the schema and the runtime both raise.

    GatewayError
    ├── Unauthenticated   UNAUTHENTICATED (HTTP 401)
    ├── Forbidden         FORBIDDEN (names the missing scope)
    └── BadRequest        BAD_REQUEST (HTTP 400: the request is not a GraphQL request)
        └── UnsupportedMediaType   (HTTP 415)

Declared below the runtime so that permission checks never import `gateway`; the one place
where errors are shaped for a response is `gateway.errors.format_errors`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BadRequest", "Forbidden", "GatewayError", "Unauthenticated", "UnsupportedMediaType"]


class GatewayError(Exception):
    """Base of expected gateway failures; `message` is safe to show to a client."""

    code = "GATEWAY_ERROR"
    status_code = 400

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class Unauthenticated(GatewayError):
    code = "UNAUTHENTICATED"
    status_code = 401


class Forbidden(GatewayError):
    code = "FORBIDDEN"
    status_code = 403


class BadRequest(GatewayError):
    code = "BAD_REQUEST"
    status_code = 400


class UnsupportedMediaType(BadRequest):
    status_code = 415
