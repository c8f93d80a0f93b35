"""GraphQL over Server-Sent Events at POST /graphql/stream: graphql-sse's "distinct
connections mode" (https://github.com/enisdenjo/graphql-sse/blob/master/PROTOCOL.md).

One subscription per request: the body is a GraphQL-over-HTTP JSON body, the credential is in
the headers exactly as for /graphql, and `Accept: text/event-stream` is required. The answer
is a stream of `event: next` (each `data:` an execution result) ending with `event: complete`.
Refusals before the stream starts are HTTP errors with the /graphql error body (401, 400, 406,
415, 429 over the client's connection cap). A subscriber that falls too far behind gets one
last `next` with a SUBSCRIBER_TOO_SLOW error, then `complete`; so does every stream at
shutdown (SERVER_SHUTTING_DOWN).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.request_body import read_capped_body
from gateway.subscriptions import CLOSE_TOO_SLOW, Connection, Message, SubscriptionHub
from resolvers.errors import BadRequest, GatewayError, UnsupportedMediaType

__all__ = ["serve_graphql_sse"]

_EVENT_STREAM = "text/event-stream"


class _NotAcceptable(GatewayError):
    code = "NOT_ACCEPTABLE"
    status_code = 406


def _frame(event: str, data: Any) -> bytes:
    body = b"" if data is None else orjson.dumps(data)
    return b"event: " + event.encode() + b"\ndata: " + body + b"\n\n"


def _refusal(error: GatewayError) -> Response:
    headers = {"www-authenticate": "Bearer"} if error.status_code == 401 else {}
    body = {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}
    return JSONResponse(body, status_code=error.status_code, headers=headers)


async def _payload(hub: SubscriptionHub, request: Request) -> Any:
    if _EVENT_STREAM not in request.headers.get("accept", ""):
        raise _NotAcceptable(f"this endpoint answers {_EVENT_STREAM}")
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise UnsupportedMediaType("POST bodies must be application/json")
    body = await read_capped_body(request, hub.services.settings.max_query_bytes * 2)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the request body is not valid JSON") from None


async def _stream(
    hub: SubscriptionHub, connection: Connection, messages: AsyncIterator[Message]
) -> AsyncIterator[bytes]:
    async for message in messages:
        if message.kind == "error":
            yield _frame("next", {"errors": message.payload})
            break
        yield _frame("next", message.payload)
    if connection.ended is not None:
        code, reason = connection.ended
        kind = "SUBSCRIBER_TOO_SLOW" if code == CLOSE_TOO_SLOW else "SERVER_SHUTTING_DOWN"
        yield _frame("next", {"errors": [{"message": reason, "extensions": {"code": kind}}]})
    yield _frame("complete", None)


class _EventStream(StreamingResponse):
    """A streaming response that gives the connection slot back however it ends."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None],
                 request_id: str) -> None:  # fmt: skip
        super().__init__(
            content,
            media_type=_EVENT_STREAM,
            headers={"cache-control": "no-store", "x-request-id": request_id},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def serve_graphql_sse(hub: SubscriptionHub, request: Request) -> Response:
    """The /graphql/stream endpoint."""
    try:
        headers = request.headers
        principal = await hub.authenticate(headers.get("authorization"), headers.get("x-api-key"))
        payload = await _payload(hub, request)
        connection = hub.admit(principal, lambda _code, _reason: None)
    except GatewayError as error:
        return _refusal(error)
    frames = _stream(hub, connection, hub.run(connection, payload))
    return _EventStream(frames, lambda: hub.release(connection), connection.request_id)
