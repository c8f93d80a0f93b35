"""Open Banking sandbox fixtures: the ASPSP sandbox in-process and over real HTTP, an `obuk`
adapter wired to it, and checking of every request and response against the Account and
Transaction API 4.0 spec pinned in tests/specs.

Import these names into a test module's namespace (conftest.py does so for tests/adapters/
banking).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.validators import V30RequestParametersValidator
from openapi_core.validation.response.validators import V30ResponseValidator
from werkzeug.datastructures import Headers, ImmutableMultiDict

from adapters.banking import ProviderCredentials, create_banking_provider
from adapters.banking.openbanking import OpenBankingProvider
from adapters.crypto import SecretText
from adapters.sandbox.openbanking_app import (
    OB_BASE_PATH,
    OB_SANDBOX_CLIENT_TOKEN,
    OB_SANDBOX_FINANCIAL_ID,
    OpenBankingSandbox,
)
from tests.adapters.banking.sandbox_fixtures import SandboxServer
from tests.fixtures.specs import SPECS_DIR, load_spec

__all__ = ["OBUK_SPEC_PATH", "ObukSpec", "obuk", "obuk_client", "obuk_sandbox", "obuk_spec"]

OBUK_SPEC_PATH = SPECS_DIR / "obuk-account-info-4.0.0.yaml"
_SPEC_HOST = "https://aspsp.example"


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
    headers: Headers
    content_type: str
    data: bytes | None


class ObukSpec:
    """The OB Account and Transaction spec (loaded once per session): checks each request's
    parameters (path, query, headers such as Authorization) and each response's status, headers
    and body, errors included. OAuth2 security itself is not checked (the sandbox does)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._openapi = OpenAPI.from_dict(
            spec,
            config=Config(
                spec_validator_cls=None,
                request_validator_cls=V30RequestParametersValidator,
                response_validator_cls=V30ResponseValidator,
            ),
        )
        self.checked: list[tuple[str, int]] = []

    def check(self, request: httpx.Request, response: httpx.Response) -> None:
        """Raise when the request or the response breaks the spec."""
        spec_request = _SpecRequest(
            host_url=_SPEC_HOST,
            path=request.url.path,
            method=request.method.lower(),
            body=request.content or None,
            content_type=request.headers.get("content-type", ""),
            parameters=RequestParameters(
                query=ImmutableMultiDict(request.url.params.multi_items()),
                header=Headers(list(request.headers.items())),
            ),
        )
        self._openapi.validate_request(spec_request)
        content_type = response.headers.get("content-type", "")
        self._openapi.validate_response(
            spec_request,
            _SpecResponse(
                status_code=response.status_code,
                headers=Headers(list(response.headers.items())),
                content_type=content_type or "application/json",
                data=response.content or None,
            ),
        )
        self.checked.append((request.url.path, response.status_code))


@pytest.fixture(scope="session")
def obuk_spec() -> ObukSpec:
    return ObukSpec(load_spec(OBUK_SPEC_PATH.name))


@pytest.fixture
def obuk_sandbox() -> OpenBankingSandbox:
    return OpenBankingSandbox()


@pytest.fixture
async def obuk_client(
    obuk_sandbox: OpenBankingSandbox,
    banking_transport: str,
    sandbox_http_server: SandboxServer,
    obuk_spec: ObukSpec,
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client reaching `obuk_sandbox` in-process or over real HTTP, every exchange
    checked against the spec."""

    async def check(response: httpx.Response) -> None:
        await response.aread()
        obuk_spec.check(response.request, response)

    if banking_transport == "in_process":
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=obuk_sandbox.app),
            base_url="http://obuk-sandbox" + OB_BASE_PATH,
        )
    else:
        sandbox_http_server.current.sandbox = obuk_sandbox  # type: ignore[assignment]
        client = httpx.AsyncClient(base_url=sandbox_http_server.url + OB_BASE_PATH, timeout=5.0)
    client.event_hooks["response"] = [check]
    async with client:
        yield client


@pytest.fixture
def obuk(obuk_client: httpx.AsyncClient) -> OpenBankingProvider:
    """The `obuk` adapter on the sandbox (spec-checked through `obuk_client`)."""
    provider = create_banking_provider(
        "obuk",
        obuk_client,
        ProviderCredentials(OB_SANDBOX_FINANCIAL_ID, SecretText(OB_SANDBOX_CLIENT_TOKEN)),
    )
    assert isinstance(provider, OpenBankingProvider)
    return provider
