"""POST /graphql straight to the endpoint, ahead of the router and the other middleware.

Every GraphQL POST would otherwise pass through the CatchAll and exception middleware, the
router's route matching, Starlette's Request and Response, and their wrappers: about a tenth
of a one-row query's time in the process (bench/README.md). This middleware, first in the
stack, hands such a request to `GraphQLHandler.answer` directly and gives the same answers:
an exception escaping the endpoint is answered masked exactly as `gateway.catch_all` answers
it. Everything else (GETs, GraphiQL, WebSockets, other routes, a mount under a root path)
and, when CORS is configured, any request carrying an `Origin` header (the CORS middleware
must see it) go down the stack unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.catch_all import request_id_of, send_masked_error
from gateway.http import GraphQLHandler, Incoming

__all__ = ["GraphQLFastLane"]

_PATH = "/graphql"


class GraphQLFastLane:
    """Pure ASGI middleware: POST /graphql answered by the endpoint without the router."""

    def __init__(self, app: ASGIApp, *, handler: Callable[[], GraphQLHandler], cors: bool) -> None:
        self._app = app
        self._handler = handler
        self._cors = cors

    def _takes(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != _PATH:
            return False
        if scope.get("root_path"):
            return False
        return not (self._cors and any(name == b"origin" for name, _ in scope["headers"]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._takes(scope):
            await self._app(scope, receive, send)
            return
        try:
            answer = await self._handler().answer(Incoming(scope, receive))
        except ClientDisconnect:
            return  # nobody is left to answer
        except Exception as error:  # noqa: BLE001 - answered masked, logged in full
            await send_masked_error(error, request_id_of(scope), send)
            return
        await answer.send(send)
