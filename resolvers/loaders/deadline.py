"""Bounding a dataloader's batch function by the request's deadline.

The batch runs in its own task (aiodataloader), so the deadline is applied inside it: when it
passes, the batch's awaits (provider HTTP calls, statements) are cancelled and every field
waiting on the batch gets DeadlineExceeded (TIMEOUT at its path); fields that finished keep
their data. Cancelling the fields' own awaits instead would leave the batch running and break
aiodataloader's futures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from adapters.errors import DeadlineExceeded

__all__ = ["within_deadline"]

R = TypeVar("R")


def within_deadline(
    fn: Callable[[Any], Coroutine[Any, Any, R]], deadline: float | None
) -> Callable[[Any], Coroutine[Any, Any, R]]:
    """`fn`, cancelled at `deadline` (event-loop clock); `fn` itself when there is none."""
    if deadline is None:
        return fn

    async def bounded(keys: Any) -> R:
        try:
            async with asyncio.timeout_at(deadline):
                return await fn(keys)
        except TimeoutError:
            raise DeadlineExceeded("the operation's deadline passed before this data") from None

    return bounded
