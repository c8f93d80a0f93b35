"""Headless Chromium driven over the DevTools protocol, for the GraphiQL browser test.

Chromium comes from the system (Debian's `chromium`; `.ci/run` installs it); CHROMIUM names
another binary. The protocol is spoken over the `websockets` client that uvicorn already
brings, so the suite needs no browser-automation package and no browser download.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

__all__ = ["Page", "chromium_path", "open_page"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when none is installed."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return shutil.which(configured) or configured
    return next(filter(None, map(shutil.which, _CANDIDATES)), None)


class Page:
    """One browser tab: navigate, evaluate JavaScript, type and press keys."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await self._connection.send(json.dumps({"id": message_id, "method": method,
                                                "params": params}))  # fmt: skip
        while True:
            message = json.loads(await self._connection.recv())
            if message.get("id") != message_id:
                continue  # an event
            if "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete' && location.href === " +
                            json.dumps(url))  # fmt: skip

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, attempts: int = 300) -> Any:
        """The first truthy value of `expression`, polled every 50 ms (at most `attempts`)."""
        for _ in range(attempts):
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        shown = await self.evaluate("document.body ? document.body.innerHTML.slice(0, 2000) : ''")
        raise AssertionError(f"never true in the page: {expression}\npage: {shown}")

    async def type_text(self, text: str) -> None:
        await self.send("Input.insertText", text=text)

    async def select_all(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                modifiers=2,
                key="a",
                code="KeyA",
                windowsVirtualKeyCode=65,
                commands=["selectAll"],
            )


@contextlib.asynccontextmanager
async def open_page(binary: str, profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium with a fresh profile, and its first tab."""
    process = await asyncio.create_subprocess_exec(
        binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--no-default-browser-check", "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        endpoint = ""
        while not endpoint:
            line = await asyncio.wait_for(process.stderr.readline(), timeout=60)
            if not line:
                raise RuntimeError("Chromium exited before it opened its DevTools endpoint")
            text = line.decode(errors="replace").strip()
            if text.startswith("DevTools listening on "):
                endpoint = text.removeprefix("DevTools listening on ")
        http_base = "http://" + endpoint.removeprefix("ws://").split("/", 1)[0]
        async with httpx.AsyncClient() as client:
            targets = (await client.get(f"{http_base}/json/list")).json()
        page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with connect(page_url, max_size=None) as connection:
            page = Page(connection)
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            yield page
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(ProcessLookupError):
                await asyncio.wait_for(process.wait(), timeout=30)
