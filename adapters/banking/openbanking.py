"""UK Open Banking shaped banking adapter ("obuk"): Account and Transaction API 4.0.

What a link holds. An Open Banking link is an account access consent at one ASPSP (the bank):
its `ConsentId` (the link's external id) and the PSU's OAuth access token for it. The link's
sealed secret carries both (`obuk_link_secret`). Our own credentials are the ASPSP's
`x-fapi-financial-id` (ProviderCredentials.client_id) and a TPP client-credentials token
(ProviderCredentials.secret) that reads consents.

Calls. `GET account-access-consents/{ConsentId}` (TPP token), `GET accounts`,
`GET accounts/{AccountId}/balances`, `GET accounts/{AccountId}/transactions` (PSU token),
relative to the base URL (which includes the ASPSP's prefix, e.g. `/open-banking/v4.0/aisp`),
with `Authorization: Bearer`, `x-fapi-financial-id` and a fresh `x-fapi-interaction-id`. Lists
are followed through `Links.Next`, only while it stays on the base URL's origin and path (the
bearer token is never sent elsewhere).

Consent expiry. Each sync first reads the consent: a Status other than AUTH, or an
ExpirationDateTime in the past, raises ProviderReauthRequired (GraphQL:
PROVIDER_REAUTH_REQUIRED, link LOGIN_REQUIRED). So do a 401 from the ASPSP, and a 403 when a
re-read of the consent shows it is no longer authorised (any other 403 is ProviderRejected).

Money. `Amount` is a decimal string (`^\\d{1,13}(\\.\\d{1,5})?$`) with an ISO 4217 `Currency`:
it becomes integer minor units of that currency's exponent by string arithmetic, never a float.
A non-zero digit beyond the exponent ("1.5" JPY, "0.001" GBP) is refused (ProviderError); zeros
beyond it ("100.00" JPY) are exact and accepted.

Signs. `CreditDebitIndicator` Credit is money in: positive, as in our tables (Plaid's amounts,
positive = money out, are flipped by its adapter to the same convention). Balances follow the
Plaid convention for `current`: depository accounts are signed (Debit = overdrawn, negative);
credit and loan accounts report the amount owed, so Debit is positive there.

Balance types (OB 4.0 uses the ISO codes). `current` is the first present of ITBD
(InterimBooked), CLBD (ClosingBooked), OPBD (OpeningBooked), PRCD (PreviouslyClosedBooked);
`available` the first of ITAV (InterimAvailable), CLAV (ClosingAvailable), XPCD (Expected),
OPAV (OpeningAvailable). Forward-available (FWAV) and INFO are never used. Among balances of one
type the latest DateTime wins; only base-currency (SubType BCUR) amounts count. `limit` is the
`Credit` CreditLine of a credit account.

Transactions. Status BOOK is posted, PDNG pending; RJCT (rejected) removes a transaction we
hold; FUTR and INFO are not movements and are skipped. A transaction without a TransactionId
gets a stable one, `obh-` and a digest of its account, booking time, amount, direction,
currency, reference and narrative (and its rank among identical ones).

Sync without a cursor. The ASPSP has none: our cursor is a watermark. Each sync asks every
account for transactions booked from `fromBookingDateTime` = (latest booked time seen minus
`overlap`, default 3 days), moved earlier to the oldest pending transaction still open, and
remembers, in the cursor, a digest of every transaction in that window by TransactionId. What
comes back is deduplicated against it: unknown ids are added, changed digests modified, known
ids of the window that did not come back (or came back RJCT) removed. Re-running a sync over
the same data yields an empty delta.

Pending to booked. When the ASPSP keeps the TransactionId, the row is updated in place
(pending flag cleared). When it issues a new one, the pending id disappears (removed) and the
booked transaction names it in `pending_transaction_id`, as Plaid's posted transactions do:
it is matched on the same account and direction by TransactionReference when both carry one,
otherwise by an equal amount, earliest booking first, each pending matched at most once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from adapters.banking.protocol import ProviderCredentials
from adapters.banking.records import (
    AccountSet,
    BankAccount,
    BankBalances,
    BankTransaction,
    Institution,
    TransactionUpdates,
)
from adapters.crypto import SecretText
from adapters.errors import (
    InvalidInput,
    ProviderError,
    ProviderRateLimited,
    ProviderReauthRequired,
    ProviderRejected,
    ProviderUnavailable,
)
from adapters.money import currency_exponent

__all__ = [
    "AVAILABLE_BALANCE_TYPES",
    "CURRENT_BALANCE_TYPES",
    "OpenBankingProvider",
    "ob_minor_units",
    "obuk_link_secret",
]

logger = logging.getLogger("adapters.banking.openbanking")

_PROVIDER = "obuk"
CURRENT_BALANCE_TYPES = ("ITBD", "CLBD", "OPBD", "PRCD")
AVAILABLE_BALANCE_TYPES = ("ITAV", "CLAV", "XPCD", "OPAV")
_AMOUNT = re.compile(r"(?P<whole>[0-9]{1,13})(?:\.(?P<fraction>[0-9]{1,5}))?")
_CURSOR_VERSION = 1
# OB AccountTypeCode -> our (type, subtype), in Plaid's vocabulary where it has one.
_ACCOUNT_TYPES = {
    "CACC": ("depository", "checking"),
    "CASH": ("depository", "cash management"),
    "TRAN": ("depository", "checking"),
    "SLRY": ("depository", "checking"),
    "SVGS": ("depository", "savings"),
    "LLSV": ("depository", "savings"),
    "ONDP": ("depository", "savings"),
    "VACC": ("depository", "savings"),
    "MOMA": ("depository", "money market"),
    "CARD": ("credit", "credit card"),
    "CHAR": ("credit", "credit card"),
    "ODFT": ("credit", "line of credit"),
    "LOAN": ("loan", "loan"),
    "MORT": ("loan", "mortgage"),
    "MGLD": ("loan", "mortgage"),
    "WALT": ("other", "wallet"),
}
_OWED_TYPES = frozenset({"credit", "loan"})


def obuk_link_secret(consent_id: str, access_token: str) -> SecretText:
    """The secret an Open Banking link stores (sealed): its consent id and access token."""
    return SecretText(json.dumps({"consent_id": consent_id, "access_token": access_token}))


def _unpack(secret: SecretText) -> tuple[str, str]:
    try:
        values = json.loads(secret.reveal())
        consent_id, token = values["consent_id"], values["access_token"]
    except (ValueError, KeyError, TypeError):
        raise ProviderRejected(
            "the stored Open Banking link secret is malformed", provider=_PROVIDER
        ) from None
    if not isinstance(consent_id, str) or not isinstance(token, str) or not token:
        raise ProviderRejected(
            "the stored Open Banking link secret is malformed", provider=_PROVIDER
        )
    return consent_id, token


def ob_minor_units(amount: object, currency: object) -> tuple[int, str, int]:
    """An OB `Amount` string and `Currency` -> (unsigned minor units, currency, exponent).

    Exact string arithmetic; ProviderError for an unknown currency, a malformed amount or a
    non-zero digit beyond the currency's exponent (see the module docstring)."""
    if not isinstance(currency, str):
        raise ProviderError("the bank reported no currency", provider=_PROVIDER)
    try:
        exponent = currency_exponent(currency)
    except InvalidInput:
        raise ProviderError("the bank reported an unknown currency", provider=_PROVIDER) from None
    match = _AMOUNT.fullmatch(amount) if isinstance(amount, str) else None
    if match is None:
        raise ProviderError("the bank reported a malformed amount", provider=_PROVIDER)
    fraction = match["fraction"] or ""
    if any(digit != "0" for digit in fraction[exponent:]):
        raise ProviderError(
            "the bank reported more decimal places than the currency has", provider=_PROVIDER
        )
    minor = int(match["whole"] + fraction[:exponent].ljust(exponent, "0"))
    return minor, currency, exponent


