"""Errors raised by adapters. Each class carries a stable `code` that clients may act on.

    AdapterError
    ├── InvalidInput            BAD_USER_INPUT (names the offending field)
    ├── NotFound                NOT_FOUND
    ├── Conflict                CONFLICT
    │   ├── IdempotencyMismatch IDEMPOTENCY_KEY_REUSED
    │   └── InvalidTransition   INVALID_STATE_TRANSITION
    ├── Unbalanced              UNBALANCED_TRANSACTION
    ├── CurrencyMismatch        CURRENCY_MISMATCH
    └── InsufficientFunds       INSUFFICIENT_FUNDS (an overdraft guard refused the entries)

SQLAlchemy and provider errors are translated into these inside `adapters/` and never leave it.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "Conflict",
    "CurrencyMismatch",
    "IdempotencyMismatch",
    "InsufficientFunds",
    "InvalidInput",
    "InvalidTransition",
    "NotFound",
    "Unbalanced",
]


class AdapterError(Exception):
    """Base of every expected adapter failure; `message` is safe to show to a client."""

    code = "ADAPTER_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(AdapterError):
    code = "BAD_USER_INPUT"


class NotFound(AdapterError):
    code = "NOT_FOUND"


class Conflict(AdapterError):
    code = "CONFLICT"


class IdempotencyMismatch(Conflict):
    code = "IDEMPOTENCY_KEY_REUSED"


class InvalidTransition(Conflict):
    code = "INVALID_STATE_TRANSITION"


class Unbalanced(AdapterError):
    code = "UNBALANCED_TRANSACTION"


class CurrencyMismatch(AdapterError):
    code = "CURRENCY_MISMATCH"


class InsufficientFunds(AdapterError):
    code = "INSUFFICIENT_FUNDS"
