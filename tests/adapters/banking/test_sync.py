"""Sync from the sandbox (in-process and over HTTP) into bank tables (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking import ProviderCredentials
from adapters.banking.links import BankLink, access_token_for, bank_links, create_bank_link
from adapters.banking.plaid import PlaidProvider
from adapters.banking.queries import BankReader
from adapters.banking.records import ConnectionStatus, SyncResult
from adapters.banking.sync import BankSyncFailure, sync_bank_links, sync_link
from adapters.banking.tables import bank_transactions
from adapters.crypto import DEV_SECRET_KEYRING, SecretBox, SecretDecryptionError, SecretText
from adapters.errors import ProviderUnavailable
from adapters.providers.tables import provider_links
from adapters.sandbox.banking_app import SANDBOX_CLIENT_ID, SANDBOX_SECRET, BankingSandbox
from tests.factories import make_customer

BOX = SecretBox.from_keyring(DEV_SECRET_KEYRING)


async def _link(
    engine: AsyncEngine, tenant_id: int, sandbox: BankingSandbox, item: str, **item_options: int
) -> tuple[BankLink, str]:
    customer_id = await make_customer(engine, tenant_id)
    item_id, token = sandbox.create_item(f"{item}-{tenant_id}", **item_options)  # type: ignore[arg-type]
    await create_bank_link(
        engine, BOX, tenant_id=tenant_id, customer_id=customer_id, provider="plaid",
        item_id=item_id, access_token=SecretText(token),
    )  # fmt: skip
    (link,) = await bank_links(engine, tenant_id=tenant_id, customer_ids=[customer_id])
    return link, item_id


async def _reload(engine: AsyncEngine, link: BankLink) -> BankLink:
    (fresh,) = await bank_links(engine, tenant_id=link.tenant_id, customer_ids=[link.customer_id])
    return fresh


async def _stored(engine: AsyncEngine, link: BankLink) -> dict[str, tuple[int, bool, bool]]:
    """provider id -> (amount, is_pending, is removed) of every stored row of the link."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(
                bank_transactions.c.provider_transaction_id,
                bank_transactions.c.amount,
                bank_transactions.c.is_pending,
                bank_transactions.c.removed_at,
            ).where(bank_transactions.c.provider_link_id == link.id)
        )
        return {row[0]: (row[1], row[2], row[3] is not None) for row in rows}


def _paged(client: httpx.AsyncClient, page_size: int, restarts: int = 5) -> PlaidProvider:
    credentials = ProviderCredentials(SANDBOX_CLIENT_ID, SecretText(SANDBOX_SECRET))
    return PlaidProvider(client, credentials, sync_page_size=page_size, max_sync_restarts=restarts)


async def test_first_sync_stores_accounts_and_transactions_and_the_final_cursor(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, sandbox_client: httpx.AsyncClient,
    banking_sandbox: BankingSandbox,
) -> None:  # fmt: skip
    link, item_id = await _link(engine, tenant_id, banking_sandbox, "item-first", transactions=12)

    result = await sync_link(engine, _paged(sandbox_client, 5), BOX, link)

    assert result == SyncResult(
        provider_link_id=link.id, accounts_upserted=2, added=12, modified=0, removed=0,
        cursor="cursor-12", pages=3, restarts=0, connection_status=ConnectionStatus.ACTIVE,
    )  # fmt: skip
    fresh = await _reload(engine, link)
    assert fresh.sync_cursor == "cursor-12"
    assert fresh.last_synced_at is not None
    stored = await _stored(engine, link)
    assert sorted(stored) == sorted(banking_sandbox.item_transaction_ids(item_id))
    accounts = (await BankReader(engine).accounts_by_customer_ids(tenant_id, [link.customer_id]))[0]
    assert [a.provider_account_id for a in accounts] == [f"{item_id}-chk", f"{item_id}-crd"]


