"""Subscriptions of one process: admission, per-client caps, and running one operation.

Both transports (gateway.graphql_ws: graphql-transport-ws at /graphql; gateway.graphql_sse:
Server-Sent Events at /graphql/stream) authenticate like /graphql (gateway.auth), then hand
each operation here. An operation goes through the checks a /graphql request goes through, in
the same order: variables caps, document id or APQ, parse (token and list caps), safelist
(partner clients run registered documents only) and introspection policy, then validation with
the depth and alias limits and the scope checks of resolvers.permissions, which run when the
subscription starts and again for every event.

Events come from the process's `Fanout` (adapters.events), filtered to the caller's tenant.
Each running subscription has its own bounded queue (SUBSCRIPTION_QUEUE_SIZE): when a
subscriber falls that far behind, its connection is ended (`Connection.too_slow`) and nothing
else waits for it. A client holds at most SUBSCRIPTION_MAX_CONNECTIONS_PER_CLIENT connections
in a process. Neither the compiled path (gateway.compiled) nor the response cache ever sees a
subscription: they belong to the /graphql handler, which refuses subscriptions.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from graphql import DocumentNode, GraphQLSyntaxError, get_operation_ast, parse
from strawberry import Schema
from strawberry.types.execution import PreExecutionError

from adapters.audit.records import Actor, AuditBuffer
from adapters.audit.store import AuditStore
from adapters.events import EventQueue, Fanout, LedgerEvent
from gateway.audit import AuditRecorder, AuditUnavailable, actor_for
from gateway.cost import CostAnalyzer, CostTooExpensive
from gateway.errors import format_errors
from gateway.http import check_document_policy, read_payload
from gateway.lifespan import Services
from gateway.limits import RequestLimits
from gateway.persisted_documents import resolve_document
from gateway.rate_limits import RateLimited
from resolvers.context import RequestContext
from resolvers.errors import BadRequest, GatewayError
from resolvers.loaders import LedgerLoaders
from resolvers.principal import Principal
from resolvers.schema import limit_rules

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_TOO_MANY_CONNECTIONS",
    "CLOSE_TOO_SLOW",
    "Connection",
    "SubscriptionHub",
    "TooManyConnections",
    "close_subscriptions_on_exit_signal",
]


class ParseFailed(BadRequest):
    code = "GRAPHQL_PARSE_FAILED"


def _syntax_error(text: str) -> str:
    try:
        parse(text)
    except GraphQLSyntaxError as error:
        return error.message
    return "the document does not parse"


logger = logging.getLogger("gateway.subscriptions")

# Recent events whose loaders are kept for subscribers still working through them.
_SHARED_EVENTS = 256

# WebSocket close codes of our own choosing (README, "Live updates"); the protocol's own
# (4400, 4401, 4403, 4406, 4408, 4409) are in gateway.graphql_ws.
CLOSE_TOO_SLOW = 1013  # RFC 6455 "Try Again Later": the subscriber's queue overflowed
CLOSE_TOO_MANY_CONNECTIONS = 4429  # the client's connection cap is reached
CLOSE_GOING_AWAY = 1001  # the server is shutting down


class TooManyConnections(GatewayError):
    code = "TOO_MANY_CONNECTIONS"
    status_code = 429


class NotASubscription(BadRequest):
    code = "BAD_REQUEST"


def client_key(principal: Principal) -> str:
    """Whose connections count together: an API client, or a JWT's tenant and subject."""
    if principal.client_id is not None:
        return f"client:{principal.client_id}"
    return f"jwt:{principal.tenant_id}:{principal.subject}"


@dataclass(eq=False)
class Connection:
    """One transport connection (a WebSocket, or one SSE stream) and its subscriptions."""

    principal: Principal
    request_id: str
    # Called once when the connection must end: (close code, reason). The transport closes.
    on_end: Callable[[int, str], None]
    ended: tuple[int, str] | None = None
    _queues: set[EventQueue] = field(default_factory=set)

    def end(self, code: int, reason: str) -> None:
        """End the connection (once): every subscription's event queue stops."""
        if self.ended is not None:
            return
        self.ended = (code, reason)
        for queue in list(self._queues):
            queue.close()
        self.on_end(code, reason)


class _Events:
    """The LedgerEventSource of one subscription (resolvers.context)."""

    def __init__(self, hub: SubscriptionHub, connection: Connection) -> None:
        self._hub = hub
        self._connection = connection

    async def listen(self) -> AsyncIterator[LedgerEvent]:
        hub, connection = self._hub, self._connection
        if connection.ended is not None:
            return
        queue = hub.fanout.subscribe(
            connection.principal.tenant_id,
            max_queued=hub.queue_size,
            on_overflow=lambda: hub.too_slow(connection),
        )
        connection._queues.add(queue)
        hub.services.metrics.subscriptions_started += 1
        try:
            async for event in queue:
                yield event
        finally:
            queue.close()
            connection._queues.discard(queue)

    def loaders_for(self, event: LedgerEvent) -> LedgerLoaders:
        return self._hub.loaders_for(event)


