"""A Plaid-shaped banking sandbox: the endpoints our adapter calls, deterministic data per item,
Plaid-shaped errors, fault injection, call counting and signed webhooks.

Serve it in-process (``httpx.AsyncClient(transport=httpx.ASGITransport(sandbox.app))``) or as
a real HTTP server (uvicorn). Every access token ``access-sandbox-<item id>`` names an item
whose accounts and transactions derive from the item id alone, so `gateway seed` data can link
to it without any state; tests add, modify, post and remove transactions through methods.

Transactions per item are an append-only change log; a /transactions/sync cursor is a position
in it. Plaid's amounts are positive for money out, as here.

Fault knobs (`sandbox.faults`, a `BankingFaults`): `latency` seconds per call; `error_rate`
(500 API_ERROR), `rate_limit_rate` (429 RATE_LIMIT_EXCEEDED with Retry-After) and `timeout_rate`
(the call hangs `hang_seconds`) drawn from a seeded random; `fail_next(path, kind, times)`
queues exact failures; `set_login_required(item_id)` turns an item to ITEM_LOGIN_REQUIRED;
`mutate_during_pagination(item_id, times)` answers the next mid-pagination sync calls with
TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION (and changes the item, as Plaid would).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.money import currency_exponent

__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_SECRET",
    "BankingFaults",
    "BankingSandbox",
    "access_token_for_item",
]

SANDBOX_CLIENT_ID = "sandbox-client-id"
SANDBOX_SECRET = "sandbox-secret"  # noqa: S105  (the sandbox's own, public by design)
ACCESS_TOKEN_PREFIX = "access-sandbox-"  # noqa: S105
_EPOCH = dt.date(2026, 1, 1)
_MERCHANTS = (
    ("Coffee Corner", "FOOD_AND_DRINK", "FOOD_AND_DRINK_COFFEE"),
    ("Grocery Market", "FOOD_AND_DRINK", "FOOD_AND_DRINK_GROCERIES"),
    ("City Transit", "TRANSPORTATION", "TRANSPORTATION_PUBLIC_TRANSIT"),
    ("Book Shop", "GENERAL_MERCHANDISE", "GENERAL_MERCHANDISE_BOOKSTORES_AND_NEWSSTANDS"),
    ("Payroll ACME", "INCOME", "INCOME_WAGES"),
)
_INSTITUTIONS = {
    "ins_109508": ("First Platypus Bank", "#1f6f8b"),
    "ins_109509": ("First Gingham Credit Union", "#8b1f4d"),
    "ins_109510": ("Tattersall Federal Credit Union", None),
}
_LOCATION_FIELDS = (
    "address", "city", "region", "postal_code", "country", "lat", "lon", "store_number",
)  # fmt: skip
_PAYMENT_META_FIELDS = (
    "reference_number", "ppd_id", "payee", "by_order_of", "payer", "payment_method",
    "payment_processor", "reason",
)  # fmt: skip
_STATUS = {
    "INVALID_REQUEST": 400,
    "INVALID_INPUT": 400,
    "ITEM_ERROR": 400,
    "TRANSACTIONS_ERROR": 400,
    "RATE_LIMIT_EXCEEDED": 429,
    "API_ERROR": 500,
    "INSTITUTION_ERROR": 502,
}


def access_token_for_item(item_id: str) -> str:
    """The sandbox's access token for `item_id` (any item id is a valid sandbox item)."""
    return ACCESS_TOKEN_PREFIX + item_id