async def test_the_cursor_and_rows_stay_unchanged_when_the_page_set_does_not_complete(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, sandbox_client: httpx.AsyncClient,
    banking_sandbox: BankingSandbox,
) -> None:  # fmt: skip
    link, item_id = await _link(engine, tenant_id, banking_sandbox, "item-broken", transactions=12)
    banking_sandbox.mutate_during_pagination(item_id, times=1)

    with pytest.raises(ProviderUnavailable):
        await sync_link(engine, _paged(sandbox_client, 5, restarts=0), BOX, link)

    assert banking_sandbox.calls["/transactions/sync"] == 2  # page 1 arrived, page 2 failed
    fresh = await _reload(engine, link)
    assert (fresh.sync_cursor, fresh.last_synced_at) == (None, None)
    assert await _stored(engine, link) == {}


async def test_sync_restarts_on_mutation_during_pagination_and_stores_the_final_state(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, sandbox_client: httpx.AsyncClient,
    banking_sandbox: BankingSandbox,
) -> None:  # fmt: skip
    link, item_id = await _link(engine, tenant_id, banking_sandbox, "item-mut", transactions=12)
    banking_sandbox.mutate_during_pagination(item_id, times=1)

    result = await sync_link(engine, _paged(sandbox_client, 5), BOX, link)

    assert (result.added, result.restarts, result.cursor) == (13, 1, "cursor-13")
    assert sorted(await _stored(engine, link)) == sorted(
        banking_sandbox.item_transaction_ids(item_id)
    )


