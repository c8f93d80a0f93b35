"""GraphQL over HTTP: read the request, authenticate, pick the document, execute, respond.

Order of checks for every request (README, "Order of checks"):
authentication (401 before anything else is looked at), CSRF and media types, size cap,
variables caps (gateway.limits), document id or APQ, parse (cached; token and list-literal
caps), safelist, introspection policy, validation with depth and alias limits (cached), cost
and rate limit (`_admit`: both paths below run after it), authorization (the rule table of
resolvers.permissions), execution under the operation's deadline (gateway.deadlines), then
the audit trail of the request (gateway.audit).
A browser's GET without a query gets GraphiQL instead, when it is enabled.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from typing import Any, NamedTuple

import orjson
from graphql import DocumentNode, FieldNode, OperationDefinitionNode, get_operation_ast
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry import Schema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from adapters.audit.records import AuditBuffer
from adapters.audit.store import AuditStore
from adapters.errors import DeadlineExceeded
from adapters.reconciliation.store import ReconciliationStore
from gateway.audit import AuditRecorder, AuditUnavailable, actor_for
from gateway.catch_all import new_request_id
from gateway.compiled import CompiledOperations
from gateway.cost import CostAnalyzer, CostPlan, CostTooExpensive
from gateway.deadlines import OperationTimedOut
from gateway.errors import format_errors
from gateway.graphiql import render_graphiql_page
from gateway.graphiql_examples import EXAMPLE_OPERATIONS
from gateway.lifespan import Services
from gateway.limits import RequestLimits
from gateway.persisted_documents import (
    DocumentRequest,
    IntrospectionDisabled,
    QueryNotInSafelist,
    ResolvedDocument,
    TrustedDocuments,
    normalized_sha256,
    resolve_document,
    uses_introspection,
)
from gateway.rate_limits import RateLimitDecision, RateLimited, RateLimiter
from gateway.request_body import read_capped
from gateway.response_cache import ResponseCache
from gateway.telemetry import AccessLog, RequestRecord, RequestTelemetry, client_label
from resolvers.context import RequestContext
from resolvers.errors import BadRequest, GatewayError, UnsupportedMediaType
from resolvers.loaders import LedgerLoaders
from resolvers.permissions import PUBLIC_ROOT_FIELDS
from resolvers.principal import Principal
from resolvers.schema import limit_rules

__all__ = [
    "GraphQLHandler",
    "GraphQLRequest",
    "Incoming",
    "Outgoing",
    "check_document_policy",
    "read_payload",
]

logger = logging.getLogger("gateway.http")

_JSON = "application/json"
_GRAPHQL_RESPONSE = "application/graphql-response+json"
# A cross-site form or <img> cannot send these: their presence forces a CORS preflight. The
# credential headers are among them (a browser's cached Basic credentials are refused by
# authentication, which runs first), so Apollo's and Relay's GETs need no extra header.
_PREFLIGHT_HEADERS = (
    "graphql-preflight",
    "apollo-require-preflight",
    "x-apollo-operation-name",
    "authorization",
    "x-api-key",
)
_PUBLIC_MAX_AGE = 60
# GraphQLHandler._read's memo of POST bodies: how many, and up to what size.
_MEMO_BODIES = 1024
_MEMO_BYTES = 16_384
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
# A request header asking for `extensions.cost` in the response (analysts always get it).
_COST_REPORT_HEADER = "x-graphql-cost"
_COST_REPORT_VALUES = frozenset({"1", "true", "report"})


class NotAcceptable(GatewayError):
    code = "NOT_ACCEPTABLE"
    status_code = 406


class PreflightRequired(BadRequest):
    code = "CSRF_PREFLIGHT_REQUIRED"


class _Admission(NamedTuple):
    """What `_admit` decided: the estimate, the rate-limit charge, whether to report cost.
    (Named tuples, here and for the request's other per-request records: a frozen dataclass
    sets each field through object.__setattr__.)"""

    plan: CostPlan | None
    estimated: int | None  # None: not priced (cost analysis and rate limits both off)
    max_cost: int | None
    rate: RateLimitDecision | None
    report_cost: bool

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.rate is None else self.rate.headers

    def cost(self, data: Any) -> dict[str, int | None]:
        """`extensions.cost` (reported only when priced: cost analysis on)."""
        actual = self.plan.actual(data) if self.plan is not None else 0
        return {"estimated": self.estimated, "actual": actual, "maxCost": self.max_cost}


# With cost analysis and rate limits both off: no estimate, no charge, no report.
_NOT_PRICED = _Admission(None, None, None, None, False)
# An admission without a Python-level __new__ call: one is made per request.
_new_admission = tuple.__new__


class GraphQLRequest(NamedTuple):
    """A request's document selection, variables and operation name, as sent."""

    document: DocumentRequest
    variables: dict[str, Any] | None
    operation_name: str | None


