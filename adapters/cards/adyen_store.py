"""Adyen payments in our tables: ingest verified notifications, derive state, read pages.

Ingest (`AdyenStore.ingest`) is one database transaction per delivery:

1. make sure a row exists for every payment the delivery touches and lock it, in key order,
   with one INSERT ... ON CONFLICT DO UPDATE (a no-op update, which locks the existing row on
   PostgreSQL; SQLite serialises writers from that first write), so two deliveries about one
   payment recompute it one after the other and neither loses the other's event;
2. append the items to `adyen_notifications`; a (tenant, pspReference, eventCode, success)
   already there is a duplicate and is skipped (ON CONFLICT DO NOTHING ... RETURNING tells
   which rows are new);
3. read every event of the payments that got a new one and recompute each payment with
   `fold_payment`, a function of the *set* of events (sorted by their own content, never by
   arrival): a CAPTURE before its AUTHORISATION, or a REFUND after a CHARGEBACK, gives the
   same row as the other order.

Reads (`payments_by_shoppers`) are one statement per batch of shoppers, newest first, with
an optional keyset position (created, provider, id) so that pages merge with other processors.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import RowMapping, and_, func, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.cards.adyen_tables import adyen_notifications, adyen_payments
from adapters.cards.adyen_webhooks import Notification
from adapters.cards.records import (
    CardBrand,
    CardFunding,
    CardPayment,
    CardWallet,
    Dispute,
    DisputeReason,
    DisputeStatus,
    FailureCategory,
    PaymentCard,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from adapters.cards.risk_rules import PaymentFact, RiskOutcome
from adapters.ledger.engine import WRITE_OPTION
from adapters.money import _exponent_or_none

__all__ = [
    "PROVIDER",
    "AdyenStore",
    "CardBackfill",
    "IngestResult",
    "PagePosition",
    "adyen_risk_fact",
    "fold_payment",
]

PROVIDER = "adyen"

_DISPUTE_STATUS = {
    "NOTIFICATION_OF_CHARGEBACK": DisputeStatus.WARNING_NEEDS_RESPONSE,
    "REQUEST_FOR_INFORMATION": DisputeStatus.WARNING_NEEDS_RESPONSE,
    "CHARGEBACK": DisputeStatus.NEEDS_RESPONSE,
    "DISPUTE_DEFENSE_PERIOD_ENDED": DisputeStatus.UNDER_REVIEW,
    "PREARBITRATION_OPEN": DisputeStatus.UNDER_REVIEW,
    "CHARGEBACK_REVERSED": DisputeStatus.WON,
    "PREARBITRATION_WON": DisputeStatus.WON,
    "SECOND_CHARGEBACK": DisputeStatus.LOST,
    "PREARBITRATION_LOST": DisputeStatus.LOST,
}
# Same event date: the later stage of a dispute wins.
_DISPUTE_RANK = {
    DisputeStatus.WARNING_NEEDS_RESPONSE: 0,
    DisputeStatus.NEEDS_RESPONSE: 1,
    DisputeStatus.UNDER_REVIEW: 2,
    DisputeStatus.WON: 3,
    DisputeStatus.LOST: 4,
}
_DISPUTE_REASONS = {
    DisputeReason.FRAUDULENT: {"10.4", "4837", "4863", "4870", "4871", "F29", "UA02", "10.5"},
    DisputeReason.PRODUCT_NOT_RECEIVED: {"13.1", "4855", "C08"},
    DisputeReason.DUPLICATE: {"12.6.1", "4834"},
    DisputeReason.CREDIT_NOT_PROCESSED: {"13.6", "4860", "C02"},
    DisputeReason.PRODUCT_UNACCEPTABLE: {"13.3", "4853", "C32"},
    DisputeReason.SUBSCRIPTION_CANCELED: {"13.2", "4841", "C28"},
}
_BRANDS = (
    ("visa", CardBrand.VISA),
    ("mc", CardBrand.MASTERCARD),
    ("amex", CardBrand.AMEX),
    ("discover", CardBrand.DISCOVER),
    ("diners", CardBrand.DINERS),
    ("jcb", CardBrand.JCB),
    ("cup", CardBrand.UNIONPAY),
    ("cartebancaire", CardBrand.CARTES_BANCAIRES),
)
_WALLETS = (
    ("applepay", CardWallet.APPLE_PAY),
    ("googlepay", CardWallet.GOOGLE_PAY),
    ("paywithgoogle", CardWallet.GOOGLE_PAY),
    ("samsungpay", CardWallet.SAMSUNG_PAY),
)
_FAILURES = (
    ("not enough balance", FailureCategory.INSUFFICIENT_FUNDS),
    ("expired", FailureCategory.EXPIRED_CARD),
    ("fraud", FailureCategory.FRAUD_SUSPECTED),
    ("cvc", FailureCategory.INCORRECT_CARD_DETAILS),
    ("invalid card", FailureCategory.INCORRECT_CARD_DETAILS),
    ("3d", FailureCategory.AUTHENTICATION_REQUIRED),
    ("authentication", FailureCategory.AUTHENTICATION_REQUIRED),
    ("acquirer error", FailureCategory.PROCESSING_ERROR),
    ("issuer unavailable", FailureCategory.PROCESSING_ERROR),
)


@dataclass(frozen=True, slots=True)
class CardBackfill:
    """An authorised payment whose notifications lacked card details, for the Checkout API."""

    tenant_id: int
    psp_reference: str
    merchant_account: str
    shopper_reference: str
    recurring_detail_reference: str | None


@dataclass(frozen=True, slots=True)
class IngestResult:
    stored: int
    duplicates: int
    payments: int
    backfills: tuple[CardBackfill, ...]
    # (tenant id, payment) of every payment the delivery changed, as now stored
    changed: tuple[tuple[int, CardPayment], ...] = ()


@dataclass(frozen=True, slots=True)
class PagePosition:
    """Where a merged page stopped: items strictly after it in (created, provider, id) desc."""

    created: dt.datetime
    provider: str
    id: str


def _order_key(event: Notification) -> tuple[dt.datetime, str, str, bool]:
    return (event.event_date, event.event_code, event.psp_reference, event.success)


def _brand(method: str | None) -> tuple[CardBrand, CardWallet | None]:
    method = (method or "").lower()
    brand = next((b for prefix, b in _BRANDS if method.startswith(prefix)), CardBrand.UNKNOWN)
    wallet = next((w for marker, w in _WALLETS if marker in method), None)
    return brand, wallet


def _failure(reason: str | None) -> tuple[str, FailureCategory]:
    text = (reason or "refused").lower()
    code = "".join(c if c.isalnum() else "_" for c in text).strip("_")[:64] or "refused"
    category = next((c for marker, c in _FAILURES if marker in text), FailureCategory.CARD_DECLINED)
    return code, category


def _dispute_reason(code: str | None) -> DisputeReason:
    if code is None:
        return DisputeReason.GENERAL
    return next(
        (r for r, codes in _DISPUTE_REASONS.items() if code in codes), DisputeReason.GENERAL
    )


def _first(events: Iterable[Notification], attribute: str) -> Any:
    return next((getattr(e, attribute) for e in events if getattr(e, attribute)), None)


def fold_payment(
    tenant_id: int, payment_reference: str, events: Sequence[Notification], now: dt.datetime
) -> dict[str, Any]:
    """The `adyen_payments` row of one payment from the set of its events (any order)."""
    ordered = sorted(events, key=_order_key)
    auths = [e for e in ordered if e.event_code == "AUTHORISATION"]
    auth = next((e for e in auths if e.success), auths[0] if auths else None)
    # The AUTHORISATION first, then everything else by date: it is the best source of facts.
    sources = ([auth] if auth else []) + [e for e in ordered if e is not auth]
    basis = sources[0]
    failed_captures = {
        e.psp_reference
        for e in ordered
        if e.event_code == "CAPTURE_FAILED" or (e.event_code == "CAPTURE" and not e.success)
    }
    captures = {
        e.psp_reference: e.amount
        for e in ordered
        if e.event_code == "CAPTURE" and e.success and e.psp_reference not in failed_captures
    }
    captured = sum(captures.values())
    refund_undone = {
        e.psp_reference for e in ordered if e.event_code in ("REFUND_FAILED", "REFUNDED_REVERSED")
    }
    refunds: dict[str, dict[str, Any]] = {}
    cancelled = False
    for event in ordered:
        code = event.event_code
        if code == "REFUND" or (code == "CANCEL_OR_REFUND" and (captured or auth is None)):
            refund_status = RefundStatus.SUCCEEDED if event.success else RefundStatus.FAILED
            if event.psp_reference in refund_undone:
                refund_status = RefundStatus.FAILED
            refunds.setdefault(
                event.psp_reference,
                {
                    "id": event.psp_reference,
                    "amount": event.amount,
                    "status": refund_status.value,
                    "created": event.event_date.isoformat(),
                },
            )
            if event.success and refund_status is RefundStatus.SUCCEEDED:
                refunds[event.psp_reference]["status"] = refund_status.value
        elif (event.success and code in ("CANCELLATION", "TECHNICAL_CANCEL", "EXPIRE")) or (
            event.success and code == "CANCEL_OR_REFUND"
        ):
            cancelled = True
    refunded = sum(r["amount"] for r in refunds.values() if r["status"] == "succeeded")
    failure_code = failure_category = None
    if auth is not None and not auth.success:
        status = PaymentStatus.FAILED
        failure_code, category = _failure(auth.reason)
        failure_category = category.value
    elif cancelled and not captured:
        status = PaymentStatus.CANCELED
    elif captured:
        status = PaymentStatus.SUCCEEDED
    elif auth is not None:
        status = PaymentStatus.REQUIRES_CAPTURE
    else:
        status = PaymentStatus.PROCESSING
    disputes = [e for e in ordered if e.event_code in _DISPUTE_STATUS]
    dispute: dict[str, Any] = {
        "dispute_psp_reference": None,
        "dispute_status": None,
        "dispute_reason": None,
        "dispute_amount": None,
        "dispute_created_at": None,
        "dispute_evidence_due_by": None,
    }
    if disputes:
        latest = max(
            disputes, key=lambda e: (e.event_date, _DISPUTE_RANK[_DISPUTE_STATUS[e.event_code]])
        )
        dispute_status = _DISPUTE_STATUS[latest.event_code]
        opened = next((e for e in disputes if e.event_code == "CHARGEBACK"), disputes[0])
        due = latest.defense_period_ends_at or _first(reversed(disputes), "defense_period_ends_at")
        needs_response = dispute_status in (
            DisputeStatus.NEEDS_RESPONSE,
            DisputeStatus.WARNING_NEEDS_RESPONSE,
        )
        dispute = {
            "dispute_psp_reference": opened.psp_reference,
            "dispute_status": dispute_status.value,
            "dispute_reason": _dispute_reason(_first(disputes, "chargeback_reason_code")).value,
            "dispute_amount": opened.amount,
            "dispute_created_at": disputes[0].event_date,
            "dispute_evidence_due_by": due if needs_response else None,
        }
    brand, wallet = _brand(_first(sources, "payment_method"))
    card_events = [e for e in sources if e.card_last4]
    card = card_events[0] if card_events else None
    exponent = _exponent_or_none(basis.currency)
    return {
        "tenant_id": tenant_id,
        "psp_reference": payment_reference,
        "merchant_account": basis.merchant_account,
        "merchant_reference": _first(sources, "merchant_reference") or "",
        "shopper_reference": _first(sources, "shopper_reference"),
        "amount": basis.amount,
        "currency": basis.currency,
        "exponent": 2 if exponent is None else exponent,
        "amount_captured": captured,
        "amount_refunded": refunded,
        "status": status.value,
        "payment_created_at": auth.event_date if auth else ordered[0].event_date,
        "authorised": auth is not None and auth.success,
        "card_brand": brand.value if card or _first(sources, "payment_method") else None,
        "card_last4": card.card_last4 if card else None,
        "card_exp_month": _first(sources, "card_exp_month"),
        "card_exp_year": _first(sources, "card_exp_year"),
        "card_funding": _first(sources, "card_funding"),
        "card_wallet": wallet.value if wallet else None,
        "failure_code": failure_code,
        "failure_category": failure_category,
        "refunds": sorted(refunds.values(), key=lambda r: (r["created"], r["id"]), reverse=True),
        **dispute,
        "event_count": len(ordered),
        "updated_at": now,
    }


_EVENT_FIELDS = (
    "psp_reference",
    "original_reference",
    "payment_reference",
    "merchant_account",
    "merchant_reference",
    "event_code",
    "success",
    "amount",
    "currency",
    "event_date",
    "payment_method",
    "shopper_reference",
    "reason",
    "card_last4",
    "card_exp_month",
    "card_exp_year",
    "card_funding",
    "recurring_detail_reference",
    "chargeback_reason_code",
    "defense_period_ends_at",
)


def _event_row(tenant_id: int, event: Notification) -> dict[str, Any]:
    return {"tenant_id": tenant_id, **{name: getattr(event, name) for name in _EVENT_FIELDS}}


def _event(row: RowMapping) -> Notification:
    return Notification(**{name: row[name] for name in _EVENT_FIELDS})


@cache
def _statements(dialect_name: str) -> tuple[Any, Any, Any]:
    """The ingest's three writes for a dialect, built once so that SQLAlchemy compiles each
    once (rows go as executemany parameters, not as literal VALUES lists): lock the payments,
    append the events (returning the new ones), store the recomputed payments."""
    dialect: Any = postgresql if dialect_name == "postgresql" else sqlite
    payment_key = ["tenant_id", "psp_reference"]
    lock = dialect.insert(adyen_payments).on_conflict_do_update(
        index_elements=payment_key, set_={"event_count": adyen_payments.c.event_count}
    )
    append = (
        dialect.insert(adyen_notifications)
        .on_conflict_do_nothing(
            index_elements=["tenant_id", "psp_reference", "event_code", "success"]
        )
        .returning(adyen_notifications.c.tenant_id, adyen_notifications.c.payment_reference)
    )
    upsert = dialect.insert(adyen_payments)
    store = upsert.on_conflict_do_update(
        index_elements=payment_key,
        set_={
            column.name: upsert.excluded[column.name]
            for column in adyen_payments.columns
            if column.name not in payment_key
        },
    )
    return lock, append, store


def _enum_or_none(kind: Any, value: str | None) -> Any:
    return None if value is None else kind(value)


def payment_record(row: RowMapping | Mapping[str, Any]) -> CardPayment:
    """An `adyen_payments` row as the provider-neutral CardPayment."""
    currency, exponent = str(row["currency"]), int(row["exponent"])
    card = None
    if row["card_last4"] is not None:
        card = PaymentCard(
            brand=CardBrand(row["card_brand"] or CardBrand.UNKNOWN),
            last4=row["card_last4"],
            exp_month=int(row["card_exp_month"] or 0),
            exp_year=int(row["card_exp_year"] or 0),
            funding=CardFunding(row["card_funding"])
            if row["card_funding"] in CardFunding._value2member_map_
            else CardFunding.UNKNOWN,
            wallet=_enum_or_none(CardWallet, row["card_wallet"]),
        )
    fetched_at = row["updated_at"]
    dispute = None
    if row["dispute_status"] is not None:
        dispute = Dispute(
            id=row["dispute_psp_reference"],
            payment_id=row["psp_reference"],
            amount=int(row["dispute_amount"]),
            currency=currency,
            exponent=exponent,
            status=DisputeStatus(row["dispute_status"]),
            reason=DisputeReason(row["dispute_reason"]),
            evidence_due_by=row["dispute_evidence_due_by"],
            created=row["dispute_created_at"],
            provider=PROVIDER,
            fetched_at=fetched_at,
        )
    return CardPayment(
        id=row["psp_reference"],
        customer_external_id=row["shopper_reference"],
        amount=int(row["amount"]),
        currency=currency,
        exponent=exponent,
        amount_captured=int(row["amount_captured"]),
        amount_refunded=int(row["amount_refunded"]),
        status=PaymentStatus(row["status"]),
        created=row["payment_created_at"],
        card=card,
        refunds=tuple(
            Refund(
                id=refund["id"],
                payment_id=row["psp_reference"],
                amount=int(refund["amount"]),
                currency=currency,
                exponent=exponent,
                status=RefundStatus(refund["status"]),
                created=dt.datetime.fromisoformat(refund["created"]),
            )
            for refund in row["refunds"]
        ),
        dispute=dispute,
        failure_code=row["failure_code"],
        failure_message=None,
        failure_category=_enum_or_none(FailureCategory, row["failure_category"]),
        fee=None,
        net=None,
        description=row["merchant_reference"] or None,
        provider=PROVIDER,
        fetched_at=fetched_at,
    )


_RISK_OUTCOMES = {
    PaymentStatus.SUCCEEDED: RiskOutcome.SUCCEEDED,
    PaymentStatus.REQUIRES_CAPTURE: RiskOutcome.SUCCEEDED,
    PaymentStatus.FAILED: RiskOutcome.DECLINED,
    PaymentStatus.PROCESSING: RiskOutcome.PENDING,
}


def adyen_risk_fact(payment: CardPayment, *, customer_id: int | None) -> PaymentFact | None:
    """What risk keeps of an Adyen payment (adapters.cards.risk), or None for one that is not
    an attempt risk weighs (cancelled before capture). Adyen's notifications carry no card
    fingerprint: card rules (CARD_SHARED, CARD_VELOCITY, NEW_CARD) do not fire for them."""
    outcome = _RISK_OUTCOMES.get(payment.status)
    if outcome is None:
        return None
    return PaymentFact(
        provider=PROVIDER,
        payment_id=payment.id,
        customer_id=customer_id,
        fingerprint=None,
        amount=payment.amount,
        currency=payment.currency,
        outcome=outcome,
        disputed=payment.dispute is not None,
        created=payment.created,
    )


class AdyenStore:
    """Writes and reads of the Adyen tables; every statement names the tenant."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (on SQLite it takes the write lock at BEGIN: writers queue)."""
        async with self._engine.connect() as connection:
            writer = await connection.execution_options(**{WRITE_OPTION: True})
            async with writer.begin():
                yield writer

    async def ingest(
        self, items: Sequence[tuple[int, Notification]], *, now: dt.datetime | None = None
    ) -> IngestResult:
        """Store a delivery's verified items (tenant, notification) and recompute payments."""
        if not items:
            return IngestResult(0, 0, 0, ())
        folded: list[dict[str, Any]] = []
        now = now or dt.datetime.now(dt.UTC)
        unique: dict[tuple[int, str, str, bool], tuple[int, Notification]] = {}
        for tenant_id, event in items:
            key = (tenant_id, event.psp_reference, event.event_code, event.success)
            unique.setdefault(key, (tenant_id, event))
        keys = sorted({(tenant_id, e.payment_reference) for tenant_id, e in unique.values()})
        placeholders: dict[tuple[int, str], dict[str, Any]] = {}
        for tenant_id, event in unique.values():
            placeholders.setdefault(
                (tenant_id, event.payment_reference),
                fold_payment(tenant_id, event.payment_reference, [event], now),
            )
        async with self._writing() as connection:
            lock, append, store = _statements(connection.dialect.name)
            # A no-op update on conflict: the row is locked either way (a fresh insert, or the
            # existing row), in key order, until commit. No SELECT ... FOR UPDATE needed.
            await connection.execute(lock, [placeholders[k] for k in keys])
            inserted = (
                await connection.execute(append, [_event_row(t, e) for t, e in unique.values()])
            ).all()
            changed = sorted({(int(t), str(p)) for t, p in inserted})
            backfills: list[CardBackfill] = []
            if changed:
                event_key = tuple_(
                    adyen_notifications.c.tenant_id, adyen_notifications.c.payment_reference
                )
                rows = (
                    await connection.execute(
                        select(
                            adyen_notifications.c.tenant_id,
                            *(adyen_notifications.c[n] for n in _EVENT_FIELDS),
                        ).where(event_key.in_(changed))
                    )
                ).mappings()
                events: dict[tuple[int, str], list[Notification]] = defaultdict(list)
                for row in rows:
                    events[(int(row["tenant_id"]), row["payment_reference"])].append(_event(row))
                folded = [fold_payment(t, p, events[(t, p)], now) for t, p in changed]
                await connection.execute(store, folded)
                backfills = [
                    CardBackfill(
                        tenant_id=row["tenant_id"],
                        psp_reference=row["psp_reference"],
                        merchant_account=row["merchant_account"],
                        shopper_reference=row["shopper_reference"],
                        recurring_detail_reference=_first(
                            events[(row["tenant_id"], row["psp_reference"])],
                            "recurring_detail_reference",
                        ),
                    )
                    for row in folded
                    if row["authorised"]
                    and row["shopper_reference"]
                    and (row["card_last4"] is None or row["card_exp_month"] is None)
                ]
        return IngestResult(
            stored=len(inserted),
            duplicates=len(items) - len(inserted),
            payments=len(changed),
            backfills=tuple(backfills),
            changed=tuple((int(row["tenant_id"]), payment_record(row)) for row in folded),
        )

    async def fill_card(
        self,
        backfill: CardBackfill,
        *,
        brand: CardBrand,
        last4: str | None,
        exp_month: int | None,
        exp_year: int | None,
    ) -> None:
        """Complete a payment's card from the Checkout API; fields already known are kept."""
        table = adyen_payments
        async with self._writing() as connection:
            await connection.execute(
                table.update()
                .where(
                    table.c.tenant_id == backfill.tenant_id,
                    table.c.psp_reference == backfill.psp_reference,
                )
                .values(
                    card_brand=func.coalesce(table.c.card_brand, brand.value),
                    card_last4=func.coalesce(table.c.card_last4, last4),
                    card_exp_month=func.coalesce(table.c.card_exp_month, exp_month),
                    card_exp_year=func.coalesce(table.c.card_exp_year, exp_year),
                )
            )

    async def payments_by_shoppers(
        self,
        tenant_id: int,
        shopper_references: Sequence[str],
        *,
        limit: int,
        after: PagePosition | None = None,
    ) -> dict[str, list[CardPayment]]:
        """Each shopper's newest `limit` payments strictly after `after`, in one statement."""
        if not shopper_references or limit <= 0:
            return {}
        table = adyen_payments
        conditions = [
            table.c.tenant_id == tenant_id,
            table.c.shopper_reference.in_(list(shopper_references)),
        ]
        if after is not None:
            if after.provider > PROVIDER:  # same time: we sort after the cursor's provider
                conditions.append(table.c.payment_created_at <= after.created)
            elif after.provider < PROVIDER:
                conditions.append(table.c.payment_created_at < after.created)
            else:
                conditions.append(
                    or_(
                        table.c.payment_created_at < after.created,
                        and_(
                            table.c.payment_created_at == after.created,
                            table.c.psp_reference < after.id,
                        ),
                    )
                )
        rank = (
            func.row_number()
            .over(
                partition_by=table.c.shopper_reference,
                order_by=(table.c.payment_created_at.desc(), table.c.psp_reference.desc()),
            )
            .label("rank")
        )
        ranked = select(table, rank).where(*conditions).subquery()
        query = (
            select(ranked)
            .where(ranked.c.rank <= limit)
            .order_by(
                ranked.c.shopper_reference,
                ranked.c.payment_created_at.desc(),
                ranked.c.psp_reference.desc(),
            )
        )
        async with self._engine.connect() as connection:
            rows = list((await connection.execute(query)).mappings())
        pages: dict[str, list[CardPayment]] = defaultdict(list)
        for row in rows:
            pages[str(row["shopper_reference"])].append(payment_record(row))
        return dict(pages)

    async def events_of(self, tenant_id: int, payment_reference: str) -> list[Notification]:
        """The stored events of one payment (tests, support tooling), oldest first."""
        table = adyen_notifications
        query = (
            select(*(table.c[n] for n in _EVENT_FIELDS))
            .where(table.c.tenant_id == tenant_id, table.c.payment_reference == payment_reference)
            .order_by(table.c.event_date, table.c.id)
        )
        async with self._engine.connect() as connection:
            return [_event(row) for row in (await connection.execute(query)).mappings()]
