"""For analysts: balances back in time, balance history, statements and aggregates.

Days are UTC calendar days and ranges of days include both ends. A balance "at" a time counts
the entries effective at or before it, each with its status as the ledger stands now (a pending
entry later posted counts as posted from its effective time; a voided one never counts).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Annotated

import strawberry

# Registered first: CustomerKind and TransactionStatus (with their descriptions) are named below.
import resolvers.customers
import resolvers.ledger_transactions  # noqa: F401
from adapters import records
from adapters.banking.spend import BankSpend as BankSpendRecord
from adapters.errors import InvalidInput, ProviderUnavailable
from adapters.ledger.history import Counters, StatementTotals
from adapters.ledger.periods import periods
from adapters.ledger.summary import SummaryFilter, SummaryGroup
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
from resolvers.ledger_accounts import LedgerBalance
from resolvers.money import Money
from resolvers.node import pk_of
from resolvers.pagination import (
    After,
    Connection,
    First,
    check_first,
    decode_cursor,
    decode_time_cursor,
    encode_cursor,
    encode_time_cursor,
    make_connection,
)

if TYPE_CHECKING:
    from resolvers.ledger_transactions import LedgerEntry

__all__ = [
    "AnalyticsQuery",
    "BankSpend",
    "LedgerBalancePoint",
    "LedgerStatement",
    "LedgerSummaryGroup",
    "balance_at",
    "balance_history",
    "bank_spend",
    "ledger_summary",
    "statement",
]

# A year of days with room to spare; more periods than this is BAD_USER_INPUT.
MAX_PERIODS = 1000

_ENTRY = Annotated["LedgerEntry", strawberry.lazy("resolvers.ledger_transactions")]


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def day_range(
    first: dt.date | None, last: dt.date | None, *, months: int = 1
) -> tuple[dt.date, dt.date]:
    """The range asked for; by default up to today, from the first day of the month `months`
    - 1 months before `last`. BAD_USER_INPUT naming `from` when it is after `to`."""
    last = last or _today()
    if first is None:
        month = last.year * 12 + last.month - 1 - (months - 1)
        first = dt.date(month // 12, month % 12 + 1, 1)
    if first > last:
        raise InvalidInput("from must not be after to", field="from")
    return first, last


def _balance(account: records.LedgerAccount, counters: Counters) -> LedgerBalance:
    return LedgerBalance(
        _account=dataclasses.replace(
            account,
            posted_debits=counters.posted_debits,
            posted_credits=counters.posted_credits,
            pending_debits=counters.pending_debits,
            pending_credits=counters.pending_credits,
        )
    )


def _money(minor_units: int, account: records.LedgerAccount) -> Money:
    return Money.of(minor_units, account.currency, account.currency_exponent)


# -- balances back in time -------------------------------------------------------------------


@strawberry.type(description="An account's balances at the close of one period.")
class LedgerBalancePoint:
    period_start: dt.date = strawberry.field(
        description="First day of the period (the range's first day for a clipped period)."
    )
    period_end: dt.date = strawberry.field(
        description="Last day of the period (the range's last day for a clipped period)."
    )
    closing: LedgerBalance = strawberry.field(
        description="Balances from the entries effective before the day after `periodEnd`."
    )


async def balance_at(
    info: Info, account: records.LedgerAccount, as_of: dt.datetime | None
) -> LedgerBalance:
    if as_of is None:
        return LedgerBalance(_account=account)
    counters = await info.context.ledger.analytics.counters_as_of(as_of).load(account.id)
    return _balance(account, counters or Counters())


async def balance_history(
    info: Info,
    account: records.LedgerAccount,
    first: dt.date | None,
    last: dt.date | None,
    interval: Interval,
) -> list[LedgerBalancePoint]:
    first, last = day_range(first, last)
    if len(periods(first, last, interval)) > MAX_PERIODS:
        raise InvalidInput(f"at most {MAX_PERIODS} periods per history", field="from")
    loader = info.context.ledger.analytics.balance_history(first, last, interval)
    points = await loader.load(account.id) or []
    return [
        LedgerBalancePoint(
            period_start=span.first, period_end=span.last, closing=_balance(account, counters)
        )
        for span, counters in points
    ]


# -- statements ------------------------------------------------------------------------------


@strawberry.type(
    description=(
        "Sums of an account's entries in a statement's period, in the account's currency. "
        "Voided entries are not counted."
    )
)
class LedgerStatementTotals:
    _account: strawberry.Private[records.LedgerAccount]
    _movements: strawberry.Private[Counters]

    @strawberry.field(description="Debits, posted and pending.")
    def debits(self) -> Money:
        m = self._movements
        return _money(m.posted_debits + m.pending_debits, self._account)

    @strawberry.field(description="Credits, posted and pending.")
    def credits(self) -> Money:
        m = self._movements
        return _money(m.posted_credits + m.pending_credits, self._account)

    @strawberry.field(description="Posted debits.")
    def posted_debits(self) -> Money:
        return _money(self._movements.posted_debits, self._account)

    @strawberry.field(description="Posted credits.")
    def posted_credits(self) -> Money:
        return _money(self._movements.posted_credits, self._account)

    @strawberry.field(description="Debits still pending.")
    def pending_debits(self) -> Money:
        return _money(self._movements.pending_debits, self._account)

    @strawberry.field(description="Credits still pending.")
    def pending_credits(self) -> Money:
        return _money(self._movements.pending_credits, self._account)


@strawberry.type(
    description=(
        "An account's statement for days `from`..`to` (UTC, both included): opening balances "
        "(entries effective before `from`), the period's entries and their totals, closing "
        "balances (entries effective before the day after `to`). Opening plus the period's "
        "debits and credits, signed by the normal balance, is the closing."
    )
)
class LedgerStatement:
    _account: strawberry.Private[records.LedgerAccount]
    _totals: strawberry.Private[StatementTotals]
    first: dt.date = strawberry.field(name="from", description="First day of the period.")
    last: dt.date = strawberry.field(name="to", description="Last day of the period.")

    @strawberry.field(description="Balances at the start of `from`.")
    def opening(self) -> LedgerBalance:
        return _balance(self._account, self._totals.opening)

    @strawberry.field(description="Balances at the end of `to`.")
    def closing(self) -> LedgerBalance:
        return _balance(self._account, self._totals.closing)

    @strawberry.field(description="Sums of the period's entries.")
    def totals(self) -> LedgerStatementTotals:
        return LedgerStatementTotals(_account=self._account, _movements=self._totals.movements)

    @strawberry.field(
        description=(
            "The period's entries, oldest first (by effective time), voided ones left out. "
            "`first` is at most the server's page cap."
        )
    )
    async def entries(
        self, info: Info, first: First = 20, after: After = None
    ) -> Connection[_ENTRY]:
        from resolvers.ledger_transactions import LedgerEntry

        context = info.context
        limit = check_first(first, context.max_page_size)
        cursor = None if after is None else decode_time_cursor("se", after)
        loader = context.ledger.analytics.statement_entries(self.first, self.last, limit, cursor)
        page = await loader.load(self._account.id)
        return make_connection(
            page.items,
            page.has_next_page,
            LedgerEntry.from_record,
            lambda entry: encode_time_cursor("se", entry.effective_at, entry.id),
        )


async def statement(
    info: Info, account: records.LedgerAccount, first: dt.date | None, last: dt.date | None
) -> LedgerStatement:
    first, last = day_range(first, last)
    totals = await info.context.ledger.analytics.statement_totals(first, last).load(account.id)
    return LedgerStatement(
        _account=account,
        _totals=totals or StatementTotals(Counters(), Counters()),
        first=first,
        last=last,
    )


# -- aggregates ------------------------------------------------------------------------------


@strawberry.type(
    description=(
        "Sums and counts of the entries in one group. Group keys not grouped by are null; "
        "`currency` is always a key, so amounts never mix currencies."
    )
)
class LedgerSummaryGroup:
    _group: strawberry.Private[SummaryGroup]
    currency: str = strawberry.field(description="ISO 4217 code of every amount in the group.")
    period_start: dt.date | None = strawberry.field(
        description="First day of the period (grouped by PERIOD), else null."
    )
    account_name: str | None = strawberry.field(
        description="Name of the accounts (grouped by ACCOUNT_NAME), else null."
    )
    customer_kind: records.CustomerKind | None = strawberry.field(
        description=(
            "Kind of the accounts' customer (grouped by CUSTOMER_KIND; null also for accounts "
            "of no customer), else null."
        )
    )
    direction: records.Direction | None = strawberry.field(
        description="DEBIT or CREDIT (grouped by DIRECTION), else null."
    )
    status: records.TransactionStatus | None = strawberry.field(
        description="PENDING or POSTED (grouped by STATUS), else null."
    )
    debit_count: int = strawberry.field(description="Number of debit entries.")
    credit_count: int = strawberry.field(description="Number of credit entries.")

    @strawberry.field(description="Sum of the debit entries.")
    def debits(self) -> Money:
        group = self._group
        return Money.of(group.debits, group.currency, group.currency_exponent)

    @strawberry.field(description="Sum of the credit entries.")
    def credits(self) -> Money:
        group = self._group
        return Money.of(group.credits, group.currency, group.currency_exponent)

    @strawberry.field(description="Number of entries.")
    def entry_count(self) -> int:
        return self._group.debit_count + self._group.credit_count

    @classmethod
    def from_record(cls, group: SummaryGroup) -> LedgerSummaryGroup:
        return cls(
            _group=group,
            currency=group.currency,
            period_start=group.period_start,
            account_name=group.account_name,
            customer_kind=group.customer_kind,
            direction=group.direction,
            status=group.status,
            debit_count=group.debit_count,
            credit_count=group.credit_count,
        )


def _summary_filter(
    info: Info,
    first_day: dt.date | None,
    last_day: dt.date | None,
    group_by: list[Dimension],
    interval: Interval,
    statuses: list[records.TransactionStatus] | None,
    account_ids: list[strawberry.ID] | None,
) -> SummaryFilter:
    first_day, last_day = day_range(first_day, last_day)
    pks = None
    if account_ids is not None:
        if len(account_ids) > info.context.max_page_size:
            raise InvalidInput(
                f"at most {info.context.max_page_size} account ids", field="accountIds"
            )
        found = (pk_of("LedgerAccount", i) for i in account_ids)
        pks = tuple(sorted({pk for pk in found if pk is not None}))
    chosen = frozenset(statuses) if statuses is not None else None
    if chosen is not None and not chosen:
        raise InvalidInput("statuses must name at least one status", field="statuses")
    return SummaryFilter(
        first=first_day,
        last=last_day,
        group_by=frozenset(group_by),
        interval=interval,
        account_ids=pks,
        **({"statuses": chosen} if chosen is not None else {}),
    )


async def ledger_summary(
    info: Info,
    customer_pk: int | None,
    which: SummaryFilter,
    first: int,
    after: str | None,
) -> Connection[LedgerSummaryGroup]:
    context = info.context
    limit = check_first(first, context.max_page_size)
    offset = decode_cursor("ls", after, 1)[0] if after is not None else 0
    analytics = context.ledger.analytics
    if customer_pk is None:
        page = await analytics.summary(which, limit, offset)
    else:
        page = await analytics.summary_by_customer_id(which, limit, offset).load(customer_pk)
    positions = {id(group): offset + n + 1 for n, group in enumerate(page.items)}
    return make_connection(
        page.items,
        page.has_next_page,
        LedgerSummaryGroup.from_record,
        lambda group: encode_cursor("ls", positions[id(group)]),
    )


_SUMMARY_DESCRIPTION = (
    "Sums and counts of ledger entries effective on days `from`..`to` (UTC, both included; by "
    "default this month to date), grouped by `groupBy` and always by currency; `interval` is "
    "the PERIOD grouping. By default PENDING and POSTED entries count (`statuses`); "
    "`accountIds` keeps only those accounts. Groups come in a stable order, at most the page "
    "cap per page."
)


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(description=_SUMMARY_DESCRIPTION + " Over every account of your tenant.")
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
    ) -> Connection[LedgerSummaryGroup]:
        which = _summary_filter(
            info, first_day, last_day, group_by, interval, statuses, account_ids
        )
        return await ledger_summary(info, None, which, first, after)


# -- bank spend ------------------------------------------------------------------------------


@strawberry.type(
    description=(
        "Money out of a customer's bank accounts in one month and category (synced bank "
        "transactions, posted only), in one currency."
    )
)
class BankSpend:
    month: dt.date = strawberry.field(description="First day of the month.")
    category: str | None = strawberry.field(
        description="The provider's primary category; null when uncategorized."
    )
    amount: Money = strawberry.field(description="Total spent (positive).")
    count: int = strawberry.field(description="Number of transactions.")

    @classmethod
    def from_record(cls, record: BankSpendRecord) -> BankSpend:
        return cls(
            month=record.month,
            category=record.category,
            amount=Money.of(record.amount, record.currency, record.currency_exponent),
            count=record.count,
        )


async def bank_spend(
    info: Info, customer_pk: int, first: dt.date | None, last: dt.date | None
) -> list[BankSpend]:
    first, last = day_range(first, last, months=12)
    banking = info.context.banking
    if banking is None:
        raise ProviderUnavailable("bank data is not configured", provider="banking")
    spent = await banking.bank_spend_by_customer_id(first, last).load(customer_pk)
    return [BankSpend.from_record(record) for record in spent]
