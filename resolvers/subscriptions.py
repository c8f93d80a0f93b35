"""Live updates: the Subscription root, fed by committed ledger writes (adapters.events).

Each event names a tenant, a transaction and the accounts it changed. What a subscriber sees is
read through a fresh set of the tenant's loaders per event and resolved through the ordinary
types, so scopes (resolvers.permissions: checked on the root field at subscribe time and again
for every event) and masking apply exactly as to a query. Events of another tenant are never
delivered: the transport listens to the caller's tenant only, each event's tenant is checked
again here, and the loaders read only the caller's tenant.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from adapters.errors import InvalidInput, NotFound
from adapters.events import LedgerEvent
from resolvers.context import Info, LedgerEventSource
from resolvers.errors import BadRequest
from resolvers.ledger_accounts import LedgerAccount
from resolvers.ledger_transactions import LedgerTransaction
from resolvers.node import decode_id_of

__all__ = ["Subscription"]


class SubscriptionsUnavailable(BadRequest):
    code = "SUBSCRIPTIONS_UNAVAILABLE"


def _source(info: Info) -> LedgerEventSource:
    source = info.context.events
    if source is None:
        raise SubscriptionsUnavailable(
            "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql "
            "and over Server-Sent Events at /graphql/stream"
        )
    return source


def _own(info: Info, event: LedgerEvent) -> bool:
    """True for an event of the caller's tenant; anything else is never delivered."""
    return event.tenant_id == info.context.tenant_id


@strawberry.type(
    description=(
        "Live updates of the ledger, over WebSocket (graphql-transport-ws, at /graphql) or "
        "Server-Sent Events (POST /graphql/stream). Every event is a write that has committed; "
        "delivery is at most once (a subscriber that is disconnected misses what was written "
        "meanwhile: read the current state after reconnecting). Needs the ledger:read scope."
    )
)
class Subscription:
    @strawberry.subscription(
        description=(
            "Each of the given accounts, as it now stands, after a committed write changed its "
            "balances (posting, confirming or voiding a pending transaction, reversal). At "
            "most the server's page size of ids (100 by default); an id that is not an "
            "account of your tenant is refused with NOT_FOUND before anything is delivered."
        )
    )
    async def ledger_account_balance_changed(
        self,
        info: Info,
        account_ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(description="The ledger accounts to watch (1 up to the page cap)."),
        ],
    ) -> AsyncGenerator[LedgerAccount, None]:
        if not account_ids:
            raise InvalidInput("name at least one account", field="accountIds")
        if len(account_ids) > info.context.max_page_size:
            raise InvalidInput(f"at most {info.context.max_page_size} accounts", field="accountIds")
        wanted = {decode_id_of("LedgerAccount", i, field="accountIds") for i in account_ids}
        found = await info.context.ledger.ledger_account_by_id.load_many(sorted(wanted))
        if any(account is None for account in found):
            raise NotFound("ledger account not found", field="accountIds")
        source = _source(info)
        async for event in source.listen():
            changed = sorted(wanted & event.account_ids)
            if not changed or not _own(info, event):
                continue
            ledger = info.context.ledger = source.loaders_for(event)
            for account in await ledger.ledger_account_by_id.load_many(changed):
                if account is not None:
                    yield LedgerAccount.from_record(account)

    @strawberry.subscription(
        description=(
            "Each transaction of your tenant, as it now stands, after a committed write: a "
            "new transaction (POSTED or PENDING), a pending one confirmed or voided, or a "
            "reversal (the new, reversing transaction). Its status tells which."
        )
    )
    async def ledger_transaction_posted(
        self, info: Info
    ) -> AsyncGenerator[LedgerTransaction, None]:
        source = _source(info)
        async for event in source.listen():
            if not _own(info, event):
                continue
            ledger = info.context.ledger = source.loaders_for(event)
            transaction = await ledger.ledger_transaction_by_id.load(event.transaction_id)
            if transaction is not None:
                yield LedgerTransaction.from_record(transaction)
