"""The Plaid adapter against the banking sandbox (in-process and over HTTP), every exchange
checked against Plaid's OpenAPI spec by the `plaid` fixture."""

from __future__ import annotations

import httpx
import pytest

from adapters.banking import ProviderCredentials
from adapters.banking.plaid import PlaidProvider
from adapters.banking.records import BankBalances
from adapters.crypto import SecretText
from adapters.errors import (
    ProviderRateLimited,
    ProviderReauthRequired,
    ProviderRejected,
    ProviderUnavailable,
)
from adapters.sandbox.banking_app import SANDBOX_CLIENT_ID, SANDBOX_SECRET, BankingSandbox
from tests.adapters.banking.sandbox_fixtures import PlaidSpec


def _paged(client: httpx.AsyncClient, page_size: int, restarts: int = 5) -> PlaidProvider:
    credentials = ProviderCredentials(SANDBOX_CLIENT_ID, SecretText(SANDBOX_SECRET))
    return PlaidProvider(client, credentials, sync_page_size=page_size, max_sync_restarts=restarts)


@pytest.mark.parametrize(
    ("currency", "exponent"), [("USD", 2), ("JPY", 0), ("BHD", 3)], ids=["usd", "jpy", "bhd"]
)
async def test_accounts_map_balances_to_exact_minor_units_of_the_iso_exponent(
    plaid: PlaidProvider, banking_sandbox: BankingSandbox, currency: str, exponent: int
) -> None:
    item_id, token = banking_sandbox.create_item(f"item-{currency}", currency=currency)

    accounts = await plaid.get_accounts(SecretText(token))

    assert accounts.item_id == item_id
    assert accounts.institution_id == "ins_109508"
    raw = {a["account_id"]: a for a in banking_sandbox._item(item_id).accounts}
    checking, card = accounts.accounts
    for mapped in (checking, card):
        balances = raw[mapped.provider_account_id]["balances"]
        scale = 10**exponent

        def expected(value: object, scale: int = scale) -> int | None:
            return None if value is None else int(value * scale)  # type: ignore[operator]

        assert mapped.balances == BankBalances(
            current=expected(balances["current"]),
            available=expected(balances["available"]),
            limit=expected(balances["limit"]),
            currency=currency,
            exponent=exponent,
        )
        assert mapped.mask == raw[mapped.provider_account_id]["mask"]
        assert len(raw[mapped.provider_account_id]["mask"]) == 4
        assert mapped.as_of.tzinfo is not None
    assert (checking.type, checking.subtype) == ("depository", "checking")
    assert (card.type, card.subtype) == ("credit", "credit card")
    assert card.balances.available is None


