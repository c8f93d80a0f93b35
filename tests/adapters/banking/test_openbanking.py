"""The Open Banking (`obuk`) adapter against its ASPSP sandbox, in-process and over HTTP; every
request and response (errors included) is checked against the OB Account and Transaction API
4.0 spec by the `obuk_client` fixture."""

from __future__ import annotations

import json

import httpx
import pytest

from adapters.banking import ProviderCredentials
from adapters.banking.openbanking import OpenBankingProvider, ob_minor_units, obuk_link_secret
from adapters.banking.records import BankTransaction, TransactionUpdates
from adapters.crypto import SecretText
from adapters.errors import (
    ProviderError,
    ProviderRateLimited,
    ProviderReauthRequired,
    ProviderRejected,
    ProviderUnavailable,
)
from adapters.sandbox.openbanking_app import (
    OB_BASE_PATH,
    OB_SANDBOX_FINANCIAL_ID,
    OpenBankingSandbox,
)
from tests.adapters.banking.obuk_fixtures import ObukSpec


def _secret(sandbox: OpenBankingSandbox, consent: str, **options: object) -> SecretText:
    consent_id, token = sandbox.create_consent(consent, **options)  # type: ignore[arg-type]
    return obuk_link_secret(consent_id, token)


def _by_id(updates: TransactionUpdates) -> dict[str, BankTransaction]:
    return {t.provider_transaction_id: t for t in (*updates.added, *updates.modified)}


# -- money ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("12.34", "GBP", (1234, 2)),
        ("12", "GBP", (1200, 2)),
        ("0.5", "GBP", (50, 2)),
        ("12.340", "GBP", (1234, 2)),  # a trailing zero is exact
        ("1500", "JPY", (1500, 0)),
        ("1500.00", "JPY", (1500, 0)),
        ("1.234", "BHD", (1234, 3)),
        ("0.001", "KWD", (1, 3)),
        ("9999999999999.99", "GBP", (999999999999999, 2)),
    ],
)
def test_amounts_become_exact_minor_units_of_the_iso_exponent(
    amount: str, currency: str, expected: tuple[int, int]
) -> None:
    minor, code, exponent = ob_minor_units(amount, currency)
    assert (minor, exponent) == expected
    assert code == currency
    assert isinstance(minor, int)


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("1.5", "JPY"),  # JPY has no minor unit
        ("0.001", "GBP"),  # a third decimal in GBP
        ("1.2345", "BHD"),  # a fourth in BHD
        ("-1.00", "GBP"),  # the sign is CreditDebitIndicator's, never the amount's
        ("1e3", "GBP"),
        ("1,00", "GBP"),
        ("", "GBP"),
        ("12.34", "XYZ"),  # not ISO 4217
        ("12.34", None),
        (12.34, "GBP"),  # a JSON number is not the spec's string
    ],
)
def test_amounts_the_currency_cannot_hold_are_refused(amount: object, currency: object) -> None:
    with pytest.raises(ProviderError):
        ob_minor_units(amount, currency)


# -- accounts and balances ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "exponent"), [("GBP", 2), ("JPY", 0), ("BHD", 3)], ids=["gbp", "jpy", "bhd"]
)
async def test_accounts_pick_current_and_available_by_the_documented_balance_types(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox, currency: str, exponent: int
) -> None:
    secret = _secret(obuk_sandbox, f"c-acc-{currency}", currency=currency)

    accounts = await obuk.get_accounts(secret)

    assert accounts.item_id == f"c-acc-{currency}"
    assert accounts.institution_id == OB_SANDBOX_FINANCIAL_ID
    current, card = accounts.accounts
    raw = obuk_sandbox.consent(f"c-acc-{currency}").balances
    scale = 10**exponent
    by_type = {kind: (cdi, value) for kind, cdi, value, _ in raw[current.provider_account_id]}
    # current: ITBD before CLBD; available: ITAV before XPCD
    assert current.balances.current == int(by_type["ITBD"][1] * scale)
    assert current.balances.available == int(by_type["ITAV"][1] * scale)
    assert (current.balances.currency, current.balances.exponent) == (currency, exponent)
    assert (current.type, current.subtype, current.name) == ("depository", "checking", "Bills")
    card_types = {kind: value for kind, _, value, _ in raw[card.provider_account_id]}
    # a card's Debit balance is the amount owed: positive, as Plaid's credit accounts report it
    assert card.balances.current == int(card_types["ITBD"] * scale) > 0
    assert card.balances.available == int(card_types["ITAV"] * scale)
    assert card.balances.limit == int(obuk_sandbox.consent(f"c-acc-{currency}").card_limit * scale)
    assert (card.type, card.subtype, card.name) == ("credit", "credit card", "Platinum Card")
    for account in (current, card):
        assert account.mask is not None
        assert len(account.mask) == 4
        assert account.provider == "obuk"
        assert account.as_of.tzinfo is not None
    # the holder's name (Account[].Name) is never taken as the account's
    assert "Mx Sandbox" not in {current.name, current.official_name, card.name, card.official_name}


