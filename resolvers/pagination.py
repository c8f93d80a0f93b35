"""Cursor connections (Relay): Connection, Edge, PageInfo, the cursor codec and the page cap."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

import strawberry

from adapters.errors import InvalidInput
from resolvers.cost_directives import FREE, TOTAL_COUNT_COST

__all__ = [
    "After",
    "Connection",
    "Edge",
    "First",
    "PageInfo",
    "check_first",
    "decode_cursor",
    "decode_time_cursor",
    "encode_cursor",
    "encode_time_cursor",
    "make_connection",
]

T = TypeVar("T")
R = TypeVar("R")

# The arguments of every forward connection, described once (`first: First = 20`).
First = Annotated[
    int,
    strawberry.argument(
        description=(
            "How many items to return: 0 up to the server's page cap (100 by default); "
            "outside that range is BAD_USER_INPUT."
        )
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(
        description=(
            "Return the items after this cursor: the previous page's `pageInfo.endCursor` "
            "(or an edge's `cursor`); null for the first page."
        )
    ),
]


@strawberry.type(
    directives=[FREE], description="Where a page sits in its list (forward pagination only)."
)
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="True when more items follow; pass `endCursor` as `after` to get them."
    )
    has_previous_page: bool = strawberry.field(
        description="Always false: lists page forward only, from `after`."
    )
    start_cursor: str | None = strawberry.field(
        description="Cursor of the first item of this page; null when the page is empty."
    )
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last item of this page; null when the page is empty."
    )


@strawberry.type(
    directives=[FREE], description="One item of a page and the cursor that points at it."
)
class Edge(Generic[T]):
    node: T = strawberry.field(description="The item.")
    _item: strawberry.Private[Any]
    _encode: strawberry.Private[Callable[[Any], str]]

    @strawberry.field(description="Opaque position of this item in its list.")
    def cursor(self) -> str:
        return self._encode(self._item)


@strawberry.type(description="A page of a list, with cursors to fetch the next one.")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The items of this page, in order.")
    _has_next_page: strawberry.Private[bool]
    _count: strawberry.Private[Callable[[], Awaitable[int]] | None]

    @strawberry.field(description="Cursors and whether more items follow.")
    def page_info(self) -> PageInfo:
        edges = self.edges
        return PageInfo(
            has_next_page=self._has_next_page,
            has_previous_page=False,
            start_cursor=edges[0].cursor() if edges else None,
            end_cursor=edges[-1].cursor() if edges else None,
        )

    @strawberry.field(
        directives=[TOTAL_COUNT_COST],
        description=(
            "Number of items in the whole list (not just this page); null where counting is "
            "not cheap. Costs one extra, batched, statement when asked for."
        ),
    )
    async def total_count(self) -> int | None:
        return None if self._count is None else await self._count()


def make_connection(
    items: Sequence[R],
    has_next_page: bool,
    node: Callable[[R], T],
    cursor: Callable[[R], str],
    count: Callable[[], Awaitable[int]] | None = None,
) -> Connection[T]:
    """Build a connection from one page of records, mapping each to its GraphQL type.

    Cursors are encoded only when a client asks for them.
    """
    return Connection(
        edges=[Edge(node=node(item), _item=item, _encode=cursor) for item in items],
        _has_next_page=has_next_page,
        _count=count,
    )


def check_first(first: int, maximum: int) -> int:
    """The page size, or BAD_USER_INPUT naming `first` when it is out of 0..maximum."""
    if first < 0 or first > maximum:
        raise InvalidInput(f"first must be between 0 and {maximum}", field="first")
    return first


def encode_cursor(kind: str, *parts: int) -> str:
    return base64.urlsafe_b64encode(":".join([kind, *map(str, parts)]).encode()).decode()


def decode_cursor(kind: str, cursor: str, size: int) -> list[int]:
    """The `size` integers inside a cursor of `kind`; BAD_USER_INPUT naming `after` otherwise."""
    try:
        kind_found, *parts = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        numbers = [int(part) for part in parts]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        numbers, kind_found = [], ""
    if kind_found != kind or len(numbers) != size or any(n < 0 or n >= 2**63 for n in numbers):
        raise InvalidInput("after is not a cursor of this list", field="after")
    return numbers


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def encode_time_cursor(kind: str, at: dt.datetime, pk: int) -> str:
    """A cursor for (time, id) keyset pages: the time as microseconds since the epoch."""
    return encode_cursor(kind, (at - _EPOCH) // dt.timedelta(microseconds=1), pk)


def decode_time_cursor(kind: str, cursor: str) -> tuple[dt.datetime, int]:
    """The (time, id) inside a cursor of `kind`; BAD_USER_INPUT naming `after` otherwise,
    including for a time no datetime can hold (a crafted cursor, not one we issued)."""
    micros, pk = decode_cursor(kind, cursor, 2)
    try:
        return _EPOCH + dt.timedelta(microseconds=micros), pk
    except OverflowError:
        raise InvalidInput("after is not a cursor of this list", field="after") from None