async def test_live_balances_call_the_balance_endpoint_for_the_asked_accounts(
    plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    item_id, token = banking_sandbox.create_item("item-live")

    live = await plaid.get_live_balances(SecretText(token), [f"{item_id}-crd"])

    assert [a.provider_account_id for a in live.accounts] == [f"{item_id}-crd"]
    assert banking_sandbox.calls["/accounts/balance/get"] == 1
    assert banking_sandbox.calls["/accounts/get"] == 0


async def test_transaction_amounts_flip_to_positive_is_money_in_exactly(
    plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    item_id, token = banking_sandbox.create_item("item-signs", transactions=0)
    spent = banking_sandbox.add_transaction(item_id, amount="12.34", name="Coffee")
    paid = banking_sandbox.add_transaction(item_id, amount="-2500.10", name="Payroll")
    tiny = banking_sandbox.add_transaction(item_id, amount="0.3", name="Rounding")

    updates = await plaid.sync_transactions(SecretText(token), None)

    amounts = {t.provider_transaction_id: (t.amount, t.exponent) for t in updates.added}
    assert amounts == {spent: (-1234, 2), paid: (250010, 2), tiny: (-30, 2)}


async def test_institution_maps_name_and_metadata(plaid: PlaidProvider) -> None:
    institution = await plaid.get_institution("ins_109508")

    assert institution.name == "First Platypus Bank"
    assert institution.country_codes == ("US",)
    assert institution.primary_color == "#1f6f8b"


async def test_sync_pages_until_has_more_is_false(
    plaid: PlaidProvider, sandbox_client: httpx.AsyncClient, banking_sandbox: BankingSandbox
) -> None:
    _, token = banking_sandbox.create_item("item-pages", transactions=12)

    updates = await _paged(sandbox_client, 5).sync_transactions(SecretText(token), None)

    assert (updates.pages, updates.restarts) == (3, 0)
    assert len(updates.added) == 12
    assert updates.next_cursor == "cursor-12"
    assert banking_sandbox.calls["/transactions/sync"] == 3


async def test_sync_restarts_from_the_starting_cursor_after_mutation_during_pagination(
    plaid: PlaidProvider, sandbox_client: httpx.AsyncClient, banking_sandbox: BankingSandbox
) -> None:
    item_id, token = banking_sandbox.create_item("item-mutating", transactions=12)
    banking_sandbox.mutate_during_pagination(item_id, times=1)

    updates = await _paged(sandbox_client, 5).sync_transactions(SecretText(token), None)

    # page 1, then the mutation error, then 13 events again from the start: 3 pages.
    assert (updates.pages, updates.restarts) == (3, 1)
    assert len(updates.added) == 13
    assert banking_sandbox.calls["/transactions/sync"] == 5


async def test_sync_gives_up_after_too_many_restarts(
    plaid: PlaidProvider, sandbox_client: httpx.AsyncClient, banking_sandbox: BankingSandbox
) -> None:
    item_id, token = banking_sandbox.create_item("item-churn", transactions=12)
    banking_sandbox.mutate_during_pagination(item_id, times=3)

    with pytest.raises(ProviderUnavailable) as raised:
        await _paged(sandbox_client, 5, restarts=2).sync_transactions(SecretText(token), None)

    assert raised.value.provider_code == "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"


async def test_sync_merges_pages_so_removed_and_modified_are_final(
    plaid: PlaidProvider, sandbox_client: httpx.AsyncClient, banking_sandbox: BankingSandbox
) -> None:
    item_id, token = banking_sandbox.create_item("item-merge", transactions=3)
    first, second, third = banking_sandbox.item_transaction_ids(item_id)
    banking_sandbox.modify_transaction(item_id, first, name="Renamed")
    banking_sandbox.remove_transaction(item_id, second)

    updates = await _paged(sandbox_client, 2).sync_transactions(SecretText(token), None)

    assert [t.provider_transaction_id for t in updates.added] == [first, third]
    assert updates.added[0].name == "Renamed"
    assert updates.modified == ()
    assert updates.removed == (second,)


async def test_login_required_maps_to_reauth_required(
    plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    item_id, token = banking_sandbox.create_item("item-login")
    banking_sandbox.set_login_required(item_id)

    with pytest.raises(ProviderReauthRequired) as raised:
        await plaid.get_accounts(SecretText(token))

    error = raised.value
    assert (error.code, error.provider, error.provider_code) == (
        "PROVIDER_REAUTH_REQUIRED",
        "plaid",
        "ITEM_LOGIN_REQUIRED",
    )
    assert error.request_id is not None
    assert error.retryable is False
    assert "login details" not in error.message  # Plaid's text never becomes ours


async def test_rate_limit_carries_retry_after(
    plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    _, token = banking_sandbox.create_item("item-429")
    banking_sandbox.faults.retry_after_seconds = 7
    banking_sandbox.faults.fail_next("/transactions/sync", "429")

    with pytest.raises(ProviderRateLimited) as raised:
        await plaid.sync_transactions(SecretText(token), None)

    assert (raised.value.retry_after, raised.value.retryable) == (7.0, True)


async def test_server_errors_are_unavailable_and_bad_requests_rejected(
    plaid: PlaidProvider, banking_sandbox: BankingSandbox
) -> None:
    _, token = banking_sandbox.create_item("item-5xx")
    banking_sandbox.faults.fail_next("/accounts/get", "5xx")

    with pytest.raises(ProviderUnavailable) as unavailable:
        await plaid.get_accounts(SecretText(token))
    with pytest.raises(ProviderRejected) as rejected:
        await plaid.get_institution("ins_unknown")
    with pytest.raises(ProviderRejected) as bad_token:
        await plaid.get_accounts(SecretText("not-a-token"))

    assert unavailable.value.retryable is True
    assert rejected.value.provider_code == "INVALID_INSTITUTION"
    assert bad_token.value.provider_code == "INVALID_ACCESS_TOKEN"


async def test_wrong_client_credentials_are_rejected(
    sandbox_client: httpx.AsyncClient, banking_sandbox: BankingSandbox
) -> None:
    _, token = banking_sandbox.create_item("item-creds")
    provider = PlaidProvider(
        sandbox_client, ProviderCredentials(SANDBOX_CLIENT_ID, SecretText("wrong"))
    )

    with pytest.raises(ProviderRejected) as raised:
        await provider.get_accounts(SecretText(token))

    assert raised.value.provider_code == "INVALID_API_KEYS"


async def test_a_hanging_provider_times_out_as_unavailable(
    banking_sandbox: BankingSandbox, banking_transport: str, sandbox_http_server: object
) -> None:
    if banking_transport != "http":
        pytest.skip("client timeouts apply to real connections only")
    _, token = banking_sandbox.create_item("item-hang")
    banking_sandbox.faults.hang_seconds = 2.0
    banking_sandbox.faults.fail_next("/accounts/get", "timeout")
    server = sandbox_http_server
    server.current.sandbox = banking_sandbox  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=server.url, timeout=0.2) as client:  # type: ignore[attr-defined]
        provider = PlaidProvider(
            client, ProviderCredentials(SANDBOX_CLIENT_ID, SecretText(SANDBOX_SECRET))
        )
        with pytest.raises(ProviderUnavailable):
            await provider.get_accounts(SecretText(token))


def test_provider_repr_shows_no_secret(plaid: PlaidProvider) -> None:
    assert SANDBOX_SECRET not in repr(plaid)
    assert SANDBOX_SECRET not in repr(ProviderCredentials("id", SecretText(SANDBOX_SECRET)))


async def test_revoke_access_removes_the_item_so_its_token_stops_working(
    plaid: PlaidProvider, banking_sandbox: BankingSandbox, plaid_spec: PlaidSpec
) -> None:
    item_id, token = banking_sandbox.create_item("item-to-remove")
    banking_sandbox.set_login_required(item_id)  # a broken login does not prevent removal

    await plaid.revoke_access(SecretText(token))

    assert "/item/remove" in plaid_spec.checked  # request and answer match Plaid's spec
    assert banking_sandbox.removed_items == {item_id}
    with pytest.raises(ProviderRejected):
        await plaid.get_accounts(SecretText(token))
    with pytest.raises(ProviderRejected):  # removing twice: the token is already invalid
        await plaid.revoke_access(SecretText(token))
