"""Who is calling: the principal record that authentication produces and permissions read.

A plain record declared below the runtime (`gateway.auth` builds it from a verified credential)
so that the schema's permission checks never import `gateway`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.access.clients import ApiClient, ClientKind, OperationPolicy
from resolvers.errors import Forbidden

__all__ = ["JWT_POLICY", "SCOPES", "Principal"]

# Every scope the gateway knows, with what it allows.
SCOPES = {
    "ledger:read": "read customers, ledger accounts, balances, transactions and entries",
    "ledger:write": "post, confirm, void and reverse ledger transactions",
    "providers:read": "read provider data: bank accounts, bank transactions, card payments",
    "pii:read": "read personal data unmasked (customer email addresses)",
    "audit:read": "read the tenant's audit trail (unmasked personal-data reads and postings)",
    "reconciliation:read": "read reconciliation results: processor payouts against the ledger "
    "and bank credits",
}
# Signed-in users (frontends, analysts): ad-hoc text and APQ allowed, introspection on.
JWT_POLICY = OperationPolicy(
    apq_enabled=True, allow_text=True, safelist_required=False, introspection=True
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: always taken from a verified credential, never from a header.

    `client_id` is set for API clients (their registered documents are theirs alone) and None
    for JWT principals.
    """

    subject: str
    tenant_id: int
    scopes: frozenset[str]
    kind: ClientKind = "first_party"
    client_id: int | None = None
    policy: OperationPolicy = field(default=JWT_POLICY)
    # The client's own budgets (gateway.cost, gateway.rate_limits); None: its kind's default.
    max_cost: int | None = None
    rate_limit: int | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        """Raise Forbidden naming `scope` unless the principal holds it."""
        if scope not in self.scopes:
            raise Forbidden(f"this operation needs the {scope!r} scope", scope=scope)

    @classmethod
    def of_client(cls, client: ApiClient) -> Principal:
        return cls(
            subject=f"client:{client.id}",
            tenant_id=client.tenant_id,
            scopes=client.scopes,
            kind=client.kind,
            client_id=client.id,
            policy=client.policy,
            max_cost=client.max_cost,
            rate_limit=client.rate_limit,
        )
