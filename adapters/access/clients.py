"""API clients: create, find by key, list, revoke, rotate a key.

A key is `fgw_live_<43 random url-safe characters>` (or `fgw_test_...`): 256 random bits behind
a prefix that secret scanners and people recognise. Only its HMAC-SHA-256 under the server's
pepper is stored, so a database leak yields no usable key; the key itself is returned once,
by `create` and `rotate_key`.

`by_key` reads the database on every call on purpose: a revocation (or rotation) committed by
any process is seen by the next request everywhere, with no cache to go stale.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.access.tables import api_clients
from adapters.errors import InvalidInput, NotFound
from adapters.read_pool import ReadPool

__all__ = [
    "DEFAULT_POLICIES",
    "KEY_PREFIXES",
    "ApiClient",
    "ClientKind",
    "ClientStore",
    "IssuedKey",
    "OperationPolicy",
    "looks_like_api_key",
]

ClientKind = Literal["first_party", "partner", "analyst"]
KeyEnvironment = Literal["live", "test"]
KEY_PREFIXES: tuple[str, ...] = ("fgw_live_", "fgw_test_")
_KEY_RANDOM_CHARS = 43  # secrets.token_urlsafe(32)
_SHOWN_CHARS = 4


@dataclass(frozen=True, slots=True)
class OperationPolicy:
    """Which documents a client may send.

    `apq_enabled`: automatic persisted queries (register a hash by sending its text).
    `allow_text`: query text may be sent at all (else only registered document ids).
    `safelist_required`: text must match one of the client's registered documents.
    `introspection`: `__schema` / `__type` may be queried.
    """

    apq_enabled: bool
    allow_text: bool
    safelist_required: bool
    introspection: bool


DEFAULT_POLICIES: dict[ClientKind, OperationPolicy] = {
    "partner": OperationPolicy(
        apq_enabled=False, allow_text=False, safelist_required=True, introspection=False
    ),
    "first_party": OperationPolicy(
        apq_enabled=True, allow_text=True, safelist_required=True, introspection=True
    ),
    "analyst": OperationPolicy(
        apq_enabled=True, allow_text=True, safelist_required=False, introspection=True
    ),
}


@dataclass(frozen=True, slots=True)
class ApiClient:
    id: int
    tenant_id: int
    name: str
    kind: ClientKind
    key_prefix: str
    scopes: frozenset[str]
    policy: OperationPolicy
    rate_limit: int | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    max_cost: int | None = None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A client and its new key: the only time the key is ever available."""

    client: ApiClient
    key: str


def _new_key(environment: KeyEnvironment) -> str:
    return f"fgw_{environment}_{secrets.token_urlsafe(32)}"


def looks_like_api_key(value: str) -> bool:
    """Cheap shape check before any hashing or I/O."""
    return value.startswith(KEY_PREFIXES) and len(value) == len(KEY_PREFIXES[0]) + _KEY_RANDOM_CHARS


def _record(row: Row[Any] | Mapping[str, Any]) -> ApiClient:
    """An ApiClient from a SQLAlchemy row or an asyncpg record (mapping access)."""
    values: Mapping[Any, Any] = row._mapping if isinstance(row, Row) else row
    scopes = values["scopes"]
    return ApiClient(
        id=values["id"],
        tenant_id=values["tenant_id"],
        name=values["name"],
        kind=values["kind"],
        key_prefix=values["key_prefix"],
        scopes=frozenset(json.loads(scopes) if isinstance(scopes, str) else scopes),
        policy=OperationPolicy(
            apq_enabled=values["apq_enabled"],
            allow_text=values["allow_text"],
            safelist_required=values["safelist_required"],
            introspection=values["introspection"],
        ),
        rate_limit=values["rate_limit"],
        created_at=values["created_at"],
        revoked_at=values["revoked_at"],
        max_cost=values["max_cost"],
    )


# The per-request key lookup, for the read pool (adapters.read_pool) on PostgreSQL.
_COLUMN_LIST = ", ".join(column.name for column in api_clients.c)
_BY_KEY_POSTGRES = (
    f"select {_COLUMN_LIST} from api_clients where key_hash = $1 and revoked_at is null"  # noqa: S608 (column-name constants only)
)


