"""Per-tenant data versions: a counter bumped inside every transaction that changes what a
tenant's reads answer (postings, confirmations, voids, reversals, bank syncs, seeds).

The gateway's response cache puts the version in its keys (gateway/response_cache.py), so an
answer cached before a write can never be served after it. The counter is a row, updated under
its row lock inside the writing transaction, so versions are handed out in commit order: a
reader that sees version v sees every write that produced a version <= v. (A sequence or a
timestamp would not be in commit order.)

Writers call `bump_data_version` as the last statement before commit: the row lock is then held
only for the commit, and since no writer takes another lock after it, it cannot join a
deadlock cycle (account locks come first, in ascending id order).

A tenant's first bump starts at a random value rather than 1: a database dropped and recreated
(or another database sharing the same Redis) never hands out a (tenant, version) pair that an
older cache entry may still carry. A tenant without a row reads as version 0: nothing has been
written for it through these paths.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.db import Id, metadata

__all__ = ["bump_data_version", "tenant_data_versions"]

tenant_data_versions = Table(
    "tenant_data_versions",
    metadata,
    Column("tenant_id", Id, ForeignKey("tenants.id"), primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

# First versions are drawn below 2**62: +1 per write never reaches BIGINT's limit.
_FIRST_VERSION_BOUND = 2**62


def _bump(dialect: Any) -> Any:
    return (
        dialect.insert(tenant_data_versions)
        .values(tenant_id=bindparam("p_tenant_id"), version=bindparam("p_first_version"))
        .on_conflict_do_update(
            index_elements=[tenant_data_versions.c.tenant_id],
            set_={"version": tenant_data_versions.c.version + 1},
        )
    )


# Built once per dialect (a statement object keeps its cache key: a write binds, not builds).
_BUMP = {"postgresql": _bump(postgresql), "sqlite": _bump(sqlite)}


async def bump_data_version(connection: AsyncConnection, tenant_id: int) -> None:
    """Add one to the tenant's data version inside the caller's transaction (upsert)."""
    statement = _BUMP["postgresql" if connection.dialect.name == "postgresql" else "sqlite"]
    first = secrets.randbelow(_FIRST_VERSION_BOUND) + 1
    await connection.execute(statement, {"p_tenant_id": tenant_id, "p_first_version": first})
