"""GraphQL over WebSocket at /graphql: the graphql-transport-ws protocol (graphql-ws 5+).

https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md. The client opens with the
`graphql-transport-ws` subprotocol and sends `connection_init` carrying its credential in the
payload (`{"Authorization": "Bearer <JWT or API key>"}`, or `{"X-API-Key": "..."}`, names in
any case), checked as /graphql checks its headers. Then `subscribe` / `next` / `error` /
`complete`, and `ping` / `pong` either way.

Close codes: the protocol's 4400 (bad message), 4401 (subscribe before the ack), 4403
(credential refused), 4406 (subprotocol missing), 4408 (no connection_init in time), 4409
(operation id in use), 4429 (a second connection_init); and ours (gateway.subscriptions):
4429 over the client's connection cap, 1013 subscriber too slow, 1001 server shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gateway.subscriptions import (
    CLOSE_TOO_MANY_CONNECTIONS,
    Connection,
    SubscriptionHub,
    TooManyConnections,
)
from resolvers.errors import GatewayError
from resolvers.principal import Principal

__all__ = ["PROTOCOL", "serve_graphql_ws"]

logger = logging.getLogger("gateway.graphql_ws")

PROTOCOL = "graphql-transport-ws"
_BAD_REQUEST = 4400
_UNAUTHORIZED = 4401
_FORBIDDEN = 4403
_SUBPROTOCOL_NOT_ACCEPTABLE = 4406
_INIT_TIMEOUT = 4408
_SUBSCRIBER_EXISTS = 4409
_TOO_MANY_INITS = 4429
# How long the close frame may wait behind a slow client's unread data.
_CLOSE_SECONDS = 5.0


class _ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _credentials(payload: Any) -> tuple[str | None, str | None]:
    """(Authorization, X-API-Key) from a connection_init payload, names in any case."""
    if payload is None:
        return None, None
    if not isinstance(payload, dict):
        raise _ProtocolError(_BAD_REQUEST, "connection_init payload must be an object")
    values = {str(name).lower(): value for name, value in payload.items()}
    found: list[str | None] = []
    for name in ("authorization", "x-api-key"):
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise _ProtocolError(_BAD_REQUEST, f"{name} must be a string")
        found.append(value)
    return found[0], found[1]


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes."""
    encoded = text.encode()[:123]
    return encoded.decode(errors="ignore")


async def _receive(websocket: WebSocket) -> dict[str, Any]:
    text = await websocket.receive_text()
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _ProtocolError(_BAD_REQUEST, "invalid message: not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise _ProtocolError(_BAD_REQUEST, "invalid message: no type")
    return message


class _Session:
    """One WebSocket after its connection_ack: runs its operations until it ends."""

    def __init__(self, hub: SubscriptionHub, websocket: WebSocket) -> None:
        self._hub = hub
        self._websocket = websocket
        self._operations: dict[str, asyncio.Task[None]] = {}
        self._closing: asyncio.Task[None] | None = None

    async def _send(self, message: dict[str, Any]) -> None:
        await self._websocket.send_text(orjson.dumps(message).decode())

    def end(self, code: int, reason: str) -> None:
        """Close from any task (overflow, shutdown): stop the operations, then close."""
        for task in self._operations.values():
            task.cancel()
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_SECONDS):
                await self._websocket.close(code, _reason(reason))

    async def _operation(self, connection: Connection, id_: str, payload: Any) -> None:
        try:
            async for message in self._hub.run(connection, payload):
                await self._send({"id": id_, "type": message.kind, "payload": message.payload})
                if message.kind == "error":
                    return
            if connection.ended is None:
                await self._send({"id": id_, "type": "complete"})
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the socket went away; the receive loop ends the session
        finally:
            self._operations.pop(id_, None)

    async def serve(self, connection: Connection) -> None:
        """The message loop after the ack; returns when the client or the server closes."""
        limit = self._hub.settings.max_operations_per_connection
        try:
            while connection.ended is None:
                message = await _receive(self._websocket)
                kind = message["type"]
                if kind == "ping":
                    await self._send({"type": "pong"})
                elif kind == "pong":
                    continue
                elif kind == "connection_init":
                    raise _ProtocolError(_TOO_MANY_INITS, "Too many initialisation requests")
                elif kind == "subscribe":
                    id_ = message.get("id")
                    if not isinstance(id_, str) or not id_:
                        raise _ProtocolError(_BAD_REQUEST, "subscribe needs an id")
                    if id_ in self._operations:
                        raise _ProtocolError(
                            _SUBSCRIBER_EXISTS, f"Subscriber for {id_} already exists"
                        )
                    if len(self._operations) >= limit:
                        error = {"message": f"at most {limit} subscriptions per connection",
                                 "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"}}  # fmt: skip
                        await self._send({"id": id_, "type": "error", "payload": [error]})
                        continue
                    task = asyncio.create_task(
                        self._operation(connection, id_, message.get("payload"))
                    )
                    self._operations[id_] = task
                elif kind == "complete":
                    ended = self._operations.pop(str(message.get("id")), None)
                    if ended is not None:
                        ended.cancel()
                else:
                    raise _ProtocolError(_BAD_REQUEST, f"unexpected message type {kind!r}")
        finally:
            for task in list(self._operations.values()):
                task.cancel()
            await asyncio.gather(*self._operations.values(), return_exceptions=True)


async def _initialise(hub: SubscriptionHub, websocket: WebSocket) -> Principal:
    """Wait for connection_init and authenticate its credential."""
    try:
        async with asyncio.timeout(hub.settings.init_timeout_seconds):
            message = await _receive(websocket)
    except TimeoutError:
        raise _ProtocolError(_INIT_TIMEOUT, "Connection initialisation timeout") from None
    if message["type"] == "subscribe":
        raise _ProtocolError(_UNAUTHORIZED, "Unauthorized")
    if message["type"] != "connection_init":
        raise _ProtocolError(_BAD_REQUEST, "the first message must be connection_init")
    authorization, api_key = _credentials(message.get("payload"))
    try:
        return await hub.authenticate(authorization, api_key)
    except GatewayError as error:
        raise _ProtocolError(_FORBIDDEN, f"Forbidden: {error.message}") from None


async def serve_graphql_ws(hub: SubscriptionHub, websocket: WebSocket) -> None:
    """The /graphql WebSocket endpoint."""
    if PROTOCOL not in websocket.scope.get("subprotocols", []):
        await websocket.accept()
        await websocket.close(_SUBPROTOCOL_NOT_ACCEPTABLE, "Subprotocol not acceptable")
        return
    await websocket.accept(subprotocol=PROTOCOL)
    session = _Session(hub, websocket)
    try:
        principal = await _initialise(hub, websocket)
        try:
            with hub.connection(principal, session.end) as connection:
                await websocket.send_text('{"type":"connection_ack"}')
                await session.serve(connection)
        except TooManyConnections as refused:
            raise _ProtocolError(CLOSE_TOO_MANY_CONNECTIONS, refused.message) from None
    except _ProtocolError as error:
        if websocket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(error.code, _reason(error.reason))
        return
    except WebSocketDisconnect:
        return
    if session._closing is not None:
        await session._closing