async def test_an_overdrawn_current_account_is_negative(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    from decimal import Decimal

    secret = _secret(obuk_sandbox, "c-overdrawn")
    balances = obuk_sandbox.consent("c-overdrawn").balances["c-overdrawn-cur"]
    balances[:] = [(kind, "Debit", Decimal("12.30"), at) for kind, _, _, at in balances]

    (current, _card) = (await obuk.get_accounts(secret)).accounts

    assert (current.balances.current, current.balances.available) == (-1230, -1230)


async def test_live_balances_read_only_the_asked_accounts(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-live")

    live = await obuk.get_live_balances(secret, ["c-live-card"])

    assert [a.provider_account_id for a in live.accounts] == ["c-live-card"]
    assert obuk_sandbox.calls[f"{OB_BASE_PATH}/accounts/c-live-card/balances"] == 1
    assert obuk_sandbox.calls[f"{OB_BASE_PATH}/accounts/c-live-cur/balances"] == 0


async def test_the_institution_is_the_configured_aspsp() -> None:
    async with httpx.AsyncClient(base_url="http://unused") as client:
        provider = OpenBankingProvider(
            client, ProviderCredentials("fid", SecretText("t")), institution_name="Bank of Tests"
        )
        institution = await provider.get_institution("fid")
    assert (institution.institution_id, institution.name) == ("fid", "Bank of Tests")


# -- transactions and sync ------------------------------------------------------------------------


async def test_a_first_sync_pages_by_links_and_signs_by_credit_debit_indicator(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox, obuk_spec: ObukSpec
) -> None:
    obuk_sandbox.page_size = 3
    secret = _secret(obuk_sandbox, "c-first", transactions=0)
    spent = obuk_sandbox.add_transaction("c-first", amount="12.34", day=1)
    paid = obuk_sandbox.add_transaction("c-first", amount="2500.10", credit=True, day=2)
    for day in range(3, 10):
        obuk_sandbox.add_transaction("c-first", amount="1.00", day=day)

    updates = await obuk.sync_transactions(secret, None)

    found = _by_id(updates)
    assert len(found) == 9
    assert not updates.modified
    assert not updates.removed
    assert found[str(spent)].amount == -1234  # Debit: money out
    assert found[str(paid)].amount == 250010  # Credit: money in
    assert found[str(paid)].currency == "GBP"
    assert found[str(paid)].exponent == 2
    assert all(not t.is_pending for t in found.values())
    assert updates.pages == 3 + 1  # 9 on the current account in pages of 3, the card one
    transaction_pages = [
        path for path, status in obuk_spec.checked if path.endswith("/transactions")
    ]
    assert len(transaction_pages) >= 4
    assert {account.provider_account_id for account in updates.accounts} == {
        "c-first-cur", "c-first-card",
    }  # fmt: skip


async def test_a_resync_over_the_same_data_is_an_empty_delta(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-again")
    first = await obuk.sync_transactions(secret, None)

    again = await obuk.sync_transactions(secret, first.next_cursor)

    assert (again.added, again.modified, again.removed) == ((), (), ())
    cursor = json.loads(again.next_cursor)
    assert cursor["from"] is not None  # a watermark, asked with an overlap


async def test_an_unreadable_cursor_syncs_from_the_beginning(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-badcur", transactions=4)

    updates = await obuk.sync_transactions(secret, "cursor-12")  # e.g. not ours

    assert len(updates.added) == 4
    assert json.loads(updates.next_cursor)["v"] == 1


async def test_the_watermark_asks_only_recent_history_with_an_overlap(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-water", transactions=20)
    first = await obuk.sync_transactions(secret, None)
    late = obuk_sandbox.add_transaction("c-water", amount="3.00", day=25)

    second = await obuk.sync_transactions(secret, first.next_cursor)

    assert [t.provider_transaction_id for t in second.added] == [late]
    watermark = json.loads(first.next_cursor)
    # 20 generated transactions, one a day from day 0: the window holds the last 3 days only
    assert 1 <= len(watermark["seen"]) <= 4


async def test_pending_booked_under_a_new_id_replaces_it_by_reference(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-pend", transactions=3)
    pending = obuk_sandbox.add_transaction(
        "c-pend", amount="20.00", pending=True, reference="FPID-1", day=5
    )
    other = obuk_sandbox.add_transaction(
        "c-pend", amount="20.00", pending=True, reference="FPID-2", day=5
    )
    first = await obuk.sync_transactions(secret, None)
    assert _by_id(first)[str(pending)].is_pending
    # booked with a new id and another amount (a tip): matched by its reference, not amount
    booked = obuk_sandbox.book_pending("c-pend", str(pending), amount="23.00")

    second = await obuk.sync_transactions(secret, first.next_cursor)

    assert second.removed == (pending,)
    [added] = second.added
    assert added.provider_transaction_id == booked
    assert added.pending_transaction_id == pending
    assert (added.is_pending, added.amount) == (False, -2300)
    assert not second.modified
    assert json.loads(second.next_cursor)["seen"][str(other)][2] is True  # still pending


async def test_pending_without_references_match_by_amount(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-amt", transactions=0)
    pending = obuk_sandbox.add_transaction("c-amt", amount="7.50", pending=True, day=5)
    first = await obuk.sync_transactions(secret, None)
    booked = obuk_sandbox.book_pending("c-amt", str(pending))

    second = await obuk.sync_transactions(secret, first.next_cursor)

    assert [(t.provider_transaction_id, t.pending_transaction_id) for t in second.added] == [
        (booked, pending)
    ]


async def test_pending_booked_under_the_same_id_is_modified_in_place(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-same", transactions=2)
    pending = obuk_sandbox.add_transaction("c-same", amount="4.00", pending=True, day=5)
    first = await obuk.sync_transactions(secret, None)
    obuk_sandbox.book_pending("c-same", str(pending), keep_id=True)

    second = await obuk.sync_transactions(secret, first.next_cursor)

    assert not second.added
    assert not second.removed
    [modified] = second.modified
    assert (modified.provider_transaction_id, modified.is_pending) == (pending, False)


async def test_a_rejected_pending_transaction_is_removed(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-rjct", transactions=2)
    pending = obuk_sandbox.add_transaction("c-rjct", amount="4.00", pending=True, day=5)
    first = await obuk.sync_transactions(secret, None)
    obuk_sandbox.reject_pending("c-rjct", str(pending))

    second = await obuk.sync_transactions(secret, first.next_cursor)

    assert (second.added, second.modified, second.removed) == ((), (), (pending,))


async def test_transactions_without_an_id_get_a_stable_one(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-noid", transactions=0)
    for _ in range(2):  # two identical entries stay two transactions
        obuk_sandbox.add_transaction("c-noid", amount="1.00", day=3, with_id=False)
    first = await obuk.sync_transactions(secret, None)
    ids = sorted(t.provider_transaction_id for t in first.added)

    again = await obuk.sync_transactions(secret, first.next_cursor)

    assert len(set(ids)) == 2
    assert all(i.startswith("obh-") for i in ids)
    assert (again.added, again.modified, again.removed) == ((), (), ())


# -- consent and failures -------------------------------------------------------------------------


async def test_an_expired_consent_is_reauth_required_before_any_account_call(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-exp")
    obuk_sandbox.expire_consent("c-exp")

    with pytest.raises(ProviderReauthRequired) as raised:
        await obuk.sync_transactions(secret, None)

    assert raised.value.code == "PROVIDER_REAUTH_REQUIRED"
    assert raised.value.provider == "obuk"
    assert obuk_sandbox.calls[f"{OB_BASE_PATH}/accounts"] == 0


async def test_a_consent_revoked_at_the_bank_turns_a_403_into_reauth_required(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox, obuk_spec: ObukSpec
) -> None:
    secret = _secret(obuk_sandbox, "c-rev")
    obuk_sandbox.revoke_consent("c-rev")

    with pytest.raises(ProviderReauthRequired) as raised:
        await obuk.get_accounts(secret)

    assert raised.value.provider_code == "CANC"
    assert (f"{OB_BASE_PATH}/accounts", 403) in obuk_spec.checked  # the 403 matches the spec


async def test_a_refused_access_token_is_reauth_required(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    obuk_sandbox.create_consent("c-tok")

    with pytest.raises(ProviderReauthRequired):
        await obuk.get_accounts(obuk_link_secret("c-tok", "not-a-token"))


async def test_our_client_token_refused_is_rejected_not_the_customers_problem(
    obuk_client: httpx.AsyncClient, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-tpp")
    provider = OpenBankingProvider(
        obuk_client, ProviderCredentials(OB_SANDBOX_FINANCIAL_ID, SecretText("wrong"))
    )

    with pytest.raises(ProviderRejected):
        await provider.sync_transactions(secret, None)


async def test_a_403_while_the_consent_is_authorised_is_rejected_not_reauth(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox, obuk_spec: ObukSpec
) -> None:
    secret = _secret(obuk_sandbox, "c-403")
    obuk_sandbox.forbidden_accounts.add("c-403-card")

    with pytest.raises(ProviderRejected) as raised:
        await obuk.get_accounts(secret)

    assert raised.value.provider_code == "U009"
    # the consent was read again to tell a withdrawn consent from a missing permission
    assert obuk_sandbox.calls[f"{OB_BASE_PATH}/account-access-consents/c-403"] == 1
    assert (f"{OB_BASE_PATH}/accounts/c-403-card/balances", 403) in obuk_spec.checked


async def test_5xx_and_429_map_to_unavailable_and_rate_limited(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-fault")
    obuk_sandbox.faults.fail_next(f"{OB_BASE_PATH}/accounts", "5xx")
    with pytest.raises(ProviderUnavailable):
        await obuk.get_accounts(secret)

    obuk_sandbox.faults.retry_after_seconds = 7
    obuk_sandbox.faults.fail_next(f"{OB_BASE_PATH}/accounts", "429")
    with pytest.raises(ProviderRateLimited) as limited:
        await obuk.get_accounts(secret)
    assert limited.value.retry_after == 7.0


async def test_a_next_link_to_another_origin_is_not_followed(
    obuk_client: httpx.AsyncClient, obuk_sandbox: OpenBankingSandbox
) -> None:
    secret = _secret(obuk_sandbox, "c-link", transactions=0)
    from adapters.sandbox.openbanking_app import OB_SANDBOX_CLIENT_TOKEN

    leaked: list[httpx.Request] = []

    async def redirect_links(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/transactions"):
            body = json.loads(await response.aread())
            body["Links"]["Next"] = "https://evil.example/open-banking/v4.0/aisp/x"
            response._content = json.dumps(body).encode()

    obuk_client.event_hooks["request"] = [lambda request: _record(leaked, request)]
    obuk_client.event_hooks["response"] = [redirect_links]
    provider = OpenBankingProvider(
        obuk_client,
        ProviderCredentials(OB_SANDBOX_FINANCIAL_ID, SecretText(OB_SANDBOX_CLIENT_TOKEN)),
    )

    with pytest.raises(ProviderError, match="another origin"):
        await provider.sync_transactions(secret, None)

    assert all(request.url.host != "evil.example" for request in leaked)


async def _record(requests: list[httpx.Request], request: httpx.Request) -> None:
    requests.append(request)


async def test_a_malformed_link_secret_is_rejected_without_a_call(
    obuk: OpenBankingProvider, obuk_sandbox: OpenBankingSandbox
) -> None:
    with pytest.raises(ProviderRejected):
        await obuk.get_accounts(SecretText("not json"))
    assert sum(obuk_sandbox.calls.values()) == 0
