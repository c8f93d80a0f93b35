"""Reconciliation results through the schema: `reconciliation(from:, to:)`, with the
reconciliation:read scope. Results are those the latest run stored (`gateway reconcile`);
reading them never calls a provider."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from adapters.errors import InvalidInput
from adapters.reconciliation import records
from resolvers.context import Info
from resolvers.money import Money
from resolvers.node import encode_global_id
from resolvers.pagination import (
    After,
    Connection,
    First,
    check_first,
    decode_cursor,
    encode_cursor,
    make_connection,
)

__all__ = ["Reconciliation", "ReconciliationItem", "ReconciliationQuery"]

strawberry.enum(
    records.ReconciliationStatus,
    name="ReconciliationStatus",
    description=(
        "MATCHED: the payout's movements add up to it, are all booked, and one bank credit "
        "matches it. UNMATCHED: one side lacks its counterpart (see `missingOn`). MISMATCHED: "
        "both sides exist but amounts or currencies differ. PENDING: nothing is wrong yet, the "
        "bank window of the payout is still open."
    ),
)
strawberry.enum(
    records.MissingOn,
    name="ReconciliationSide",
    description="Which side lacks the counterpart: BANK, LEDGER or PROCESSOR.",
)
strawberry.enum(
    records.ReasonCode,
    name="ReconciliationReasonCode",
    description="Why an item is not MATCHED (README.md, Reconciliation, lists each).",
)


@strawberry.type(description="One reason an item is not matched, with the figures involved.")
class ReconciliationReason:
    code: records.ReasonCode = strawberry.field(description="What kind of difference.")
    message: str = strawberry.field(description="The difference in words, with the amounts.")


def _money(amount: int | None, currency: str | None, exponent: int | None) -> Money | None:
    if amount is None or currency is None or exponent is None:
        return None
    return Money.of(amount, currency, exponent)


@strawberry.type(
    description=(
        "The outcome for one processor payout, or for one bank credit that no payout explains "
        "(then `payoutId` is null)."
    )
)
class ReconciliationItem:
    record: strawberry.Private[records.ReconciliationItem]

    @strawberry.field(description="Opaque id of this result (changes when a run replaces it).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(encode_cursor("rec", self.record.id or 0))

    @strawberry.field(description="MATCHED, UNMATCHED, MISMATCHED or PENDING.")
    def status(self) -> records.ReconciliationStatus:
        return self.record.status

    @strawberry.field(description='The card processor ("stripe").')
    def provider(self) -> str:
        return self.record.provider

    @strawberry.field(description="The processor's payout id.")
    def payout_id(self) -> str | None:
        return self.record.payout_id

    @strawberry.field(description="The payout's arrival date, or the bank credit's date.")
    def occurred_at(self) -> dt.datetime:
        return self.record.occurred_at

    @strawberry.field(description="For UNMATCHED items: the side without a counterpart.")
    def missing_on(self) -> records.MissingOn | None:
        return self.record.missing_on

    @strawberry.field(description="What the processor says it paid out.")
    def payout_amount(self) -> Money | None:
        r = self.record
        return _money(r.payout_amount, r.currency, r.exponent)

    @strawberry.field(description="The net sum of the movements the payout lists.")
    def items_net(self) -> Money | None:
        r = self.record
        return _money(r.items_net, r.currency, r.exponent)

    @strawberry.field(description="How many movements the payout lists.")
    def item_count(self) -> int | None:
        return self.record.item_count

    @strawberry.field(description="The bank transaction matched (or closest), as a global id.")
    def bank_transaction_id(self) -> strawberry.ID | None:
        found = self.record.bank_transaction_id
        return None if found is None else strawberry.ID(encode_global_id("BankTransaction", found))

    @strawberry.field(description="What the bank credited.")
    def bank_amount(self) -> Money | None:
        r = self.record
        return _money(r.bank_amount, r.bank_currency, r.bank_exponent)

    @strawberry.field(description="The bank credit's date.")
    def bank_date(self) -> dt.date | None:
        return self.record.bank_date

    @strawberry.field(description="Why it is not MATCHED; empty when it is.")
    def reasons(self) -> list[ReconciliationReason]:
        return [ReconciliationReason(code=r.code, message=r.message) for r in self.record.reasons]

    @strawberry.field(description="When the run that produced this result checked it.")
    def checked_at(self) -> dt.datetime:
        return self.record.checked_at


def _item(record: records.ReconciliationItem) -> ReconciliationItem:
    return ReconciliationItem(record=record)


@strawberry.type(description="Reconciliation results in a window, with counts per status.")
class Reconciliation:
    start: strawberry.Private[dt.datetime]
    end: strawberry.Private[dt.datetime]

    async def _count(self, info: Info, status: records.ReconciliationStatus) -> int:
        counts = await info.context.reconciliation.counts(self.start, self.end)
        return counts[status]

    @strawberry.field(description="How many results in the window are MATCHED.")
    async def matched(self, info: Info) -> int:
        return await self._count(info, records.ReconciliationStatus.MATCHED)

    @strawberry.field(description="How many results in the window are UNMATCHED.")
    async def unmatched(self, info: Info) -> int:
        return await self._count(info, records.ReconciliationStatus.UNMATCHED)

    @strawberry.field(description="How many results in the window are MISMATCHED.")
    async def mismatched(self, info: Info) -> int:
        return await self._count(info, records.ReconciliationStatus.MISMATCHED)

    @strawberry.field(description="How many results in the window are PENDING.")
    async def pending(self, info: Info) -> int:
        return await self._count(info, records.ReconciliationStatus.PENDING)

    @strawberry.field(description="Results by date, then id; `statuses` keeps only those.")
    async def items(
        self,
        info: Info,
        statuses: Annotated[
            list[records.ReconciliationStatus] | None,
            strawberry.argument(description="Only items of these statuses; null for all."),
        ] = None,
        first: First = 100,
        after: After = None,
    ) -> Connection[ReconciliationItem]:
        context = info.context
        limit = check_first(first, context.max_page_size)
        offset = decode_cursor("rci", after, 1)[0] if after is not None else 0
        if statuses is not None and not statuses:
            raise InvalidInput("statuses must name at least one status", field="statuses")
        page = await context.reconciliation.page(
            self.start, self.end, statuses=statuses, first=limit, offset=offset
        )
        positions = {id(item): offset + n + 1 for n, item in enumerate(page.items)}
        return make_connection(
            page.items,
            page.has_next_page,
            _item,
            lambda item: encode_cursor("rci", positions[id(item)]),
        )


@strawberry.type
class ReconciliationQuery:
    @strawberry.field(
        description=(
            "Processor payouts arriving in [from, to) matched to the ledger and to bank "
            "credits, and bank credits no payout explains, as the latest `gateway reconcile` "
            "run over them stored them. Needs the reconciliation:read scope."
        )
    )
    def reconciliation(
        self,
        start: Annotated[
            dt.datetime,
            strawberry.argument(name="from", description="Start of the window (included)."),
        ],
        end: Annotated[
            dt.datetime,
            strawberry.argument(name="to", description="End of the window (excluded)."),
        ],
    ) -> Reconciliation:
        if start.utcoffset() is None or end.utcoffset() is None:
            raise InvalidInput("from and to need a time zone", field="from")
        if end <= start:
            raise InvalidInput("to must be after from", field="to")
        return Reconciliation(start=start, end=end)