@dataclass(frozen=True, slots=True)
class Message:
    """What the transport sends: a result (`next`) or the errors that refused the operation
    before it started (`error`)."""

    kind: Literal["next", "error"]
    payload: Any


class SubscriptionHub:
    """Every subscription connection of this process."""

    def __init__(self, schema: Schema, services: Services) -> None:
        self._schema = schema
        self.services = services
        settings = services.settings
        self.settings = settings.subscriptions
        self.queue_size = settings.subscriptions.queue_size
        self.fanout: Fanout = services.events.fanout
        self._limits = RequestLimits(settings.limits)
        self._audit = AuditRecorder(AuditStore(services.engine), schema._schema)
        rules = limit_rules(max_depth=settings.max_query_depth, max_aliases=settings.max_aliases)
        self._cost = CostAnalyzer(
            schema._schema, settings.cost, max_page_size=settings.max_page_size, rules=rules
        )
        self._max_bytes = settings.max_query_bytes
        self._per_client: Counter[str] = Counter()
        self._connections: set[Connection] = set()
        self._closed = False
        # Per recent event: the loaders its subscribers read through (one read serves all).
        self._event_loaders: OrderedDict[LedgerEvent, LedgerLoaders] = OrderedDict()

    async def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        """As /graphql does (Unauthenticated when the credential is missing or refused)."""
        return await self.services.authenticator.authenticate(authorization, api_key)

    def admit(self, principal: Principal, on_end: Callable[[int, str], None]) -> Connection:
        """Take one of the client's connection slots (give it back with `release`);
        TooManyConnections when they are all taken."""
        key = client_key(principal)
        cap = self.settings.max_connections_per_client
        if self._per_client[key] >= cap:
            self.services.metrics.subscription_connections_refused += 1
            raise TooManyConnections(
                f"at most {cap} subscription connections per client; close one first"
            )
        connection = Connection(principal, uuid.uuid4().hex, on_end)
        self._per_client[key] += 1
        self._connections.add(connection)
        if self._closed:
            connection.end(CLOSE_GOING_AWAY, "the server is shutting down")
        return connection

    def release(self, connection: Connection) -> None:
        """Give the connection's slot back (once) and stop its subscriptions."""
        if connection not in self._connections:
            return
        self._connections.discard(connection)
        key = client_key(connection.principal)
        self._per_client[key] -= 1
        if self._per_client[key] <= 0:
            del self._per_client[key]
        for queue in list(connection._queues):
            queue.close()

    @contextmanager
    def connection(
        self, principal: Principal, on_end: Callable[[int, str], None]
    ) -> Iterator[Connection]:
        """`admit`, and `release` when the block ends."""
        connection = self.admit(principal, on_end)
        try:
            yield connection
        finally:
            self.release(connection)

    def loaders_for(self, event: LedgerEvent) -> LedgerLoaders:
        """The loaders of `event`'s tenant for reading what it changed, shared by every
        subscription of this process that receives it (they are bound to that tenant, and
        loaded after the event's commit). The most recent events' are kept."""
        loaders = self._event_loaders.get(event)
        if loaders is None:
            loaders = LedgerLoaders(self.services.reader, event.tenant_id)
            self._event_loaders[event] = loaders
            if len(self._event_loaders) > _SHARED_EVENTS:
                self._event_loaders.popitem(last=False)
        return loaders

    def too_slow(self, connection: Connection) -> None:
        """A subscription's queue overflowed: end its connection (the others go on)."""
        self.services.metrics.subscribers_too_slow += 1
        logger.warning(
            "subscriber too slow, disconnected: request_id=%s client=%s",
            connection.request_id,
            client_key(connection.principal),
        )
        connection.end(
            CLOSE_TOO_SLOW,
            f"subscriber too slow: more than {self.queue_size} events waiting",
        )

    def close(self) -> None:
        """Shutdown: end every connection (WebSocket close 1001; SSE streams complete)."""
        self._closed = True
        for connection in list(self._connections):
            connection.end(CLOSE_GOING_AWAY, "the server is shutting down")

    async def _document(
        self, principal: Principal, payload: Any, request_id: str
    ) -> tuple[str, Any, str | None, Actor]:
        """The checks /graphql makes before running a document; GatewayError when refused.
        Returns the text, variables and operation name to run, and who runs it (audit)."""
        read = read_payload(payload, self._max_bytes)
        self._limits.check_variables(read.variables)
        services = self.services
        resolved = await resolve_document(
            read.document, principal, services.trusted_documents, services.apq
        )
        document: DocumentNode | None = self._limits.parse(resolved.text)
        if document is None:  # /graphql lets execution report it; a stream must not start
            raise ParseFailed(_syntax_error(resolved.text))
        await check_document_policy(services.trusted_documents, principal, resolved, document)
        if document is not None:
            operation = get_operation_ast(document, read.operation_name)
            if operation is not None and operation.operation.value != "subscription":
                raise NotASubscription(
                    "only subscriptions are served here; send queries and mutations to "
                    "POST /graphql"
                )
        await self._admit(principal, resolved.text, document, read.operation_name, read.variables)
        actor = actor_for(principal, request_id, document, read.operation_name, read.document)
        return resolved.text, read.variables, read.operation_name, actor

    async def _admit(
        self,
        principal: Principal,
        text: str,
        document: DocumentNode | None,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> None:
        """Cost and rate limit, as /graphql applies them: the selection's estimated cost (what
        each event will cost to answer) must fit the caller's budget, and starting the
        subscription is charged that estimate once."""
        settings = self.services.settings
        plan = None if document is None else self._cost.plan(text, document, operation_name)
        estimated = plan.estimate(variables or {}) if plan is not None else 1
        budget = settings.cost.budget(principal)
        if settings.cost.enabled and estimated > budget:
            raise CostTooExpensive(
                f"the operation's estimated cost {estimated} is over your budget of {budget}",
                cost={"estimated": estimated, "maxCost": budget},
            )
        limiter = self.services.rate_limiter
        if settings.rate_limits.enabled and limiter is not None:
            decision = await limiter.charge(principal, estimated)
            if not decision.allowed:
                raise RateLimited(
                    "rate limit exceeded; retry after the Retry-After header's seconds",
                    decision.headers,
                    retryAfterSeconds=int(decision.headers["retry-after"]),
                )

    async def run(self, connection: Connection, payload: Any) -> AsyncIterator[Message]:
        """The messages of one operation: one `error` when it is refused before it starts,
        else a `next` per result until the subscription ends."""
        principal = connection.principal
        try:
            text, variables, operation_name, actor = await self._document(
                principal, payload, connection.request_id
            )
        except GatewayError as error:
            yield Message("error", [{"message": error.message, "extensions": _extensions(error)}])
            return
        services = self.services
        context = RequestContext(
            request_id=connection.request_id,
            principal=principal,
            ledger=LedgerLoaders(services.reader, principal.tenant_id),
            posting=services.posting,
            max_page_size=services.settings.max_page_size,
            providers=services.providers,
            events=_Events(self, connection),
            audit=AuditBuffer(actor),
            audit_store=self._audit.store,
        )
        results = await self._schema.subscribe(
            text,
            variable_values=variables,
            context_value=context,
            operation_name=operation_name,
        )
        try:
            async for result in results:
                errors = format_errors(result.errors or [], connection.request_id)
                if isinstance(result, PreExecutionError):
                    yield Message("error", errors)
                    return
                # Unmasked personal data read for this event is recorded before it is sent;
                # without the audit trail it is not sent at all, and the subscription ends.
                try:
                    await self._audit.flush(context.audit)
                except AuditUnavailable as unavailable:
                    refusal = {"message": unavailable.message,
                               "extensions": _extensions(unavailable)}  # fmt: skip
                    yield Message("next", {"data": None, "errors": [refusal]})
                    return
                context.audit = AuditBuffer(actor)
                body: dict[str, Any] = {"data": result.data}
                if errors:
                    body["errors"] = errors
                services.metrics.subscription_events += 1
                yield Message("next", body)
        finally:
            await results.aclose()


def _extensions(error: GatewayError) -> dict[str, Any]:
    return {"code": error.code, **error.extensions}


def close_subscriptions_on_exit_signal(hub: Callable[[], SubscriptionHub | None]) -> None:
    """End subscriptions as soon as the server is told to stop (SIGTERM, SIGINT).

    uvicorn waits for open HTTP responses before it runs the app's shutdown, and an SSE
    stream never ends by itself: the hub must close first. The signal handler uvicorn
    installed still runs afterwards. Only in the main thread (where signals are delivered).
    """
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(number)
        if not callable(previous):
            continue

        def on_exit(signum: int, frame: Any, previous: Any = previous) -> None:
            current = hub()
            if current is not None:
                loop.call_soon_threadsafe(current.close)
            previous(signum, frame)

        try:
            signal.signal(number, on_exit)
        except ValueError:  # not the main thread
            return
