"""Banking adapter fixtures: sandbox in-process and over HTTP, spec-checked Plaid adapter."""

from tests.adapters.banking.sandbox_fixtures import (  # noqa: F401
    banking_sandbox,
    banking_transport,
    plaid,
    plaid_spec,
    sandbox_client,
    sandbox_http_server,
)
