"""Frozen records of bank data: what a banking provider returns and what our tables hold.

Sign convention (ours, for every provider): a transaction's `amount` is signed integer minor
units from the account holder's point of view — **positive is money in** (a deposit, a
refund), **negative is money out** (a purchase, a withdrawal). Plaid reports the opposite
(positive = outflow); its adapter flips the sign. Balances are not flipped: they are the
provider's figures in minor units (for credit and loan accounts `current` is the amount owed).

Numbers only ever show as `mask` (the last 2-4 digits); full account or routing numbers are
never fetched, stored or returned.

Records read back from our tables carry our row ids (`id`, `provider_link_id`, `customer_id`);
records straight from a provider leave them None.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "AccountSet",
    "BankAccount",
    "BankBalances",
    "BankTransaction",
    "ConnectionStatus",
    "Institution",
    "SyncResult",
    "TransactionUpdates",
]


class ConnectionStatus(StrEnum):
    """The state of a customer's link to a provider (`provider_links.status`)."""

    ACTIVE = "active"
    LOGIN_REQUIRED = "login_required"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class BankBalances:
    """Balances in integer minor units of `currency` (None when the provider has no figure)."""

    current: int | None
    available: int | None
    limit: int | None
    currency: str
    exponent: int


@dataclass(frozen=True, slots=True)
class BankAccount:
    """One account at a bank. `type`/`subtype` are the provider's open vocabularies
    (Plaid: depository/checking, credit/credit card, loan/mortgage ...).

    Read back from our tables, it names the link's institution as of the last sync:
    `institution_id` is None when the provider did not say which, `institution_name` is None
    also when looking the name up failed. Straight from a provider both are None (the
    institution is the item's: AccountSet.institution_id).
    """

    provider_account_id: str
    name: str
    official_name: str | None
    mask: str | None
    type: str
    subtype: str | None
    balances: BankBalances
    as_of: dt.datetime
    connection_status: ConnectionStatus = ConnectionStatus.ACTIVE
    id: int | None = None
    customer_id: int | None = None
    provider_link_id: int | None = None
    provider: str | None = None
    institution_id: str | None = None
    institution_name: str | None = None


@dataclass(frozen=True, slots=True)
class AccountSet:
    """The accounts of one provider item (a login at one institution)."""

    item_id: str
    institution_id: str | None
    accounts: tuple[BankAccount, ...]


@dataclass(frozen=True, slots=True)
class Institution:
    institution_id: str
    name: str
    country_codes: tuple[str, ...]
    url: str | None
    primary_color: str | None
    products: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BankTransaction:
    """A bank transaction; `amount` is signed minor units, positive = money in (see module).

    A posted transaction that replaces a pending one names it in `pending_transaction_id`.
    `category` is the provider's primary and detailed category, most general first.
    `reference` is the payment reference the bank reported, if any (see tables.py).
    """

    provider_transaction_id: str
    provider_account_id: str
    amount: int
    currency: str
    exponent: int
    date: dt.date
    authorized_date: dt.date | None
    name: str
    merchant_name: str | None
    category: tuple[str, ...]
    is_pending: bool
    pending_transaction_id: str | None
    reference: str | None = None
    id: int | None = None
    bank_account_id: int | None = None
    customer_id: int | None = None
    provider_link_id: int | None = None


@dataclass(frozen=True, slots=True)
class TransactionUpdates:
    """A complete delta from a provider's transaction feed, from one cursor to `next_cursor`.

    Only a complete set (the provider said there is no more) is ever returned, so applying it
    and then storing `next_cursor` is safe. `pages` counts the pages fetched for it and
    `restarts` how often pagination began again because the data changed underneath.
    """

    added: tuple[BankTransaction, ...]
    modified: tuple[BankTransaction, ...]
    removed: tuple[str, ...]
    accounts: tuple[BankAccount, ...]
    next_cursor: str
    pages: int
    restarts: int


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync of one provider link did to our tables.

    `is_superseded`: another sync of the same link committed first, so this one wrote nothing
    (its delta was already applied). A link that needs the user to log in again reports
    LOGIN_REQUIRED with nothing applied.
    """

    provider_link_id: int
    accounts_upserted: int
    added: int
    modified: int
    removed: int
    cursor: str | None
    pages: int
    restarts: int
    connection_status: ConnectionStatus
    is_superseded: bool = False
