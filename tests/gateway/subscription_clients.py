"""Real clients of the subscription transports: graphql-transport-ws over `websockets` (the
client uvicorn already installs) and GraphQL over SSE through httpx, against a real server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["SseStream", "WsClient", "open_sse", "open_ws"]

TIMEOUT = 10.0


class WsClient:
    """One graphql-transport-ws connection."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(orjson.dumps(message).decode())

    async def receive(self, within: float = TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(within):
            message: dict[str, Any] = orjson.loads(await self.connection.recv())
        return message

    async def init(self, credential: str | None) -> dict[str, Any]:
        """connection_init with `Authorization: Bearer <credential>`; the server's answer."""
        payload = {} if credential is None else {"Authorization": f"Bearer {credential}"}
        await self.send({"type": "connection_init", "payload": payload})
        return await self.receive()

    async def subscribe(
        self, id_: str, query: str, variables: dict[str, Any] | None = None, **extra: Any
    ) -> None:
        payload = {"query": query, "variables": variables or {}, **extra}
        await self.send({"id": id_, "type": "subscribe", "payload": payload})

    async def closed_with(self, within: float = TIMEOUT) -> tuple[int, str]:
        """Read until the server closes; its close code and reason."""
        try:
            async with asyncio.timeout(within):
                while True:
                    await self.connection.recv()
        except ConnectionClosed as closed:
            frame = closed.rcvd
        if frame is None:
            raise AssertionError("the connection ended without a close frame")
        return frame.code, frame.reason


@asynccontextmanager
async def open_ws(
    ws_url: str,
    *,
    subprotocol: str | None = "graphql-transport-ws",
    receive_buffer: int | None = None,
    max_queue: int = 16,
) -> AsyncIterator[WsClient]:
    """A client of `ws_url`. `receive_buffer`: a small kernel receive buffer (bytes), so that
    a client that stops reading holds the server up quickly."""
    sock = None
    if receive_buffer is not None:
        host, port = ws_url.split("//", 1)[1].split("/", 1)[0].split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    async with connect(
        ws_url,
        subprotocols=None if subprotocol is None else [subprotocol],  # type: ignore[list-item]
        compression=None,
        proxy=None,
        max_queue=max_queue,
        sock=sock,
        open_timeout=TIMEOUT,
        close_timeout=1,
    ) as connection:
        yield WsClient(connection)


class SseStream:
    """The events of one GraphQL-over-SSE response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def event(self, within: float = TIMEOUT) -> tuple[str, Any]:
        """The next (event, decoded data); data None for an empty `data:`."""
        name, data = "", ""
        async with asyncio.timeout(within):
            async for line in self._lines:
                if line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data:"):
                    data = line[len("data:") :].strip()
                elif line == "" and name:
                    return name, orjson.loads(data) if data else None
        raise AssertionError("the stream ended without another event")


@asynccontextmanager
async def open_sse(
    base_url: str, credential: str, query: str, variables: dict[str, Any] | None = None
) -> AsyncIterator[SseStream]:
    headers = {"authorization": f"Bearer {credential}", "accept": "text/event-stream"}
    body = {"query": query, "variables": variables or {}}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT, trust_env=False) as client,
        client.stream("POST", "/graphql/stream", json=body, headers=headers) as response,
    ):
        yield SseStream(response)
