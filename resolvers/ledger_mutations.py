"""Ledger mutations: validate and map input, call the posting service, map the result.

Balancing, idempotency and state transitions live in adapters/ledger/posting.py; here the
input is turned into exact minor units and record ids, and errors keep their field paths.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from adapters import records
from adapters.errors import InvalidInput
from adapters.ledger.posting import NewEntry, NewTransaction, PostingResult
from adapters.ledger.posting_requests import MAX_ENTRIES
from adapters.money import currency_exponent, parse_decimal_amount
from resolvers.context import Info
from resolvers.cost_directives import FREE, MUTATION_COST
from resolvers.ledger_transactions import LedgerTransaction
from resolvers.node import decode_id_of
from resolvers.scalars import Decimal

__all__ = ["LedgerMutation"]


@strawberry.input(description="One side of a transaction to post.")
class LedgerEntryInput:
    account_id: strawberry.ID = strawberry.field(description="Global id of a ledger account.")
    direction: records.Direction = strawberry.field(description="DEBIT or CREDIT.")
    amount: Decimal = strawberry.field(
        description=(
            "Positive decimal string in major units, with no more decimals than the currency "
            'allows ("12.50" USD, "1000" JPY).'
        )
    )
    currency: str = strawberry.field(description="ISO 4217 code; must be the account's currency.")


@strawberry.input(description="A balanced transaction to post to the ledger.")
class PostLedgerTransactionInput:
    idempotency_key: str = strawberry.field(
        description=(
            "Client-chosen key (1-255 characters). Repeating a request with the same key and "
            "body returns the first result; the same key with another body is refused."
        )
    )
    entries: list[LedgerEntryInput] = strawberry.field(
        description=(
            f"At least one debit and one credit, at most {MAX_ENTRIES}; debits must equal "
            "credits in each currency."
        )
    )
    description: str | None = strawberry.field(
        default=None, description="Free text, at most 1000 characters."
    )
    effective_at: dt.datetime | None = strawberry.field(
        default=None,
        description=(
            "When the transaction takes effect; defaults to now. At most the server's "
            "back-dating window (365 days by default) in the past and 5 minutes in the future; "
            "outside it BAD_USER_INPUT names effectiveAt."
        ),
    )
    status: records.TransactionStatus = strawberry.field(
        default=records.TransactionStatus.POSTED,
        description="POSTED (default) applies at once; PENDING holds amounts until confirmed.",
    )


@strawberry.type(directives=[FREE], description="Result of a ledger write.")
class LedgerTransactionPayload:
    transaction_id: strawberry.ID = strawberry.field(
        description="Global id of the transaction written (the new one, for a reversal)."
    )
    transaction: LedgerTransaction | None = strawberry.field(
        description=(
            "The transaction as it now stands. Reading it needs the ledger:read scope: "
            "without it, null with a FORBIDDEN error (the write still happened)."
        )
    )
    replayed: bool = strawberry.field(
        description="True when this answers a repeated request (same idempotency key and body)."
    )


def _new_entry(index: int, entry: LedgerEntryInput) -> NewEntry:
    prefix = f"entries.{index}"
    currency_exponent(entry.currency, field=f"{prefix}.currency")
    return NewEntry(
        account_id=decode_id_of("LedgerAccount", entry.account_id, field=f"{prefix}.account_id"),
        direction=records.Direction(entry.direction),
        amount=parse_decimal_amount(entry.amount, entry.currency, field=f"{prefix}.amount"),
        currency=entry.currency,
    )


def _payload(info: Info, result: PostingResult) -> LedgerTransactionPayload:
    transaction = result.transaction
    info.context.ledger.ledger_entries_by_transaction_id.prime(transaction.id, list(result.entries))
    node = LedgerTransaction.from_record(transaction)
    return LedgerTransactionPayload(
        transaction_id=node.id, transaction=node, replayed=result.replayed
    )


@strawberry.type
class LedgerMutation:
    @strawberry.mutation(
        directives=[MUTATION_COST],
        description=(
            "Post a balanced transaction. Refused with a code when unbalanced "
            "(UNBALANCED_TRANSACTION), when an entry's currency is not its account's "
            "(CURRENCY_MISMATCH), when an account is not found in your tenant (NOT_FOUND), "
            "when an overdraft guard would be broken (INSUFFICIENT_FUNDS), or when the "
            "idempotency key was used with another body (IDEMPOTENCY_KEY_REUSED)."
        ),
    )
    async def post_ledger_transaction(
        self,
        info: Info,
        input: Annotated[
            PostLedgerTransactionInput,
            strawberry.argument(description="The transaction: its entries and idempotency key."),
        ],
    ) -> LedgerTransactionPayload:
        if not input.entries:
            raise InvalidInput("a transaction needs at least one debit and one credit",
                               field="entries")  # fmt: skip
        if len(input.entries) > MAX_ENTRIES:
            raise InvalidInput(f"at most {MAX_ENTRIES} entries", field="entries")
        new = NewTransaction(
            idempotency_key=input.idempotency_key,
            entries=tuple(_new_entry(i, entry) for i, entry in enumerate(input.entries)),
            description=input.description,
            effective_at=input.effective_at,
            status=records.TransactionStatus(input.status),
        )
        context = info.context
        return _payload(info, await context.posting.post_transaction(context.tenant_id, new))

    @strawberry.mutation(
        directives=[MUTATION_COST],
        description="Confirm a PENDING transaction: its amounts move to the posted balances.",
    )
    async def post_pending_transaction(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The ledger transaction's global id.")
        ],
    ) -> LedgerTransactionPayload:
        pk = decode_id_of("LedgerTransaction", id)
        context = info.context
        return _payload(info, await context.posting.post_pending(context.tenant_id, pk))

    @strawberry.mutation(
        directives=[MUTATION_COST],
        description="Cancel a PENDING transaction: its amounts leave the pending balances.",
    )
    async def void_pending_transaction(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The ledger transaction's global id.")
        ],
    ) -> LedgerTransactionPayload:
        pk = decode_id_of("LedgerTransaction", id)
        context = info.context
        return _payload(info, await context.posting.void_pending(context.tenant_id, pk))

    @strawberry.mutation(
        directives=[MUTATION_COST],
        description=(
            "Reverse a POSTED transaction with a new one whose entries are flipped; a "
            "transaction can be reversed once."
        ),
    )
    async def reverse_ledger_transaction(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The ledger transaction's global id.")
        ],
        idempotency_key: Annotated[
            str,
            strawberry.argument(
                description="Your key for the reversal: sending it again returns the first "
                "result (replayed: true) instead of reversing twice."
            ),
        ],
    ) -> LedgerTransactionPayload:
        pk = decode_id_of("LedgerTransaction", id)
        context = info.context
        return _payload(
            info, await context.posting.reverse_transaction(context.tenant_id, pk, idempotency_key)
        )
