"""Banking sandbox fixtures: the sandbox in-process and over real HTTP, a Plaid adapter wired
to it, and checking of every request and response against Plaid's OpenAPI spec.

Import these names into a test module's namespace (conftest.py does so for tests/adapters/
banking). The spec is pinned in tests/specs; a missing spec fails the tests that need it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.validators import V30RequestBodyValidator
from openapi_core.validation.response.validators import V30ResponseDataValidator
from starlette.types import Receive, Scope, Send

from adapters.banking import ProviderCredentials, create_banking_provider
from adapters.banking.plaid import PlaidProvider
from adapters.crypto import SecretText
from adapters.sandbox.banking_app import SANDBOX_CLIENT_ID, SANDBOX_SECRET, BankingSandbox
from tests.fixtures.specs import SPECS_DIR, load_spec

__all__ = [
    "PlaidSpec",
    "banking_sandbox",
    "banking_transport",
    "plaid",
    "plaid_spec",
    "sandbox_http_server",
]

PLAID_SPEC_PATH = SPECS_DIR / "plaid-2020-09-14.yml"
_SPEC_HOST = "https://sandbox.plaid.com"


@dataclass
class _SpecRequest:
    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters


@dataclass
class _SpecResponse:
    status_code: int
    headers: dict[str, str]
    content_type: str
    data: bytes | None


class PlaidSpec:
    """Plaid's OpenAPI spec (loaded once per session): checks request bodies and response data.

    Security (Plaid's header keys) is not checked: our adapter sends client_id and secret in
    the body, as the spec also allows. Unknown properties pass (the spec allows them)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._openapi = OpenAPI.from_dict(
            spec,
            config=Config(
                spec_validator_cls=None,
                request_validator_cls=V30RequestBodyValidator,
                response_validator_cls=V30ResponseDataValidator,
            ),
        )
        self.checked: list[str] = []

    def _request(self, request: httpx.Request) -> _SpecRequest:
        return _SpecRequest(
            host_url=_SPEC_HOST,
            path=request.url.path,
            method=request.method.lower(),
            body=request.content,
            content_type=request.headers.get("content-type", ""),
            parameters=RequestParameters(),
        )

    def check(self, request: httpx.Request, response: httpx.Response) -> None:
        """Raise when the request body or a 200 response's data breaks the spec."""
        spec_request = self._request(request)
        self._openapi.validate_request(spec_request)
        if response.status_code == 200:
            self._openapi.validate_response(
                spec_request,
                _SpecResponse(
                    status_code=response.status_code,
                    headers=dict(response.headers),
                    content_type=response.headers.get("content-type", ""),
                    data=response.content,
                ),
            )
        self.checked.append(request.url.path)


@pytest.fixture(scope="session")
def plaid_spec() -> PlaidSpec:
    return PlaidSpec(load_spec(PLAID_SPEC_PATH.name))


class _CurrentApp:
    """The session's HTTP server serves whichever sandbox the running test installed."""

    def __init__(self) -> None:
        self.sandbox: BankingSandbox | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        assert self.sandbox is not None, "no sandbox installed"
        await self.sandbox.app(scope, receive, send)


@dataclass
class SandboxServer:
    url: str
    current: _CurrentApp


@pytest.fixture(scope="session")
async def sandbox_http_server() -> AsyncIterator[SandboxServer]:
    """uvicorn on 127.0.0.1 at a free port, for the whole session."""
    current = _CurrentApp()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(current, lifespan="off", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield SandboxServer(f"http://127.0.0.1:{port}", current)
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
def banking_sandbox() -> BankingSandbox:
    return BankingSandbox()


@pytest.fixture(params=["in_process", "http"])
def banking_transport(request: pytest.FixtureRequest) -> str:
    transport: str = request.param
    return transport


@pytest.fixture
async def sandbox_client(
    banking_sandbox: BankingSandbox, banking_transport: str, sandbox_http_server: SandboxServer
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client reaching `banking_sandbox` in-process or over real HTTP."""
    if banking_transport == "in_process":
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=banking_sandbox.app),
            base_url="http://plaid-sandbox",
        )
    else:
        sandbox_http_server.current.sandbox = banking_sandbox
        client = httpx.AsyncClient(base_url=sandbox_http_server.url, timeout=5.0)
    async with client:
        yield client


@pytest.fixture
def plaid(sandbox_client: httpx.AsyncClient, plaid_spec: PlaidSpec) -> PlaidProvider:
    """The Plaid adapter on the sandbox, every exchange checked against the spec."""

    async def check(response: httpx.Response) -> None:
        await response.aread()
        plaid_spec.check(response.request, response)

    sandbox_client.event_hooks["response"] = [check]
    provider = create_banking_provider(
        "plaid",
        sandbox_client,
        ProviderCredentials(SANDBOX_CLIENT_ID, SecretText(SANDBOX_SECRET)),
    )
    assert isinstance(provider, PlaidProvider)
    return provider