async def test_resync_is_idempotent_with_and_without_the_cursor(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    link, _ = await _link(engine, tenant_id, banking_sandbox, "item-idem", transactions=6)
    await sync_link(engine, plaid, BOX, link)
    before = await _stored(engine, link)

    again = await sync_link(engine, plaid, BOX, await _reload(engine, link))
    async with engine.begin() as connection:  # lose the cursor: the whole feed comes again
        await connection.execute(
            update(provider_links).where(provider_links.c.id == link.id).values(sync_cursor=None)
        )
    replayed = await sync_link(engine, plaid, BOX, await _reload(engine, link))

    assert (again.added, again.modified, again.removed) == (0, 0, 0)
    assert replayed.added == 6
    assert await _stored(engine, link) == before


async def test_pending_then_posted_keeps_the_link_and_hides_the_pending_row(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    link, item_id = await _link(engine, tenant_id, banking_sandbox, "item-pend", transactions=0)
    pending_id = banking_sandbox.add_transaction(item_id, amount="42.50", pending=True)
    await sync_link(engine, plaid, BOX, link)
    posted_id = banking_sandbox.post_pending(item_id, pending_id, amount="43.00")

    result = await sync_link(engine, plaid, BOX, await _reload(engine, link))

    assert (result.added, result.removed) == (1, 1)
    assert await _stored(engine, link) == {
        pending_id: (-4250, True, True),
        posted_id: (-4300, False, False),
    }
    reader = BankReader(engine)
    (account,) = await reader.accounts_by_customer_ids(tenant_id, [link.customer_id])
    checking = next(a for a in account if a.provider_account_id == f"{item_id}-chk")
    (page,) = await reader.transactions_by_account_ids(tenant_id, [checking.id or 0], first=10)
    assert [(t.provider_transaction_id, t.pending_transaction_id) for t in page.items] == [
        (posted_id, pending_id)
    ]


async def test_modified_and_removed_transactions_are_applied(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    link, item_id = await _link(engine, tenant_id, banking_sandbox, "item-mod", transactions=3)
    await sync_link(engine, plaid, BOX, link)
    first, second, _ = banking_sandbox.item_transaction_ids(item_id)
    banking_sandbox.modify_transaction(item_id, first, name="Renamed")
    banking_sandbox.remove_transaction(item_id, second)

    result = await sync_link(engine, plaid, BOX, await _reload(engine, link))

    assert (result.added, result.modified, result.removed) == (0, 1, 1)
    stored = await _stored(engine, link)
    assert stored[second][2] is True
    assert stored[first][2] is False
    async with engine.connect() as connection:
        name = await connection.scalar(
            select(bank_transactions.c.name).where(
                bank_transactions.c.provider_transaction_id == first
            )
        )
    assert name == "Renamed"


async def test_login_required_marks_the_link_and_changes_no_data(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    link, item_id = await _link(engine, tenant_id, banking_sandbox, "item-relogin", transactions=2)
    await sync_link(engine, plaid, BOX, link)
    banking_sandbox.set_login_required(item_id)
    banking_sandbox.add_transaction(item_id, amount="5.00")

    result = await sync_link(engine, plaid, BOX, await _reload(engine, link))

    assert result.connection_status is ConnectionStatus.LOGIN_REQUIRED
    assert (result.added, result.cursor) == (0, "cursor-2")
    assert (await _reload(engine, link)).status is ConnectionStatus.LOGIN_REQUIRED
    (accounts,) = await BankReader(engine).accounts_by_customer_ids(tenant_id, [link.customer_id])
    assert {a.connection_status for a in accounts} == {ConnectionStatus.LOGIN_REQUIRED}
    assert len(await _stored(engine, link)) == 2

    banking_sandbox.set_login_required(item_id, False)
    recovered = await sync_link(engine, plaid, BOX, await _reload(engine, link))
    assert (recovered.added, recovered.connection_status) == (1, ConnectionStatus.ACTIVE)
    assert (await _reload(engine, link)).status is ConnectionStatus.ACTIVE


async def test_a_sync_that_lost_the_race_rolls_back(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    link, item_id = await _link(engine, tenant_id, banking_sandbox, "item-race", transactions=2)
    await sync_link(engine, plaid, BOX, link)  # moves the cursor; `link` is now stale
    banking_sandbox.add_transaction(item_id, amount="1.00")

    stale = await sync_link(engine, plaid, BOX, link)

    assert stale.is_superseded is True
    assert (await _reload(engine, link)).sync_cursor == "cursor-2"
    assert len(await _stored(engine, link)) == 2


async def test_sync_bank_links_syncs_never_synced_links_of_a_tenant_and_reports_failures(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    synced, _ = await _link(engine, tenant_id, banking_sandbox, "item-a", transactions=1)
    await sync_link(engine, plaid, BOX, synced)
    fresh, _ = await _link(engine, tenant_id, banking_sandbox, "item-b", transactions=1)
    broken, _ = await _link(engine, tenant_id, banking_sandbox, "item-c", transactions=1)
    banking_sandbox.faults.fail_next("/transactions/sync", "5xx")  # hits item-b first

    with pytest.raises(BankSyncFailure) as raised:
        await sync_bank_links(
            engine, {"plaid": plaid}, BOX, tenant_id=tenant_id, never_synced_only=True
        )

    assert [r.provider_link_id for r in raised.value.results] == [broken.id]
    assert list(raised.value.failures) == [fresh.id]
    assert banking_sandbox.calls["/transactions/sync"] == 3
    results = await sync_bank_links(
        engine, {"plaid": plaid}, BOX, tenant_id=tenant_id, never_synced_only=True
    )
    assert [r.provider_link_id for r in results] == [fresh.id]


async def test_stored_tokens_are_sealed_and_bound_to_their_link(
    engine: AsyncEngine, tenant_id: int
) -> None:
    sandbox = BankingSandbox()
    first, first_item = await _link(engine, tenant_id, sandbox, "item-seal-1")
    second, _ = await _link(engine, tenant_id, sandbox, "item-seal-2")
    assert first.secret_encrypted is not None

    swapped = dataclasses.replace(second, secret_encrypted=first.secret_encrypted)

    assert access_token_for(BOX, first) == SecretText(f"access-sandbox-{first_item}")
    assert b"access-sandbox" not in first.secret_encrypted
    assert "access-sandbox" not in repr(first)
    with pytest.raises(SecretDecryptionError):
        access_token_for(BOX, swapped)


async def _institutions(engine: AsyncEngine, link: BankLink) -> set[tuple[str | None, ...]]:
    """The distinct (institution id, name) pairs on the link's account rows, as read back."""
    (accounts,) = await BankReader(engine).accounts_by_customer_ids(
        link.tenant_id, [link.customer_id]
    )
    return {(a.institution_id, a.institution_name) for a in accounts}


async def test_sync_stores_the_institution_and_looks_it_up_only_once(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    link, item_id = await _link(engine, tenant_id, banking_sandbox, "item-ins", transactions=2)

    await sync_link(engine, plaid, BOX, link)

    assert await _institutions(engine, link) == {("ins_109508", "First Platypus Bank")}
    assert banking_sandbox.calls["/accounts/get"] == 1
    assert banking_sandbox.calls["/institutions/get_by_id"] == 1

    banking_sandbox.add_transaction(item_id, amount="3.00")
    result = await sync_link(engine, plaid, BOX, await _reload(engine, link))

    assert result.added == 1
    assert await _institutions(engine, link) == {("ins_109508", "First Platypus Bank")}
    assert banking_sandbox.calls["/accounts/get"] == 1  # the stored row answers
    assert banking_sandbox.calls["/institutions/get_by_id"] == 1


@pytest.mark.parametrize(
    ("institution_id", "fault", "name_later"),
    [
        ("ins_109509", "5xx", "First Gingham Credit Union"),  # the provider was down once
        ("ins_unknown", None, None),  # the provider refuses the lookup every time
    ],
)
async def test_a_failing_institution_lookup_still_syncs_and_is_retried_later(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, banking_sandbox: BankingSandbox,
    institution_id: str, fault: str | None, name_later: str | None,
) -> None:  # fmt: skip
    customer_id = await make_customer(engine, tenant_id)
    item_id, token = banking_sandbox.create_item(
        f"item-ins-fail-{tenant_id}", institution_id=institution_id, transactions=2
    )
    await create_bank_link(
        engine, BOX, tenant_id=tenant_id, customer_id=customer_id, provider="plaid",
        item_id=item_id, access_token=SecretText(token),
    )  # fmt: skip
    (link,) = await bank_links(engine, tenant_id=tenant_id, customer_ids=[customer_id])
    if fault is not None:
        banking_sandbox.faults.fail_next("/institutions/get_by_id", fault)

    result = await sync_link(engine, plaid, BOX, link)

    assert (result.added, result.cursor) == (2, "cursor-2")
    assert await _institutions(engine, link) == {(institution_id, None)}

    again = await sync_link(engine, plaid, BOX, await _reload(engine, link))

    assert again.connection_status is ConnectionStatus.ACTIVE
    assert banking_sandbox.calls["/institutions/get_by_id"] == 2  # no name yet: asked again
    assert banking_sandbox.calls["/accounts/get"] == 1  # the id was already stored
    assert await _institutions(engine, link) == {(institution_id, name_later)}


async def test_a_failing_accounts_lookup_for_the_institution_still_syncs(
    engine: AsyncEngine, tenant_id: int, plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    link, _ = await _link(engine, tenant_id, banking_sandbox, "item-ins-acc", transactions=2)
    banking_sandbox.faults.fail_next("/accounts/get", "5xx")

    result = await sync_link(engine, plaid, BOX, link)

    assert (result.added, result.accounts_upserted) == (2, 2)
    assert await _institutions(engine, link) == {(None, None)}
    assert banking_sandbox.calls["/institutions/get_by_id"] == 0

    await sync_link(engine, plaid, BOX, await _reload(engine, link))

    assert await _institutions(engine, link) == {("ins_109508", "First Platypus Bank")}
