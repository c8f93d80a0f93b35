"""Open Banking links synced into the same bank tables as Plaid's, through the same sync_link
(SQLite and PostgreSQL; the ASPSP sandbox in-process and over HTTP, spec-checked)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.banking.links import BankLink, bank_links, create_bank_link
from adapters.banking.openbanking import OpenBankingProvider, obuk_link_secret
from adapters.banking.queries import BankReader
from adapters.banking.records import ConnectionStatus
from adapters.banking.sync import sync_link
from adapters.banking.tables import bank_accounts, bank_transactions
from adapters.crypto import DEV_SECRET_KEYRING, SecretBox
from adapters.sandbox.openbanking_app import OB_SANDBOX_FINANCIAL_ID, OpenBankingSandbox
from tests.factories import make_customer

BOX = SecretBox.from_keyring(DEV_SECRET_KEYRING)


async def _link(
    engine: AsyncEngine, tenant_id: int, sandbox: OpenBankingSandbox, name: str, **options: object
) -> tuple[BankLink, str]:
    customer_id = await make_customer(engine, tenant_id)
    consent_id, token = sandbox.create_consent(f"{name}-{tenant_id}", **options)  # type: ignore[arg-type]
    await create_bank_link(
        engine, BOX, tenant_id=tenant_id, customer_id=customer_id, provider="obuk",
        item_id=consent_id, access_token=obuk_link_secret(consent_id, token),
    )  # fmt: skip
    (link,) = await bank_links(engine, tenant_id=tenant_id, customer_ids=[customer_id])
    return link, consent_id


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


async def test_a_first_sync_fills_the_shared_tables_paged_by_links(
    engine: AsyncEngine, tenant_id: int, obuk: OpenBankingProvider,
    obuk_sandbox: OpenBankingSandbox,
) -> None:  # fmt: skip
    obuk_sandbox.page_size = 4
    link, consent_id = await _link(engine, tenant_id, obuk_sandbox, "s-first", transactions=12)

    result = await sync_link(engine, obuk, BOX, link)

    assert (result.accounts_upserted, result.added, result.removed) == (2, 12, 0)
    # Pages of 4, per account: how the 12 split over the two depends on the consent id.
    per_account = Counter(t.account_id for t in obuk_sandbox.consent(consent_id).transactions)
    assert len(per_account) == 2
    assert result.pages == sum(-(-count // 4) for count in per_account.values())
    assert result.connection_status is ConnectionStatus.ACTIVE
    stored = await _stored(engine, link)
    sandbox_ids = {t.transaction_id for t in obuk_sandbox.consent(consent_id).transactions}
    assert set(stored) == sandbox_ids
    for transaction in obuk_sandbox.consent(consent_id).transactions:
        sign = 1 if transaction.credit else -1
        assert stored[str(transaction.transaction_id)][0] == sign * int(transaction.amount * 100)
    async with engine.connect() as connection:
        references = dict(
            (
                await connection.execute(
                    select(
                        bank_transactions.c.provider_transaction_id, bank_transactions.c.reference
                    ).where(bank_transactions.c.provider_link_id == link.id)
                )
            ).all()
        )
    assert references == {
        t.transaction_id: t.reference for t in obuk_sandbox.consent(consent_id).transactions
    }
    assert all(references.values())  # the sandbox gives every generated one a reference
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(
                    bank_accounts.c.provider_account_id,
                    bank_accounts.c.institution_id,
                    bank_accounts.c.institution_name,
                    bank_accounts.c.currency,
                    bank_accounts.c.currency_exponent,
                ).where(bank_accounts.c.provider_link_id == link.id)
            )
        ).all()
    assert sorted(rows) == [
        (f"{consent_id}-card", OB_SANDBOX_FINANCIAL_ID, "Open Banking ASPSP", "GBP", 2),
        (f"{consent_id}-cur", OB_SANDBOX_FINANCIAL_ID, "Open Banking ASPSP", "GBP", 2),
    ]
    (accounts,) = await BankReader(engine).accounts_by_customer_ids(tenant_id, [link.customer_id])
    assert {a.provider for a in accounts} == {"obuk"}


async def test_resync_is_idempotent_and_pending_booked_replaces_not_duplicates(
    engine: AsyncEngine, tenant_id: int, obuk: OpenBankingProvider,
    obuk_sandbox: OpenBankingSandbox,
) -> None:  # fmt: skip
    link, consent_id = await _link(engine, tenant_id, obuk_sandbox, "s-pend", transactions=3)
    pending = obuk_sandbox.add_transaction(
        consent_id, amount="42.50", pending=True, reference="FP-9", day=10
    )
    await sync_link(engine, obuk, BOX, link)
    before = await _stored(engine, link)
    assert before[str(pending)] == (-4250, True, False)

    again = await sync_link(engine, obuk, BOX, await _reload(engine, link))
    assert (again.added, again.modified, again.removed) == (0, 0, 0)
    assert await _stored(engine, link) == before

    booked = obuk_sandbox.book_pending(consent_id, str(pending), amount="43.00")
    result = await sync_link(engine, obuk, BOX, await _reload(engine, link))

    assert (result.added, result.removed) == (1, 1)
    stored = await _stored(engine, link)
    assert stored[str(pending)] == (-4250, True, True)
    assert stored[booked] == (-4300, False, False)
    reader = BankReader(engine)
    (accounts,) = await reader.accounts_by_customer_ids(tenant_id, [link.customer_id])
    current = next(a for a in accounts if a.provider_account_id == f"{consent_id}-cur")
    (page,) = await reader.transactions_by_account_ids(tenant_id, [current.id or 0], first=50)
    visible = [(t.provider_transaction_id, t.pending_transaction_id) for t in page.items]
    assert (booked, pending) in visible
    read_back = next(t for t in page.items if t.provider_transaction_id == booked)
    assert read_back.reference == "FP-9"  # what reconciliation matches payouts by
    assert all(tid != pending for tid, _ in visible)  # the pending row is gone from reads
    assert len(visible) == len({tid for tid, _ in visible})


async def test_an_expired_consent_marks_the_link_and_keeps_the_data(
    engine: AsyncEngine, tenant_id: int, obuk: OpenBankingProvider,
    obuk_sandbox: OpenBankingSandbox,
) -> None:  # fmt: skip
    link, consent_id = await _link(engine, tenant_id, obuk_sandbox, "s-exp", transactions=2)
    await sync_link(engine, obuk, BOX, link)
    obuk_sandbox.expire_consent(consent_id)
    obuk_sandbox.add_transaction(consent_id, amount="5.00", day=40)

    result = await sync_link(engine, obuk, BOX, await _reload(engine, link))

    assert result.connection_status is ConnectionStatus.LOGIN_REQUIRED
    assert result.added == 0
    assert (await _reload(engine, link)).status is ConnectionStatus.LOGIN_REQUIRED
    assert len(await _stored(engine, link)) == 2

    # a renewed consent (same id) syncs again and the link is active
    obuk_sandbox.consent(consent_id).expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=9)
    renewed = await sync_link(engine, obuk, BOX, await _reload(engine, link))
    assert (renewed.connection_status, renewed.added) == (ConnectionStatus.ACTIVE, 1)
    assert (await _reload(engine, link)).status is ConnectionStatus.ACTIVE
