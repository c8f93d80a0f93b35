"""The card-number scanner: it finds what a leak would look like, and not what is no card."""

from __future__ import annotations

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.tables import customers
from adapters.privacy.pan import find_pans, luhn_valid, scan_database, scan_value
from tests.factories import make_tenant


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("4242424242424242", "424242******4242"),
        ("card 4242 4242 4242 4242, exp 12/34", "424242******4242"),
        ("4000-0566-5566-5556", "400005******5556"),
        ("amex 378282246310005.", "378282*****0005"),  # 15 digits
        ('{"number": "6011111111111117"}', "601111******1117"),
        ("4222222222222", "422222***2222"),  # 13 digits
    ],
)
def test_card_numbers_are_found_and_reported_masked(text: str, masked: str) -> None:
    assert find_pans(text) == [masked]


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424241",  # fails the Luhn check
        "424242424242",  # 12 digits
        "42424242424242424242",  # 20 digits
        "sha256:a4242424242424242b",  # inside a hex digest
        "cus_4242424242424242",  # part of an id
        "0000000000000000",  # zero-padded counter (Luhn-valid, but no card starts with 0)
        "last4 4242, exp 12/2034, brand visa, fp Xt5EWLLDS7FJjR1c",
        "2026-12-01 10:00:00.123456+00:00",
    ],
)
def test_what_is_not_a_card_number_is_not_flagged(text: str) -> None:
    assert find_pans(text) == []


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_values_of_every_stored_kind_are_scanned() -> None:
    assert scan_value(b"\x00\x01 4242424242424242 \xff") == ["424242******4242"]
    assert scan_value({"cards": [{"pan": 4242424242424242}]}) == ["424242******4242"]
    assert scan_value(4242424242424242) == []  # numbers are not text columns


async def test_the_database_scan_flags_a_planted_card_number(engine: AsyncEngine) -> None:
    """The scan reaches every table and JSON column: a number planted in a customer's
    metadata (rolled back afterwards) is reported with where it is, masked."""
    tenant_id = await make_tenant(engine)
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            before = await scan_database(connection)
            await connection.execute(
                insert(customers).values(
                    tenant_id=tenant_id, kind="individual", display_name="Planted",
                    metadata={"note": "paid with 4000 0566 5566 5556"},
                )
            )  # fmt: skip
            after = await scan_database(connection)
        finally:
            await transaction.rollback()
    planted = [finding for finding in after if finding not in before]
    assert [(f.where, f.masked) for f in planted] == [("customers.metadata", "400005******5556")]
