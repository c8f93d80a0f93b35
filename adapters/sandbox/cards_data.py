"""Deterministic Stripe-shaped objects for the card sandbox, generated per customer id.

A customer `cus_<n>` always has the same payment intents, charges, refunds, disputes and
balance transactions for a given seed, whoever asks first. Objects are stored with their
expandable fields as ids, as Stripe stores them; `expand` replaces them on the way out.
"""

from __future__ import annotations

import copy
import hashlib
import random
import re
from typing import Any

__all__ = ["BASE_TIME", "CardsSandboxData", "Json", "customer_number"]

Json = dict[str, Any]

BASE_TIME = 1_700_000_000
_DAY = 86_400
_CUSTOMER = re.compile(r"cus_([0-9]{1,9})")
_CURRENCIES = ("usd", "usd", "usd", "eur", "gbp", "jpy", "isk")
_BRANDS = ("visa", "visa", "mastercard", "amex", "discover")
_WALLETS = (None, None, None, "apple_pay", "google_pay")
_FUNDING = ("credit", "debit", "debit", "prepaid")
_DECLINES = (
    ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    ("card_declined", "generic_decline", "Your card was declined."),
    ("expired_card", "expired_card", "Your card has expired."),
    ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
)
_DISPUTE_REASONS = ("fraudulent", "product_not_received", "duplicate", "general")


def customer_number(customer_id: str) -> int | None:
    match = _CUSTOMER.fullmatch(customer_id)
    return int(match[1]) if match else None


def _suffix(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:14]


