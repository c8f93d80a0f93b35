"""Bank data types: BankAccount with balances and its transactions, and the accounts field.

Bank data is synced from the banking provider into the gateway's tables and served from there;
`fetchedAt` says when the provider last reported it. Transaction amounts are signed: positive is
money into the account, negative money out, whatever the provider's convention.
"""

from __future__ import annotations

import datetime as dt

import strawberry

from adapters.banking import records
from adapters.errors import InvalidInput, ProviderUnavailable
from resolvers.context import Info
from resolvers.cost_directives import BANK_TRANSACTIONS_COST, FREE, PAGE
from resolvers.money import Money
from resolvers.node import encode_global_id
from resolvers.pagination import (
    Connection,
    check_first,
    decode_cursor,
    encode_cursor,
    make_connection,
)

__all__ = ["BankAccount", "BankInstitution", "BankTransaction", "bank_accounts_of"]

strawberry.enum(records.ConnectionStatus, name="BankConnectionStatus",
                description="Whether the link to the customer's bank works.")  # fmt: skip


@strawberry.type(
    directives=[FREE],
    description="Balances of a bank account as the provider last reported them (minor units).",
)
class BankBalances:
    current: Money | None = strawberry.field(
        description=(
            "Current balance (for credit and loan accounts: the amount owed); null when the "
            "provider has no figure."
        )
    )
    available: Money | None = strawberry.field(
        description="Available to spend or withdraw; null when the provider has no figure."
    )
    limit: Money | None = strawberry.field(
        description="Credit limit (credit accounts); null for other accounts."
    )
    as_of: dt.datetime = strawberry.field(description="When the provider reported these.")


@strawberry.type(description="A transaction on a bank account, synced from the provider.")
class BankTransaction:
    id: strawberry.ID = strawberry.field(description="Opaque id of the transaction.")
    provider_transaction_id: str = strawberry.field(
        description="The provider's id of the transaction."
    )
    amount: Money = strawberry.field(
        description="Signed amount: positive is money in, negative is money out."
    )
    date: dt.date = strawberry.field(description="Posting date (or expected one, if pending).")
    authorized_date: dt.date | None = strawberry.field(
        description="When the transaction was authorized; null when the provider has no date."
    )
    name: str = strawberry.field(description="Description as shown on the statement.")
    merchant_name: str | None = strawberry.field(
        description="Merchant, when the provider recognized one."
    )
    category: list[str] = strawberry.field(
        description="The provider's category, most general first; empty when uncategorized."
    )
    is_pending: bool = strawberry.field(description="True until the transaction posts.")

    @classmethod
    def from_record(cls, record: records.BankTransaction) -> BankTransaction:
        return cls(
            id=encode_global_id("BankTransaction", record.id or 0),
            provider_transaction_id=record.provider_transaction_id,
            amount=Money.of(record.amount, record.currency, record.exponent),
            date=record.date,
            authorized_date=record.authorized_date,
            name=record.name,
            merchant_name=record.merchant_name,
            category=list(record.category),
            is_pending=record.is_pending,
        )


def _money(amount: int | None, balances: records.BankBalances) -> Money | None:
    return None if amount is None else Money.of(amount, balances.currency, balances.exponent)


@strawberry.type(
    directives=[FREE],
    description="The bank or credit union holding an account, as the provider names it.",
)
class BankInstitution:
    id: strawberry.ID = strawberry.field(
        description=(
            "The provider's institution id (Plaid: ins_109508; Open Banking: the bank's "
            "x-fapi-financial-id); not a node id."
        )
    )
    name: str | None = strawberry.field(
        description=(
            "The institution's name as of the last sync; null when looking it up at the "
            "provider failed (a later sync tries again)."
        )
    )

    @classmethod
    def from_record(cls, record: records.BankAccount) -> BankInstitution | None:
        if record.institution_id is None:
            return None
        return cls(id=strawberry.ID(record.institution_id), name=record.institution_name)


@strawberry.type(description="An account at the customer's bank, linked through a provider.")
class BankAccount:
    id: strawberry.ID = strawberry.field(description="Opaque id of the bank account.")
    pk: strawberry.Private[int]
    provider: str = strawberry.field(
        description=(
            'The banking provider: "plaid" (an aggregator) or "obuk" (a UK Open Banking bank).'
        )
    )
    fetched_at: dt.datetime = strawberry.field(
        description="When the provider last reported this account (its last sync)."
    )
    name: str = strawberry.field(description="Account name given by the bank or the customer.")
    official_name: str | None = strawberry.field(description="The bank's official name.")
    mask: str | None = strawberry.field(
        description="Last 2-4 digits of the account number; never more."
    )
    type: str = strawberry.field(
        description="Provider's account type (depository, credit, loan, investment ...)."
    )
    subtype: str | None = strawberry.field(
        description="Provider's account subtype (checking, savings, credit card ...)."
    )
    institution: BankInstitution | None = strawberry.field(
        description=(
            "The institution holding the account, as of the last sync; null when the provider "
            "did not say which."
        )
    )
    balances: BankBalances = strawberry.field(description="Balances at the last sync.")
    connection_status: records.ConnectionStatus = strawberry.field(
        description="LOGIN_REQUIRED: the customer must log in to their bank again for updates."
    )

    @classmethod
    def from_record(cls, record: records.BankAccount) -> BankAccount:
        balances = record.balances
        return cls(
            id=encode_global_id("BankAccount", record.id or 0),
            pk=record.id or 0,
            provider=record.provider or "",
            fetched_at=record.as_of,
            name=record.name,
            official_name=record.official_name,
            mask=record.mask,
            type=record.type,
            subtype=record.subtype,
            institution=BankInstitution.from_record(record),
            balances=BankBalances(
                current=_money(balances.current, balances),
                available=_money(balances.available, balances),
                limit=_money(balances.limit, balances),
                as_of=record.as_of,
            ),
            connection_status=record.connection_status,
        )

    @strawberry.field(
        directives=[BANK_TRANSACTIONS_COST, PAGE],
        description=(
            "The account's transactions, newest first, dated within [since, until] (both "
            "inclusive, each optional). `first` is at most the page cap."
        ),
    )
    async def transactions(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        since: dt.date | None = None,
        until: dt.date | None = None,
    ) -> Connection[BankTransaction]:
        context = info.context
        limit = check_first(first, context.max_page_size)
        if since is not None and until is not None and since > until:
            raise InvalidInput("since must not be after until", field="since")
        cursor = None
        if after is not None:
            ordinal, pk = decode_cursor("bt", after, 2)
            if not 1 <= ordinal <= dt.date.max.toordinal():
                raise InvalidInput("after is not a cursor of this list", field="after")
            cursor = (dt.date.fromordinal(ordinal), pk)
        if context.banking is None:
            raise ProviderUnavailable("bank data is not configured", provider="banking")
        if limit == 0:
            return make_connection([], False, BankTransaction.from_record, lambda _: "")
        loader = context.banking.bank_transactions_by_account_id(limit, cursor, since, until)
        page = await loader.load(self.pk)
        return make_connection(
            page.items,
            page.has_next_page,
            BankTransaction.from_record,
            lambda item: encode_cursor("bt", item.date.toordinal(), item.id or 0),
        )


async def bank_accounts_of(info: Info, customer_pk: int) -> list[BankAccount]:
    """A customer's bank accounts (raises the provider's error if a first sync failed)."""
    banking = info.context.banking
    if banking is None:
        raise ProviderUnavailable("bank data is not configured", provider="banking")
    accounts = await banking.bank_accounts_by_customer_id.load(customer_pk)
    return [BankAccount.from_record(account) for account in accounts]
