"""Persisted documents: trusted documents (the per-client safelist) and automatic persisted
queries (APQ), and how a request names the document it wants.

A request selects its document, in this order, by
1. `documentId` (`sha256:<hex>` or a custom id; JSON body or GET query string): safelist only;
2. `extensions.persistedQuery` (`version: 1`, `sha256Hash` of the exact query bytes): the
   client's safelist first, then APQ (hash alone: look up; hash and text: verify, then register);
   for a client with neither APQ nor text (a partner), a hash not in its safelist is
   PERSISTED_QUERY_NOT_IN_LIST, as for `documentId`;
3. Relay's `doc_id`: safelist only;
4. else the `query` text itself.

The two stores are separate: the safelist lives in the database, registered per client with the
CLI from a manifest (Apollo's persisted query manifest or Relay's id-to-text map); APQ lives in
the shared cache with a TTL, fronted by a small in-process cache. An APQ registration never
satisfies the safelist: text that came through APQ is text, and meets the same policy.

    GatewayError
    ├── PersistedQueryNotFound      PERSISTED_QUERY_NOT_FOUND (200: send the text with the hash)
    ├── PersistedQueryNotSupported  PERSISTED_QUERY_NOT_SUPPORTED (200: APQ off, text allowed)
    ├── PersistedQueryInvalid       PERSISTED_QUERY_INVALID (400: wrong version, malformed hash)
    ├── PersistedQueryHashMismatch  PERSISTED_QUERY_HASH_MISMATCH (400: nothing stored or run)
    ├── PersistedQueryIdRequired    PERSISTED_QUERY_ID_REQUIRED (400: text from an id-only client)
    ├── PersistedQueryNotInList     PERSISTED_QUERY_NOT_IN_LIST (404: no such document here;
    │                               also an unregistered hash from a client without APQ or text)
    ├── QueryNotInSafelist          QUERY_NOT_IN_SAFELIST (403: text matches no document)
    └── IntrospectionDisabled       INTROSPECTION_DISABLED (403)
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    Visitor,
    parse,
    print_ast,
    validate,
    visit,
)

from adapters.access.documents import NewDocument, PersistedDocument, SqlDocumentStore, sha256_hex
from adapters.cache import Cache, MemoryCache, cache_key
from resolvers.errors import BadRequest, GatewayError
from resolvers.principal import Principal

__all__ = [
    "ApqStore",
    "DocumentRequest",
    "IntrospectionDisabled",
    "ManifestError",
    "PersistedQueryHashMismatch",
    "PersistedQueryIdRequired",
    "PersistedQueryInvalid",
    "PersistedQueryNotFound",
    "PersistedQueryNotInList",
    "PersistedQueryNotSupported",
    "QueryNotInSafelist",
    "ResolvedDocument",
    "TrustedDocuments",
    "normalized_sha256",
    "parse_manifest",
    "resolve_document",
    "uses_introspection",
]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_OPERATION_TYPES = ("query", "mutation", "subscription")


class PersistedQueryNotFound(GatewayError):
    code = "PERSISTED_QUERY_NOT_FOUND"
    status_code = 200


class PersistedQueryNotSupported(GatewayError):
    code = "PERSISTED_QUERY_NOT_SUPPORTED"
    status_code = 200


class PersistedQueryInvalid(GatewayError):
    code = "PERSISTED_QUERY_INVALID"
    status_code = 400


class PersistedQueryHashMismatch(GatewayError):
    code = "PERSISTED_QUERY_HASH_MISMATCH"
    status_code = 400


class PersistedQueryIdRequired(GatewayError):
    code = "PERSISTED_QUERY_ID_REQUIRED"
    status_code = 400


class PersistedQueryNotInList(GatewayError):
    code = "PERSISTED_QUERY_NOT_IN_LIST"
    status_code = 404


class QueryNotInSafelist(GatewayError):
    code = "QUERY_NOT_IN_SAFELIST"
    status_code = 403


class IntrospectionDisabled(GatewayError):
    code = "INTROSPECTION_DISABLED"
    status_code = 403


class ManifestError(ValueError):
    """A manifest that is not one of the two formats, or holds a document that cannot run."""


class DocumentRequest(NamedTuple):
    """The document-selecting parts of a GraphQL request, as sent."""

    query: str | None
    document_id: str | None = None
    persisted_query: Any = None  # extensions.persistedQuery, unchecked
    relay_doc_id: str | None = None


class ResolvedDocument(NamedTuple):
    """The text to run and where it came from; `register_apq` is the hash to store after a
    successful run (APQ registration)."""

    text: str
    source: Literal["safelist", "apq", "text"]
    register_apq: str | None = None

    @property
    def is_persisted(self) -> bool:
        return self.source != "text"


def normalized_sha256(document: DocumentNode) -> str:
    """Hash of the document printed canonically: whitespace, commas and comments do not count."""
    return sha256_hex(print_ast(document))


class TrustedDocuments:
    """The safelist, per client, with an in-process cache of documents found.

    Documents are immutable once registered (an id never changes body) and are never deleted,
    so a cached positive answer cannot go stale; misses always ask the database.
    """

    def __init__(self, store: SqlDocumentStore, *, max_cached: int = 4096) -> None:
        self.store = store
        self._found: OrderedDict[tuple[int, str, str], PersistedDocument] = OrderedDict()
        self._max_cached = max_cached

    async def by_id(self, client_id: int, document_id: str) -> PersistedDocument | None:
        if document_id.startswith("sha256:"):
            digest = document_id.removeprefix("sha256:")
            if not _SHA256.fullmatch(digest):
                raise PersistedQueryInvalid("documentId sha256: must be 64 lowercase hex digits")
            return await self.by_hash(client_id, digest)
        return await self._cached(client_id, "id", document_id)

    async def by_hash(self, client_id: int, digest: str) -> PersistedDocument | None:
        return await self._cached(client_id, "sha256", digest)

    async def by_normalized_hash(self, client_id: int, digest: str) -> PersistedDocument | None:
        return await self._cached(client_id, "normalized", digest)

    async def _cached(self, client_id: int, kind: str, value: str) -> PersistedDocument | None:
        key = (client_id, kind, value)
        found = self._found.get(key)
        if found is not None:
            return found
        if kind == "id":
            found = await self.store.find(client_id, document_id=value)
        elif kind == "sha256":
            found = await self.store.find_by_hash(client_id, value)
        else:
            found = await self.store.find_by_normalized_hash(client_id, value)
        if found is not None:
            self._found[key] = found
            if len(self._found) > self._max_cached:
                self._found.popitem(last=False)
        return found


class ApqStore:
    """Automatic persisted queries: hash to text per tenant, in the shared cache with a TTL.

    A small in-process cache sits in front (entries are immutable: the key is the text's hash).
    When the shared cache is down, reads miss and writes are dropped: clients see "not found"
    and resend the text, never an error.
    """

    def __init__(self, cache: Cache, *, ttl_seconds: float, local_entries: int = 1000) -> None:
        self._cache = cache
        self._ttl = ttl_seconds
        self._local = MemoryCache(max_entries=local_entries)

    async def get(self, tenant_id: int, digest: str) -> str | None:
        key = cache_key("apq", tenant_id, digest)
        value = (await self._local.get_many([key]))[0]
        if value is None:
            value = (await self._cache.get_many([key]))[0]
            if value is None:
                return None
            await self._local.set_many({key: value}, self._ttl)
        text = value.decode()
        return text if sha256_hex(text) == digest else None

    async def put(self, tenant_id: int, digest: str, text: str) -> None:
        key = cache_key("apq", tenant_id, digest)
        items = {key: text.encode()}
        await self._local.set_many(items, self._ttl)
        await self._cache.set_many(items, self._ttl)


def _persisted_hash(extension: Any) -> str:
    if not isinstance(extension, Mapping):
        raise PersistedQueryInvalid("extensions.persistedQuery must be an object")
    if extension.get("version") != 1:
        raise PersistedQueryInvalid("extensions.persistedQuery.version must be 1")
    digest = extension.get("sha256Hash")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise PersistedQueryInvalid("sha256Hash must be 64 lowercase hex digits")
    return digest


async def _trusted(
    trusted: TrustedDocuments, principal: Principal, document_id: str
) -> ResolvedDocument:
    found = None
    if principal.client_id is not None:
        found = await trusted.by_id(principal.client_id, document_id)
    if found is None:
        raise PersistedQueryNotInList(f"no persisted document {document_id!r} for this client")
    return ResolvedDocument(found.body, "safelist")


async def resolve_document(
    request: DocumentRequest, principal: Principal, trusted: TrustedDocuments, apq: ApqStore
) -> ResolvedDocument:
    """The document a request names, by the order in the module docstring, with the policy
    checks that need no parsing (id-only clients, APQ allowed). Raises the coded errors above."""
    policy = principal.policy
    query = request.query
    if request.document_id is not None or (
        request.persisted_query is None and request.relay_doc_id is not None
    ):
        if query is not None:
            raise BadRequest("send either a document id or the query text, not both")
        # An empty documentId is an id like any other (found in no list), not a missing one.
        document_id = (
            request.document_id if request.document_id is not None else request.relay_doc_id
        )
        assert document_id is not None
        return await _trusted(trusted, principal, document_id)
    if request.persisted_query is not None:
        digest = _persisted_hash(request.persisted_query)
        if query is not None and sha256_hex(query) != digest:
            raise PersistedQueryHashMismatch("provided sha256Hash does not match the query")
        if principal.client_id is not None:
            found = await trusted.by_hash(principal.client_id, digest)
            if found is not None:
                return ResolvedDocument(found.body, "safelist")
        if not policy.apq_enabled:
            if not policy.allow_text:
                # A safelist-only client: NOT_SUPPORTED would make Apollo Client resend the
                # text, which this client may not send; the hash is simply not registered.
                raise PersistedQueryNotInList(
                    f"no persisted document with sha256Hash {digest!r} for this client"
                )
            raise PersistedQueryNotSupported("persisted queries are not supported for this client")
        if query is not None:
            if not policy.allow_text:
                raise PersistedQueryIdRequired("this client may only send registered documents")
            return ResolvedDocument(query, "text", register_apq=digest)
        text = await apq.get(principal.tenant_id, digest)
        if text is None:
            raise PersistedQueryNotFound("PersistedQueryNotFound")
        return ResolvedDocument(text, "apq")
    if query is None:
        raise BadRequest("the request has no GraphQL query")
    if not policy.allow_text:
        raise PersistedQueryIdRequired("this client may only send registered documents")
    return ResolvedDocument(query, "text")


# Fields that read the schema itself: introspection's, and Apollo Federation's `_service { sdl }`
# (the same schema as SDL), so the client's introspection policy governs both.
_SCHEMA_FIELDS = frozenset({"__schema", "__type", "_service"})


class _IntrospectionFinder(Visitor):
    found = False

    def enter_field(self, node: FieldNode, *_args: Any) -> Any:
        if node.name.value in _SCHEMA_FIELDS:
            self.found = True
            return self.BREAK
        return None


def uses_introspection(document: DocumentNode) -> bool:
    finder = _IntrospectionFinder()
    visit(document, finder)
    return finder.found


def _new_document(
    document_id: str, body: str, schema: GraphQLSchema | None, *, name: Any, type_: Any
) -> NewDocument:
    if not isinstance(document_id, str) or not document_id or len(document_id) > 200:
        raise ManifestError(f"document id {document_id!r} must be a string of 1-200 characters")
    if not isinstance(body, str) or not body.strip():
        raise ManifestError(f"document {document_id!r} has no body")
    if _SHA256.fullmatch(document_id) and sha256_hex(body) != document_id:
        raise ManifestError(f"document {document_id!r}: the id is a SHA-256 but not the body's")
    try:
        parsed = parse(body)
    except GraphQLError as error:
        raise ManifestError(f"document {document_id!r} does not parse: {error.message}") from None
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        raise ManifestError(f"document {document_id!r} must hold exactly one operation")
    operation = operations[0]
    operation_type = operation.operation.value
    operation_name = operation.name.value if operation.name else None
    if type_ is not None and type_ != operation_type:
        raise ManifestError(f"document {document_id!r}: type {type_!r} is not {operation_type!r}")
    if name is not None and name != operation_name:
        raise ManifestError(f"document {document_id!r}: name {name!r} is not {operation_name!r}")
    if schema is not None:
        errors = validate(schema, parsed)
        if errors:
            raise ManifestError(f"document {document_id!r} is not valid: {errors[0].message}")
    return NewDocument(
        document_id=document_id,
        name=operation_name,
        body=body,
        operation_type=operation_type,
        normalized_sha256=normalized_sha256(parsed),
    )


def parse_manifest(raw: bytes | str, schema: GraphQLSchema | None = None) -> list[NewDocument]:
    """Documents of an Apollo persisted query manifest or a Relay id-to-text map.

    Every document must parse, hold one operation and (with `schema`) validate; an Apollo
    entry's `name` and `type` must match its body, and an id that looks like a SHA-256 must be
    its body's. Raises ManifestError naming the first problem.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ManifestError("the manifest is not valid JSON") from None
    if not isinstance(data, dict) or not data:
        raise ManifestError("the manifest must be a non-empty JSON object")
    if "format" in data:
        if data["format"] != "apollo-persisted-query-manifest" or data.get("version") != 1:
            raise ManifestError('expected format "apollo-persisted-query-manifest", version 1')
        operations = data.get("operations")
        if not isinstance(operations, list) or not operations:
            raise ManifestError("operations must be a non-empty list")
        documents = []
        for entry in operations:
            if not isinstance(entry, dict) or not {"id", "body", "name", "type"} <= entry.keys():
                raise ManifestError("each operation needs id, body, name and type")
            if entry["type"] not in _OPERATION_TYPES:
                raise ManifestError(f"operation {entry['id']!r}: unknown type {entry['type']!r}")
            documents.append(
                _new_document(
                    entry["id"], entry["body"], schema, name=entry["name"], type_=entry["type"]
                )
            )
        return documents
    return [
        _new_document(document_id, body, schema, name=None, type_=None)
        for document_id, body in data.items()
    ]
