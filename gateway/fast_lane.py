"""POST /graphql straight to the endpoint, ahead of Starlette and its middleware.

Every GraphQL POST would otherwise pass through Starlette's outermost error middleware (a
wrapper around every `send`), the CatchAll and exception middleware, the router's route
matching, Starlette's Request and Response, and their wrappers: about a tenth of a one-row
query's time in the process (bench/README.md). `GatewayStarlette` is the application with
this lane checked first: such a request goes to `GraphQLHandler.answer` directly, with the
same answers: an exception escaping the endpoint is answered masked exactly as
`gateway.catch_all` answers it. Everything else (lifespan, GETs, GraphiQL, WebSockets, other
routes, a mount under a root path) and, when CORS is configured, any request carrying an
`Origin` header (the CORS middleware must see it) goes to Starlette unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from gateway.catch_all import request_id_of, send_masked_error
from gateway.http import GraphQLHandler, Incoming

__all__ = ["GatewayStarlette", "GraphQLFastLane"]

_PATH = "/graphql"


class GraphQLFastLane:
    """Which requests the lane takes (`takes`), and how it answers them (`serve`)."""

    def __init__(self, handler: Callable[[], GraphQLHandler], *, cors: bool) -> None:
        self._handler = handler
        self._cors = cors

    def takes(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != _PATH:
            return False
        if scope.get("root_path"):
            return False
        return not (self._cors and any(name == b"origin" for name, _ in scope["headers"]))

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self._handler().answer(Incoming(scope, receive))
        except ClientDisconnect:
            return  # nobody is left to answer
        except Exception as error:  # noqa: BLE001 - answered masked, logged in full
            await send_masked_error(error, request_id_of(scope), send)
            return
        await answer.send(send)


class GatewayStarlette(Starlette):
    """Starlette, with the GraphQL fast lane taking its requests before anything else."""

    def __init__(self, lane: GraphQLFastLane, **options: Any) -> None:
        super().__init__(**options)
        self._lane = lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._lane.takes(scope):
            await self._lane.serve(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)
