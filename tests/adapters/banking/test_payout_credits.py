"""Bank credits of card payouts in the banking sandbox: Plaid-valid exchanges (checked against
the spec), dated as asked, in ISO minor units (ISK whole krónur) and our sign (money in > 0)."""

from __future__ import annotations

import datetime as dt

from adapters.banking.plaid import PlaidProvider
from adapters.crypto import SecretText
from adapters.sandbox.banking_app import BankingSandbox
from adapters.sandbox.settlements import credit_payouts, payout_credit_name

ARRIVAL = int(dt.datetime(2023, 11, 16, 22, 13, 20, tzinfo=dt.UTC).timestamp())


async def test_payout_credits_sync_as_money_in_on_their_dates(
    banking_sandbox: BankingSandbox, plaid: PlaidProvider
) -> None:
    usd, token = banking_sandbox.create_item(currency="USD", transactions=0)
    isk, isk_token = banking_sandbox.create_item(currency="ISK", transactions=0)
    payouts = [
        {"id": "po_usd", "amount": 250923, "currency": "usd", "arrival_date": ARRIVAL},
        {"id": "po_isk", "amount": 58700, "currency": "isk", "arrival_date": ARRIVAL},
        {"id": "po_eur", "amount": 100, "currency": "eur", "arrival_date": ARRIVAL},
    ]
    added = credit_payouts(
        banking_sandbox, {"USD": usd, "ISK": isk}, payouts,
        late={"po_usd": 3}, duplicated={"po_isk"}, amounts={"po_isk": 58600},
    )  # fmt: skip
    assert sorted(added) == ["po_isk", "po_usd"]  # no EUR item: no credit
    assert len(added["po_isk"]) == 2

    (credit,) = (await plaid.sync_transactions(SecretText(token), None)).added
    assert (credit.amount, credit.exponent, credit.currency) == (250923, 2, "USD")
    assert credit.date == dt.date(2023, 11, 16) + dt.timedelta(days=1 + 3)
    assert credit.name == payout_credit_name("po_usd").upper()

    krona = (await plaid.sync_transactions(SecretText(isk_token), None)).added
    assert [(c.amount, c.exponent) for c in krona] == [(586, 0), (586, 0)]