class PlaidFault(Exception):
    def __init__(self, error_type: str, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.error_code = error_code
        self.message = message


@dataclass
class BankingFaults:
    """Fault injection; rates are probabilities per call, drawn from a seeded random."""

    latency: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    retry_after_seconds: int = 1
    seed: int = 7
    queued: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311  (fault draws, not secrets)

    def fail_next(self, path: str, kind: str, times: int = 1) -> None:
        """Queue `times` failures of `kind` ('5xx', '429', 'timeout') for calls to `path`."""
        if kind not in ("5xx", "429", "timeout"):
            raise ValueError(f"unknown fault kind {kind!r}")
        self.queued.extend([(path, kind)] * times)

    def draw(self, path: str) -> str | None:
        for index, (queued_path, kind) in enumerate(self.queued):
            if queued_path == path:
                del self.queued[index]
                return kind
        roll = self._random.random()
        for kind, rate in (
            ("5xx", self.error_rate),
            ("429", self.rate_limit_rate),
            ("timeout", self.timeout_rate),
        ):
            if roll < rate:
                return kind
            roll -= rate
        return None


@dataclass(frozen=True)
class _Transaction:
    transaction_id: str
    account_id: str
    amount: Decimal  # Plaid sign: positive = money out
    date: dt.date
    name: str
    merchant_name: str | None
    category: tuple[str, str]
    pending: bool
    pending_transaction_id: str | None = None


@dataclass
class _Item:
    item_id: str
    institution_id: str
    currency: str
    accounts: list[dict[str, Any]]
    log: list[tuple[str, _Transaction]]  # ("added" | "modified" | "removed", transaction)
    login_required: bool = False
    mutations_pending: int = 0


def _money(value: Decimal) -> float:
    # Plaid sends JSON doubles; the shortest repr of a 2-3 decimal amount is its exact text.
    return float(value)


class BankingSandbox:
    """State, knobs and the ASGI app of the banking sandbox (see the module docstring)."""

    def __init__(
        self,
        *,
        client_id: str = SANDBOX_CLIENT_ID,
        secret: str = SANDBOX_SECRET,
        transactions_per_item: int = 12,
        faults: BankingFaults | None = None,
    ) -> None:
        self.client_id = client_id
        self.secret = secret
        self.transactions_per_item = transactions_per_item
        self.faults = faults or BankingFaults()
        self.calls: Counter[str] = Counter()
        self._items: dict[str, _Item] = {}
        self.removed_items: set[str] = set()
        self._signing_key = ec.generate_private_key(ec.SECP256R1())
        self.key_id = f"sandbox-{uuid.uuid4().hex[:12]}"
        self._key_created_at = int(time.time())
        self.app = Starlette(
            routes=[
                Route(path, self._endpoint(handler), methods=["POST"])
                for path, handler in (
                    ("/accounts/get", self._accounts_get),
                    ("/accounts/balance/get", self._balance_get),
                    ("/institutions/get_by_id", self._institution_get),
                    ("/transactions/sync", self._transactions_sync),
                    ("/webhook_verification_key/get", self._verification_key_get),
                    ("/item/remove", self._item_remove),
                )
            ]
        )

    # -- items and their data ------------------------------------------------------------------

    def create_item(
        self,
        item_id: str | None = None,
        *,
        currency: str = "USD",
        institution_id: str = "ins_109508",
        transactions: int | None = None,
    ) -> tuple[str, str]:
        """Create (or re-create) an item; returns (item_id, access_token)."""
        item_id = item_id or f"item-{uuid.uuid4().hex[:16]}"
        self._items[item_id] = self._generate(item_id, currency, institution_id, transactions)
        return item_id, access_token_for_item(item_id)

    def _generate(
        self, item_id: str, currency: str, institution_id: str, count: int | None
    ) -> _Item:
        seed = int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:8], "big")
        rng = random.Random(seed)  # noqa: S311  (deterministic sample data)
        places = currency_exponent(currency)  # ISK has none, BHD three: as ISO 4217 says
        unit = Decimal(1).scaleb(-places)

        def amount(low: int, high: int) -> Decimal:
            return Decimal(rng.randint(low, high)) * unit

        checking, card = f"{item_id}-chk", f"{item_id}-crd"
        accounts: list[dict[str, Any]] = [
            {
                "account_id": checking,
                "name": "Plaid Checking",
                "official_name": "Plaid Gold Standard 0% Interest Checking",
                "mask": f"{rng.randint(0, 9999):04d}",
                "type": "depository",
                "subtype": "checking",
                "balances": {"available": amount(10_000, 500_000), "limit": None},
            },
            {
                "account_id": card,
                "name": "Plaid Credit Card",
                "official_name": "Plaid Diamond 12.5% APR Interest Credit Card",
                "mask": f"{rng.randint(0, 9999):04d}",
                "type": "credit",
                "subtype": "credit card",
                "balances": {"available": None, "limit": amount(200_000, 1_000_000)},
            },
        ]
        for account in accounts:
            account["balances"]["current"] = amount(1_000, 400_000)
        log: list[tuple[str, _Transaction]] = []
        for index in range(self.transactions_per_item if count is None else count):
            name, primary, detailed = _MERCHANTS[rng.randrange(len(_MERCHANTS))]
            inflow = primary == "INCOME"
            log.append(
                (
                    "added",
                    _Transaction(
                        transaction_id=f"{item_id}-t{index:04d}",
                        account_id=checking if inflow or index % 3 else card,
                        amount=-amount(100_000, 300_000) if inflow else amount(1, 20_000),
                        date=_EPOCH + dt.timedelta(days=index),
                        name=name.upper(),
                        merchant_name=name,
                        category=(primary, detailed),
                        pending=False,
                    ),
                )
            )
        return _Item(item_id, institution_id, currency, accounts, log)

    def _item(self, item_id: str) -> _Item:
        if item_id not in self._items:
            self._items[item_id] = self._generate(item_id, "USD", "ins_109508", None)
        return self._items[item_id]

    def item_transaction_ids(self, item_id: str) -> list[str]:
        """Ids of the item's current (not removed) transactions, oldest first."""
        current: dict[str, _Transaction] = {}
        for kind, transaction in self._item(item_id).log:
            if kind == "removed":
                current.pop(transaction.transaction_id, None)
            else:
                current[transaction.transaction_id] = transaction
        return list(current)

    def _current(self, item_id: str, transaction_id: str) -> _Transaction:
        for kind, transaction in reversed(self._item(item_id).log):
            if transaction.transaction_id == transaction_id:
                if kind == "removed":
                    break
                return transaction
        raise KeyError(transaction_id)

    def add_transaction(
        self,
        item_id: str,
        *,
        amount: str,
        name: str = "Sandbox Purchase",
        pending: bool = False,
        account: str = "chk",
        day: int = 30,
        date: dt.date | None = None,
    ) -> str:
        """Append a transaction (`amount` in Plaid's sign, positive = out); returns its id.

        It is dated `date`, or `day` days after the sandbox's epoch."""
        item = self._item(item_id)
        transaction_id = f"{item_id}-x{len(item.log):04d}"
        item.log.append(
            (
                "added",
                _Transaction(
                    transaction_id=transaction_id,
                    account_id=f"{item_id}-{account}",
                    amount=Decimal(amount),
                    date=date or _EPOCH + dt.timedelta(days=day),
                    name=name.upper(),
                    merchant_name=name,
                    category=("GENERAL_MERCHANDISE", "GENERAL_MERCHANDISE_OTHER"),
                    pending=pending,
                ),
            )
        )
        return transaction_id

    def modify_transaction(self, item_id: str, transaction_id: str, *, name: str) -> None:
        current = self._current(item_id, transaction_id)
        self._item(item_id).log.append(("modified", replace(current, name=name)))

    def remove_transaction(self, item_id: str, transaction_id: str) -> None:
        current = self._current(item_id, transaction_id)
        self._item(item_id).log.append(("removed", current))

    def post_pending(self, item_id: str, pending_id: str, *, amount: str | None = None) -> str:
        """Settle a pending transaction as Plaid does: remove it, add a posted one naming it."""
        pending = self._current(item_id, pending_id)
        item = self._item(item_id)
        posted = replace(
            pending,
            transaction_id=f"{item_id}-x{len(item.log):04d}",
            amount=Decimal(amount) if amount is not None else pending.amount,
            pending=False,
            pending_transaction_id=pending_id,
            date=pending.date + dt.timedelta(days=2),
        )
        item.log.extend([("removed", pending), ("added", posted)])
        return posted.transaction_id

    def set_login_required(self, item_id: str, required: bool = True) -> None:
        self._item(item_id).login_required = required

    def mutate_during_pagination(self, item_id: str, times: int = 1) -> None:
        self._item(item_id).mutations_pending = times

    # -- HTTP ------------------------------------------------------------------------------------

    def _endpoint(
        self, handler: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            path = request.url.path
            self.calls[path] += 1
            request_id = uuid.uuid4().hex[:15]
            if self.faults.latency:
                await asyncio.sleep(self.faults.latency)
            fault = self.faults.draw(path)
            if fault == "timeout":
                await asyncio.sleep(self.faults.hang_seconds)
            try:
                if fault == "5xx":
                    raise PlaidFault("API_ERROR", "INTERNAL_SERVER_ERROR", "an unexpected error")
                if fault == "429":
                    raise PlaidFault(
                        "RATE_LIMIT_EXCEEDED", "TRANSACTIONS_SYNC_LIMIT", "rate limit exceeded"
                    )
                try:
                    body = json.loads(await request.body())
                except ValueError:
                    raise PlaidFault(
                        "INVALID_REQUEST", "INVALID_BODY", "body could not be parsed as JSON"
                    ) from None
                if not isinstance(body, dict):
                    raise PlaidFault("INVALID_REQUEST", "INVALID_BODY", "body must be an object")
                if body.get("client_id") != self.client_id or body.get("secret") != self.secret:
                    raise PlaidFault(
                        "INVALID_INPUT", "INVALID_API_KEYS", "invalid client_id or secret provided"
                    )
                answer = handler(body)
            except PlaidFault as fault_raised:
                return self._error(fault_raised, request_id)
            answer["request_id"] = request_id
            return JSONResponse(answer)

        return endpoint

    def _error(self, fault: PlaidFault, request_id: str) -> Response:
        status = _STATUS.get(fault.error_type, 400)
        headers = {"Retry-After": str(self.faults.retry_after_seconds)} if status == 429 else None
        return JSONResponse(
            {
                "error_type": fault.error_type,
                "error_code": fault.error_code,
                "error_message": fault.message,
                "display_message": None,
                "request_id": request_id,
                "causes": [],
                "status": status,
                "documentation_url": "",
                "suggested_action": None,
            },
            status_code=status,
            headers=headers,
        )

    def _item_for(self, body: dict[str, Any]) -> _Item:
        token = body.get("access_token")
        if not isinstance(token, str) or not token.startswith(ACCESS_TOKEN_PREFIX):
            raise PlaidFault(
                "INVALID_INPUT", "INVALID_ACCESS_TOKEN", "provided access token is invalid"
            )
        item_id = token.removeprefix(ACCESS_TOKEN_PREFIX)
        if item_id in self.removed_items:  # /item/remove invalidated the token
            raise PlaidFault(
                "INVALID_INPUT", "INVALID_ACCESS_TOKEN", "provided access token is invalid"
            )
        item = self._item(item_id)
        if item.login_required:
            raise PlaidFault(
                "ITEM_ERROR",
                "ITEM_LOGIN_REQUIRED",
                "the login details of this item have changed (credentials, MFA, or required "
                "user action) and a user login is required to update this information",
            )
        return item

    def _accounts_json(self, item: _Item, account_ids: list[str] | None) -> list[dict[str, Any]]:
        accounts = []
        for account in item.accounts:
            if account_ids and account["account_id"] not in account_ids:
                continue
            balances = account["balances"]
            accounts.append(
                {
                    **{key: value for key, value in account.items() if key != "balances"},
                    "balances": {
                        "available": None
                        if balances["available"] is None
                        else _money(balances["available"]),
                        "current": _money(balances["current"]),
                        "limit": None if balances["limit"] is None else _money(balances["limit"]),
                        "iso_currency_code": item.currency,
                        "unofficial_currency_code": None,
                    },
                }
            )
        return accounts

    def _item_json(self, item: _Item) -> dict[str, Any]:
        return {
            "item_id": item.item_id,
            "institution_id": item.institution_id,
            "webhook": None,
            "error": None,
            "available_products": ["balance"],
            "billed_products": ["transactions"],
            "consent_expiration_time": None,
            "update_type": "background",
        }

    def _accounts_get(self, body: dict[str, Any]) -> dict[str, Any]:
        item = self._item_for(body)
        account_ids = (body.get("options") or {}).get("account_ids")
        return {"accounts": self._accounts_json(item, account_ids), "item": self._item_json(item)}

    _balance_get = _accounts_get

    def _institution_get(self, body: dict[str, Any]) -> dict[str, Any]:
        institution_id = body.get("institution_id")
        if institution_id not in _INSTITUTIONS:
            raise PlaidFault("INVALID_INPUT", "INVALID_INSTITUTION", "invalid institution_id")
        name, color = _INSTITUTIONS[institution_id]
        return {
            "institution": {
                "institution_id": institution_id,
                "name": name,
                "products": ["balance", "transactions"],
                "country_codes": ["US"],
                "url": f"https://{institution_id}.example",
                "primary_color": color,
                "logo": None,
                "routing_numbers": [],
                "oauth": False,
            }
        }

    def _transaction_json(self, item: _Item, transaction: _Transaction) -> dict[str, Any]:
        return {
            "account_id": transaction.account_id,
            "account_owner": None,
            "amount": _money(transaction.amount),
            "iso_currency_code": item.currency,
            "unofficial_currency_code": None,
            "category": None,
            "category_id": None,
            "date": transaction.date.isoformat(),
            "authorized_date": (transaction.date - dt.timedelta(days=1)).isoformat(),
            "authorized_datetime": None,
            "datetime": None,
            "location": dict.fromkeys(_LOCATION_FIELDS),
            "payment_meta": dict.fromkeys(_PAYMENT_META_FIELDS),
            "name": transaction.name,
            "merchant_name": transaction.merchant_name,
            "payment_channel": "in store",
            "pending": transaction.pending,
            "pending_transaction_id": transaction.pending_transaction_id,
            "transaction_id": transaction.transaction_id,
            "transaction_code": None,
            "personal_finance_category": {
                "primary": transaction.category[0],
                "detailed": transaction.category[1],
                "confidence_level": "VERY_HIGH",
            },
        }

    def _transactions_sync(self, body: dict[str, Any]) -> dict[str, Any]:
        item = self._item_for(body)
        cursor = body.get("cursor") or ""
        count = body.get("count", 100)
        if not isinstance(count, int) or not 1 <= count <= 500:
            raise PlaidFault("INVALID_REQUEST", "INVALID_FIELD", "count must be 1..500")
        if cursor and not cursor.startswith("cursor-"):
            raise PlaidFault("INVALID_INPUT", "INVALID_CURSOR", "cursor is invalid")
        start = int(cursor.removeprefix("cursor-") or 0)
        if cursor and item.mutations_pending:
            item.mutations_pending -= 1
            self.add_transaction(item.item_id, amount="1.00", name="Concurrent Update")
            raise PlaidFault(
                "TRANSACTIONS_ERROR",
                "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
                "underlying transaction data changed since last page was fetched; "
                "please restart pagination from last update",
            )
        events = item.log[start : start + count]
        end = start + len(events)
        answer: dict[str, Any] = {"added": [], "modified": [], "removed": []}
        for kind, transaction in events:
            if kind == "removed":
                answer["removed"].append(
                    {
                        "transaction_id": transaction.transaction_id,
                        "account_id": transaction.account_id,
                    }
                )
            else:
                answer[kind].append(self._transaction_json(item, transaction))
        answer.update(
            accounts=self._accounts_json(item, None),
            next_cursor=f"cursor-{end}",
            has_more=end < len(item.log),
            transactions_update_status="HISTORICAL_UPDATE_COMPLETE",
        )
        return answer

    def public_jwk(self) -> dict[str, Any]:
        """The sandbox's webhook verification key, as /webhook_verification_key/get serves it."""
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self._signing_key.public_key(), as_dict=True)
        return {
            **jwk,
            "alg": "ES256",
            "kid": self.key_id,
            "use": "sig",
            "created_at": self._key_created_at,
            "expired_at": None,
        }

    def _item_remove(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("access_token")
        item_id = token.removeprefix(ACCESS_TOKEN_PREFIX) if isinstance(token, str) else ""
        if not item_id or item_id == token or item_id in self.removed_items:
            raise PlaidFault(
                "INVALID_INPUT", "INVALID_ACCESS_TOKEN", "provided access token is invalid"
            )
        self.removed_items.add(item_id)  # removable whatever its login state, as at Plaid
        return {}

    def _verification_key_get(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("key_id") != self.key_id:
            raise PlaidFault("INVALID_INPUT", "INVALID_WEBHOOK_VERIFICATION_KEY_ID", "unknown key")
        return {"key": self.public_jwk()}

    # -- webhooks ---------------------------------------------------------------------------------

    def sign_webhook(self, body: bytes, *, issued_at: int | None = None) -> str:
        """The `Plaid-Verification` header for `body`: an ES256 JWT over its SHA-256."""
        claims = {
            "iat": int(time.time()) if issued_at is None else issued_at,
            "request_body_sha256": hashlib.sha256(body).hexdigest(),
        }
        return jwt.encode(
            claims, self._signing_key, algorithm="ES256", headers={"kid": self.key_id}
        )

    def webhook_body(
        self, item_id: str, webhook_type: str, webhook_code: str, **extra: Any
    ) -> bytes:
        """A webhook body: TRANSACTIONS/SYNC_UPDATES_AVAILABLE or ITEM/ERROR (login required)."""
        payload: dict[str, Any] = {
            "webhook_type": webhook_type,
            "webhook_code": webhook_code,
            "item_id": item_id,
            "environment": "sandbox",
        }
        if (webhook_type, webhook_code) == ("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE"):
            payload.update(initial_update_complete=True, historical_update_complete=True)
        elif (webhook_type, webhook_code) == ("ITEM", "ERROR"):
            payload["error"] = {
                "error_type": "ITEM_ERROR",
                "error_code": "ITEM_LOGIN_REQUIRED",
                "error_message": "a user login is required",
                "display_message": None,
            }
        payload.update(extra)
        return json.dumps(payload).encode()

    async def send_webhook(
        self,
        client: httpx.AsyncClient,
        url: str,
        item_id: str,
        webhook_type: str = "TRANSACTIONS",
        webhook_code: str = "SYNC_UPDATES_AVAILABLE",
    ) -> httpx.Response:
        """POST a signed webhook to `url` with `client` (the gateway's webhook route)."""
        body = self.webhook_body(item_id, webhook_type, webhook_code)
        return await client.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "Plaid-Verification": self.sign_webhook(body),
            },
        )
