"""Persisted documents over HTTP: APQ (Apollo protocol), trusted documents per client,
document selection order, GET caching, CSRF and media types; each refusal with code and status."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from adapters.access.clients import DEFAULT_POLICIES, ClientKind
from adapters.cache import Cache, RedisCache
from adapters.ledger.tables import ledger_transactions
from gateway.app import create_app
from gateway.lifespan import Services
from gateway.persisted_documents import ApqStore, parse_manifest
from gateway.settings import Settings
from resolvers.node import encode_global_id
from resolvers.schema import schema
from tests.factories import make_account, make_customer, make_tenant
from tests.fixtures.database import Database
from tests.fixtures.gateway import GraphQLClient

COUNT = "query Count { customers { totalCount } }"
TYPENAME = "query Ping { __typename }"
LOOKUP = "query Lookup($id: ID!) { customer(id: $id) { id displayName } }"
PREFLIGHT = {"graphql-preflight": "1"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(text: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha(text)}}


async def make_client(
    services: Services,
    tenant_id: int,
    kind: ClientKind,
    *,
    scopes: tuple[str, ...] = ("ledger:read",),
    documents: dict[str, str] | None = None,
    **policy: bool,
) -> tuple[int, str]:
    """A client of `kind` with its key, and the documents (Relay map) registered for it."""
    issued = await services.clients.create(
        tenant_id=tenant_id, name=f"{kind}-client", kind=kind, scopes=scopes,
        policy=dataclasses.replace(DEFAULT_POLICIES[kind], **policy),
    )  # fmt: skip
    if documents:
        manifest = orjson.dumps(documents)
        await services.trusted_documents.store.register(
            issued.client.id, parse_manifest(manifest, schema._schema)
        )
    return issued.client.id, issued.key


async def post(
    http: httpx.AsyncClient, key: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return await http.post(
        "/graphql", json=body, headers={"authorization": f"Bearer {key}", **headers}
    )


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


async def count_transactions(database: Database, tenant_id: int) -> int:
    async with database.engine.connect() as connection:
        written = await connection.scalar(
            select(func.count())
            .select_from(ledger_transactions)
            .where(ledger_transactions.c.tenant_id == tenant_id)
        )
    return int(written or 0)


# --- APQ -------------------------------------------------------------------------------------


@pytest.fixture
async def apq_http(
    settings: Settings, services: Services, cache: Cache
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its APQ store on the parametrised cache (in-process and Redis)."""
    app = create_app(settings, dataclasses.replace(services, apq=ApqStore(cache, ttl_seconds=60)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


async def test_apq_registers_by_hash_and_text_then_runs_by_hash_over_post_and_get(
    apq_http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    _, key = await make_client(services, tenant_id, "analyst")

    unknown = await post(apq_http, key, {"extensions": apq(COUNT)})
    assert unknown.status_code == 200
    assert unknown.headers["cache-control"] == "no-store"
    assert unknown.json() == {"errors": [{"message": "PersistedQueryNotFound",
                              "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]}  # fmt: skip

    registered = await post(apq_http, key, {"query": COUNT, "extensions": apq(COUNT)})
    assert registered.json() == {"data": {"customers": {"totalCount": 0}}}

    by_hash = await post(apq_http, key, {"extensions": apq(COUNT)})
    assert by_hash.json() == {"data": {"customers": {"totalCount": 0}}}
    by_get = await apq_http.get(
        "/graphql",
        params={"extensions": orjson.dumps(apq(COUNT)).decode()},
        headers={"authorization": f"Bearer {key}", **PREFLIGHT},
    )
    assert by_get.status_code == 200
    assert by_get.json() == {"data": {"customers": {"totalCount": 0}}}
    assert by_get.headers["cache-control"] == "no-store"  # tenant data: never shared


async def test_apq_registrations_are_per_tenant(
    apq_http: httpx.AsyncClient, services: Services, tenant_id: int, database: Database
) -> None:
    _, mine = await make_client(services, tenant_id, "analyst")
    _, theirs = await make_client(services, await make_tenant(database.engine), "analyst")
    await post(apq_http, mine, {"query": COUNT, "extensions": apq(COUNT)})
    assert code_of(await post(apq_http, theirs, {"extensions": apq(COUNT)})) == (
        "PERSISTED_QUERY_NOT_FOUND"
    )


async def test_a_hash_that_does_not_match_the_text_is_400_and_nothing_is_stored_or_run(
    http: httpx.AsyncClient, services: Services, database: Database, tenant_id: int
) -> None:
    _, key = await make_client(services, tenant_id, "analyst", scopes=("ledger:write",))
    debit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    credit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    mutation = (
        'mutation { postLedgerTransaction(input: {idempotencyKey: "k", entries: ['
        f'{{accountId: "{debit}", direction: DEBIT, amount: "1.00", currency: "USD"}},'
        f'{{accountId: "{credit}", direction: CREDIT, amount: "1.00", currency: "USD"}}]}})'
        " { replayed } }"
    )
    response = await post(http, key, {"query": mutation, "extensions": apq(COUNT)})
    assert response.status_code == 400
    assert code_of(response) == "PERSISTED_QUERY_HASH_MISMATCH"
    assert await count_transactions(database, tenant_id) == 0
    assert code_of(await post(http, key, {"extensions": apq(COUNT)})) == (
        "PERSISTED_QUERY_NOT_FOUND"
    )


@pytest.mark.parametrize(
    "extension",
    [
        pytest.param({"version": 2, "sha256Hash": sha(COUNT)}, id="wrong_version_case"),
        pytest.param({"sha256Hash": sha(COUNT)}, id="no_version_case"),
        pytest.param({"version": 1, "sha256Hash": "abc"}, id="short_hash_case"),
        pytest.param({"version": 1, "sha256Hash": sha(COUNT).upper()}, id="upper_hash_case"),
        pytest.param("yes", id="not_an_object_case"),
    ],
)
async def test_malformed_persisted_query_extensions_are_400(
    gql: GraphQLClient, tenant_id: int, extension: Any
) -> None:
    response = await post(
        gql.http, gql.token(tenant_id), {"extensions": {"persistedQuery": extension}}
    )
    assert response.status_code == 400
    assert code_of(response) == "PERSISTED_QUERY_INVALID"


async def test_apq_disabled_for_a_client_is_not_supported(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    _, key = await make_client(services, tenant_id, "analyst", apq_enabled=False)
    for body in ({"extensions": apq(COUNT)}, {"query": COUNT, "extensions": apq(COUNT)}):
        response = await post(http, key, body)
        assert response.status_code == 200
        assert code_of(response) == "PERSISTED_QUERY_NOT_SUPPORTED"


async def test_a_redis_outage_degrades_apq_to_not_found(
    settings: Settings, services: Services, tenant_id: int
) -> None:
    dead = RedisCache("redis://127.0.0.1:1/0", prefix="fg-dead", timeout_seconds=0.05)
    app = create_app(settings, dataclasses.replace(services, apq=ApqStore(dead, ttl_seconds=60)))
    _, key = await make_client(services, tenant_id, "analyst")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        missing = await post(client, key, {"extensions": apq(COUNT)})
        with_text = await post(client, key, {"query": COUNT, "extensions": apq(COUNT)})
    await dead.close()
    assert (missing.status_code, code_of(missing)) == (200, "PERSISTED_QUERY_NOT_FOUND")
    assert with_text.json() == {"data": {"customers": {"totalCount": 0}}}


async def test_the_query_size_is_capped_before_hashing(
    gql: GraphQLClient, tenant_id: int, settings: Settings
) -> None:
    big = "{ __typename }" + " " * settings.max_query_bytes
    response = await post(gql.http, gql.token(tenant_id), {"query": big, "extensions": apq(big)})
    assert response.status_code == 400
    assert code_of(response) == "BAD_REQUEST"
    assert "larger than" in response.json()["errors"][0]["message"]


# --- Trusted documents -----------------------------------------------------------------------


async def test_a_partner_runs_its_documents_by_every_kind_of_id(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    _, key = await make_client(services, tenant_id, "partner", documents={"count-v1": COUNT})
    expected = {"data": {"customers": {"totalCount": 0}}}
    bodies: list[dict[str, Any]] = [
        {"documentId": f"sha256:{sha(COUNT)}"},
        {"documentId": "count-v1"},
        {"extensions": apq(COUNT)},
        {"doc_id": "count-v1"},
    ]
    for body in bodies:
        response = await post(http, key, body)
        assert (response.status_code, response.json()) == (200, expected), body
    by_get = await http.get(
        "/graphql",
        params={"documentId": "count-v1"},
        headers={"authorization": f"Bearer {key}", **PREFLIGHT},
    )
    assert (by_get.status_code, by_get.json()) == (200, expected)
    assert by_get.headers["cache-control"] == "no-store"


async def test_the_api_key_also_travels_in_x_api_key(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    _, key = await make_client(services, tenant_id, "partner", documents={"count-v1": COUNT})
    response = await http.post(
        "/graphql", json={"documentId": "count-v1"}, headers={"x-api-key": key}
    )
    assert response.json() == {"data": {"customers": {"totalCount": 0}}}
    both = await http.post(
        "/graphql",
        json={"documentId": "count-v1"},
        headers={"x-api-key": key, "authorization": f"Bearer {key}"},
    )
    assert both.status_code == 401


async def test_document_id_wins_over_the_persisted_query_extension_and_doc_id(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    _, key = await make_client(
        services, tenant_id, "partner", documents={"count": COUNT, "ping": TYPENAME}
    )
    response = await post(
        http, key, {"documentId": "ping", "extensions": apq(COUNT), "doc_id": "count"}
    )
    assert response.json() == {"data": {"__typename": "Query"}}
    response = await post(http, key, {"extensions": apq(TYPENAME), "doc_id": "count"})
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("kind", "body", "status", "code"),
    [
        pytest.param("partner", {"query": COUNT}, 400, "PERSISTED_QUERY_ID_REQUIRED",
                     id="partner_text_case"),
        pytest.param("partner", {"documentId": "nope"}, 404, "PERSISTED_QUERY_NOT_IN_LIST",
                     id="unknown_id_case"),
        pytest.param("partner", {"documentId": f"sha256:{sha(TYPENAME)}"}, 404,
                     "PERSISTED_QUERY_NOT_IN_LIST", id="unknown_sha_case"),
        pytest.param("partner", {"doc_id": "nope"}, 404, "PERSISTED_QUERY_NOT_IN_LIST",
                     id="unknown_relay_id_case"),
        # Not NOT_SUPPORTED: Apollo Client would then resend the text, which a partner may not.
        pytest.param("partner", {"extensions": apq(TYPENAME)}, 404,
                     "PERSISTED_QUERY_NOT_IN_LIST", id="partner_unknown_hash_case"),
        pytest.param("partner", {"query": TYPENAME, "extensions": apq(TYPENAME)}, 404,
                     "PERSISTED_QUERY_NOT_IN_LIST", id="partner_unknown_hash_and_text_case"),
        pytest.param("partner", {"documentId": "sha256:xyz"}, 400, "PERSISTED_QUERY_INVALID",
                     id="malformed_document_id_case"),
        pytest.param("partner", {"documentId": "count", "query": COUNT}, 400, "BAD_REQUEST",
                     id="id_and_text_case"),
        pytest.param("first_party", {"query": TYPENAME}, 403, "QUERY_NOT_IN_SAFELIST",
                     id="first_party_unlisted_text_case"),
        pytest.param("first_party", {"query": TYPENAME, "extensions": apq(TYPENAME)}, 403,
                     "QUERY_NOT_IN_SAFELIST", id="apq_never_satisfies_safelist_case"),
    ],
)  # fmt: skip
async def test_refusals_carry_their_code_and_status(
    http: httpx.AsyncClient, services: Services, tenant_id: int, kind: ClientKind,
    body: dict[str, Any], status: int, code: str,
) -> None:  # fmt: skip
    _, key = await make_client(services, tenant_id, kind, documents={"count": COUNT})
    response = await post(http, key, body)
    assert (response.status_code, code_of(response)) == (status, code)
    assert "data" not in response.json()


async def test_first_party_text_matching_a_registered_document_after_normalisation_runs(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    _, key = await make_client(services, tenant_id, "first_party", documents={"count": COUNT})
    reformatted = "# the dashboard count\nquery Count {\n  customers {\n    totalCount\n  }\n}\n"
    response = await post(http, key, {"query": reformatted})
    assert response.json() == {"data": {"customers": {"totalCount": 0}}}


async def test_first_party_text_is_free_when_the_policy_does_not_require_the_safelist(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    _, key = await make_client(services, tenant_id, "first_party", safelist_required=False)
    response = await post(http, key, {"query": TYPENAME})
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_a_document_of_one_client_is_invisible_to_another(
    http: httpx.AsyncClient, services: Services, tenant_id: int, database: Database
) -> None:
    await make_client(services, tenant_id, "partner", documents={"count": COUNT})
    _, same_tenant = await make_client(services, tenant_id, "partner")
    _, other_tenant = await make_client(services, await make_tenant(database.engine), "partner")
    for key in (same_tenant, other_tenant):
        for body in ({"documentId": "count"}, {"documentId": f"sha256:{sha(COUNT)}"}):
            response = await post(http, key, body)
            assert (response.status_code, code_of(response)) == (404, "PERSISTED_QUERY_NOT_IN_LIST")


async def test_a_partner_reads_only_its_own_tenant(
    http: httpx.AsyncClient, services: Services, tenant_id: int, database: Database
) -> None:
    other = await make_tenant(database.engine)
    theirs = encode_global_id("Customer", await make_customer(database.engine, other))
    mine = encode_global_id(
        "Customer", await make_customer(database.engine, tenant_id, display_name="Ada")
    )
    _, key = await make_client(services, tenant_id, "partner", documents={"lookup": LOOKUP})
    own = await post(http, key, {"documentId": "lookup", "variables": {"id": mine}})
    foreign = await post(http, key, {"documentId": "lookup", "variables": {"id": theirs}})
    assert own.json() == {"data": {"customer": {"id": mine, "displayName": "Ada"}}}
    assert foreign.json() == {"data": {"customer": None}}


async def test_authorization_is_never_skipped_for_persisted_documents(
    http: httpx.AsyncClient, services: Services, database: Database, tenant_id: int
) -> None:
    debit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    credit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    post_doc = (
        "mutation Pay($input: PostLedgerTransactionInput!) "
        "{ postLedgerTransaction(input: $input) { replayed } }"
    )
    _, key = await make_client(services, tenant_id, "partner", documents={"pay": post_doc})
    entries = [
        {"accountId": debit, "direction": "DEBIT", "amount": "1.00", "currency": "USD"},
        {"accountId": credit, "direction": "CREDIT", "amount": "1.00", "currency": "USD"},
    ]
    variables = {"input": {"idempotencyKey": "k1", "entries": entries}}
    response = await post(http, key, {"documentId": "pay", "variables": variables})
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert response.json()["errors"][0]["extensions"] == {
        "code": "FORBIDDEN",
        "scope": "ledger:write",
    }
    assert await count_transactions(database, tenant_id) == 0


async def test_a_registered_mutation_over_get_is_405_and_never_runs(
    http: httpx.AsyncClient, services: Services, database: Database, tenant_id: int
) -> None:
    debit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    credit = encode_global_id("LedgerAccount", await make_account(database.engine, tenant_id))
    mutation = (
        'mutation Pay { postLedgerTransaction(input: {idempotencyKey: "g", entries: ['
        f'{{accountId: "{debit}", direction: DEBIT, amount: "1.00", currency: "USD"}},'
        f'{{accountId: "{credit}", direction: CREDIT, amount: "1.00", currency: "USD"}}]}})'
        " { replayed } }"
    )
    _, key = await make_client(
        services, tenant_id, "partner", scopes=("ledger:write",), documents={"pay": mutation}
    )
    response = await http.get(
        "/graphql", params={"documentId": "pay"},
        headers={"authorization": f"Bearer {key}", **PREFLIGHT},
    )  # fmt: skip
    assert (response.status_code, code_of(response)) == (405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "POST"
    assert await count_transactions(database, tenant_id) == 0


async def test_a_persisted_get_reading_no_tenant_data_is_publicly_cacheable(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    _, key = await make_client(services, tenant_id, "partner", documents={"ping": TYPENAME})
    response = await http.get(
        "/graphql", params={"documentId": "ping"},
        headers={"authorization": f"Bearer {key}", **PREFLIGHT},
    )  # fmt: skip
    assert response.json() == {"data": {"__typename": "Query"}}
    assert response.headers["cache-control"] == "public, max-age=60"
    post_response = await post(http, key, {"documentId": "ping"})
    assert post_response.headers["cache-control"] == "no-store"


# --- Introspection, CSRF, media types, suggestions --------------------------------------------

INTROSPECT = "query Types { __schema { queryType { name } } }"


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        pytest.param("partner", 403, "INTROSPECTION_DISABLED", id="partner_case"),
        pytest.param("analyst", 200, None, id="analyst_case"),
        pytest.param("first_party", 200, None, id="first_party_case"),
    ],
)
async def test_introspection_is_off_for_partners_only(
    http: httpx.AsyncClient, services: Services, tenant_id: int, kind: ClientKind,
    status: int, expected: str | None,
) -> None:  # fmt: skip
    _, key = await make_client(services, tenant_id, kind, documents={"types": INTROSPECT})
    response = await post(http, key, {"documentId": "types"})
    assert response.status_code == status
    if expected is None:
        assert response.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    else:
        assert code_of(response) == expected


# What Apollo Client 3 sends by default: no preflight header of its own.
APOLLO_ACCEPT = "application/graphql-response+json,application/json;q=0.9"


async def test_apollo_persisted_queries_link_gets_hashed_queries_with_its_credential_only(
    apq_http: httpx.AsyncClient, gql: GraphQLClient, tenant_id: int
) -> None:
    """The persisted-queries link with `useGETForHashedQueries`: the hash over GET, on
    PERSISTED_QUERY_NOT_FOUND the hash and text over POST, then the hash over GET again. The
    Authorization header already forces a CORS preflight: no other header is needed."""
    headers = {"authorization": f"Bearer {gql.token(tenant_id)}", "accept": APOLLO_ACCEPT}
    params = {"operationName": "Count", "variables": "{}",
              "extensions": orjson.dumps(apq(COUNT)).decode()}  # fmt: skip

    unknown = await apq_http.get("/graphql", params=params, headers=headers)
    assert (unknown.status_code, code_of(unknown)) == (200, "PERSISTED_QUERY_NOT_FOUND")
    registered = await apq_http.post(
        "/graphql",
        json={"operationName": "Count", "variables": {}, "query": COUNT, "extensions": apq(COUNT)},
        headers=headers,
    )
    assert registered.json() == {"data": {"customers": {"totalCount": 0}}}
    by_hash = await apq_http.get("/graphql", params=params, headers=headers)
    assert (by_hash.status_code, by_hash.json()) == (
        200,
        {"data": {"customers": {"totalCount": 0}}},
    )


async def test_a_relay_style_get_by_document_id_needs_only_the_api_key(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    _, key = await make_client(services, tenant_id, "partner", documents={"count-v1": COUNT})
    for credential in ({"x-api-key": key}, {"authorization": f"Bearer {key}"}):
        response = await http.get(
            "/graphql",
            params={"documentId": "count-v1", "variables": "{}"},
            headers={**credential, "accept": "application/json"},
        )
        assert (response.status_code, response.json()) == (
            200,
            {"data": {"customers": {"totalCount": 0}}},
        ), credential


async def test_a_partner_apollo_client_gets_not_in_list_for_an_unregistered_hash(
    http: httpx.AsyncClient, services: Services, tenant_id: int
) -> None:
    """Apollo's persisted-queries link falls back to sending text on NOT_SUPPORTED; for a
    safelist-only client the answer must be final, as for an unknown documentId."""
    _, key = await make_client(services, tenant_id, "partner", documents={"count": COUNT})
    headers = {"authorization": f"Bearer {key}", "accept": APOLLO_ACCEPT}
    params = {"operationName": "Ping", "variables": "{}",
              "extensions": orjson.dumps(apq(TYPENAME)).decode()}  # fmt: skip
    response = await http.get("/graphql", params=params, headers=headers)
    assert (response.status_code, code_of(response)) == (404, "PERSISTED_QUERY_NOT_IN_LIST")
    assert "data" not in response.json()
    registered = {**params, "operationName": "Count",
                  "extensions": orjson.dumps(apq(COUNT)).decode()}  # fmt: skip
    response = await http.get("/graphql", params=registered, headers=headers)
    assert response.json() == {"data": {"customers": {"totalCount": 0}}}


async def test_preflight_headers_are_still_accepted_on_get(
    gql: GraphQLClient, tenant_id: int
) -> None:
    for header in ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight"):
        allowed = await gql.http.get(
            "/graphql",
            params={"query": TYPENAME},
            headers={"authorization": f"Bearer {gql.token(tenant_id)}", header: "Ping"},
        )
        assert allowed.json() == {"data": {"__typename": "Query"}}


async def test_a_get_without_a_credential_is_refused_and_runs_nothing(
    http: httpx.AsyncClient,
) -> None:
    """A cross-site <img> or form carries no credential header: it never reaches execution,
    with or without a preflight header."""
    for headers in ({}, PREFLIGHT):
        response = await http.get("/graphql", params={"query": TYPENAME}, headers=headers)
        assert (response.status_code, code_of(response)) == (401, "UNAUTHENTICATED")
        assert "data" not in response.json()


@pytest.mark.parametrize(
    ("accept", "status", "media_type"),
    [
        pytest.param("application/graphql-response+json", 200,
                     "application/graphql-response+json", id="graphql_response_case"),
        pytest.param("application/json", 200, "application/json", id="json_case"),
        pytest.param("*/*", 200, "application/json", id="anything_case"),
        pytest.param("application/xml", 406, "application/json", id="unacceptable_case"),
    ],
)  # fmt: skip
async def test_the_response_media_type_follows_accept(
    gql: GraphQLClient, tenant_id: int, accept: str, status: int, media_type: str
) -> None:
    response = await post(gql.http, gql.token(tenant_id), {"query": TYPENAME}, accept=accept)
    assert response.status_code == status
    assert response.headers["content-type"].startswith(media_type)


async def test_suggestions_are_hidden_outside_development(
    gql: GraphQLClient, tenant_id: int, settings: Settings, services: Services
) -> None:
    query = "{ customers { totalCont } }"
    hidden = await post(gql.http, gql.token(tenant_id), {"query": query})
    message = hidden.json()["errors"][0]["message"]
    assert message == "Cannot query field 'totalCont' on type 'CustomerConnection'."

    development = dataclasses.replace(settings, environment="development")
    app = create_app(development, dataclasses.replace(services, settings=development))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        shown = await post(client, gql.token(tenant_id), {"query": query})
    assert "Did you mean 'totalCount'?" in shown.json()["errors"][0]["message"]
