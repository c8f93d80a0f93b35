"""Log lines never hold secrets, tokens, passwords, emails or account numbers.

The redaction (gateway.log_redaction) is installed for the whole session by
tests/fixtures/logs.py, which also checks every log line of the run when it ends; the tests
here pin each kind of value, through the real logging pipeline and the real database driver.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.tables import customers
from gateway.auth import mint_token
from gateway.log_redaction import _RULES, RedactingFilter, redact
from gateway.settings import Settings
from tests.fixtures.logs import SuiteLog, find_leaks

JWT_SETTINGS = Settings(environment="test", jwt_issuer="iss-test")
API_KEY = "fgw_live_" + "Ab3_" * 10 + "xyz"
SEEDED = {
    "dsn": ("postgresql+asyncpg://ledger:s3cr3t-Pw@db.internal:5432/ledger", "s3cr3t-Pw"),
    "password pair": ("connect failed: password=hunter2 host=db", "hunter2"),
    "json secret": ('{"client_secret": "cs_9f8e7d6c", "id": 1}', "cs_9f8e7d6c"),
    "api key": (f"bad key {API_KEY}", API_KEY[9:]),
    "test api key": ("key fgw_test_QWERTYuiop1234567890", "QWERTYuiop1234567890"),
    "bearer": ("Authorization: Bearer opaque-token-123456", "opaque-token-123456"),
    "stripe key": ("stripe sk_test_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
    "webhook secret": (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
    "plaid token": ("item access-sandbox-de3ce8ef-33f8-452c-a685-8671031fc0f6", "de3ce8ef"),
    "email": ("customer alice.smith+bank@example.com not found", "alice.smith"),
    "iban": ("payout to DE89 3704 0044 0532 0130 00 failed", "0532 0130"),
    "compact iban": ("payout to GB29NWBK60161331926819 failed", "60161331926819"),
    "account number": ("account 000123456789 unknown", "000123456789"),
    "card number": ("card 4242 4242 4242 4242 declined", "4242 4242"),
}


def _every_rule(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


# Pieces of the rules' matches, cut and cased anyhow, among ordinary text.
_PIECES = st.sampled_from(
    [*(text for text, _ in SEEDED.values()), "Bearer ", "BASIC x", "eyJa.b.c",
     "pa\u017f\u017fword=x", "pass", "word", "=", ":", "@", "://", "_live_", "sk",
     "-sandbox-", "DE89", "4242", " ",
     "1234567", "89", "TOKEN", "İd_token: v", "K", "\u212a", "x", "é", "\n"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=8).map("".join))
def test_the_quick_check_never_changes_what_redaction_returns(text: str) -> None:
    # redact() skips the substitutions when no rule can match; it must answer as they would.
    assert redact(text) == _every_rule(text)


@pytest.mark.parametrize(
    "text", [*(text for text, _ in SEEDED.values()), "pa\u017f\u017fword=hunter2", "basİc c3VwZXI="]
)
def test_each_rule_is_found_by_the_quick_check(text: str) -> None:
    assert redact(text) == _every_rule(text) != text


@pytest.mark.parametrize(("text", "secret"), SEEDED.values(), ids=list(SEEDED))
def test_redact_masks_each_kind_of_secret(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert masked != text


def test_redact_masks_a_minted_jwt() -> None:
    token = mint_token(JWT_SETTINGS, tenant_id=1, scopes=["ledger:read"])
    assert redact(f"token {token} refused") == "token [JWT] refused"


@pytest.mark.parametrize(
    "text",
    [
        "unexpected error, request_id=req-123 path=['customer']",
        "bank link 42 failed to sync: PROVIDER_UNAVAILABLE",
        "2026-01-31 12:00:00 seeded 50 customers",
        "redis get failed (ConnectionError); treating as a miss for 1.0s",
    ],
)
def test_redact_leaves_ordinary_lines_alone(text: str) -> None:
    assert redact(text) == text


def _record_of(logger: logging.Logger, emit: object) -> str:
    """What the suite's handler writes for the records `emit()` logs through `logger`."""
    handler = SuiteLog()
    logger.addHandler(handler)
    try:
        assert callable(emit)
        emit()
    finally:
        logger.removeHandler(handler)
    return "\n".join(handler.lines)


def test_message_arguments_and_exception_text_are_masked() -> None:
    logger = logging.getLogger("gateway.test_log_redaction")
    token = mint_token(JWT_SETTINGS, tenant_id=1, scopes=["ledger:read"])

    def emit() -> None:
        try:
            raise RuntimeError(f"{SEEDED['dsn'][0]} for alice@example.com")
        except RuntimeError:
            logger.exception("call with %s and %r failed", token, {"api_key": API_KEY})
        logger.warning("bearer split over arguments: %s %s", "Bearer", "opaque-token-123456")

    text = _record_of(logger, emit)

    assert "RuntimeError: postgresql+asyncpg://ledger:[REDACTED]@db.internal" in text
    assert "call with [JWT] and" in text
    assert find_leaks(text.splitlines()) == []
    assert "opaque-token-123456" not in text


def test_the_filter_masks_records_made_before_the_factory() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/graphql?token=eyJabcdefghij.eyJklmnopqrs.sig", "1.1", 200),
        None,
    )  # fmt: skip
    assert RedactingFilter().filter(record)
    # uvicorn's access formatter unpacks its five arguments: they stay five, the status an int.
    assert isinstance(record.args, tuple)
    assert len(record.args) == 5
    assert record.args[4] == 200
    assert "eyJ" not in record.getMessage()


async def test_database_errors_do_not_carry_their_parameters(engine: AsyncEngine) -> None:
    email = "leaky.customer@example.com"
    with pytest.raises(IntegrityError) as raised:
        async with engine.begin() as connection:
            await connection.execute(
                insert(customers).values(
                    tenant_id=-1, kind="individual", display_name="Leaky", email=email
                )
            )
    assert email not in str(raised.value)
