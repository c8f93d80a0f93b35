"""Dataloaders of one request: the batch size bound, and loaders built once per key.

A loader whose batch depends on arguments (a page size, a cursor, a date range) is built once
per set of arguments, so the objects of one query level asking the same question share one
batch; `deadline` (event-loop clock), when given, bounds every batch (resolvers.loaders.deadline).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from aiodataloader import DataLoader

from resolvers.loaders.deadline import within_deadline

__all__ = ["MAX_BATCH", "KeyedLoaders", "batch_loader"]

# Bounds the size of one IN (...) / array parameter, or of one provider request.
MAX_BATCH = 1000

_Batch = Callable[[Any], Coroutine[Any, Any, Any]]


def batch_loader(fn: _Batch, deadline: float | None = None) -> DataLoader[Any, Any]:
    """A loader of `fn`'s batches, each cancelled at `deadline` when there is one."""
    return DataLoader(within_deadline(fn, deadline), max_batch_size=MAX_BATCH)


class KeyedLoaders:
    """Loaders built on first use, one per key."""

    def __init__(self, deadline: float | None = None) -> None:
        self._deadline = deadline
        self._loaders: dict[Hashable, DataLoader[Any, Any]] = {}

    def get(self, key: Hashable, fn: _Batch) -> DataLoader[Any, Any]:
        """The loader of `key`, built from `fn` the first time it is asked for."""
        loader = self._loaders.get(key)
        if loader is None:
            loader = self._loaders[key] = batch_loader(fn, self._deadline)
        return loader
