"""GraphQL over HTTP: read the request, authenticate, execute, shape the response.

Order of work for every request: authentication (401 before anything else is looked at),
size cap and body decoding, then parse, validation (both cached) and execution. A browser's
GET without a query gets GraphiQL instead, when it is enabled.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from strawberry import Schema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from gateway.context import RequestContext
from gateway.errors import BadRequest, GatewayError, UnsupportedMediaType, format_errors
from gateway.graphiql import render_graphiql_page
from gateway.graphiql_examples import EXAMPLE_OPERATIONS
from gateway.lifespan import Services
from gateway.loaders import LedgerLoaders

__all__ = ["GraphQLHandler"]

logger = logging.getLogger("gateway.http")

_JSON = "application/json"
_GRAPHQL_RESPONSE = "application/graphql-response+json"


def _media_type(request: Request) -> str:
    accept = request.headers.get("accept", "")
    if _GRAPHQL_RESPONSE in accept:
        return _GRAPHQL_RESPONSE
    return _JSON


def _json(body: Any, status: int, media_type: str, request_id: str, **headers: str) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=media_type,
        headers={"x-request-id": request_id, "cache-control": "no-store", **headers},
    )


class GraphQLHandler:
    """The /graphql endpoint for one schema and one process's services."""

    def __init__(self, schema: Schema, services: Services) -> None:
        self._schema = schema
        self._services = services
        self._max_bytes = services.settings.max_query_bytes

    async def _read(self, request: Request) -> tuple[str, dict[str, Any] | None, str | None]:
        if request.method == "GET":
            params = request.query_params
            query = params.get("query")
            raw_variables = params.get("variables")
            operation_name = params.get("operationName")
            if query is not None and len(query) > self._max_bytes:
                raise BadRequest(f"the query is larger than {self._max_bytes} bytes")
            try:
                variables = orjson.loads(raw_variables) if raw_variables else None
            except orjson.JSONDecodeError:
                raise BadRequest("variables must be a JSON object") from None
        else:
            content_type = request.headers.get("content-type", "")
            if not content_type.startswith(_JSON):
                raise UnsupportedMediaType("POST bodies must be application/json")
            body = await request.body()
            if len(body) > self._max_bytes * 2:
                raise BadRequest(f"the request body is larger than {self._max_bytes * 2} bytes")
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise BadRequest("the request body is not valid JSON") from None
            if not isinstance(payload, dict):
                raise BadRequest("the request body must be a JSON object")
            query = payload.get("query")
            variables = payload.get("variables")
            operation_name = payload.get("operationName")
        if not isinstance(query, str) or not query.strip():
            raise BadRequest("the request has no GraphQL query")
        if len(query) > self._max_bytes:
            raise BadRequest(f"the query is larger than {self._max_bytes} bytes")
        if variables is not None and not isinstance(variables, dict):
            raise BadRequest("variables must be a JSON object")
        if operation_name is not None and not isinstance(operation_name, str):
            raise BadRequest("operationName must be a string")
        return query, variables, operation_name

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

    async def __call__(self, request: Request) -> Response:
        if self._wants_graphiql(request):
            return self._graphiql()
        services = self._services
        services.metrics.requests += 1
        request_id = request.headers.get("x-request-id", "")[:64] or uuid.uuid4().hex
        media_type = _media_type(request)
        try:
            principal = services.verifier.verify_authorization(request.headers.get("authorization"))
            query, variables, operation_name = await self._read(request)
        except GatewayError as error:
            headers = {"www-authenticate": "Bearer"} if error.status_code == 401 else {}
            body = {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}
            return _json(body, error.status_code, media_type, request_id, **headers)

        context = RequestContext(
            request_id=request_id,
            principal=principal,
            ledger=LedgerLoaders(services.reader, principal.tenant_id),
            posting=services.posting,
            max_page_size=services.settings.max_page_size,
        )
        allowed = (
            {OperationType.QUERY}
            if request.method == "GET"
            else {OperationType.QUERY, OperationType.MUTATION}
        )
        try:
            result = await self._schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
                allowed_operation_types=allowed,
            )
        except InvalidOperationTypeError:
            body = {"errors": [{"message": "mutations are not allowed over GET; use POST",
                                "extensions": {"code": "METHOD_NOT_ALLOWED"}}]}  # fmt: skip
            return _json(body, 405, media_type, request_id, allow="POST")
        except CannotGetOperationTypeError as error:
            body = {"errors": [{"message": error.as_http_error_reason(),
                                "extensions": {"code": "BAD_REQUEST"}}]}  # fmt: skip
            return _json(body, 400, media_type, request_id)

        response: dict[str, Any] = {}
        status = 200
        if result.errors:
            response["errors"] = format_errors(result.errors, request_id)
            if result.data is None and media_type == _GRAPHQL_RESPONSE:
                status = 400  # not executed: parse or validation failure
        response["data"] = result.data
        return _json(response, status, media_type, request_id)
