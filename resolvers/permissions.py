"""Authorization, read from the principal only: the one place where scopes are enforced.

Every root field and mutation declares its scope with a permission class from here; fields that
carry personal data are masked here unless the principal holds `pii:read`. Persisted or not,
every operation runs through these checks (the HTTP layer never skips execution's permissions).
A missing scope is FORBIDDEN with the scope named in `extensions.scope`.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from resolvers.context import Info
from resolvers.principal import Principal

__all__ = [
    "PUBLIC_ROOT_FIELDS",
    "CanReadLedger",
    "CanReadProviders",
    "CanWriteLedger",
    "masked_email",
]

# Root fields that read nothing of any tenant: a persisted query selecting only these may be
# cached publicly on GET. Everything else is tenant-private.
PUBLIC_ROOT_FIELDS: frozenset[str] = frozenset({"__typename"})


class _RequiresScope(BasePermission):
    scope: str

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.principal.require(self.scope)  # raises FORBIDDEN naming the scope
        return True


class CanReadLedger(_RequiresScope):
    scope = "ledger:read"


class CanWriteLedger(_RequiresScope):
    scope = "ledger:write"


class CanReadProviders(_RequiresScope):
    scope = "providers:read"


def masked_email(principal: Principal, email: str | None) -> str | None:
    """`email` for principals with pii:read; else its first letter and domain: 'a***@x.com'."""
    if email is None or principal.has("pii:read"):
        return email
    local, at, domain = email.partition("@")
    return f"{local[:1]}***{at}{domain}"
