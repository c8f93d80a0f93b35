"""Direct resolvers behave exactly as Strawberry's, and never bypass permissions."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.permission import BasePermission

from resolvers.fast_paths import resolve_simple_fields_directly


class Never(BasePermission):
    message = "no"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Thing:
    plain_value: int
    secret: int = strawberry.field(permission_classes=[Never], default=7)

    @strawberry.field
    def doubled(self) -> int:
        return self.plain_value * 2

    @strawberry.field
    def window(self, info: strawberry.Info, first: int = 3, after_id: str | None = None) -> str:
        return f"{info.field_name}:{first}:{after_id}:{info.context['who']}"

    @strawberry.field
    def guarded(self, limit: list[int]) -> int:  # list argument: keeps Strawberry's resolver
        return sum(limit)


@strawberry.type
class Query:
    @strawberry.field
    def thing(self) -> Thing:
        return Thing(plain_value=21)


def _schema() -> tuple[strawberry.Schema, int]:
    schema = strawberry.Schema(query=Query)
    return schema, resolve_simple_fields_directly(schema)


async def test_direct_resolvers_answer_like_strawberry() -> None:
    schema, replaced = _schema()
    assert replaced == 4  # thing, plainValue, doubled, window
    result = await schema.execute(
        '{ thing { plainValue doubled window(afterId: "x") w2: window guarded(limit: [1, 2]) } }',
        context_value={"who": "ana"},
    )
    assert result.errors is None
    assert result.data == {
        "thing": {"plainValue": 21, "doubled": 42, "window": "window:3:x:ana",
                  "w2": "window:3:None:ana", "guarded": 3}
    }  # fmt: skip


async def test_fields_with_permission_classes_keep_their_checks() -> None:
    schema, _ = _schema()
    result = await schema.execute("{ thing { secret } }", context_value={})
    assert result.data is None
    assert result.errors is not None
    assert result.errors[0].message == "no"
