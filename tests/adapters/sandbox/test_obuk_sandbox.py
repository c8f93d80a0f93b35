"""The Open Banking ASPSP sandbox itself: tokens, consent states, paging links, faults,
determinism. (The adapter's tests check every exchange against the OB spec.)"""

from __future__ import annotations

import httpx

from adapters.sandbox.openbanking_app import (
    OB_BASE_PATH,
    OB_SANDBOX_CLIENT_TOKEN,
    OpenBankingSandbox,
    ob_access_token,
)


def _client(sandbox: OpenBankingSandbox, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app),
        base_url="http://ob" + OB_BASE_PATH,
        headers=headers,
    )


async def test_accounts_need_the_consents_access_token_and_consents_the_tpp_token() -> None:
    sandbox = OpenBankingSandbox()
    consent_id, token = sandbox.create_consent("c-tok")
    async with _client(sandbox) as anonymous:
        assert (await anonymous.get("accounts")).status_code == 401
    async with _client(sandbox, OB_SANDBOX_CLIENT_TOKEN) as tpp:
        assert (await tpp.get("accounts")).status_code == 401
        consent = await tpp.get(f"account-access-consents/{consent_id}")
        assert consent.json()["Data"]["Status"] == "AUTH"
    async with _client(sandbox, token) as psu:
        assert (await psu.get(f"account-access-consents/{consent_id}")).status_code == 401
        accounts = await psu.get("accounts")
    assert accounts.status_code == 200
    assert accounts.headers["x-fapi-interaction-id"]
    assert token == ob_access_token(consent_id)


async def test_expired_and_revoked_consents_answer_403_with_an_ob_error() -> None:
    sandbox = OpenBankingSandbox()
    expired, expired_token = sandbox.create_consent("c-e")
    revoked, revoked_token = sandbox.create_consent("c-r")
    sandbox.expire_consent(expired)
    sandbox.revoke_consent(revoked)
    for token in (expired_token, revoked_token):
        async with _client(sandbox, token) as psu:
            answer = await psu.get("accounts")
        assert answer.status_code == 403
        assert answer.json()["Errors"][0]["ErrorCode"]
    async with _client(sandbox, OB_SANDBOX_CLIENT_TOKEN) as tpp:
        status = (await tpp.get(f"account-access-consents/{revoked}")).json()["Data"]["Status"]
    assert status == "CANC"


async def test_transactions_page_by_next_links_that_keep_the_filter() -> None:
    sandbox = OpenBankingSandbox(page_size=2)
    consent_id, token = sandbox.create_consent("c-page", transactions=0)
    for day in range(1, 6):
        sandbox.add_transaction(consent_id, amount="1.00", day=day)
    seen: list[str] = []
    async with _client(sandbox, token) as psu:
        url: str | None = f"accounts/{consent_id}-cur/transactions"
        params: dict[str, str] | None = {"fromBookingDateTime": "2026-01-03T00:00:00Z"}
        while url:
            body = (await psu.get(url, params=params)).json()
            seen.extend(t["TransactionId"] for t in body["Data"]["Transaction"])
            url, params = body["Links"].get("Next"), None
            if url:
                assert "fromBookingDateTime=2026-01-03" in url
    assert seen == [f"{consent_id}-x{n:04d}" for n in (2, 3, 4, 5)]


async def test_queued_faults_and_rate_limits_carry_retry_after() -> None:
    sandbox = OpenBankingSandbox()
    _, token = sandbox.create_consent("c-f")
    sandbox.faults.fail_next(f"{OB_BASE_PATH}/accounts", "429")
    sandbox.faults.fail_next(f"{OB_BASE_PATH}/accounts", "5xx")
    async with _client(sandbox, token) as psu:
        limited = await psu.get("accounts")
        failed = await psu.get("accounts")
        fine = await psu.get("accounts")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert failed.status_code == 500
    assert fine.status_code == 200
    assert sandbox.calls[f"{OB_BASE_PATH}/accounts"] == 3


async def test_a_consents_data_derives_from_its_id_so_any_process_can_serve_it() -> None:
    first, second = OpenBankingSandbox(), OpenBankingSandbox()
    first.create_consent("c-same")
    assert first.consent("c-same").transactions == second.consent("c-same").transactions
    assert first.consent("c-same").balances == second.consent("c-same").balances
    async with _client(OpenBankingSandbox(), ob_access_token("c-never-created")) as psu:
        assert (await psu.get("accounts")).status_code == 200
    async with _client(OpenBankingSandbox(), ob_access_token("c" * 36)) as psu:
        assert (await psu.get("accounts")).status_code == 401
