from __future__ import annotations

from pathlib import Path

from resolvers.federation import DIRECTIVE_ARGUMENT_TYPES
from resolvers.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    exported = schema.as_str() + "\n"
    assert SCHEMA_FILE.read_text() == exported, "schema.graphql drifted: run `make schema`"


def test_every_type_field_and_argument_has_a_description() -> None:
    """What GraphiQL's documentation shows: every type, field, input field and argument
    (enum values are described by their enum; directives by the cost specification)."""
    missing = []
    for name, graphql_type in schema._schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Boolean", "ID", "Float"}:
            continue
        if name in DIRECTIVE_ARGUMENT_TYPES:  # Apollo Federation's, described by its spec
            continue
        if not graphql_type.description:
            missing.append(name)
        for field_name, field in getattr(graphql_type, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for argument_name, argument in getattr(field, "args", {}).items():
                if (name, field_name) == ("Query", "_entities"):  # the federation spec's
                    continue
                if not argument.description:
                    missing.append(f"{name}.{field_name}({argument_name}:)")
    assert missing == []
