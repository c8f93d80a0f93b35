"""Process counters and the per-request SQL statement counter."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = ["Metrics", "StatementTally"]


@dataclass(slots=True)
class StatementTally:
    """Statements sent to the database while one request (or test block) ran."""

    count: int = 0


@dataclass(slots=True)
class Metrics:
    """Counters for one gateway process, exposed at /metrics in Prometheus text format."""

    requests: int = 0
    sql_statements: int = 0
    errors_masked: int = 0
    # Operations answered by one JSON-building statement, and by the resolvers (the reference).
    compiled_operations: int = 0
    resolver_operations: int = 0
    _current: ContextVar[StatementTally | None] = field(
        default_factory=lambda: ContextVar("statement_tally", default=None)
    )

    def count_statement(self) -> None:
        """Engine hook: one statement went to the database."""
        self.sql_statements += 1
        tally = self._current.get()
        if tally is not None:
            tally.count += 1

    @contextmanager
    def measure_statements(self) -> Iterator[StatementTally]:
        """Count the statements issued inside the block, including by tasks it spawns."""
        tally = StatementTally()
        token = self._current.set(tally)
        try:
            yield tally
        finally:
            self._current.reset(token)

    def render(self) -> str:
        return (
            # Which worker process answered: counters are per process (`serve --workers N`).
            "# TYPE gateway_process_info gauge\n"
            f'gateway_process_info{{pid="{os.getpid()}"}} 1\n'
            "# TYPE gateway_requests_total counter\n"
            f"gateway_requests_total {self.requests}\n"
            "# TYPE gateway_sql_statements_total counter\n"
            f"gateway_sql_statements_total {self.sql_statements}\n"
            "# TYPE gateway_errors_masked_total counter\n"
            f"gateway_errors_masked_total {self.errors_masked}\n"
            "# TYPE gateway_operations_total counter\n"
            f'gateway_operations_total{{path="compiled"}} {self.compiled_operations}\n'
            f'gateway_operations_total{{path="resolvers"}} {self.resolver_operations}\n'
        )
