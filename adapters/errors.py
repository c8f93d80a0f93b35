"""Errors raised by adapters. Each class carries a stable `code` that clients may act on.

    AdapterError
    ├── InvalidInput            BAD_USER_INPUT (names the offending field)
    ├── NotFound                NOT_FOUND
    ├── Conflict                CONFLICT
    │   ├── IdempotencyMismatch IDEMPOTENCY_KEY_REUSED
    │   └── InvalidTransition   INVALID_STATE_TRANSITION
    ├── Unbalanced              UNBALANCED_TRANSACTION
    ├── CurrencyMismatch        CURRENCY_MISMATCH
    ├── InsufficientFunds       INSUFFICIENT_FUNDS (an overdraft guard refused the entries)
    ├── DeadlineExceeded        TIMEOUT (the caller's deadline passed before the work finished)
    ├── LockTimeout             LOCK_TIMEOUT (a row lock was not granted in time; retryable)
    └── ProviderError           a third-party provider failed (names provider and request id)
        ├── ProviderUnavailable     PROVIDER_UNAVAILABLE (5xx, timeout, connection; retryable)
        ├── ProviderRateLimited     PROVIDER_RATE_LIMITED (429; retryable after `retry_after`)
        ├── ProviderReauthRequired  PROVIDER_REAUTH_REQUIRED (the user must log in again)
        └── ProviderRejected        PROVIDER_REJECTED (the provider refused the request; 4xx)

SQLAlchemy and provider errors are translated into these inside `adapters/` and never leave it.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "Conflict",
    "CurrencyMismatch",
    "DeadlineExceeded",
    "IdempotencyMismatch",
    "InsufficientFunds",
    "InvalidInput",
    "InvalidTransition",
    "LockTimeout",
    "NotFound",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderReauthRequired",
    "ProviderRejected",
    "ProviderUnavailable",
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


class DeadlineExceeded(AdapterError):
    """The work was cancelled at its deadline (a statement timeout, a cancelled call)."""

    code = "TIMEOUT"
    retryable = True


class LockTimeout(AdapterError):
    """A write waited longer than its lock timeout for a row another write holds."""

    code = "LOCK_TIMEOUT"
    retryable = True


class ProviderError(AdapterError):
    """A provider call failed. `message` is ours and safe to show; provider bodies never are.

    `provider` is the registered provider name, `request_id` the provider's id of the failed
    request (for support tickets), `provider_code` the provider's own error code when it sent
    one, and `retryable` whether the same call may succeed later unchanged.
    """

    code = "PROVIDER_ERROR"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        request_id: str | None = None,
        provider_code: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.request_id = request_id
        self.provider_code = provider_code
        if retryable is not None:
            self.retryable = retryable


class ProviderUnavailable(ProviderError):
    code = "PROVIDER_UNAVAILABLE"
    retryable = True


class ProviderRateLimited(ProviderError):
    """The provider asked us to slow down; `retry_after` seconds when it said how long."""

    code = "PROVIDER_RATE_LIMITED"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        request_id: str | None = None,
        provider_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, provider=provider, request_id=request_id, provider_code=provider_code
        )
        self.retry_after = retry_after


class ProviderReauthRequired(ProviderError):
    code = "PROVIDER_REAUTH_REQUIRED"


class ProviderRejected(ProviderError):
    code = "PROVIDER_REJECTED"