class Incoming:
    """One HTTP request as the endpoint reads it, straight off the ASGI scope: method, headers
    (lower-case names; the first of repeated headers wins, as in Starlette), the query string,
    and the body, read only when asked for and with a cap."""

    __slots__ = ("_receive", "_scope", "headers", "method")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self._scope = scope
        self._receive = receive
        self.method: str = scope["method"]
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1")
            if key not in headers:
                headers[key] = value.decode("latin-1")
        self.headers = headers

    @property
    def query_params(self) -> QueryParams:
        return QueryParams(self._scope.get("query_string", b"").decode("latin-1"))

    async def body(self, max_bytes: int) -> bytes:
        """The body (PayloadTooLarge past `max_bytes`)."""
        return await read_capped(self.headers.get("content-length"), self._receive, max_bytes)


class Outgoing:
    """A whole answer: status, body and headers, sent over ASGI in one go (`send`) or handed to
    Starlette (`response`)."""

    __slots__ = ("body", "headers", "media_type", "status_code")

    def __init__(self, body: bytes, status: int, media_type: str, headers: dict[str, str]) -> None:
        self.body = body
        self.status_code = status
        self.media_type = media_type
        self.headers = headers

    def response(self) -> Response:
        return Response(
            self.body, status_code=self.status_code, media_type=self.media_type,
            headers=self.headers,
        )  # fmt: skip

    async def send(self, send: Send) -> None:
        raw = [
            (b"content-type", self.media_type.encode()),
            (b"content-length", str(len(self.body)).encode()),
        ]
        raw += [(name.encode(), value.encode("latin-1")) for name, value in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


def _media_type(request: Incoming) -> str:
    accept = request.headers.get("accept", "")
    if not accept:
        return _JSON
    if _GRAPHQL_RESPONSE in accept:
        return _GRAPHQL_RESPONSE
    if _JSON in accept or "*/*" in accept or "application/*" in accept:
        return _JSON
    raise NotAcceptable(f"this endpoint answers {_GRAPHQL_RESPONSE} or {_JSON}")


def _json(body: Any, status: int, media_type: str, request_id: str, **headers: str) -> Outgoing:
    return _bytes(orjson.dumps(body), status, media_type, request_id, **headers)


def _bytes(body: bytes, status: int, media_type: str, request_id: str, **headers: str) -> Outgoing:
    headers = {"x-request-id": request_id, "cache-control": "no-store", **headers}
    return Outgoing(body, status, media_type, headers)


def _json_param(raw: str | None, name: str) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(f"{name} must be a JSON object") from None


def _optional_str(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


_SUBSCRIPTIONS_ELSEWHERE = (
    "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql and over "
    "Server-Sent Events at POST /graphql/stream, not over plain HTTP"
)


def _is_subscription(document: DocumentNode | None, operation_name: str | None) -> bool:
    if document is None:
        return False
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation.value == "subscription"


def _is_public(document: DocumentNode, operation_name: str | None) -> bool:
    """True when the operation selects only root fields that read no tenant data."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        operation
        for operation in operations
        if operation_name is None or (operation.name and operation.name.value == operation_name)
    ]
    if len(chosen) != 1 or chosen[0].operation.value != "query":
        return False
    return all(
        isinstance(selection, FieldNode) and selection.name.value in PUBLIC_ROOT_FIELDS
        for selection in chosen[0].selection_set.selections
    )


def _publicly_cacheable(
    is_get: bool, resolved: ResolvedDocument, document: DocumentNode | None, name: str | None
) -> bool:
    """A persisted GET of public fields only, answered without errors or extensions."""
    return is_get and resolved.is_persisted and document is not None and _is_public(document, name)


def _answered(
    body: bytes,
    status: int,
    media_type: str,
    request_id: str,
    *,
    public: bool,
    response_cache: str | None,
    admission: _Admission,
) -> Outgoing:
    """An executed (or cached) answer with its headers, built in one dict."""
    headers = {
        "x-request-id": request_id,
        "cache-control": f"public, max-age={_PUBLIC_MAX_AGE}" if public else "no-store",
        "vary": "Accept",
    }
    if response_cache is not None:
        headers["x-cache"] = response_cache
    rate = admission.rate
    if rate is not None:  # allowed: RateLimit-Policy and RateLimit, no Retry-After
        headers["ratelimit-policy"] = rate.policy
        headers["ratelimit"] = rate.window
    return Outgoing(body, status, media_type, headers)


def read_payload(payload: Any, max_bytes: int) -> GraphQLRequest:
    """The request parts of a GraphQL-over-HTTP payload (also a graphql-transport-ws
    `subscribe` payload); BadRequest for wrong types or a query over `max_bytes`."""
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object")
    query = _optional_str(payload.get("query"), "query")
    if query is not None and not query.strip():
        query = None
    # Size cap before any hashing or parsing; characters <= bytes, so check both cheaply.
    if query is not None and (len(query) > max_bytes or len(query.encode()) > max_bytes):
        raise BadRequest(f"the query is larger than {max_bytes} bytes")
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("variables must be a JSON object")
    extensions = payload.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise BadRequest("extensions must be a JSON object")
    return GraphQLRequest(
        document=DocumentRequest(
            query=query,
            document_id=_optional_str(payload.get("documentId"), "documentId"),
            persisted_query=(extensions or {}).get("persistedQuery"),
            relay_doc_id=_optional_str(payload.get("doc_id"), "doc_id"),
        ),
        variables=variables,
        operation_name=_optional_str(payload.get("operationName"), "operationName"),
    )


async def check_document_policy(
    trusted_documents: TrustedDocuments,
    principal: Principal,
    resolved: ResolvedDocument,
    document: DocumentNode | None,
) -> None:
    """Safelist and introspection policy; a document that does not parse passes through
    to execution, which reports the syntax error."""
    if document is None:
        return
    policy = principal.policy
    if policy.safelist_required and resolved.source != "safelist":
        found = None
        if principal.client_id is not None:
            found = await trusted_documents.by_normalized_hash(
                principal.client_id, normalized_sha256(document)
            )
        if found is None:
            raise QueryNotInSafelist("the query matches no document registered for you")
    if not policy.introspection and uses_introspection(document):
        raise IntrospectionDisabled("introspection is disabled for this client")


class GraphQLHandler:
    """The /graphql endpoint for one schema and one process's services."""

    def __init__(self, schema: Schema, services: Services, *, max_parsed: int = 1024) -> None:
        self._schema = schema
        self._services = services
        self._max_bytes = services.settings.max_query_bytes
        self._hide_suggestions = not services.settings.is_development
        self._parsed: OrderedDict[str, DocumentNode | None] = OrderedDict()
        self._max_parsed = max_parsed
        # POST bodies already read and checked (`_read`): the same bytes read the same way.
        self._payloads: dict[bytes, GraphQLRequest] = {}
        settings = services.settings
        self._telemetry = RequestTelemetry(
            services.metrics,
            services.tracing,
            parse=self._parse,
            access_log=AccessLog() if settings.telemetry.access_log else None,
        )
        rules = limit_rules(max_depth=settings.max_query_depth, max_aliases=settings.max_aliases)
        self._cost = CostAnalyzer(
            schema._schema, settings.cost, max_page_size=settings.max_page_size, rules=rules
        )
        if services.rate_limiter is None:  # tests and embedded use: an in-process one
            services.rate_limiter = RateLimiter(settings.rate_limits)
        self._rate_limiter = services.rate_limiter
        # Whether `_admit` prices operations for cost analysis, for rate limits (settings).
        self._pricing = (settings.cost.enabled, settings.rate_limits.enabled)
        self._limits = RequestLimits(settings.limits)
        self._deadlines = settings.deadlines
        self._audit = AuditRecorder(AuditStore(services.engine), schema._schema)
        self._reconciliation = ReconciliationStore(services.engine)
        self._compiled: CompiledOperations | None = None
        if settings.compiled_operations and services.reader.builds_json:
            self._compiled = CompiledOperations(
                schema._schema,
                rules=limit_rules(max_depth=settings.max_query_depth,
                                  max_aliases=settings.max_aliases),
                max_page_size=settings.max_page_size,
                fetch_json=services.reader.fetch_json,
            )  # fmt: skip
        self._responses = ResponseCache.for_process(
            services.cache, services.reader, schema._schema, services.settings, services.metrics
        )

    def close(self) -> None:
        """At shutdown: write the access lines still kept (gateway.telemetry.AccessLog)."""
        if self._telemetry.access_log is not None:
            self._telemetry.access_log.flush()

    async def _read(self, request: Incoming) -> GraphQLRequest:
        """The request's document, variables and operation name, its variables within their
        caps (gateway.limits). A POST body seen before is not parsed or checked again: the
        outcome is a function of its bytes alone (bodies under _MEMO_BYTES, up to
        _MEMO_BODIES of them; the parsed variables are shared, and nothing after this
        changes them)."""
        if request.method == "GET":
            if not any(name in request.headers for name in _PREFLIGHT_HEADERS):
                raise PreflightRequired(
                    "GET requests must carry a credential or a preflight header,"
                    " e.g. 'graphql-preflight: 1'"
                )
            params = request.query_params
            payload: dict[str, Any] = {
                "query": params.get("query"),
                "variables": _json_param(params.get("variables"), "variables"),
                "operationName": params.get("operationName"),
                "extensions": _json_param(params.get("extensions"), "extensions"),
                "documentId": params.get("documentId"),
                "doc_id": params.get("doc_id"),
            }
        else:
            content_type = request.headers.get("content-type", "")
            if not content_type.startswith(_JSON):
                raise UnsupportedMediaType("POST bodies must be application/json")
            body = await request.body(self._max_bytes * 2)
            known = self._payloads.get(body)
            if known is not None:
                return known
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise BadRequest("the request body is not valid JSON") from None
            read = self._checked(payload)
            if len(body) <= _MEMO_BYTES:
                if len(self._payloads) >= _MEMO_BODIES:
                    self._payloads.clear()
                self._payloads[body] = read
            return read
        return self._checked(payload)

    def _checked(self, payload: Any) -> GraphQLRequest:
        """The payload's request parts, its variables within their caps (gateway.limits)."""
        read = read_payload(payload, self._max_bytes)
        self._limits.check_variables(read.variables)
        return read

    def _parse(self, text: str) -> DocumentNode | None:
        """Parsed document, or None when it does not parse (execution then reports why).
        Raises LimitExceeded over the token cap or with a list literal over the list cap."""
        if text in self._parsed:
            self._parsed.move_to_end(text)
            return self._parsed[text]
        document = self._limits.parse(text)
        self._parsed[text] = document
        if len(self._parsed) > self._max_parsed:
            self._parsed.popitem(last=False)
        return document

    async def _check_document(
        self, principal: Principal, resolved: ResolvedDocument, document: DocumentNode | None
    ) -> None:
        await check_document_policy(self._services.trusted_documents, principal, resolved, document)

    def _wants_graphiql(self, request: Request) -> bool:
        return (
            self._services.settings.graphiql
            and request.method == "GET"
            and "query" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )

    def _graphiql(self) -> Response:
        services = self._services
        token = services.development_token
        return render_graphiql_page(
            assets_dir=services.settings.graphiql_assets_dir / "assets",
            endpoint="/graphql",
            default_headers={"Authorization": f"Bearer {token}"} if token else None,
            example_operations=EXAMPLE_OPERATIONS,
        )

    def _error(self, error: GatewayError, media_type: str, request_id: str) -> Outgoing:
        headers = {"www-authenticate": "Bearer"} if error.status_code == 401 else {}
        if error.status_code == 405:
            headers["allow"] = "POST"
        if isinstance(error, RateLimited):
            headers.update(error.headers)
        body = {
            "errors": [
                {"message": error.message, "extensions": {"code": error.code, **error.extensions}}
            ]
        }
        return _json(body, error.status_code, media_type, request_id, **headers)

    async def _run_compiled(
        self,
        compiled: CompiledOperations,
        principal: Principal,
        resolved: ResolvedDocument,
        read: GraphQLRequest,
        document: DocumentNode | None,
        deadline: float,
    ) -> bytes | None:
        """The body the operation's compiled plan answers, or None: the resolvers must answer.
        OperationTimedOut past the deadline."""
        if document is None:
            return None
        plan = compiled.plan(resolved.text, document, read.operation_name)
        if plan is None:
            return None
        timeout = deadline - asyncio.get_running_loop().time()
        try:
            body = await compiled.run(plan, principal, read.variables, timeout=timeout)
        except DeadlineExceeded:
            raise OperationTimedOut("the operation ran past its deadline") from None
        if body is not None:
            self._services.metrics.compiled_operations += 1
        return body

    async def _answer(
        self,
        body: bytes,
        principal: Principal,
        resolved: ResolvedDocument,
        read: GraphQLRequest,
        document: DocumentNode | None,
        admission: _Admission,
        is_get: bool,
        media_type: str,
        request_id: str,
        response_cache: str | None,
    ) -> Outgoing:
        """A successful answer built without the resolvers (a cached or a compiled body): the
        APQ registration, the caller's cost report and the headers the resolver path gives."""
        if resolved.register_apq is not None:
            await self._services.apq.put(principal.tenant_id, resolved.register_apq, resolved.text)
        if admission.report_cost:  # actual: counted on the JSON answered
            answer = orjson.loads(body)
            answer.setdefault("extensions", {})["cost"] = admission.cost(answer.get("data"))
            body = orjson.dumps(answer)
        public = _publicly_cacheable(is_get, resolved, document, read.operation_name)
        return _answered(body, 200, media_type, request_id, public=public,
                         response_cache=response_cache, admission=admission)  # fmt: skip

    async def _admit(
        self,
        request: Incoming,
        principal: Principal,
        resolved: ResolvedDocument,
        read: GraphQLRequest,
        document: DocumentNode | None,
    ) -> _Admission:
        """Cost, then rate limit: the one place both are enforced, before either path runs.

        The estimate (gateway.cost) is refused over the caller's budget with nothing run and
        nothing charged; otherwise the rate limit (gateway.rate_limits) charges it, and refuses
        with 429 when the caller's budget is spent. A document that does not parse or validate
        costs 1 and goes on to execution, which reports why.
        """
        cost_on, rate_on = self._pricing
        if not (cost_on or rate_on):
            return _NOT_PRICED  # nothing priced, charged or reported
        cost = self._services.settings.cost
        plan = None if document is None else self._cost.plan(resolved.text, document,
                                                             read.operation_name)  # fmt: skip
        estimated = 1 if plan is None else plan.estimate(read.variables or {})
        max_cost = cost.budget(principal)
        # (The estimate is observed in /metrics with the request's duration: RequestRecord.)
        if cost_on and estimated > max_cost:
            self._services.metrics.observe_cost(client_label(principal), estimated)
            raise CostTooExpensive(
                f"the operation's estimated cost {estimated} is over your budget of {max_cost}",
                cost={"estimated": estimated, "maxCost": max_cost},
            )
        rate = None
        if rate_on:
            limiter = self._rate_limiter
            rate = (
                limiter.charge_now(principal, estimated)
                if limiter.in_process
                else limiter.leased(principal, estimated)  # no round trip: most charges
                or await limiter.charge(principal, estimated)
            )
            if not rate.allowed:
                client = client_label(principal)
                self._services.metrics.observe_cost(client, estimated)
                self._services.metrics.rate_limited(client)
                raise RateLimited(
                    "rate limit exceeded; retry after the Retry-After header's seconds",
                    rate.headers,
                    retryAfterSeconds=int(rate.headers["retry-after"]),
                )
        asked = request.headers.get(_COST_REPORT_HEADER)
        report = cost_on and (
            (principal.kind == "analyst" and cost.report_to_analysts)
            or (asked is not None and asked.lower() in _COST_REPORT_VALUES)
        )
        return _new_admission(_Admission, (plan, estimated, max_cost, rate, report))

    async def __call__(self, request: Request) -> Response:
        """The Starlette route: GraphiQL, GETs, and POSTs the fast lane left to the router
        (gateway.fast_lane takes the others ahead of Starlette)."""
        if self._wants_graphiql(request):
            return self._graphiql()
        answer = await self.answer(Incoming(request.scope, request.receive))
        return answer.response()

    async def answer(self, request: Incoming) -> Outgoing:
        # The one place that records every request's outcome and duration (gateway.telemetry).
        record = self._telemetry.begin(request.headers)
        status = 500
        try:
            response = await self._handle(request, record)
            status = response.status_code
            return response
        finally:
            record.finish(status)

    async def _handle(self, request: Incoming, record: RequestRecord) -> Outgoing:
        services = self._services
        started = asyncio.get_running_loop().time()
        services.metrics.requests += 1
        request_id = request.headers.get("x-request-id", "")[:64] or new_request_id()
        record.request_id = request_id
        media_type = _JSON
        try:
            headers = request.headers
            principal = await services.authenticator.authenticate(
                headers.get("authorization"), headers.get("x-api-key")
            )
            record.principal = principal
            media_type = _media_type(request)
            read = await self._read(request)
            resolved = await resolve_document(
                read.document, principal, services.trusted_documents, services.apq
            )
            is_get = request.method == "GET"
            document = self._parse(resolved.text)
            record.document(resolved.text, document, read.operation_name)
            await self._check_document(principal, resolved, document)
            admission = await self._admit(request, principal, resolved, read, document)
            record.cost = admission.estimated
        except GatewayError as error:
            record.outcome = error.code
            return self._error(error, media_type, request_id)
        deadline = self._deadlines.deadline(principal.kind, started)

        # A cached answer is served only after authentication, the document checks, the cost
        # check and the rate limit's charge (`_admit`): hits count toward the caller's limits.
        cache_key = None
        if not self._audit.reads_unmasked(principal, resolved.text, document):
            # (an unmasked personal-data read always executes: its audit events are recorded)
            cache_key = await self._responses.key_for(
                principal, resolved.text, read.operation_name, read.variables
            )
        if cache_key is not None and (cached := await self._responses.get(cache_key)):
            return await self._answer(
                cached, principal, resolved, read, document, admission, is_get, media_type,
                request_id, "hit",
            )  # fmt: skip

        if self._compiled is not None:
            try:
                compiled = await self._run_compiled(
                    self._compiled, principal, resolved, read, document, deadline
                )
            except OperationTimedOut as late:
                return self._error(late, media_type, request_id)
            if compiled is not None:  # the compiled path answers only without errors
                if cache_key is not None:
                    await self._responses.put(cache_key, compiled)
                return await self._answer(
                    compiled, principal, resolved, read, document, admission, is_get, media_type,
                    request_id, None if cache_key is None else "miss",
                )  # fmt: skip
        services.metrics.resolver_operations += 1
        actor = actor_for(principal, request_id, document, read.operation_name, read.document)
        context = RequestContext(
            request_id=request_id,
            principal=principal,
            ledger=LedgerLoaders(services.reader.bounded(deadline), principal.tenant_id),
            posting=services.posting.for_request(deadline=deadline, actor=actor),
            max_page_size=services.settings.max_page_size,
            providers=services.providers,
            rate_limit=None if admission.rate is None else admission.rate.status,
            deadline=deadline,
            audit=AuditBuffer(actor),
            audit_store=self._audit.store,
            reconciliation_store=self._reconciliation,
        )
        allowed = {OperationType.QUERY} if is_get else {OperationType.QUERY, OperationType.MUTATION}
        try:
            # Fields waiting on I/O past the deadline answer TIMEOUT with partial data; this is
            # the backstop for work no I/O timeout sees (gateway.deadlines).
            async with asyncio.timeout_at(deadline + self._deadlines.grace_seconds):
                result = await self._schema.execute(
                    resolved.text,
                    variable_values=read.variables,
                    context_value=context,
                    operation_name=read.operation_name,
                    allowed_operation_types=allowed,
                )
            await self._audit.flush(context.audit)
        except TimeoutError:
            timed_out = OperationTimedOut("the operation ran past its deadline")
            return self._error(timed_out, media_type, request_id)
        except AuditUnavailable as unavailable:
            return self._error(unavailable, media_type, request_id)
        except InvalidOperationTypeError:
            if _is_subscription(document, read.operation_name):
                record.outcome = "BAD_REQUEST"
                body = {"errors": [{"message": _SUBSCRIPTIONS_ELSEWHERE,
                                    "extensions": {"code": "BAD_REQUEST"}}]}  # fmt: skip
                return _json(body, 400, media_type, request_id, **admission.headers)
            record.outcome = "METHOD_NOT_ALLOWED"
            body = {"errors": [{"message": "mutations are not allowed over GET; use POST",
                                "extensions": {"code": "METHOD_NOT_ALLOWED"}}]}  # fmt: skip
            return _json(body, 405, media_type, request_id, allow="POST", **admission.headers)
        except CannotGetOperationTypeError as error:
            record.outcome = "BAD_REQUEST"
            body = {"errors": [{"message": error.as_http_error_reason(),
                                "extensions": {"code": "BAD_REQUEST"}}]}  # fmt: skip
            return _json(body, 400, media_type, request_id, **admission.headers)

        response: dict[str, Any] = {}
        status = 200
        # Request errors (parse, validation, variables): nothing executed, no error has a path.
        # They answer without a `data` entry (GraphQL over HTTP), an executed request with one.
        raised = result.errors or []
        not_executed = bool(raised) and result.data is None and all(not e.path for e in raised)
        if result.errors:
            errors = format_errors(result.errors, request_id)
            record.outcome = errors[0]["extensions"]["code"]
            if self._hide_suggestions:
                for entry in errors:
                    entry["message"] = _SUGGESTION.sub("", entry["message"])
            response["errors"] = errors
            if not_executed and media_type == _GRAPHQL_RESPONSE:
                status = 400
        if resolved.register_apq is not None and not not_executed:
            # Only documents that parsed and validated are stored.
            await services.apq.put(principal.tenant_id, resolved.register_apq, resolved.text)
        if not not_executed:
            response["data"] = result.data
        if context.response_extensions:
            # For example staleData: provider data served past its freshness.
            response["extensions"] = context.response_extensions
        answer = orjson.dumps(response)
        succeeded = not result.errors and not context.response_extensions
        if cache_key is not None and succeeded and not context.used_providers:
            await self._responses.put(cache_key, answer)  # without the per-request cost report
        if admission.report_cost:
            response.setdefault("extensions", {})["cost"] = admission.cost(result.data)
            answer = orjson.dumps(response)
        public = succeeded and _publicly_cacheable(is_get, resolved, document, read.operation_name)
        response_cache = None if cache_key is None else "miss"
        return _answered(answer, status, media_type, request_id, public=public,
                         response_cache=response_cache, admission=admission)  # fmt: skip
