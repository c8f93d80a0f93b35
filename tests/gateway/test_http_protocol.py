"""One write per response: what one turn of the event loop writes leaves in one piece, a
streamed body still leaves turn by turn, and a real uvicorn server answers through it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.http_protocol import CoalescingHttpToolsProtocol, _CoalescingTransport


class _Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("peer", name) if name == "peername" else default


async def test_writes_of_one_loop_turn_leave_in_one_write() -> None:
    real = _Recorder()
    transport = _CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"")
    transport.write(b"ok")
    assert real.writes == []  # nothing before the turn ends
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert real.writes[1:] == [b"next"]  # a later turn: its own write
    assert transport.get_extra_info("peername") == ("peer", "peername")  # the rest delegates


async def test_close_flushes_what_is_pending_first() -> None:
    real = _Recorder()
    transport = _CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert real.writes == [b"last words"]
    assert real.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left and writes nothing
    assert real.writes == [b"last words"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def small(_request: Request) -> Response:
        return Response(b"x" * 100, media_type="text/plain")

    async def stream(_request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for index in range(3):
                yield f"chunk {index}\n".encode()
                await asyncio.sleep(0.05)

        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(routes=[Route("/small", small), Route("/stream", stream)])
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=CoalescingHttpToolsProtocol, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_a_real_server_answers_keeps_connections_and_streams(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as http:
        for _ in range(3):  # one kept-alive connection, several answers
            response = await http.get("/small")
            assert response.status_code == 200
            assert response.content == b"x" * 100
        arrived: list[tuple[float, str]] = []
        async with http.stream("GET", "/stream") as streamed:
            async for line in streamed.aiter_lines():
                arrived.append((asyncio.get_running_loop().time(), line))
        assert [line for _, line in arrived] == ["chunk 0", "chunk 1", "chunk 2"]
        # chunks arrive as they are produced, not held until the response ends
        assert arrived[-1][0] - arrived[0][0] >= 0.08
