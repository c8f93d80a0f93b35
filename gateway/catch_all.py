"""The last line: an exception that escapes a route becomes a masked JSON error, never a
plain-text 500.

Errors during GraphQL execution are shaped by `gateway.errors.format_errors`; this catches
what fails outside it (the database down while an API key is looked up, a store failing while
a persisted document is resolved). The database not answering is 503 `SERVICE_UNAVAILABLE`
with `retryable: true` (and `Retry-After`); anything else is 500 `INTERNAL_SERVER_ERROR`. Both
carry the request id, which the log repeats next to the real exception. If the response had
already started, nothing can be sent any more: the exception is logged and the connection
closed by the server.
"""

from __future__ import annotations

import logging
import os

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.database_errors import is_transient_database_error
from gateway.errors import database_unavailable_message

__all__ = ["CatchAllMiddleware", "new_request_id", "request_id_of", "send_masked_error"]

logger = logging.getLogger("gateway.catch_all")

_RETRY_AFTER_SECONDS = 1


def new_request_id() -> str:
    """A fresh request id: 32 random hex digits, like `uuid4().hex` without building a UUID
    (a few microseconds on every request)."""
    return os.urandom(16).hex()


def request_id_of(scope: Scope) -> str:
    """The request's `X-Request-Id` (at most 64 characters), or a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            return value.decode("latin-1")[:64] or new_request_id()
    return new_request_id()


class CatchAllMiddleware:
    """Pure ASGI middleware: HTTP exceptions become masked JSON errors with a request id."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._app(scope, receive, tracking_send)
        except Exception as error:
            request_id = request_id_of(scope)
            if started:
                logger.exception("error after the response started, request_id=%s", request_id)
                raise
            await send_masked_error(error, request_id, send)


async def send_masked_error(error: Exception, request_id: str, send: Send) -> None:
    """Answer an unexpected `error` masked: 503 when the database did not answer, else 500;
    the real exception goes to the log only."""
    headers = [(b"x-request-id", request_id.encode()), (b"cache-control", b"no-store")]
    if is_transient_database_error(error):
        logger.warning(
            "database unavailable outside execution, request_id=%s error=%s",
            request_id,
            type(error).__name__,
        )
        status = 503
        entry = {
            "message": database_unavailable_message(request_id),
            "extensions": {"code": "SERVICE_UNAVAILABLE", "retryable": True,
                           "requestId": request_id},
        }  # fmt: skip
        headers.append((b"retry-after", str(_RETRY_AFTER_SECONDS).encode()))
    else:
        logger.error(
            "unexpected error outside execution, request_id=%s",
            request_id,
            exc_info=(type(error), error, error.__traceback__),
        )
        status = 500
        entry = {
            "message": f"Internal server error (request id {request_id}).",
            "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        }
    body = orjson.dumps({"errors": [entry]})
    headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
