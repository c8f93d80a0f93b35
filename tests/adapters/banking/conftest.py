"""Banking adapter fixtures: sandboxes in-process and over HTTP, spec-checked Plaid and Open
Banking adapters."""

from tests.adapters.banking.obuk_fixtures import (  # noqa: F401
    obuk,
    obuk_client,
    obuk_sandbox,
    obuk_spec,
)
from tests.adapters.banking.sandbox_fixtures import (  # noqa: F401
    banking_sandbox,
    banking_transport,
    plaid,
    plaid_spec,
    sandbox_client,
    sandbox_http_server,
)
