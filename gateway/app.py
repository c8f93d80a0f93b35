"""The ASGI application: routes, lifespan and the GraphQL endpoint, built from Settings."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from gateway.catch_all import CatchAllMiddleware
from gateway.cors import cors_middleware
from gateway.exports import export_routes
from gateway.fast_lane import GatewayStarlette, GraphQLFastLane
from gateway.graphiql import graphiql_routes
from gateway.graphql_sse import serve_graphql_sse
from gateway.graphql_ws import serve_graphql_ws
from gateway.http import GraphQLHandler
from gateway.lifespan import Services, open_services
from gateway.settings import Settings
from gateway.subscriptions import SubscriptionHub, close_subscriptions_on_exit_signal
from gateway.telemetry import metrics_endpoint, metrics_server
from gateway.webhooks import WebhookHandlers
from resolvers.schema import build_schema

__all__ = ["create_app"]


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    """Build the app. With `services` given (tests), the caller owns their lifetime."""
    state: dict[str, Services] = {}
    schema = build_schema(max_depth=settings.max_query_depth, max_aliases=settings.max_aliases)

    def current() -> Services:
        return state["services"]

    handler: GraphQLHandler | None = None

    def graphql_handler() -> GraphQLHandler:
        nonlocal handler
        if handler is None:
            handler = GraphQLHandler(schema, current())
        return handler

    async def graphql(request: Request) -> Response:
        return await graphql_handler()(request)

    hub: SubscriptionHub | None = None

    def subscriptions() -> SubscriptionHub:
        nonlocal hub
        if hub is None:
            hub = SubscriptionHub(schema, current())
        return hub

    async def graphql_ws(websocket: WebSocket) -> None:
        await serve_graphql_ws(subscriptions(), websocket)

    async def graphql_stream(request: Request) -> Response:
        return await serve_graphql_sse(subscriptions(), request)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        if await current().database_is_ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "database unreachable"}, status_code=503)

    def webhooks() -> WebhookHandlers | None:
        runtime = current().providers
        if runtime is None:
            return None
        return WebhookHandlers(runtime, dedup_seconds=settings.providers.webhook_dedup_seconds)

    async def stripe_webhook(request: Request) -> Response:
        handlers = webhooks()
        if handlers is None:
            return JSONResponse({"error": "providers are not configured"}, status_code=404)
        return await handlers.stripe(request)

    async def adyen_webhook(request: Request) -> Response:
        handlers = webhooks()
        if handlers is None:
            return JSONResponse({"error": "providers are not configured"}, status_code=404)
        return await handlers.adyen(request)

    async def plaid_webhook(request: Request) -> Response:
        handlers = webhooks()
        if handlers is None:
            return JSONResponse({"error": "providers are not configured"}, status_code=404)
        return await handlers.plaid(request)

    def close() -> None:
        if hub is not None:
            hub.close()
        if handler is not None:
            handler.close()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if services is not None:
            state["services"] = services
            try:
                async with metrics_server(settings, current):
                    yield
            finally:
                close()
            return
        async with open_services(settings) as opened, metrics_server(settings, current):
            state["services"] = opened
            # Everything built so far (schema, caches, pools) lives as long as the process:
            # moved out of the collector's reach, a full collection no longer walks it, which
            # is what made the long latency tail (a pause of tens of ms every few seconds).
            gc.collect()
            gc.freeze()
            # Open SSE streams would hold uvicorn's graceful shutdown: end them on the signal.
            close_subscriptions_on_exit_signal(lambda: hub)
            try:
                yield
            finally:
                close()

    if services is not None:
        state["services"] = services
    routes: list[BaseRoute] = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_ws),
        Route("/graphql/stream", graphql_stream, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint(settings, current), methods=["GET"]),
        Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        Route("/webhooks/plaid", plaid_webhook, methods=["POST"]),
        Route("/webhooks/adyen", adyen_webhook, methods=["POST"]),
        *export_routes(current),
    ]
    if settings.graphiql:
        routes.extend(graphiql_routes(settings.graphiql_assets_dir / "assets"))
    # GraphQL POSTs go straight to the endpoint, ahead of Starlette (gateway.fast_lane); CORS
    # answers preflights before routing (none at all unless origins are configured); then
    # anything a route lets escape answers masked JSON with a request id (503 when the
    # database could not answer), never Starlette's plain-text 500.
    cors = cors_middleware(settings.cors)
    return GatewayStarlette(
        GraphQLFastLane(graphql_handler, cors=bool(cors)),
        routes=routes,
        lifespan=lifespan,
        middleware=[*cors, Middleware(CatchAllMiddleware)],
    )
