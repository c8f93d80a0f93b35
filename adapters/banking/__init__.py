"""Banking providers behind one protocol, and a registry of them by name: "plaid" (a
Plaid-shaped aggregator) and "obuk" (a UK Open Banking ASPSP).

A second provider needs only its own module and one `register_banking_provider` line below::

    provider = create_banking_provider("plaid", http_client, ProviderCredentials(...))
"""

from __future__ import annotations

import httpx

from adapters.banking.protocol import BankingProvider, BankingProviderFactory, ProviderCredentials

__all__ = [
    "BankingProvider",
    "ProviderCredentials",
    "banking_provider_names",
    "create_banking_provider",
    "register_banking_provider",
]

_FACTORIES: dict[str, BankingProviderFactory] = {}


def register_banking_provider(name: str, factory: BankingProviderFactory) -> None:
    """Make `name` available to `create_banking_provider`; a name registers once."""
    if name in _FACTORIES and _FACTORIES[name] is not factory:
        raise ValueError(f"banking provider {name!r} is already registered")
    _FACTORIES[name] = factory


def banking_provider_names() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def create_banking_provider(
    name: str, http_client: httpx.AsyncClient, credentials: ProviderCredentials
) -> BankingProvider:
    """Build the provider registered as `name` on `http_client` (whose base URL is set)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise LookupError(f"no banking provider named {name!r}") from None
    return factory(http_client, credentials)


def _register_builtin_providers() -> None:
    from adapters.banking.openbanking import OpenBankingProvider
    from adapters.banking.plaid import PlaidProvider

    register_banking_provider(PlaidProvider.provider_name, PlaidProvider)
    register_banking_provider(OpenBankingProvider.provider_name, OpenBankingProvider)


_register_builtin_providers()
