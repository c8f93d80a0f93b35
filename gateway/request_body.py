"""Request bodies read with a cap, for every route that reads one (/graphql POST, webhooks).

`Content-Length`, when sent, is checked before a byte is read; the body is then streamed and
counted, so a chunked body (or one longer than it claimed) is cut off as soon as it passes the
cap. Past the cap nothing more is read: the caller answers 413 with `PayloadTooLarge`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive

from resolvers.errors import BadRequest, GatewayError

__all__ = ["PayloadTooLarge", "error_body", "read_capped", "read_capped_body"]


class PayloadTooLarge(GatewayError):
    code = "PAYLOAD_TOO_LARGE"
    status_code = 413


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {max_bytes} bytes", maxBytes=max_bytes)


async def read_capped_body(request: Request, max_bytes: int) -> bytes:
    """The whole body when it is at most `max_bytes` long; raises PayloadTooLarge (413) as soon
    as it is known to be longer, and BadRequest for a `Content-Length` that is not a length."""
    return await _read(request.headers.get("content-length"), request.stream(), max_bytes)


async def read_capped(content_length: str | None, receive: Receive, max_bytes: int) -> bytes:
    """As `read_capped_body`, straight from an ASGI `receive` and the `Content-Length` header's
    value (the GraphQL endpoint's own reading, without a Starlette Request); raises
    starlette's ClientDisconnect when the client goes away mid-body."""
    _check_declared(content_length, max_bytes)
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        # The usual case, the whole body in one message: no stream to set up.
        body: bytes = message.get("body", b"")
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
        return body
    return await _read(None, _chunks(receive, message), max_bytes)


async def _chunks(receive: Receive, message: Message) -> AsyncIterator[bytes]:
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
        message = await receive()


def _check_declared(declared: str | None, max_bytes: int) -> None:
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError:
        raise BadRequest("Content-Length must be a number of bytes") from None
    if length < 0:
        raise BadRequest("Content-Length must be a number of bytes")
    if length > max_bytes:
        raise _too_large(max_bytes)


async def _read(declared: str | None, chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    _check_declared(declared, max_bytes)
    first = b""
    body: bytearray | None = None
    async for chunk in chunks:
        if body is None and not first:
            first = chunk  # one chunk: no copy
        else:
            if body is None:
                body = bytearray(first)
            body += chunk
        if len(first if body is None else body) > max_bytes:
            raise _too_large(max_bytes)
    return first if body is None else bytes(body)


def error_body(error: GatewayError) -> dict[str, Any]:
    """A coded error as a response body: `{"errors": [{"message", "extensions": {"code"}}]}`."""
    extensions = {"code": error.code, **error.extensions}
    return {"errors": [{"message": error.message, "extensions": extensions}]}
