from __future__ import annotations

import pytest
from graphql import parse, validate

from gateway.graphiql_examples import EXAMPLE_OPERATIONS
from resolvers.schema import schema


@pytest.mark.parametrize(
    ("name", "text"), EXAMPLE_OPERATIONS, ids=[n for n, _ in EXAMPLE_OPERATIONS]
)
def test_every_graphiql_example_validates_against_the_schema(name: str, text: str) -> None:
    document = parse(text)
    assert validate(schema._schema, document) == []
    assert document.definitions[0].name.value == name  # type: ignore[attr-defined]
