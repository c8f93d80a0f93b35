"""Finding primary account numbers (card numbers) where none may be (PCI DSS requirement 3).

The gateway keeps at most a card's brand, last four digits, expiry and fingerprint. `find_pans`
flags anything that looks like a full card number: a run of 13 to 19 digits, optionally
grouped by single spaces or dashes, standing alone (no letter, digit or underscore right
before or after: hex digests and ids are not card numbers), not starting with 0 (no card
does), that passes the Luhn check. Findings are masked (first six, last four) so that the
report of a leak does not leak it again.

`scan_database` reflects every table of a database and scans every text, binary and JSON
value in it; the tests also scan every cache key and value with `find_pans`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["PanFinding", "find_pans", "luhn_valid", "mask_pan", "scan_database", "scan_value"]

_CANDIDATE = re.compile(r"(?<![0-9A-Za-z_])\d(?:[ -]?\d){12,18}(?![0-9A-Za-z_])")
_SEPARATORS = re.compile(r"[ -]")
_ROWS_PER_FETCH = 2_000


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every card number passes."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def mask_pan(digits: str) -> str:
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def find_pans(text: str) -> list[str]:
    """Masked card numbers found in `text` (empty when there is none)."""
    found = []
    for match in _CANDIDATE.finditer(text):
        digits = _SEPARATORS.sub("", match.group())
        # Card numbers start with a major industry identifier of 1-9 (0 is not issued to
        # cards): zero-padded ids and counters are not flagged.
        if 13 <= len(digits) <= 19 and digits[0] != "0" and luhn_valid(digits):
            found.append(mask_pan(digits))
    return found


def scan_value(value: Any) -> list[str]:
    """`find_pans` over a column or cache value: text, bytes (as Latin-1, so every byte is
    one character) or JSON-like structures; other types hold no text."""
    if isinstance(value, str):
        return find_pans(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return find_pans(bytes(value).decode("latin-1"))
    if isinstance(value, dict | list):
        return find_pans(json.dumps(value, ensure_ascii=False))
    return []


@dataclass(frozen=True, slots=True)
class PanFinding:
    """A value that holds a card number: where (table and column, or cache key) and the
    masked number."""

    where: str
    masked: str


def _findings(table: str, row: Any, columns: list[str]) -> Iterator[PanFinding]:
    for column in columns:
        for masked in scan_value(row._mapping[column]):
            yield PanFinding(f"{table}.{column}", masked)


async def scan_database(connection: AsyncConnection) -> list[PanFinding]:
    """Every card number in every text, binary or JSON value of every table (reflected, so
    tables this code does not know are scanned too), as `connection` sees them."""
    reflected = MetaData()
    await connection.run_sync(reflected.reflect)
    findings: list[PanFinding] = []
    for table in reflected.sorted_tables:
        columns = [column.name for column in table.columns]
        result = await connection.stream(select(table))
        async for rows in result.partitions(_ROWS_PER_FETCH):
            for row in rows:
                findings.extend(_findings(table.name, row, columns))
    return findings
