"""Manifests: Apollo persisted query manifests and Relay id-to-text maps; malformed refused."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from gateway.persisted_documents import ManifestError, normalized_sha256, parse_manifest
from resolvers.schema import schema

COUNT = "query Count { customers { totalCount } }"
COUNT_ID = hashlib.sha256(COUNT.encode()).hexdigest()


def apollo(*operations: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"format": "apollo-persisted-query-manifest", "version": 1, "operations": list(operations)}
    )


def test_an_apollo_manifest_gives_its_documents() -> None:
    (document,) = parse_manifest(
        apollo({"id": COUNT_ID, "body": COUNT, "name": "Count", "type": "query"}), schema._schema
    )
    assert (document.document_id, document.name, document.operation_type, document.body) == (
        COUNT_ID, "Count", "query", COUNT,
    )  # fmt: skip


def test_a_relay_map_gives_its_documents_with_name_and_type_from_the_body() -> None:
    documents = parse_manifest(orjson.dumps({"a1b2": COUNT, "c3": "mutation M { __typename }"}))
    assert [(d.document_id, d.name, d.operation_type) for d in documents] == [
        ("a1b2", "Count", "query"), ("c3", "M", "mutation"),
    ]  # fmt: skip


def test_normalisation_ignores_whitespace_and_comments() -> None:
    from graphql import parse

    (document,) = parse_manifest(orjson.dumps({"x": COUNT}))
    spaced = parse("# comment\nquery Count {\n  customers { totalCount }\n}")
    assert document.normalized_sha256 == normalized_sha256(spaced)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        pytest.param(b"{nope", "not valid JSON", id="not_json_case"),
        pytest.param(b"[]", "non-empty JSON object", id="array_case"),
        pytest.param(b"{}", "non-empty JSON object", id="empty_case"),
        pytest.param(orjson.dumps({"format": "apollo-persisted-query-manifest", "version": 2,
                                   "operations": []}), "version 1", id="apollo_version_case"),
        pytest.param(orjson.dumps({"format": "other", "version": 1}), "expected format",
                     id="unknown_format_case"),
        pytest.param(apollo(), "non-empty list", id="no_operations_case"),
        pytest.param(apollo({"id": "a", "body": COUNT}), "id, body, name and type",
                     id="missing_fields_case"),
        pytest.param(apollo({"id": "a", "body": COUNT, "name": "Count", "type": "fragment"}),
                     "unknown type", id="bad_type_case"),
        pytest.param(apollo({"id": "a", "body": COUNT, "name": "Count", "type": "mutation"}),
                     "is not 'query'", id="type_mismatch_case"),
        pytest.param(apollo({"id": "a", "body": COUNT, "name": "Other", "type": "query"}),
                     "is not 'Count'", id="name_mismatch_case"),
        pytest.param(apollo({"id": "0" * 64, "body": COUNT, "name": "Count", "type": "query"}),
                     "not the body's", id="wrong_sha_id_case"),
        pytest.param(orjson.dumps({"a": "query {"}), "does not parse", id="syntax_case"),
        pytest.param(orjson.dumps({"a": "query A { __typename } query B { __typename }"}),
                     "exactly one operation", id="two_operations_case"),
        pytest.param(orjson.dumps({"a": "{ nope }"}), "is not valid", id="invalid_case"),
        pytest.param(orjson.dumps({"a": 1}), "has no body", id="relay_not_text_case"),
    ],
)  # fmt: skip
def test_malformed_manifests_are_refused(manifest: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(manifest, schema._schema)
