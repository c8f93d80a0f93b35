"""The seam every banking aggregator adapter implements (Plaid-shaped first).

Calls take the link's provider secret (a Plaid access token) as SecretText, decrypted by the
caller just before the call and never kept. Failures raise the adapters.errors provider
classes: ProviderUnavailable (5xx, timeouts), ProviderRateLimited, ProviderReauthRequired
(the user must log in at the bank again) and ProviderRejected (anything else refused).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

from adapters.banking.records import AccountSet, Institution, TransactionUpdates
from adapters.crypto import SecretText

__all__ = ["BankingProvider", "BankingProviderFactory", "ProviderCredentials", "RevocableAccess"]


@dataclass(frozen=True, slots=True)
class ProviderCredentials:
    """Our own credentials at a provider (not a customer's): Plaid's client id and secret."""

    client_id: str
    secret: SecretText


@runtime_checkable
class RevocableAccess(Protocol):
    """A provider that can revoke a link's access upstream (Plaid's /item/remove): optional,
    checked with isinstance by the data-subject erasure (adapters.privacy)."""

    async def revoke_access(self, access_token: SecretText) -> None:
        """Invalidate `access_token` and the provider's item behind it; raises the
        adapters.errors provider classes when the provider refuses or fails."""
        ...


class BankingProvider(Protocol):
    """A banking aggregator: accounts, live balances, institutions and a transaction feed."""

    @property
    def name(self) -> str:
        """The registered provider name, as stored in `provider_links.provider`."""
        ...

    async def get_accounts(self, access_token: SecretText) -> AccountSet:
        """Accounts with the provider's cached balances (cheap; what sync stores)."""
        ...

    async def get_live_balances(
        self, access_token: SecretText, account_ids: Sequence[str] | None = None
    ) -> AccountSet:
        """Accounts with balances fetched from the bank now (slow, rate limited): only for
        an explicit live-balance request."""
        ...

    async def get_institution(
        self, institution_id: str, country_codes: Sequence[str] = ("US",)
    ) -> Institution: ...

    async def sync_transactions(
        self, access_token: SecretText, cursor: str | None
    ) -> TransactionUpdates:
        """Every change since `cursor` (None: from the beginning), as one complete delta."""
        ...


# A factory builds a provider from an HTTP client (base URL, transport and the resilience
# layer already set on it) and our credentials; registered in adapters.banking.
BankingProviderFactory = Callable[[httpx.AsyncClient, ProviderCredentials], BankingProvider]
