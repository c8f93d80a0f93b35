"""Customer type and the customer/customers root fields."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import strawberry

import resolvers.ledger_transactions  # noqa: F401  (registers TransactionStatus first)
from adapters import records
from resolvers.analytics_arguments import (
    AccountIds,
    FromDay,
    GroupBy,
    Statuses,
    SummaryInterval,
    ToDay,
)
from resolvers.analytics_enums import Dimension, Interval
from resolvers.context import Info
from resolvers.cost_directives import BANK_ACCOUNTS_COST, CARD_PAYMENTS_COST, PAGE, ListSize
from resolvers.node import ENTITY_KEY, Node, encode_global_id, pk_of
from resolvers.pagination import (
    After,
    Connection,
    First,
    check_first,
    decode_cursor,
    encode_cursor,
    make_connection,
)
from resolvers.permissions import PII_READ, masked_email

if TYPE_CHECKING:
    from resolvers.analytics import BankSpend, LedgerSummaryGroup
    from resolvers.banking import BankAccount
    from resolvers.cards import CardPayment
    from resolvers.ledger_accounts import LedgerAccount
    from resolvers.risk import CardRiskSummary

__all__ = ["Customer", "CustomerQuery"]

strawberry.enum(
    records.CustomerKind,
    name="CustomerKind",
    description="Whether a customer is a person or a company.",
)

_ACCOUNTS = Annotated["LedgerAccount", strawberry.lazy("resolvers.ledger_accounts")]
_BANK_ACCOUNT = Annotated["BankAccount", strawberry.lazy("resolvers.banking")]
_CARD_PAYMENT = Annotated["CardPayment", strawberry.lazy("resolvers.cards")]
_SUMMARY_GROUP = Annotated["LedgerSummaryGroup", strawberry.lazy("resolvers.analytics")]
_BANK_SPEND = Annotated["BankSpend", strawberry.lazy("resolvers.analytics")]
_RISK_SUMMARY = Annotated["CardRiskSummary", strawberry.lazy("resolvers.risk")]


@strawberry.type(
    directives=[ENTITY_KEY], description="A customer of the tenant: a person or a business."
)
class Customer(Node):
    pk: strawberry.Private[int]
    email_address: strawberry.Private[str | None]
    kind: records.CustomerKind = strawberry.field(description="Individual or business.")
    display_name: str = strawberry.field(description="Name to show for the customer.")
    created_at: dt.datetime = strawberry.field(description="When the customer was created.")

    @classmethod
    def from_record(cls, record: records.Customer) -> Customer:
        return cls(
            id=encode_global_id("Customer", record.id),
            pk=record.id,
            email_address=record.email,
            kind=record.kind,
            display_name=record.display_name,
            created_at=record.created_at,
        )

    @strawberry.field(
        description=(
            "The customer's email address; masked ('a***@example.com') unless the caller holds "
            "the pii:read scope. Null when none is on file."
        )
    )
    def email(self, info: Info) -> str | None:
        context = info.context
        if context.audit is not None and context.principal.has(PII_READ):
            # An unmasked read: one audit event per customer, written at the end of the request.
            context.audit.record("read", "Customer", self.pk, "email")
        return masked_email(context.principal, self.email_address)

    @strawberry.field(
        directives=[PAGE],
        description=(
            "The customer's ledger accounts, oldest first. `first` is at most the server's "
            "page cap (100 by default)."
        ),
    )
    async def ledger_accounts(
        self, info: Info, first: First = 20, after: After = None
    ) -> Connection[_ACCOUNTS]:
        from resolvers.ledger_accounts import LedgerAccount

        context = info.context
        limit = check_first(first, context.max_page_size)
        after_id = decode_cursor("a", after, 1)[0] if after is not None else 0
        page = await context.ledger.ledger_accounts_by_customer_id(limit, after_id).load(self.pk)
        count_loader = context.ledger.ledger_account_count_by_customer_id
        return make_connection(
            page.items,
            page.has_next_page,
            LedgerAccount.from_record,
            lambda account: encode_cursor("a", account.id),
            count=lambda: count_loader.load(self.pk),
        )

    @strawberry.field(
        directives=[BANK_ACCOUNTS_COST, ListSize(assumed_size=5)],
        description=(
            "The customer's accounts at their banks, from every banking provider, as last "
            "synced; needs the providers:read scope (else null with FORBIDDEN). Null, with an "
            "error naming the provider (extensions.code, provider, retryable), when the "
            "provider failed, or PROVIDER_REAUTH_REQUIRED when a first sync found the customer "
            "must log in or renew their consent; the rest of the response still arrives."
        ),
    )
    async def bank_accounts(self, info: Info) -> list[_BANK_ACCOUNT] | None:
        from resolvers.banking import bank_accounts_of

        return await bank_accounts_of(info, self.pk)

    @strawberry.field(
        directives=[CARD_PAYMENTS_COST, PAGE],
        description=(
            "The customer's card payments at the card processor, newest first; `first` is at "
            "most the page cap. Needs the providers:read scope (else null with FORBIDDEN). "
            "Null, with an error naming the provider (extensions.code, "
            "provider, retryable), when the processor failed and no recent copy was cached; "
            "the rest of the response still arrives."
        ),
    )
    async def card_payments(
        self, info: Info, first: First = 20, after: After = None
    ) -> Connection[_CARD_PAYMENT] | None:
        from resolvers.cards import card_payments_of

        return await card_payments_of(info, self.pk, first, after)

    @strawberry.field(
        description=(
            "Sums and counts of the entries of the customer's ledger accounts effective on "
            "days `from`..`to` (UTC, both included; by default this month to date), grouped by "
            "`groupBy` and always by currency; `interval` is the PERIOD grouping. By default "
            "PENDING and POSTED entries count. At most the page cap of groups per page."
        )
    )
    async def ledger_summary(
        self,
        info: Info,
        first_day: FromDay = None,
        last_day: ToDay = None,
        group_by: GroupBy = [Dimension.PERIOD],  # noqa: B006 (read only)
        interval: SummaryInterval = Interval.MONTH,
        statuses: Statuses = None,
        account_ids: AccountIds = None,
        first: First = 100,
        after: After = None,
    ) -> Connection[_SUMMARY_GROUP]:
        from resolvers.analytics import _summary_filter, ledger_summary

        which = _summary_filter(
            info, first_day, last_day, group_by, interval, statuses, account_ids
        )
        return await ledger_summary(info, self.pk, which, first, after)

    @strawberry.field(
        description=(
            "Money out of the customer's bank accounts by month and category, from the synced "
            "bank transactions (posted ones) dated `from`..`to` (both included; by default the "
            "last 12 months to date). Needs the providers:read scope (else null with "
            "FORBIDDEN)."
        )
    )
    async def bank_spend(
        self,
        info: Info,
        first_day: FromDay = None,
        last_day: ToDay = None,
    ) -> list[_BANK_SPEND] | None:
        from resolvers.analytics import bank_spend

        return await bank_spend(info, self.pk, first_day, last_day)

    @strawberry.field(
        description=(
            "The customer's card payments over the last `windowDays` days (1-365) as the risk "
            "rules saw them when each was recorded: counts, declines, disputes and the rules "
            "that fired. Needs the providers:read scope (else null with FORBIDDEN)."
        )
    )
    async def risk_summary(
        self,
        info: Info,
        window_days: Annotated[
            int, strawberry.argument(description="Days up to now that the summary covers (1-365).")
        ] = 30,
    ) -> _RISK_SUMMARY | None:
        from resolvers.risk import customer_risk_summary

        return await customer_risk_summary(info, self.pk, window_days)


@strawberry.type
class CustomerQuery:
    @strawberry.field(
        description="One customer by global id; null when it does not exist in your tenant.",
    )
    async def customer(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The customer's global id.")],
    ) -> Customer | None:
        pk = pk_of("Customer", id)
        record = None if pk is None else await info.context.ledger.customer_by_id.load(pk)
        return None if record is None else Customer.from_record(record)

    @strawberry.field(
        directives=[PAGE],
        description="The tenant's customers, oldest first, at most the page cap per page.",
    )
    async def customers(
        self, info: Info, first: First = 20, after: After = None
    ) -> Connection[Customer]:
        context = info.context
        limit = check_first(first, context.max_page_size)
        after_id = decode_cursor("c", after, 1)[0] if after is not None else 0
        page = await context.ledger.customers_page(limit, after_id)
        return make_connection(
            page.items,
            page.has_next_page,
            Customer.from_record,
            lambda customer: encode_cursor("c", customer.id),
            count=context.ledger.customer_count,
        )