def _datetime(text: object) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ProviderError("the bank reported a malformed date", provider=_PROVIDER) from None
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _signed(minor: int, indicator: object, *, credit_positive: bool = True) -> int:
    if indicator not in ("Credit", "Debit"):
        raise ProviderError("the bank reported no CreditDebitIndicator", provider=_PROVIDER)
    positive = (indicator == "Credit") == credit_positive
    return minor if positive else -minor


@dataclass(frozen=True, slots=True)
class _Pick:
    """The balance chosen for one of our figures: its rank in the preference, then time."""

    rank: int
    at: dt.datetime
    amount: int


def _balances(
    raw: Sequence[Mapping[str, Any]], account_type: str, currency: str, exponent: int
) -> tuple[BankBalances, dt.datetime | None]:
    owed = account_type in _OWED_TYPES
    chosen: dict[str, _Pick] = {}
    limit: int | None = None
    latest: dt.datetime | None = None
    for balance in raw:
        amount = balance.get("Amount") or {}
        if amount.get("SubType", "BCUR") != "BCUR":
            continue
        minor, code, _ = ob_minor_units(amount.get("Amount"), amount.get("Currency"))
        if code != currency:
            continue
        at = _datetime(balance.get("DateTime")) or dt.datetime.min.replace(tzinfo=dt.UTC)
        latest = at if latest is None or at > latest else latest
        kind = balance.get("Type")
        for figure, preference in (
            ("current", CURRENT_BALANCE_TYPES),
            ("available", AVAILABLE_BALANCE_TYPES),
        ):
            if kind not in preference:
                continue
            signed = _signed(
                minor,
                balance.get("CreditDebitIndicator"),
                credit_positive=not (owed and figure == "current"),
            )
            pick = _Pick(preference.index(kind), at, signed)
            held = chosen.get(figure)
            if held is None or (pick.rank, held.at) < (held.rank, pick.at):
                chosen[figure] = pick
        if owed:
            for line in balance.get("CreditLine") or ():
                line_amount = line.get("Amount")
                if line.get("Type") == "Credit" and isinstance(line_amount, Mapping):
                    limit, _, _ = ob_minor_units(
                        line_amount.get("Amount"), line_amount.get("Currency")
                    )
    return (
        BankBalances(
            current=chosen["current"].amount if "current" in chosen else None,
            available=chosen["available"].amount if "available" in chosen else None,
            limit=limit,
            currency=currency,
            exponent=exponent,
        ),
        latest,
    )


