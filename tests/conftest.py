"""Root fixtures: each area's fixtures live in tests/fixtures/ and are registered here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import make_tenant

if TYPE_CHECKING:
    from tests.fixtures.database import Database

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.gateway",
    "tests.fixtures.cache",
    "tests.fixtures.stripe_spec",
    "tests.fixtures.cards_sandbox",
    "tests.fixtures.providers",
    "tests.fixtures.logs",
]


@pytest.fixture
def engine(database: Database) -> AsyncEngine:
    return database.engine


@pytest.fixture
async def tenant_id(engine: AsyncEngine) -> int:
    """A fresh tenant per test: tests never see each other's rows."""
    return await make_tenant(engine)