class ClientStore:
    """API clients in the gateway's database; keys hashed with `pepper` (HMAC-SHA-256)."""

    def __init__(self, engine: AsyncEngine, *, pepper: str, reads: ReadPool | None = None) -> None:
        """`reads` (PostgreSQL) serves the per-request key lookup in one round trip."""
        self._engine = engine
        self._reads = reads
        self._pepper = pepper.encode()

    def hash_key(self, key: str) -> str:
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).hexdigest()

    async def create(
        self,
        *,
        tenant_id: int,
        name: str,
        kind: ClientKind,
        scopes: Iterable[str],
        policy: OperationPolicy | None = None,
        rate_limit: int | None = None,
        environment: KeyEnvironment = "live",
        max_cost: int | None = None,
    ) -> IssuedKey:
        """Insert a client and return it with its key (shown once, never stored)."""
        if kind not in get_args(ClientKind):
            raise InvalidInput(f"unknown client kind {kind!r}", field="kind")
        if not name.strip():
            raise InvalidInput("a client needs a name", field="name")
        chosen = policy or DEFAULT_POLICIES[kind]
        key = _new_key(environment)
        try:
            row = await self._insert(tenant_id, name, kind, scopes, chosen, rate_limit, key)
        except IntegrityError as error:
            raise NotFound(f"no tenant {tenant_id}", field="tenant_id") from error
        client = _record(row)
        if max_cost is not None:
            client = await self.update_limits(client.id, max_cost=max_cost)
        return IssuedKey(client=client, key=key)

    async def update_limits(
        self,
        client_id: int,
        *,
        max_cost: int | None = None,
        rate_limit: int | None = None,
        clear: frozenset[str] = frozenset(),
    ) -> ApiClient:
        """Set a client's own budgets (`max_cost`, `rate_limit`); names in `clear` go back to
        their kind's default. Seen by the client's next request (keys are read every time)."""
        values: dict[str, int | None] = dict.fromkeys(clear & {"max_cost", "rate_limit"})
        for name, value in (("max_cost", max_cost), ("rate_limit", rate_limit)):
            if value is not None:
                if value < 1:
                    raise InvalidInput(f"{name} must be at least 1", field=name)
                values[name] = value
        async with self._engine.begin() as connection:
            statement = update(api_clients).where(api_clients.c.id == client_id)
            if values:
                statement = statement.values(**values)
            else:
                statement = statement.values(id=api_clients.c.id)
            row = (await connection.execute(statement.returning(*api_clients.c))).one_or_none()
        if row is None:
            raise NotFound(f"no API client {client_id}", field="client_id")
        return _record(row)

    async def _insert(
        self,
        tenant_id: int,
        name: str,
        kind: ClientKind,
        scopes: Iterable[str],
        chosen: OperationPolicy,
        rate_limit: int | None,
        key: str,
    ) -> Row[Any]:
        async with self._engine.begin() as connection:
            return (
                await connection.execute(
                    insert(api_clients)
                    .values(
                        tenant_id=tenant_id,
                        name=name,
                        kind=kind,
                        key_prefix=key[: len(KEY_PREFIXES[0]) + _SHOWN_CHARS],
                        key_hash=self.hash_key(key),
                        scopes=sorted(set(scopes)),
                        apq_enabled=chosen.apq_enabled,
                        allow_text=chosen.allow_text,
                        safelist_required=chosen.safelist_required,
                        introspection=chosen.introspection,
                        rate_limit=rate_limit,
                    )
                    .returning(*api_clients.c)
                )
            ).one()

    async def by_key(self, key: str) -> ApiClient | None:
        """The active (not revoked) client holding `key`, or None. One indexed read."""
        if not looks_like_api_key(key):
            return None
        digest = self.hash_key(key)
        row: Row[Any] | Mapping[str, Any] | None
        if self._reads is not None:
            rows = await self._reads.fetch(_BY_KEY_POSTGRES, digest)
            row = rows[0] if rows else None  # type: ignore[assignment]
        else:
            async with self._engine.connect() as connection:
                row = (
                    await connection.execute(
                        select(*api_clients.c).where(
                            api_clients.c.key_hash == digest, api_clients.c.revoked_at.is_(None)
                        )
                    )
                ).one_or_none()
        if row is None:
            return None
        client = _record(row)
        stored = row._mapping["key_hash"] if isinstance(row, Row) else row["key_hash"]
        return client if hmac.compare_digest(stored, digest) else None

    async def get(self, client_id: int) -> ApiClient | None:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(*api_clients.c).where(api_clients.c.id == client_id)
                )
            ).one_or_none()
        return None if row is None else _record(row)

    async def list(self, tenant_id: int | None = None) -> Sequence[ApiClient]:
        statement = select(*api_clients.c).order_by(api_clients.c.id)
        if tenant_id is not None:
            statement = statement.where(api_clients.c.tenant_id == tenant_id)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [_record(row) for row in rows]

    async def revoke(self, client_id: int) -> ApiClient:
        """Revoke the client: its key fails from the next request on. Idempotent."""
        now = dt.datetime.now(dt.UTC)
        async with self._engine.begin() as connection:
            await connection.execute(
                update(api_clients)
                .where(api_clients.c.id == client_id, api_clients.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = (
                await connection.execute(
                    select(*api_clients.c).where(api_clients.c.id == client_id)
                )
            ).one_or_none()
        if row is None:
            raise NotFound(f"no API client {client_id}", field="client_id")
        return _record(row)

    async def rotate_key(
        self, client_id: int, *, environment: KeyEnvironment | None = None
    ) -> IssuedKey:
        """Replace the key of an active client; the old key fails from the next request on."""
        async with self._engine.begin() as connection:
            current = (
                await connection.execute(
                    select(api_clients.c.key_prefix).where(
                        api_clients.c.id == client_id, api_clients.c.revoked_at.is_(None)
                    )
                )
            ).one_or_none()
            if current is None:
                raise NotFound(f"no active API client {client_id}", field="client_id")
            chosen: KeyEnvironment = environment or (
                "test" if current.key_prefix.startswith("fgw_test_") else "live"
            )
            key = _new_key(chosen)
            row = (
                await connection.execute(
                    update(api_clients)
                    .where(api_clients.c.id == client_id)
                    .values(
                        key_prefix=key[: len(KEY_PREFIXES[0]) + _SHOWN_CHARS],
                        key_hash=self.hash_key(key),
                    )
                    .returning(*api_clients.c)
                )
            ).one()
        return IssuedKey(client=_record(row), key=key)
