"""LedgerAccount and LedgerBalance, and the ledgerAccount root field."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import strawberry

from adapters import records
from resolvers.analytics_arguments import FromDay, HistoryInterval, ToDay
from resolvers.analytics_enums import Interval
from resolvers.context import Info
from resolvers.cost_directives import FREE, PAGE
from resolvers.money import Money
from resolvers.node import ENTITY_KEY, Node, encode_global_id, pk_of
from resolvers.pagination import (
    After,
    Connection,
    First,
    check_first,
    decode_time_cursor,
    encode_time_cursor,
    make_connection,
)

if TYPE_CHECKING:
    from resolvers.analytics import LedgerBalancePoint, LedgerStatement
    from resolvers.ledger_transactions import LedgerEntry

__all__ = ["LedgerAccount", "LedgerAccountQuery", "LedgerBalance"]

strawberry.enum(
    records.Direction,
    name="Direction",
    description="Side of a double-entry posting: DEBIT or CREDIT.",
)

_ENTRY = Annotated["LedgerEntry", strawberry.lazy("resolvers.ledger_transactions")]
_POINT = Annotated["LedgerBalancePoint", strawberry.lazy("resolvers.analytics")]
_STATEMENT = Annotated["LedgerStatement", strawberry.lazy("resolvers.analytics")]


@strawberry.type(
    directives=[FREE],
    description=(
        "Balances of a ledger account, signed by its normal balance: positive means the "
        "account holds value on its normal side."
    ),
)
class LedgerBalance:
    _account: strawberry.Private[records.LedgerAccount]

    @strawberry.field(description="Sum of posted entries.")
    def posted(self) -> Money:
        account = self._account
        return Money.of(account.posted_balance, account.currency, account.currency_exponent)

    @strawberry.field(description="Posted plus pending entries.")
    def pending(self) -> Money:
        account = self._account
        return Money.of(account.pending_balance, account.currency, account.currency_exponent)

    @strawberry.field(description="Posted balance less pending outflows: what may be spent now.")
    def available(self) -> Money:
        account = self._account
        return Money.of(account.available_balance, account.currency, account.currency_exponent)


@strawberry.type(
    directives=[ENTITY_KEY], description="An account of the double-entry ledger, in one currency."
)
class LedgerAccount(Node):
    record: strawberry.Private[records.LedgerAccount]
    name: str = strawberry.field(description="Name of the account.")
    currency: str = strawberry.field(description="ISO 4217 code of every entry on the account.")
    normal_balance: records.Direction = strawberry.field(
        description="The side on which the account's balance grows (DEBIT for assets)."
    )
    created_at: dt.datetime = strawberry.field(description="When the account was opened.")

    @classmethod
    def from_record(cls, record: records.LedgerAccount) -> LedgerAccount:
        return cls(
            id=encode_global_id("LedgerAccount", record.id),
            record=record,
            name=record.name,
            currency=record.currency,
            normal_balance=record.normal_balance,
            created_at=record.created_at,
        )

    @strawberry.field(description="Current balances, from the account's counters (exact).")
    def balance(self) -> LedgerBalance:
        return LedgerBalance(_account=self.record)

    @strawberry.field(
        description=(
            "Balances at a point in time, from the version log: the entries effective at or "
            "before `asOf`, each with its status as the ledger stands now (a pending entry "
            "later posted counts as posted; a voided one never counts). Exact, back-dated "
            "postings included. Without `asOf`: the current balances."
        )
    )
    async def balance_at(
        self,
        info: Info,
        as_of: Annotated[
            dt.datetime | None,
            strawberry.argument(
                description=("The moment (with its offset) to take the balances at; null for now.")
            ),
        ] = None,
    ) -> LedgerBalance:
        from resolvers.analytics import balance_at

        return await balance_at(info, self.record, as_of)

    @strawberry.field(
        description=(
            "Closing balances of each period (DAY, WEEK from Monday, or MONTH; UTC) covering "
            "days `from`..`to` (both included, by default this month to date); the first and "
            "last periods are clipped to the range. At most 1000 periods."
        )
    )
    async def balance_history(
        self,
        info: Info,
        first_day: FromDay = None,
        last_day: ToDay = None,
        interval: HistoryInterval = Interval.DAY,
    ) -> list[_POINT]:
        from resolvers.analytics import balance_history

        return await balance_history(info, self.record, first_day, last_day, interval)

    @strawberry.field(
        description=(
            "The account's statement for days `from`..`to` (UTC, both included; by default "
            "this month to date): opening and closing balances, totals and the entries."
        )
    )
    async def statement(
        self,
        info: Info,
        first_day: FromDay = None,
        last_day: ToDay = None,
    ) -> _STATEMENT:
        from resolvers.analytics import statement

        return await statement(info, self.record, first_day, last_day)

    @strawberry.field(
        description="Balance changes applied to the account so far (rises by one per change)."
    )
    def version(self) -> int:
        return self.record.lock_version

    @strawberry.field(
        directives=[PAGE],
        description=(
            "Entries on the account, newest first (by effective time). `first` is at most the "
            "server's page cap (100 by default)."
        ),
    )
    async def entries(
        self, info: Info, first: First = 20, after: After = None
    ) -> Connection[_ENTRY]:
        from resolvers.ledger_transactions import LedgerEntry

        context = info.context
        limit = check_first(first, context.max_page_size)
        before = None if after is None else decode_time_cursor("e", after)
        page = await context.ledger.ledger_entries_by_account_id(limit, before).load(self.record.id)
        return make_connection(
            page.items,
            page.has_next_page,
            LedgerEntry.from_record,
            lambda entry: encode_time_cursor("e", entry.effective_at, entry.id),
        )


@strawberry.type
class LedgerAccountQuery:
    @strawberry.field(
        description="One ledger account by global id; null when it is not in your tenant.",
    )
    async def ledger_account(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The ledger account's global id.")
        ],
    ) -> LedgerAccount | None:
        pk = pk_of("LedgerAccount", id)
        record = None if pk is None else await info.context.ledger.ledger_account_by_id.load(pk)
        return None if record is None else LedgerAccount.from_record(record)
