"""A UK Open Banking (Account and Transaction API 4.0) shaped ASPSP sandbox.

Serves the endpoints our `obuk` adapter calls under `/open-banking/v4.0/aisp`: the account
access consent (read with the TPP's client-credentials token), the accounts, their balances and
their transactions (read with the PSU's access token of that consent), paged by `Links.Next`.
Answers, errors included, follow `OBReadConsentResponse1`, `OBReadAccount6`, `OBReadBalance1`,
`OBReadTransaction6` and `OBErrorResponse1`; the contract tests check every exchange against the
published spec.

Every consent has the access token ``ob-access-<consent id>`` and data derived from the consent
id alone (a current account and a credit card, booked transactions, balances of several types),
so, as in the Plaid-shaped sandbox, any consent id (up to 35 characters) is valid and links
made by another process work without state; an unknown one is authorised for 90 days from its
first use. Tests add, book and reject transactions through methods.

Knobs: `page_size` (transactions per page), `forbidden_accounts` (account ids whose calls
answer 403 while the consent stays authorised, as for a permission the consent lacks),
`expire_consent` (ExpirationDateTime in the past:
resource calls then answer 403), `revoke_consent` (Status CANC, 403 too), `faults` (the same
`BankingFaults` as the Plaid-shaped sandbox: latency, 5xx, 429 with Retry-After, hangs, queued
failures by path), `calls` counts requests by path (query strings left out).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.sandbox.banking_app import BankingFaults

__all__ = [
    "OB_ACCESS_TOKEN_PREFIX",
    "OB_BASE_PATH",
    "OB_SANDBOX_CLIENT_TOKEN",
    "OB_SANDBOX_FINANCIAL_ID",
    "OpenBankingSandbox",
    "ob_access_token",
]

OB_BASE_PATH = "/open-banking/v4.0/aisp"
OB_ACCESS_TOKEN_PREFIX = "ob-access-"  # noqa: S105  (sandbox tokens, public by design)
OB_SANDBOX_CLIENT_TOKEN = "ob-sandbox-client-token"  # noqa: S105
OB_SANDBOX_FINANCIAL_ID = "0015800001041RHAAY"
_EPOCH = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
_PERMISSIONS = [
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadTransactionsCredits",
    "ReadTransactionsDebits",
    "ReadTransactionsDetail",
]
_MERCHANTS = ("Corner Cafe", "High Street Grocer", "Tube Fares", "Book Nook", "ACME Payroll")


def ob_access_token(consent_id: str) -> str:
    """The PSU access token the sandbox issued for `consent_id`."""
    return OB_ACCESS_TOKEN_PREFIX + consent_id


def _places(currency: str) -> int:
    return 0 if currency in ("JPY", "KRW") else 3 if currency in ("BHD", "KWD") else 2


def _timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


def _amount_text(value: Decimal, places: int) -> str:
    return f"{abs(value):.{places}f}"


class _OBFault(Exception):
    def __init__(self, status: int, code: str | None = None, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class _Transaction:
    transaction_id: str | None
    account_id: str
    amount: Decimal  # positive; the direction is `credit`
    credit: bool
    status: str  # BOOK | PDNG | RJCT
    booked_at: dt.datetime
    information: str
    reference: str | None
    merchant: str | None


@dataclass
class _Consent:
    consent_id: str
    currency: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    status: str
    accounts: list[dict[str, Any]]
    balances: dict[str, list[tuple[str, str, Decimal, dt.datetime]]]  # account -> (type, CDI, ...)
    card_limit: Decimal = Decimal(0)
    transactions: list[_Transaction] = field(default_factory=list)
    counter: int = 0

    def next_id(self) -> str:
        self.counter += 1
        return f"{self.consent_id}-x{self.counter:04d}"


class OpenBankingSandbox:
    """State, knobs and the ASGI app of the Open Banking sandbox (see the module docstring)."""

    def __init__(
        self,
        *,
        financial_id: str = OB_SANDBOX_FINANCIAL_ID,
        client_token: str = OB_SANDBOX_CLIENT_TOKEN,
        transactions_per_consent: int = 12,
        page_size: int = 25,
        faults: BankingFaults | None = None,
    ) -> None:
        self.financial_id = financial_id
        self.client_token = client_token
        self.transactions_per_consent = transactions_per_consent
        self.page_size = page_size
        self.faults = faults or BankingFaults()
        self.calls: Counter[str] = Counter()
        self.forbidden_accounts: set[str] = set()
        self._consents: dict[str, _Consent] = {}
        base = OB_BASE_PATH
        self.app = Starlette(
            routes=[
                Route(f"{base}/account-access-consents/{{consent_id}}", self._wrap(self._consent)),
                Route(f"{base}/accounts", self._wrap(self._accounts)),
                Route(f"{base}/accounts/{{account_id}}/balances", self._wrap(self._balances)),
                Route(
                    f"{base}/accounts/{{account_id}}/transactions", self._wrap(self._transactions)
                ),
            ]
        )

    # -- consents and their data -----------------------------------------------------------------

    def create_consent(
        self,
        consent_id: str | None = None,
        *,
        currency: str = "GBP",
        transactions: int | None = None,
        expires_in: dt.timedelta | None = dt.timedelta(days=90),
    ) -> tuple[str, str]:
        """Create (or re-create) an authorised consent; returns (consent id, access token)."""
        consent_id = consent_id or f"consent-{uuid.uuid4().hex[:16]}"
        count = self.transactions_per_consent if transactions is None else transactions
        consent = self._consents[consent_id] = self._generate(consent_id, currency, count)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        consent.expires_at = None if expires_in is None else now + expires_in
        return consent_id, ob_access_token(consent_id)

    def _generate(self, consent_id: str, currency: str, count: int) -> _Consent:
        seed = int.from_bytes(hashlib.sha256(consent_id.encode()).digest()[:8], "big")
        rng = random.Random(seed)  # noqa: S311  (deterministic sample data)
        unit = Decimal(1).scaleb(-_places(currency))

        def amount(low: int, high: int) -> Decimal:
            return Decimal(rng.randint(low, high)) * unit

        current, card = f"{consent_id}-cur", f"{consent_id}-card"
        accounts = [
            {
                "AccountId": current,
                "Status": "Enabled",
                "Currency": currency,
                "AccountCategory": "Personal",
                "AccountTypeCode": "CACC",
                "Nickname": "Bills",
                "Account": [
                    {
                        "SchemeName": "UK.OBIE.SortCodeAccountNumber",
                        "Identification": f"80200110{rng.randint(0, 999999):06d}",
                        "Name": "Mx Sandbox",
                    }
                ],
            },
            {
                "AccountId": card,
                "Status": "Enabled",
                "Currency": currency,
                "AccountCategory": "Personal",
                "AccountTypeCode": "CARD",
                "Description": "Platinum Card",
                "Account": [
                    {
                        # Masked: the consent has no ReadPAN permission.
                        "SchemeName": "UK.OBIE.PAN",
                        "Identification": f"************{rng.randint(0, 9999):04d}",
                        "Name": "Mx Sandbox",
                    }
                ],
            },
        ]
        yesterday = _EPOCH + dt.timedelta(days=40)
        today = yesterday + dt.timedelta(hours=20)
        booked = amount(10_000, 500_000)
        owed = amount(1_000, 200_000)
        limit = amount(300_000, 900_000)
        balances = {
            current: [
                ("CLBD", "Credit", booked - amount(1, 5_000), yesterday),
                ("ITBD", "Credit", booked, today),
                ("ITAV", "Credit", booked - amount(1, 5_000), today),
                ("XPCD", "Credit", booked - amount(1, 9_000), today),
            ],
            card: [
                ("ITBD", "Debit", owed, today),
                ("ITAV", "Credit", limit - owed, today),
            ],
        }
        consent = _Consent(
            consent_id=consent_id,
            currency=currency,
            created_at=_EPOCH,
            expires_at=None,
            status="AUTH",
            accounts=accounts,
            balances=balances,
            card_limit=limit,
        )
        for index in range(count):
            name = _MERCHANTS[rng.randrange(len(_MERCHANTS))]
            inflow = name == "ACME Payroll"
            consent.transactions.append(
                _Transaction(
                    transaction_id=f"{consent_id}-t{index:04d}",
                    account_id=current if inflow or index % 3 else card,
                    amount=amount(100_000, 300_000) if inflow else amount(1, 20_000),
                    credit=inflow,
                    status="BOOK",
                    booked_at=_EPOCH + dt.timedelta(days=index, hours=index % 7),
                    information=name.upper(),
                    reference=f"REF{index:06d}",
                    merchant=None if inflow else name,
                )
            )
        return consent

    def consent(self, consent_id: str) -> _Consent:
        if consent_id not in self._consents:
            self.create_consent(consent_id)
        return self._consents[consent_id]

    def expire_consent(self, consent_id: str) -> None:
        """Move the consent's ExpirationDateTime into the past (status stays AUTH)."""
        self._consents[consent_id].expires_at = dt.datetime.now(dt.UTC).replace(
            microsecond=0
        ) - dt.timedelta(minutes=1)

    def revoke_consent(self, consent_id: str) -> None:
        """The PSU revoked the consent at the bank: Status CANC."""
        self._consents[consent_id].status = "CANC"

    def add_transaction(
        self,
        consent_id: str,
        *,
        amount: str,
        credit: bool = False,
        pending: bool = False,
        account: str = "cur",
        day: int = 30,
        hour: int = 12,
        information: str = "Sandbox Purchase",
        reference: str | None = None,
        with_id: bool = True,
    ) -> str | None:
        """Append a transaction (`amount` a positive decimal string); returns its id."""
        consent = self._consents[consent_id]
        transaction_id = consent.next_id() if with_id else None
        consent.transactions.append(
            _Transaction(
                transaction_id=transaction_id,
                account_id=f"{consent_id}-{account}",
                amount=Decimal(amount),
                credit=credit,
                status="PDNG" if pending else "BOOK",
                booked_at=_EPOCH + dt.timedelta(days=day, hours=hour),
                information=information,
                reference=reference,
                merchant=None,
            )
        )
        return transaction_id

    def _index(self, consent_id: str, transaction_id: str) -> int:
        for index, transaction in enumerate(self._consents[consent_id].transactions):
            if transaction.transaction_id == transaction_id:
                return index
        raise KeyError(transaction_id)

    def book_pending(
        self,
        consent_id: str,
        transaction_id: str,
        *,
        keep_id: bool = False,
        amount: str | None = None,
        days_later: int = 1,
    ) -> str:
        """Book a pending transaction. `keep_id`: the same TransactionId turns BOOK (as the
        standard intends); otherwise, as many banks do, the pending entry disappears and a
        booked one with a new TransactionId and the same TransactionReference appears."""
        consent = self._consents[consent_id]
        index = self._index(consent_id, transaction_id)
        pending = consent.transactions[index]
        booked = replace(
            pending,
            status="BOOK",
            amount=Decimal(amount) if amount is not None else pending.amount,
            booked_at=pending.booked_at + dt.timedelta(days=days_later),
            transaction_id=transaction_id if keep_id else consent.next_id(),
        )
        if keep_id:
            consent.transactions[index] = booked
        else:
            del consent.transactions[index]
            consent.transactions.append(booked)
        assert booked.transaction_id is not None
        return booked.transaction_id

    def reject_pending(self, consent_id: str, transaction_id: str) -> None:
        """The bank rejected a pending transaction: its Status turns RJCT."""
        consent = self._consents[consent_id]
        index = self._index(consent_id, transaction_id)
        consent.transactions[index] = replace(consent.transactions[index], status="RJCT")

    # -- HTTP ------------------------------------------------------------------------------------

    def _wrap(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            path = request.url.path
            self.calls[path] += 1
            interaction_id = request.headers.get("x-fapi-interaction-id") or str(uuid.uuid4())
            headers = {"x-fapi-interaction-id": interaction_id}
            if self.faults.latency:
                await asyncio.sleep(self.faults.latency)
            fault = self.faults.draw(path)
            if fault == "timeout":
                await asyncio.sleep(self.faults.hang_seconds)
            try:
                if fault == "5xx":
                    raise _OBFault(500, "UNKN", "An unexpected error occurred")
                if fault == "429":
                    headers["Retry-After"] = str(self.faults.retry_after_seconds)
                    return Response(status_code=429, headers=headers)
                if request.headers.get("x-fapi-financial-id", self.financial_id) != (
                    self.financial_id
                ):
                    raise _OBFault(403, "U008", "Unknown x-fapi-financial-id")
                answer = handler(request)
            except _OBFault as error:
                if error.code is None:
                    return Response(status_code=error.status, headers=headers)
                body = {
                    "Id": uuid.uuid4().hex[:16],
                    "Errors": [{"ErrorCode": error.code, "Message": error.message}],
                }
                return JSONResponse(body, status_code=error.status, headers=headers)
            return JSONResponse(answer, headers=headers)

        return endpoint

    def _bearer(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or not header[7:]:
            raise _OBFault(401)
        return header[7:]

    def _psu_consent(self, request: Request) -> _Consent:
        token = self._bearer(request)
        consent_id = token.removeprefix(OB_ACCESS_TOKEN_PREFIX)
        if not token.startswith(OB_ACCESS_TOKEN_PREFIX) or not 0 < len(consent_id) <= 35:
            raise _OBFault(401)
        consent = self.consent(consent_id)
        now = dt.datetime.now(dt.UTC)
        if consent.status != "AUTH" or (consent.expires_at and consent.expires_at <= now):
            raise _OBFault(403, "U028", "The consent is no longer authorised")
        return consent

    def _links(self, request: Request, page: int | None, has_next: bool) -> dict[str, str]:
        query = {k: v for k, v in request.query_params.items() if k != "page"}
        base = str(request.url.replace(query=""))

        def at(number: int) -> str:
            return base + "?" + urlencode({**query, "page": str(number)})

        links = {"Self": at(page) if page else str(request.url)}
        if page and has_next:
            links["Next"] = at(page + 1)
        return links

    def _consent(self, request: Request) -> dict[str, Any]:
        if self._bearer(request) != self.client_token:
            raise _OBFault(401)
        consent_id = request.path_params["consent_id"]
        if not 0 < len(consent_id) <= 35:
            raise _OBFault(400, "U002", "Unknown ConsentId")
        consent = self.consent(consent_id)
        data: dict[str, Any] = {
            "ConsentId": consent.consent_id,
            "CreationDateTime": _timestamp(consent.created_at),
            "Status": consent.status,
            "StatusUpdateDateTime": _timestamp(consent.created_at),
            "Permissions": _PERMISSIONS,
        }
        if consent.expires_at is not None:
            data["ExpirationDateTime"] = _timestamp(consent.expires_at)
        return {"Data": data, "Risk": {}, "Links": {"Self": str(request.url)}, "Meta": {}}

    def _accounts(self, request: Request) -> dict[str, Any]:
        consent = self._psu_consent(request)
        return {
            "Data": {"Account": consent.accounts},
            "Links": {"Self": str(request.url)},
            "Meta": {"TotalPages": 1},
        }

    def _account(self, request: Request) -> tuple[_Consent, str]:
        consent = self._psu_consent(request)
        account_id = request.path_params["account_id"]
        if account_id not in consent.balances:
            raise _OBFault(400, "U002", "Unknown AccountId")
        if account_id in self.forbidden_accounts:
            raise _OBFault(403, "U009", "The consent does not cover this resource")
        return consent, account_id

    def _balances(self, request: Request) -> dict[str, Any]:
        consent, account_id = self._account(request)
        places = _places(consent.currency)
        balances = []
        for balance_type, indicator, value, at in consent.balances[account_id]:
            balance: dict[str, Any] = {
                "AccountId": account_id,
                "CreditDebitIndicator": indicator,
                "Type": balance_type,
                "DateTime": _timestamp(at),
                "Amount": {"Amount": _amount_text(value, places), "Currency": consent.currency},
            }
            if account_id.endswith("-card"):
                limit = consent.card_limit
                balance["CreditLine"] = [
                    {
                        "Included": balance_type == "ITAV",
                        "Type": "Credit",
                        "Amount": {
                            "Amount": _amount_text(limit, places),
                            "Currency": consent.currency,
                        },
                    }
                ]
            balances.append(balance)
        return {"Data": {"Balance": balances}, "Links": {"Self": str(request.url)}, "Meta": {}}

    def _transactions(self, request: Request) -> dict[str, Any]:
        consent, account_id = self._account(request)
        since_text = request.query_params.get("fromBookingDateTime")
        try:
            # The standard: a timezone in the parameter is ignored; the time is UTC.
            since = (
                dt.datetime.fromisoformat(since_text[:19]).replace(tzinfo=dt.UTC)
                if since_text
                else None
            )
            page = int(request.query_params.get("page", "1"))
        except ValueError:
            raise _OBFault(400, "U002", "Invalid query parameter") from None
        if page < 1:
            raise _OBFault(400, "U002", "Invalid page")
        matching = sorted(
            (
                t
                for t in consent.transactions
                if t.account_id == account_id and (since is None or t.booked_at >= since)
            ),
            key=lambda t: t.booked_at,
        )
        start = (page - 1) * self.page_size
        chunk = matching[start : start + self.page_size]
        has_next = start + self.page_size < len(matching)
        places = _places(consent.currency)
        total_pages = max(1, -(-len(matching) // self.page_size))
        return {
            "Data": {"Transaction": [self._transaction_json(t, places, consent) for t in chunk]},
            "Links": self._links(request, page, has_next),
            "Meta": {"TotalPages": total_pages},
        }

    @staticmethod
    def _transaction_json(
        transaction: _Transaction, places: int, consent: _Consent
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "AccountId": transaction.account_id,
            "CreditDebitIndicator": "Credit" if transaction.credit else "Debit",
            "Status": transaction.status,
            "BookingDateTime": _timestamp(transaction.booked_at),
            "ValueDateTime": _timestamp(transaction.booked_at),
            "TransactionInformation": transaction.information,
            "Amount": {
                "Amount": _amount_text(transaction.amount, places),
                "Currency": consent.currency,
            },
        }
        if transaction.transaction_id is not None:
            body["TransactionId"] = transaction.transaction_id
        if transaction.reference is not None:
            body["TransactionReference"] = transaction.reference
        if transaction.merchant is not None:
            body["MerchantDetails"] = {"MerchantName": transaction.merchant}
        return body
