"""The consistent response cache: serialized answers of read operations, never stale.

README, "Response cache". The HTTP handler asks for a key once the caller is authenticated and
the document has passed its checks (safelist, introspection policy), looks it up just before
execution, and stores the body of a successful answer afterwards:

    key = await cache.key_for(principal, text, operation_name, variables)   # None: uncacheable
    cached = None if key is None else await cache.get(key)
    ...
    await cache.put(key, body_bytes)

The API knows nothing of the executor, so any executor's bytes can be stored.

What makes a cached answer right (DESIGN.md, "Where the read path is going"):

- **The key holds everything that changes the answer**: the tenant, the tenant's data version,
  the document (normalized: whitespace and comments do not count), the operation name, the
  variables (canonical JSON), the caller's scopes (sorted; `pii:read` decides masking), the
  schema (its printed SDL) and the settings that shape answers (page cap, depth and alias
  limits). Client kind and subject change no answer and are left out.
- **Never stale**: every write bumps the tenant's data version in its own transaction
  (adapters/ledger/data_versions.py), and the version is read here, on the primary, *before*
  the operation executes. Versions follow commit order (a counter row under its row lock), so
  when this read returns v, every write up to v has committed, and every statement the
  execution then sends starts later and sees all of them: what is stored under v is at least as
  new as v (it may include later writes, which is never older than what a reader of v may
  see). A write whose response has reached its client has committed, so any request started
  after that reads a version >= its own and cannot meet an entry of an older version. The
  version and the data are read in separate statements, not one snapshot: that is enough on
  one primary (no replica may serve either read), and is the argument a compiled, one-statement
  executor may tighten by reading the version in its own statement.
- **Not cached**: mutations, documents that do not parse, answers with errors or with
  top-level `extensions` (staleData), and operations that select provider-backed fields
  (`Customer.bankAccounts`, `Customer.cardPayments`, hence everything under them): provider
  data keeps its own cache, freshness and webhook invalidation. Nor operations selecting a field
  whose answer changes without a write (UNVERSIONED_FIELDS: the caller's `rateLimit`, and the
  analyst fields whose dates default to the clock). That is decided statically from the
  document and the schema; the handler also refuses to store an answer whose execution built
  provider loaders, should a provider field ever be reachable another way.

Entries live in the process's cache (Redis when configured, shared by every process of the
deployment; otherwise an in-process LRU of its own) with a TTL that only bounds memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import orjson
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    print_schema,
)

from adapters.cache import Cache, MemoryCache, cache_key
from gateway.document_fields import selects_any
from gateway.metrics import Metrics
from gateway.persisted_documents import normalized_sha256
from gateway.settings import Settings
from resolvers.principal import Principal

__all__ = [
    "PROVIDER_FIELDS",
    "UNVERSIONED_FIELDS",
    "BatchedVersions",
    "DataVersions",
    "ResponseCache",
    "ResponseKey",
    "purge_tenant_responses",
    "selects_uncached_fields",
]

logger = logging.getLogger("gateway.response_cache")

# Fields answered from provider data (and everything under them): never cached here.
PROVIDER_FIELDS: frozenset[tuple[str, str]] = frozenset(
    {("Customer", "bankAccounts"), ("Customer", "cardPayments")}
)
# Fields whose answer changes without a write: per request (the caller's rate limit), or with
# the clock (dates default to "now", "this month to date", "the last 12 months").
UNVERSIONED_FIELDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("Query", "rateLimit"),
        # Reads of personal data append to the audit trail without a ledger write.
        ("Query", "auditEvents"),
        ("Query", "ledgerSummary"),
        ("Customer", "ledgerSummary"),
        ("Customer", "bankSpend"),
        ("LedgerAccount", "balanceAt"),
        ("LedgerAccount", "balanceHistory"),
        ("LedgerAccount", "statement"),
    }
)
_UNCACHED_FIELDS = PROVIDER_FIELDS | UNVERSIONED_FIELDS
# Bumped when the key's layout or the stored format changes.
_FORMAT = "r1"
# Entries of the in-process cache when no Redis is configured (answers can be tens of KB).
_LOCAL_ENTRIES = 2048


class DataVersions(Protocol):
    """Where tenants' data versions are read (adapters.ledger.queries.LedgerReader)."""

    async def data_versions(self, tenant_ids: Sequence[int]) -> Mapping[int, int]: ...


