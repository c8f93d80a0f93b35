"""Scope checks, read from the principal only. Every root field declares its scope here."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from gateway.context import Info

__all__ = ["CanReadLedger", "CanWriteLedger"]


class _RequiresScope(BasePermission):
    scope: str

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.principal.require(self.scope)  # raises FORBIDDEN naming the scope
        return True


class CanReadLedger(_RequiresScope):
    scope = "ledger:read"


class CanWriteLedger(_RequiresScope):
    scope = "ledger:write"
