"""LedgerTransaction and LedgerEntry, and the ledgerTransaction root field."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from adapters import records
from resolvers.context import Info
from resolvers.cost_directives import ListSize
from resolvers.ledger_accounts import LedgerAccount
from resolvers.money import Money
from resolvers.node import ENTITY_KEY, Node, encode_global_id, pk_of

__all__ = ["LedgerEntry", "LedgerTransaction", "LedgerTransactionQuery"]

strawberry.enum(
    records.TransactionStatus,
    name="TransactionStatus",
    description=(
        "PENDING holds amounts in the pending balances until it is POSTED or VOIDED; POSTED "
        "and VOIDED are final."
    ),
)


@strawberry.type(
    directives=[ENTITY_KEY],
    description="A balanced set of entries, posted together (double entry: debits = credits).",
)
class LedgerTransaction(Node):
    record: strawberry.Private[records.LedgerTransaction]
    description: str | None = strawberry.field(description="Free text given when posting.")
    status: records.TransactionStatus = strawberry.field(description="PENDING, POSTED or VOIDED.")
    effective_at: dt.datetime = strawberry.field(
        description="When the transaction takes effect for balances at a point in time."
    )
    posted_at: dt.datetime | None = strawberry.field(
        description="When it became POSTED; null while PENDING or when VOIDED."
    )
    created_at: dt.datetime = strawberry.field(description="When it was recorded.")

    @classmethod
    def from_record(cls, record: records.LedgerTransaction) -> LedgerTransaction:
        return cls(
            id=encode_global_id("LedgerTransaction", record.id),
            record=record,
            description=record.description,
            status=record.status,
            effective_at=record.effective_at,
            posted_at=record.posted_at,
            created_at=record.created_at,
        )

    @strawberry.field(description="The idempotency key the transaction was posted with.")
    def idempotency_key(self) -> str:
        return self.record.idempotency_key

    @strawberry.field(
        description="Every entry of the transaction, in posting order.",
        directives=[ListSize(assumed_size=10)],
    )
    async def entries(self, info: Info) -> list[LedgerEntry]:
        found = await info.context.ledger.ledger_entries_by_transaction_id.load(self.record.id)
        return [LedgerEntry.from_record(entry) for entry in found]

    @strawberry.field(description="The transaction this one reverses, if it is a reversal.")
    async def reverses(self, info: Info) -> LedgerTransaction | None:
        original_id = self.record.reverses_transaction_id
        if original_id is None:
            return None
        found = await info.context.ledger.ledger_transaction_by_id.load(original_id)
        return None if found is None else LedgerTransaction.from_record(found)


@strawberry.type(description="One side of a transaction: an amount debited or credited.")
class LedgerEntry(Node):
    record: strawberry.Private[records.LedgerEntry]
    direction: records.Direction = strawberry.field(description="DEBIT or CREDIT.")
    amount: Money = strawberry.field(description="Always positive; the direction gives the side.")
    status: records.TransactionStatus = strawberry.field(description="Status of its transaction.")
    effective_at: dt.datetime = strawberry.field(description="Effective time of its transaction.")

    @classmethod
    def from_record(cls, record: records.LedgerEntry) -> LedgerEntry:
        return cls(
            id=encode_global_id("LedgerEntry", record.id),
            record=record,
            direction=record.direction,
            amount=Money.of(record.amount, record.currency, record.currency_exponent),
            status=record.status,
            effective_at=record.effective_at,
        )

    @strawberry.field(description="The account the entry is on.")
    async def account(self, info: Info) -> LedgerAccount:
        found = await info.context.ledger.ledger_account_by_id.load(self.record.account_id)
        if found is None:  # entries and accounts share a tenant; a miss is a broken invariant
            raise LookupError(f"entry {self.record.id} has no account in its tenant")
        return LedgerAccount.from_record(found)

    @strawberry.field(description="The transaction the entry belongs to.")
    async def transaction(self, info: Info) -> LedgerTransaction:
        found = await info.context.ledger.ledger_transaction_by_id.load(self.record.transaction_id)
        if found is None:
            raise LookupError(f"entry {self.record.id} has no transaction in its tenant")
        return LedgerTransaction.from_record(found)


@strawberry.type
class LedgerTransactionQuery:
    @strawberry.field(
        description="One ledger transaction by global id; null when it is not in your tenant.",
    )
    async def ledger_transaction(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The ledger transaction's global id.")
        ],
    ) -> LedgerTransaction | None:
        pk = pk_of("LedgerTransaction", id)
        record = None if pk is None else await info.context.ledger.ledger_transaction_by_id.load(pk)
        return None if record is None else LedgerTransaction.from_record(record)