def _mask(raw: Mapping[str, Any]) -> str | None:
    for identification in raw.get("Account") or ():
        digits = re.sub(r"[^0-9]", "", str(identification.get("Identification") or ""))
        if len(digits) >= 2:
            return digits[-4:]
    return None


def _account(
    raw: Mapping[str, Any], balances: Sequence[Mapping[str, Any]], fetched_at: dt.datetime
) -> BankAccount:
    code = str(raw.get("AccountTypeCode") or "")
    account_type, subtype = _ACCOUNT_TYPES.get(code, ("other", code.lower() or None))
    currency = raw.get("Currency")
    if not currency:
        # A switched account may omit it; its balances still name one.
        currency = next(
            (b.get("Amount", {}).get("Currency") for b in balances if b.get("Amount")), None
        )
    _, currency, exponent = ob_minor_units("0", currency)
    figures, as_of = _balances(balances, account_type, currency, exponent)
    description = raw.get("Description")
    return BankAccount(
        provider_account_id=str(raw["AccountId"]),
        # Account[].Name is the holder's name, not the account's: never used as one.
        name=raw.get("Nickname") or description or (subtype or account_type).title(),
        official_name=description,
        mask=_mask(raw),
        type=account_type,
        subtype=subtype,
        balances=figures,
        as_of=as_of or fetched_at,
        provider=_PROVIDER,
    )


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the cursor remembers of one transaction in the overlap window."""

    account_id: str
    digest: str
    pending: bool
    booked_at: dt.datetime
    amount: int
    reference: str | None  # a digest of TransactionReference, never the reference itself

    def dump(self) -> list[Any]:
        return [
            self.account_id,
            self.digest,
            self.pending,
            self.booked_at.isoformat(),
            self.amount,
            self.reference,
        ]

    @classmethod
    def load(cls, values: Sequence[Any]) -> _Seen:
        account_id, digest, pending, booked_at, amount, reference = values
        parsed = _datetime(booked_at)
        if parsed is None:
            raise ValueError("a remembered transaction without a booking time")
        return cls(str(account_id), str(digest), bool(pending), parsed, int(amount), reference)


@dataclass(frozen=True, slots=True)
class _Fetched:
    transaction: BankTransaction
    seen: _Seen


@dataclass(frozen=True, slots=True)
class _State:
    since: dt.datetime | None
    watermark: dt.datetime | None
    seen: dict[str, _Seen]

    @classmethod
    def parse(cls, cursor: str | None) -> _State:
        """The cursor's state; an unreadable one (another version) starts from the beginning,
        which is safe: the sync upserts by provider id, so nothing is duplicated."""
        if not cursor:
            return cls(None, None, {})
        try:
            values = json.loads(cursor)
            if values.get("v") != _CURSOR_VERSION:
                raise ValueError(f"cursor version {values.get('v')!r}")
            return cls(
                _datetime(values.get("from")),
                _datetime(values.get("watermark")),
                {tid: _Seen.load(seen) for tid, seen in values["seen"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError, ProviderError):
            logger.warning("unreadable Open Banking sync cursor; syncing from the beginning")
            return cls(None, None, {})

    def dump(self) -> str:
        return json.dumps(
            {
                "v": _CURSOR_VERSION,
                "from": self.since.isoformat() if self.since else None,
                "watermark": self.watermark.isoformat() if self.watermark else None,
                "seen": {tid: seen.dump() for tid, seen in sorted(self.seen.items())},
            },
            separators=(",", ":"),
        )


def _fetched(raw: Mapping[str, Any], ranks: dict[str, int]) -> _Fetched | None:
    """Map one OB transaction (None for statuses that are not movements)."""
    status = raw.get("Status")
    if status not in ("BOOK", "PDNG", "RJCT"):
        return None
    amount = raw.get("Amount") or {}
    minor, currency, exponent = ob_minor_units(amount.get("Amount"), amount.get("Currency"))
    signed = _signed(minor, raw.get("CreditDebitIndicator"))
    booked_at = _datetime(raw.get("BookingDateTime"))
    if booked_at is None:
        raise ProviderError("the bank reported a transaction without a date", provider=_PROVIDER)
    account_id = str(raw["AccountId"])
    reference = raw.get("TransactionReference")
    information = raw.get("TransactionInformation")
    merchant = (raw.get("MerchantDetails") or {}).get("MerchantName")
    transaction_id = raw.get("TransactionId")
    if not transaction_id:
        base = _digest(account_id, booked_at, signed, currency, reference, information)
        ranks[base] = ranks.get(base, -1) + 1
        transaction_id = f"obh-{base}-{ranks[base]}"
    code = raw.get("BankTransactionCode") or {}
    category = tuple(str(part) for part in (code.get("Code"), code.get("SubCode")) if part)
    transaction = BankTransaction(
        provider_transaction_id=str(transaction_id),
        provider_account_id=account_id,
        amount=signed,
        currency=currency,
        exponent=exponent,
        date=booked_at.date(),
        authorized_date=None,
        name=information or merchant or reference or "",
        merchant_name=merchant,
        category=category,
        is_pending=status == "PDNG",
        pending_transaction_id=None,
        reference=str(reference) if reference else None,
    )
    seen = _Seen(
        account_id=account_id,
        digest=_digest(
            status,
            account_id,
            signed,
            currency,
            booked_at,
            information,
            merchant,
            reference,
            category,
        ),
        pending=status == "PDNG",
        booked_at=booked_at,
        amount=signed,
        reference=_digest(reference) if reference else None,
    )
    return _Fetched(transaction, seen)


def _match_pending(
    added: list[BankTransaction], gone_pending: dict[str, _Seen], seen_now: Mapping[str, _Seen]
) -> list[BankTransaction]:
    """Name, on each booked addition, the vanished pending transaction it replaces."""
    open_pending = dict(sorted(gone_pending.items(), key=lambda item: item[1].booked_at))
    matched: list[BankTransaction] = []
    for transaction in sorted(added, key=lambda t: seen_now[t.provider_transaction_id].booked_at):
        found = None
        if not transaction.is_pending:
            booked = seen_now[transaction.provider_transaction_id]
            for pending_id, pending in open_pending.items():
                if pending.account_id != booked.account_id or (
                    (pending.amount >= 0) != (booked.amount >= 0)
                ):
                    continue
                if pending.reference and booked.reference:
                    if pending.reference == booked.reference:
                        found = pending_id
                        break
                elif pending.amount == booked.amount:
                    found = pending_id
                    break
        if found is not None:
            del open_pending[found]
            transaction = replace(transaction, pending_transaction_id=found)
        matched.append(transaction)
    return matched


class OpenBankingProvider:
    """The Open Banking Account and Transaction API over an injected httpx client."""

    provider_name = _PROVIDER

    def __init__(
        self,
        http_client: httpx.AsyncClient,
        credentials: ProviderCredentials,
        *,
        institution_name: str = "Open Banking ASPSP",
        overlap: dt.timedelta = dt.timedelta(days=3),
        max_pages: int = 10_000,
    ) -> None:
        self._http = http_client
        self._credentials = credentials
        self._institution_name = institution_name
        self._overlap = overlap
        self._max_pages = max_pages

    def __repr__(self) -> str:
        return f"OpenBankingProvider(base_url={str(self._http.base_url)!r})"

    @property
    def name(self) -> str:
        return _PROVIDER

    # -- HTTP ------------------------------------------------------------------------------------

    def _same_origin(self, url: str) -> str:
        """A Links URL, only if it stays under our base URL (the token must not leave)."""
        base, target = self._http.base_url, httpx.URL(url)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port) or (
            not target.path.startswith(base.path.rstrip("/") + "/")
        ):
            raise ProviderError("the bank sent a link to another origin", provider=_PROVIDER)
        return url

    async def _get(
        self,
        url: str,
        token: str,
        *,
        params: Mapping[str, str] | None = None,
        consent_id: str | None = None,
    ) -> Mapping[str, Any]:
        """GET one resource. `consent_id` None: a call with our TPP token (a 401 is ours to
        fix, not the customer's)."""
        headers = {
            "Authorization": f"Bearer {token}",
            "x-fapi-financial-id": self._credentials.client_id,
            "x-fapi-interaction-id": str(uuid.uuid4()),
            "Accept": "application/json",
        }
        try:
            response = await self._http.get(url, params=params, headers=headers)
        except httpx.TimeoutException as error:
            raise ProviderUnavailable("the bank timed out", provider=_PROVIDER) from error
        except httpx.TransportError as error:
            raise ProviderUnavailable("the bank is unreachable", provider=_PROVIDER) from error
        if response.status_code == 200:
            try:
                body = json.loads(response.text)
            except ValueError:
                body = None
            if not isinstance(body, Mapping) or not isinstance(body.get("Data"), Mapping):
                raise ProviderUnavailable("the bank sent an unreadable answer", provider=_PROVIDER)
            return body
        raise await self._error(response, consent_id)

    async def _error(self, response: httpx.Response, consent_id: str | None) -> ProviderError:
        """Translate an ASPSP error; the bank's own message never reaches ours."""
        status = response.status_code
        request_id = response.headers.get("x-fapi-interaction-id")
        code: str | None = None
        try:
            errors = json.loads(response.text).get("Errors") or []
            code = str(errors[0].get("ErrorCode")) if errors else None
        except (ValueError, AttributeError, TypeError):
            code = None
        logger.info("obuk call failed: status %s, code %s, interaction %s", status, code,
                    request_id)  # fmt: skip
        if status == 429:
            retry_after = response.headers.get("Retry-After")
            return ProviderRateLimited(
                "the bank is rate limiting us",
                provider=_PROVIDER,
                request_id=request_id,
                provider_code=code,
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        if status == 401 and consent_id is not None:
            return ProviderReauthRequired(
                "the customer must renew their consent at the bank",
                provider=_PROVIDER,
                request_id=request_id,
                provider_code=code or "401",
            )
        if status == 403 and consent_id is not None:
            try:
                await self._check_consent(consent_id)
            except ProviderReauthRequired as expired:
                return expired
        if status >= 500:
            return ProviderUnavailable(
                "the bank is unavailable", provider=_PROVIDER, request_id=request_id,
                provider_code=code,
            )  # fmt: skip
        return ProviderRejected(
            "the bank refused the request", provider=_PROVIDER, request_id=request_id,
            provider_code=code or str(status),
        )  # fmt: skip

    async def _paged(
        self,
        path: str,
        token: str,
        consent_id: str,
        key: str,
        params: Mapping[str, str] | None = None,
    ) -> tuple[list[Mapping[str, Any]], int]:
        """Every item of `Data.<key>` across the Links.Next pages, and the page count."""
        items: list[Mapping[str, Any]] = []
        url: str | None = path
        pages = 0
        while url is not None:
            pages += 1
            if pages > self._max_pages:
                raise ProviderUnavailable("the bank's pages did not end", provider=_PROVIDER)
            body = await self._get(
                url, token, params=params if pages == 1 else None, consent_id=consent_id
            )
            items.extend(body["Data"].get(key) or ())
            following = (body.get("Links") or {}).get("Next")
            url = self._same_origin(following) if following else None
        return items, pages

    # -- consents --------------------------------------------------------------------------------

    async def _check_consent(self, consent_id: str) -> None:
        """ProviderReauthRequired unless the consent is authorised and unexpired."""
        body = await self._get(
            f"account-access-consents/{consent_id}", self._credentials.secret.reveal()
        )
        data = body["Data"]
        expires = _datetime(data.get("ExpirationDateTime"))
        status = data.get("Status")
        if status != "AUTH" or (expires is not None and expires <= dt.datetime.now(dt.UTC)):
            raise ProviderReauthRequired(
                "the customer's consent at the bank has expired or was withdrawn",
                provider=_PROVIDER,
                provider_code="EXPD" if status == "AUTH" else str(status),
            )

    # -- the protocol ----------------------------------------------------------------------------

    async def _account_set(
        self, secret: SecretText, account_ids: Sequence[str] | None
    ) -> AccountSet:
        consent_id, token = _unpack(secret)
        raw_accounts, _ = await self._paged("accounts", token, consent_id, "Account")
        fetched_at = dt.datetime.now(dt.UTC)
        accounts = []
        for raw in raw_accounts:
            account_id = str(raw.get("AccountId") or "")
            if not account_id or (account_ids and account_id not in account_ids):
                continue
            balances, _ = await self._paged(
                f"accounts/{account_id}/balances", token, consent_id, "Balance"
            )
            accounts.append(_account(raw, balances, fetched_at))
        return AccountSet(
            item_id=consent_id,
            institution_id=self._credentials.client_id,
            accounts=tuple(accounts),
        )

    async def get_accounts(self, access_token: SecretText) -> AccountSet:
        return await self._account_set(access_token, None)

    async def get_live_balances(
        self, access_token: SecretText, account_ids: Sequence[str] | None = None
    ) -> AccountSet:
        """Open Banking balances are always the bank's own: the same calls as get_accounts."""
        return await self._account_set(access_token, account_ids)

    async def get_institution(
        self, institution_id: str, country_codes: Sequence[str] = ("GB",)
    ) -> Institution:
        """One adapter talks to one ASPSP: its institution is configuration, not a lookup."""
        return Institution(
            institution_id=institution_id,
            name=self._institution_name,
            country_codes=("GB",),
            url=None,
            primary_color=None,
            products=("accounts", "balances", "transactions"),
        )

    async def sync_transactions(
        self, access_token: SecretText, cursor: str | None
    ) -> TransactionUpdates:
        """The delta since the watermark in `cursor` (see the module docstring)."""
        consent_id, token = _unpack(access_token)
        state = _State.parse(cursor)
        await self._check_consent(consent_id)
        account_set = await self._account_set(access_token, None)
        params = {}
        if state.since is not None:
            # UTC; the spec's format is an RFC 3339 date-time (the ASPSP ignores the zone).
            params["fromBookingDateTime"] = state.since.strftime("%Y-%m-%dT%H:%M:%SZ")
        now: dict[str, _Fetched] = {}
        rejected: set[str] = set()
        pages = 0
        ranks: dict[str, int] = {}
        for account in account_set.accounts:
            raw, account_pages = await self._paged(
                f"accounts/{account.provider_account_id}/transactions",
                token,
                consent_id,
                "Transaction",
                params,
            )
            pages += account_pages
            for item in raw:
                fetched = _fetched(item, ranks)
                if fetched is None:
                    continue
                tid = fetched.transaction.provider_transaction_id
                if item.get("Status") == "RJCT":
                    rejected.add(tid)
                    now.pop(tid, None)
                elif tid not in rejected:
                    now[tid] = fetched
        added: list[BankTransaction] = []
        modified: list[BankTransaction] = []
        for tid, fetched in now.items():
            before = state.seen.get(tid)
            if before is None:
                added.append(fetched.transaction)
            elif before.digest != fetched.seen.digest:
                modified.append(fetched.transaction)
        gone = {
            tid: seen
            for tid, seen in state.seen.items()
            if tid not in now and (state.since is None or seen.booked_at >= state.since)
        }
        seen_now = {tid: fetched.seen for tid, fetched in now.items()}
        added = _match_pending(added, {t: s for t, s in gone.items() if s.pending}, seen_now)
        booked_times = [s.booked_at for s in seen_now.values() if not s.pending]
        watermark = max([*booked_times, *([state.watermark] if state.watermark else [])],
                        default=None)  # fmt: skip
        since = watermark - self._overlap if watermark is not None else None
        pending_times = [s.booked_at for s in seen_now.values() if s.pending]
        if pending_times and (since is None or min(pending_times) < since):
            since = min(pending_times)
        window = {
            tid: seen for tid, seen in seen_now.items() if since is None or seen.booked_at >= since
        }
        return TransactionUpdates(
            added=tuple(added),
            modified=tuple(modified),
            removed=tuple(sorted(gone)),
            accounts=account_set.accounts,
            next_cursor=_State(since, watermark, window).dump(),
            pages=pages,
            restarts=0,
        )