class BatchedVersions:
    """Data version reads of one process, sent as one statement per turn of the event loop.

    Under load many requests reach `key_for` in the same turn; each would otherwise send its
    own one-row read. A read joins the batch only while the batch has not been sent: the
    statement is sent in a later turn, after every read it answers was asked, so each asker
    gets a version read after it asked, which is all the never-stale argument above needs.
    A batch once sent is never joined. Each asker waits on its own future, so cancelling one
    (a client gone, a deadline) cancels no other.
    """

    def __init__(self, source: DataVersions) -> None:
        self._source = source
        self._pending: dict[int, list[asyncio.Future[int]]] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def data_version(self, tenant_id: int) -> int:
        loop = asyncio.get_running_loop()
        pending = self._pending
        if pending is None:
            pending = self._pending = {}
            loop.call_soon(self._send)
        future: asyncio.Future[int] = loop.create_future()
        pending.setdefault(tenant_id, []).append(future)
        return await future

    def _send(self) -> None:
        batch, self._pending = self._pending, None
        if batch:
            task = asyncio.get_running_loop().create_task(self._read(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _read(self, batch: dict[int, list[asyncio.Future[int]]]) -> None:
        try:
            versions = await self._source.data_versions(list(batch))
        except BaseException as error:  # every asker hears of it (key_for: not cached)
            failure = error if isinstance(error, Exception) else RuntimeError("read cancelled")
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(failure)
            if failure is not error:
                raise
            return
        for tenant_id, futures in batch.items():
            for future in futures:
                if not future.done():
                    future.set_result(versions[tenant_id])


class ResponseKey(NamedTuple):
    """The cache key of one request's answer, with the tenant and version it was taken at."""

    key: str
    tenant_id: int
    version: int


def selects_uncached_fields(schema: GraphQLSchema, document: DocumentNode) -> bool:
    """True when any field of the document (every operation and fragment) is provider-backed
    or answers differently without a write (PROVIDER_FIELDS, UNVERSIONED_FIELDS)."""
    return selects_any(schema, document, _UNCACHED_FIELDS)


def _cacheable_digest(schema: GraphQLSchema, text: str, operation_name: str | None) -> str | None:
    """The normalized document hash when the chosen operation may be cached, else None."""
    try:
        document = parse(text)
    except GraphQLError:
        return None
    operations = [
        definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
        and (
            operation_name is None or (definition.name and definition.name.value == operation_name)
        )
    ]
    if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
        return None
    if selects_uncached_fields(schema, document):
        return None
    return normalized_sha256(document)


async def purge_tenant_responses(cache: Cache, tenant_id: int) -> int:
    """Delete every stored answer of the tenant, whatever its version or server shape (after an
    erasure: the version bump already makes them unreachable, this removes their bytes)."""
    return await cache.delete_matching(cache_key("resp", _FORMAT, "*", tenant_id) + ":*")


class ResponseCache:
    """Keys, lookups and stores of cached answers for one process (see the module docstring)."""

    def __init__(
        self,
        *,
        cache: Cache,
        versions: DataVersions,
        schema: GraphQLSchema,
        settings: Settings,
        metrics: Metrics,
        max_documents: int = 1024,
    ) -> None:
        self.enabled = settings.response_cache
        self._cache = cache
        self._versions = BatchedVersions(versions)
        self._schema = schema
        self._ttl = float(settings.response_cache_ttl_seconds)
        self._metrics = metrics
        shape = orjson.dumps(
            [print_schema(schema), settings.max_page_size, settings.max_query_depth,
             settings.max_aliases]
        )  # fmt: skip
        self._namespace = hashlib.sha256(shape).hexdigest()[:16]
        self._documents: OrderedDict[tuple[str, str | None], str | None] = OrderedDict()
        self._max_documents = max_documents

    @classmethod
    def for_process(
        cls,
        cache: Cache,
        versions: DataVersions,
        schema: GraphQLSchema,
        settings: Settings,
        metrics: Metrics,
    ) -> ResponseCache:
        """On the process's shared cache; an in-process cache gets an LRU of its own, so
        that answers never push out APQ or provider entries."""
        if isinstance(cache, MemoryCache):
            cache = MemoryCache(max_entries=_LOCAL_ENTRIES)
        return cls(cache=cache, versions=versions, schema=schema, settings=settings,
                   metrics=metrics)  # fmt: skip

    def _digest(self, text: str, operation_name: str | None) -> str | None:
        entry = (text, operation_name)
        if entry in self._documents:
            self._documents.move_to_end(entry)
            return self._documents[entry]
        digest = _cacheable_digest(self._schema, text, operation_name)
        self._documents[entry] = digest
        if len(self._documents) > self._max_documents:
            self._documents.popitem(last=False)
        return digest

    async def key_for(
        self,
        principal: Principal,
        text: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
    ) -> ResponseKey | None:
        """The key of this request's answer, or None when it is not to be cached.

        Reads the tenant's data version (one statement, shared with the other requests of the
        same turn of the event loop: BatchedVersions): call it before executing.
        """
        if not self.enabled:
            return None
        digest = self._digest(text, operation_name)
        if digest is None:
            return None
        try:
            canonical = orjson.dumps(dict(variables or {}), option=orjson.OPT_SORT_KEYS)
        except TypeError:  # pragma: no cover - variables come from JSON
            return None
        try:
            version = await self._versions.data_version(principal.tenant_id)
        except Exception:  # the database's trouble is execution's to report
            logger.warning("data version read failed; not caching this answer", exc_info=True)
            return None
        request = hashlib.sha256(
            orjson.dumps([digest, operation_name, sorted(principal.scopes)]) + b"\0" + canonical
        ).hexdigest()
        key = cache_key("resp", _FORMAT, self._namespace, principal.tenant_id, version, request)
        return ResponseKey(key, principal.tenant_id, version)

    async def get(self, key: ResponseKey) -> bytes | None:
        """The stored answer's bytes, counted as a hit or a miss."""
        body = (await self._cache.get_many([key.key]))[0]
        if body is None:
            self._metrics.response_cache_misses += 1
        else:
            self._metrics.response_cache_hits += 1
        return body

    async def purge_tenant(self, tenant_id: int) -> int:
        """Delete the tenant's stored answers from this process's cache (see
        `purge_tenant_responses`)."""
        return await purge_tenant_responses(self._cache, tenant_id)

    async def put(self, key: ResponseKey, body: bytes) -> None:
        """Store a successful answer (no errors, no top-level extensions) under `key`."""
        await self._cache.set_many({key.key: body}, self._ttl)
        self._metrics.response_cache_stores += 1