class CardsSandboxData:
    """Every object the sandbox serves, built lazily and kept for the sandbox's lifetime.

    `payout_customers` customers (`cus_1`...) feed the account-wide lists: disputes, payouts
    and balance transactions.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        payout_customers: int = 12,
        days_between_payments: float = 1.0,
        payout_weeks: int = 8,
    ) -> None:
        self.seed = seed
        self.objects: dict[str, Json] = {}
        self._intents_by_customer: dict[str, list[str]] = {}
        self._payout_customers = payout_customers
        self._spacing = days_between_payments
        self._payout_weeks = payout_weeks
        self._payouts: list[str] | None = None

    def _rng(self, *parts: object) -> random.Random:
        digest = hashlib.sha256("/".join(map(str, (self.seed, *parts))).encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 (test data)

    # Payments -------------------------------------------------------------------------

    def payment_intent_ids(self, customer_id: str) -> list[str]:
        """The customer's payment intent ids, newest first; none for a malformed id."""
        if customer_id not in self._intents_by_customer:
            number = customer_number(customer_id)
            ids: list[str] = []
            if number is not None:
                count = self._rng("count", customer_id).randint(0, 12)
                ids = [self._make_payment(customer_id, number, k) for k in range(count)]
            self._intents_by_customer[customer_id] = ids
        return self._intents_by_customer[customer_id]

    def payment_intents(self, customer_id: str) -> list[Json]:
        return [self.objects[id_] for id_ in self.payment_intent_ids(customer_id)]

    def get(self, object_id: str) -> Json | None:
        if object_id not in self.objects and object_id.startswith("pi_"):
            self._load_owner_of(object_id)
        return self.objects.get(object_id)

    def _load_owner_of(self, payment_id: str) -> None:
        # Payment intent ids start with the customer number: pi_<n:09d><k:03d><suffix>.
        digits = payment_id[3:12]
        if digits.isdigit():
            self.payment_intent_ids(f"cus_{int(digits)}")

    def _make_payment(self, customer_id: str, number: int, k: int) -> str:
        rng = self._rng("payment", customer_id, k)
        currency = rng.choice(_CURRENCIES)
        scale = {"jpy": 1, "isk": 100}.get(currency, 100)
        amount = rng.randint(5, 500) * scale
        created = BASE_TIME - int(k * self._spacing * _DAY) - number * 60
        outcome = rng.random()
        intent_id = f"pi_{number:09d}{k:03d}{_suffix(self.seed, customer_id, k)}"
        charge_id = f"ch_{number:09d}{k:03d}{_suffix('ch', self.seed, customer_id, k)}"
        intent: Json = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "capture_method": "automatic",
            "confirmation_method": "automatic",
            "created": created,
            "currency": currency,
            "customer": customer_id,
            "description": f"Order {number}-{k}",
            "latest_charge": None,
            "last_payment_error": None,
            "livemode": False,
            "metadata": {},
            "payment_method_types": ["card"],
            "status": "succeeded",
        }
        self.objects[intent_id] = intent
        if outcome < 0.08:
            intent["status"] = "processing"
            return intent_id
        if outcome < 0.12:
            intent["status"] = "canceled"
            intent["canceled_at"] = created + 600
            return intent_id
        charge = self._make_charge(rng, charge_id, intent, created)
        intent["latest_charge"] = charge_id
        if outcome < 0.25:
            code, decline, message = rng.choice(_DECLINES)
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {
                "type": "card_error",
                "code": code,
                "decline_code": decline,
                "message": message,
                "charge": charge_id,
            }
            charge.update(
                status="failed",
                paid=False,
                captured=False,
                amount_captured=0,
                failure_code=code,
                failure_message=message,
                outcome={"type": "issuer_declined", "reason": decline},
            )
            return intent_id
        intent["amount_received"] = amount
        charge["balance_transaction"] = self._make_balance_transaction(
            rng, source=charge_id, kind="charge", amount=amount, currency=currency, at=created
        )
        if outcome > 0.7:
            self._make_refund(rng, charge, full=outcome > 0.85)
        if 0.6 < outcome <= 0.7:
            self._make_dispute(rng, charge, intent_id)
        return intent_id

    def _make_charge(self, rng: random.Random, charge_id: str, intent: Json, created: int) -> Json:
        wallet = rng.choice(_WALLETS)
        card: Json = {
            "brand": rng.choice(_BRANDS),
            "last4": f"{rng.randint(0, 9999):04d}",
            "exp_month": rng.randint(1, 12),
            "exp_year": 2025 + rng.randint(0, 6),
            "funding": rng.choice(_FUNDING),
            "country": "US",
            "wallet": None if wallet is None else {"type": wallet},
        }
        # Stripe's fingerprint: the same card number gives the same value in one account.
        card["fingerprint"] = hashlib.sha256(
            f"{card['brand']}:{card['last4']}:{card['exp_month']}:{card['exp_year']}".encode()
        ).hexdigest()[:16]
        charge: Json = {
            "id": charge_id,
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"],
            "amount_refunded": 0,
            "balance_transaction": None,
            "billing_details": {"address": None, "email": None, "name": None, "phone": None},
            "captured": True,
            "created": created,
            "currency": intent["currency"],
            "customer": intent["customer"],
            "dispute": None,
            "disputed": False,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": {},
            "outcome": {"type": "authorized", "reason": None},
            "paid": True,
            "payment_intent": intent["id"],
            "payment_method_details": {"type": "card", "card": card},
            "refunded": False,
            "status": "succeeded",
        }
        self.objects[charge_id] = charge
        return charge

    def _make_balance_transaction(
        self, rng: random.Random, *, source: str, kind: str, amount: int, currency: str, at: int
    ) -> str:
        balance_id = f"txn_{_suffix('txn', source)}{rng.randint(0, 9999):04d}"
        fee = 0 if amount < 0 else amount * 29 // 1000 + (30 if currency != "jpy" else 0)
        if currency == "isk":  # Stripe's ISK is two-decimal, but only whole krónur exist
            fee = -(-fee // 100) * 100
        self.objects[balance_id] = {
            "id": balance_id,
            "object": "balance_transaction",
            "amount": amount,
            "available_on": at + 2 * _DAY,
            "created": at,
            "currency": currency,
            "description": None,
            "fee": fee,
            "fee_details": [
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Stripe processing fees",
                    "type": "stripe_fee",
                }
            ],
            "net": amount - fee,
            "reporting_category": kind,
            "source": source,
            "status": "available" if at < BASE_TIME - _DAY else "pending",
            "type": kind,
        }
        return balance_id

    def _make_refund(self, rng: random.Random, charge: Json, *, full: bool) -> None:
        amount = charge["amount"] if full else max(1, charge["amount"] // 2)
        if charge["currency"] == "isk":  # whole krónur only (Stripe's ISK is two-decimal)
            amount = max(100, amount // 100 * 100)
        refund_id = f"re_{_suffix('re', charge['id'])}"
        created = charge["created"] + _DAY
        self.objects[refund_id] = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "balance_transaction": self._make_balance_transaction(
                rng, source=refund_id, kind="refund", amount=-amount,
                currency=charge["currency"], at=created,
            ),
            "charge": charge["id"],
            "created": created,
            "currency": charge["currency"],
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": "requested_by_customer",
            "status": "succeeded",
        }  # fmt: skip
        charge.update(amount_refunded=amount, refunded=full)
        charge["_refund_ids"] = [refund_id]

    def _make_dispute(self, rng: random.Random, charge: Json, intent_id: str) -> None:
        dispute_id = f"dp_{_suffix('dp', charge['id'])}"
        created = charge["created"] + 3 * _DAY
        # The disputed amount is withdrawn from the balance (an adjustment, category dispute).
        withdrawal = self._make_balance_transaction(
            rng, source=dispute_id, kind="adjustment", amount=-charge["amount"],
            currency=charge["currency"], at=created,
        )  # fmt: skip
        self.objects[withdrawal]["reporting_category"] = "dispute"
        self.objects[dispute_id] = {
            "id": dispute_id,
            "object": "dispute",
            "amount": charge["amount"],
            "balance_transactions": [self._public(self.objects[withdrawal])],
            "charge": charge["id"],
            "created": created,
            "currency": charge["currency"],
            "evidence": {},
            "evidence_details": {
                "due_by": created + 7 * _DAY,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": intent_id,
            "reason": rng.choice(_DISPUTE_REASONS),
            "status": rng.choice(("needs_response", "under_review", "won", "lost")),
        }
        charge.update(dispute=dispute_id, disputed=True)

    # Account-wide lists ---------------------------------------------------------------

    def _account_customers(self) -> list[str]:
        return [f"cus_{n}" for n in range(1, self._payout_customers + 1)]

    def disputes(self) -> list[Json]:
        for customer in self._account_customers():
            self.payment_intent_ids(customer)
        found = [obj for obj in self.objects.values() if obj["object"] == "dispute"]
        return sorted(found, key=lambda obj: (obj["created"], obj["id"]), reverse=True)

    def payouts(self) -> list[Json]:
        """Weekly payouts, newest first: one per currency and week that netted positive.

        A payout created at T settles every non-payout balance transaction of its currency
        that became available in [T - 7 days, T); its amount is their net sum, so the items
        a payout lists always add up to it (the fault knobs of the app break that on purpose).
        Payouts arrive two days after creation; the newest week is still in transit.
        """
        if self._payouts is None:
            for customer in self._account_customers():
                self.payment_intent_ids(customer)
            movements = [
                obj
                for obj in self.objects.values()
                if obj["object"] == "balance_transaction" and obj["type"] != "payout"
            ]
            self._payouts = []
            for week in range(self._payout_weeks):
                created = BASE_TIME - week * 7 * _DAY
                settled: dict[str, list[Json]] = {}
                for movement in movements:
                    if created - 7 * _DAY <= movement["available_on"] < created:
                        settled.setdefault(movement["currency"], []).append(movement)
                for currency, items in sorted(settled.items()):
                    amount = sum(item["net"] for item in items)
                    if amount > 0:
                        self._payouts.append(
                            self._make_payout(week, currency, amount, created, items)
                        )
            self._payouts.sort(key=lambda id_: (self.objects[id_]["created"], id_), reverse=True)
        return [self.objects[id_] for id_ in self._payouts]

    def _make_payout(
        self, week: int, currency: str, amount: int, created: int, items: list[Json]
    ) -> str:
        rng = self._rng("payout", week, currency)
        payout_id = f"po_{_suffix('po', self.seed, week, currency)}"
        self.objects[payout_id] = {
            "id": payout_id,
            "object": "payout",
            "amount": amount,
            "arrival_date": created + 2 * _DAY,
            "automatic": True,
            "balance_transaction": self._make_balance_transaction(
                rng, source=payout_id, kind="payout", amount=-amount, currency=currency,
                at=created,
            ),
            "created": created,
            "currency": currency,
            "failure_code": None,
            "livemode": False,
            "metadata": {},
            "method": "standard",
            "reconciliation_status": "completed",
            "source_type": "card",
            "statement_descriptor": None,
            "status": "paid" if week else "in_transit",
            "type": "bank_account",
            "_items": [item["id"] for item in items],
        }  # fmt: skip
        return payout_id

    def balance_transactions(self, *, payout_id: str | None = None) -> list[Json]:
        self.payouts()
        if payout_id is None:
            found = [obj for obj in self.objects.values() if obj["object"] == "balance_transaction"]
        else:
            payout = self.objects.get(payout_id)
            if payout is None or payout["object"] != "payout":
                return []
            ids = [*payout["_items"], payout["balance_transaction"]]
            found = [self.objects[id_] for id_ in ids]
        return sorted(found, key=lambda obj: (obj["created"], obj["id"]), reverse=True)

    # Expansion ------------------------------------------------------------------------

    def render(self, obj: Json, expand: list[str]) -> Json:
        """A copy of `obj` with every dotted path in `expand` replaced by its object.

        Raises KeyError naming a path that cannot be expanded.
        """
        out = self._public(obj)
        for path in expand:
            self._expand(out, path.split("."), path)
        return out

    def _public(self, obj: Json) -> Json:
        return {key: copy.deepcopy(value) for key, value in obj.items() if key[0] != "_"}

    def _expand(self, node: Json, parts: list[str], path: str) -> None:
        head, rest = parts[0], parts[1:]
        if head == "refunds" and node.get("object") == "charge":
            refunds = [
                self._public(self.objects[id_]) for id_ in self.objects[node["id"]].get(
                    "_refund_ids", []
                )
            ]  # fmt: skip
            node["refunds"] = {
                "object": "list",
                "data": refunds,
                "has_more": False,
                "url": f"/v1/charges/{node['id']}/refunds",
            }
            targets = refunds if rest and rest[0] == "data" else []
            for target in targets:
                self._expand(target, rest[1:], path)
            return
        if head not in node:
            raise KeyError(path)
        value = node[head]
        if isinstance(value, str):
            stored = self.objects.get(value)
            if stored is None:
                raise KeyError(path)
            value = node[head] = self._public(stored)
        if value is None or not rest:
            return
        if isinstance(value, list):
            for item in value:
                self._expand(item, rest, path)
        elif isinstance(value, dict):
            self._expand(value, rest, path)
