"""Log redaction: secrets, tokens, passwords, emails and account numbers never reach a log line.

`redact(text)` masks what looks like a credential or personal data:

- passwords in URLs and DSNs (`postgresql://user:[REDACTED]@host`) and `password=...`,
  `secret: ...`, `"token": "..."` pairs (any of the secret-like names below);
- JWTs, `Bearer`/`Basic` credentials, our API keys (`fgw_live_`/`fgw_test_`), Stripe keys and
  webhook secrets, Plaid access and public tokens;
- email addresses;
- account and card numbers: IBANs, runs of 9 to 19 digits, card numbers in groups of four.

`RedactingFilter` applies it to a record's message, its arguments, its exception text
(formatted and then masked: the exception object itself is dropped from the record) and its
stack. `install_log_redaction()`, called by the gateway's logging set-up, installs it twice
over: as the log-record factory, so every record is masked when it is created, whatever
handler (uvicorn's, pytest's, a future JSON one) later formats it; and as a filter on the
root logger's handlers, for records made before the installation.

Knows nothing of the gateway: plain `logging` and `re`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["RedactingFilter", "install_log_redaction", "redact", "redact_record"]

REDACTED = "[REDACTED]"

# Names of secrets (not secrets), as written in lower case.
_SECRET_WORDS = (
    *("password", "passwd", "pwd", "secret", "client_secret", "token", "access_token"),
    *("refresh_token", "id_token", "apikey", "api_key", "api-key", "pepper", "authorization"),
    *("privatekey", "private_key", "private-key", "credential", "credentials", "keyring"),
    "signature",
)
_SECRET_NAMES = "|".join(re.escape(word) for word in _SECRET_WORDS)
_SECRET_PAIR = re.compile(
    rf"(?i)(?P<name>\b[\w-]*(?:{_SECRET_NAMES})[\w-]*)(?P<sep>['\"]?\s*[=:]\s*['\"]?)"
    r"(?P<value>[^\s'\",;&)}\]]+)"
)
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # user:password@ in any URL or DSN (keep the scheme and the user, never the password).
    (
        re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):(?P<password>[^@\s/]+)@"),
        rf"\g<head>:{REDACTED}@",
    ),
    # Bearer / Basic credentials, whatever the credential looks like.
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"), rf"\1\2{REDACTED}"),
    # JWTs (three base64url segments, the first a JSON object).
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), "[JWT]"),
    # API keys and provider secrets that announce themselves by their prefix.
    (re.compile(r"\b(fgw_(?:live|test)_)[A-Za-z0-9_-]+"), rf"\1{REDACTED}"),
    (re.compile(r"\b((?:sk|rk|pk)_(?:live|test)_)[A-Za-z0-9]+"), rf"\1{REDACTED}"),
    (re.compile(r"\b(whsec_)[A-Za-z0-9+/=]+"), rf"\1{REDACTED}"),
    (
        re.compile(r"\b((?:access|public|link)-(?:sandbox|development|production)-)[\w-]+"),
        rf"\1{REDACTED}",
    ),
    # name=value, name: value, "name": "value", 'name': 'value' for secret-like names.
    (_SECRET_PAIR, rf"\g<name>\g<sep>{REDACTED}"),
    # Email addresses.
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[EMAIL]"),
    # IBANs (country, check digits, 11 to 30 letters and digits, optionally in groups of 4).
    (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), "[ACCOUNT]"),
    # Card numbers written in groups of four, and any bare run of 9 to 19 digits.
    (re.compile(r"(?<![\w.])\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,3})?(?![\w.])"), "[ACCOUNT]"),
    (re.compile(r"(?<![\w.])\d{9,19}(?![\w.])"), "[ACCOUNT]"),
)


# A text no rule's pattern matches is returned as it is. Every match of a rule contains one of
# these (one or more per rule above, in rule order; words in lower case, looked for in the
# lower-cased text) or a run of digits _DIGITS finds: checking that is two scans, so most
# lines skip the twelve substitutions. Only for ASCII text: elsewhere case-insensitive matching
# folds more than str.lower does (the long s matches "s"). Keep them in step with the rules.
_RULE_WORDS = (
    *("://", "bearer", "basic", "eyj", "fgw_", "_live_", "_test_", "whsec_"),
    *("-sandbox-", "-development-", "-production-"),
    *_SECRET_WORDS,
    "@",
)
_WORDS = re.compile("|".join(re.escape(word) for word in _RULE_WORDS))
_DIGITS = re.compile(r"[A-Z]{2}\d{2}|\d{4}[ -]\d{4}|\d{9}")


def _may_match(text: str) -> bool:
    if not text.isascii():
        return True
    return _WORDS.search(text.lower()) is not None or _DIGITS.search(text) is not None


def redact(text: str) -> str:
    """`text` with every secret, token, password, email and account number masked."""
    if not _may_match(text):
        return text
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


_EXCEPTIONS = logging.Formatter()
_PLAIN = (int, float, bool, type(None))
# uvicorn's access formatter unpacks its five arguments: keep them a tuple.
_POSITIONAL_LOGGERS = frozenset({"uvicorn.access"})


def _redact_argument(value: object) -> object:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, str):
        return redact(value)
    text = str(value)
    masked = redact(text)
    return value if masked == text else masked


def redact_record(record: logging.LogRecord) -> None:
    """Mask `record` in place: message, arguments, exception text and stack (once)."""
    if getattr(record, "_redacted", False):
        return
    record.msg = redact(record.msg if isinstance(record.msg, str) else str(record.msg))
    args = record.args
    if isinstance(args, Mapping):
        record.args = {key: _redact_argument(value) for key, value in args.items()}
    elif isinstance(args, tuple) and args:
        record.args = tuple(_redact_argument(value) for value in args)
    if record.args and record.name not in _POSITIONAL_LOGGERS:
        # A secret may also appear only once the arguments are in place (a `%r`, or a
        # credential split over two arguments): then the message is kept whole, masked.
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = None
        if message is not None:
            masked = redact(message)
            if masked != message:
                record.msg, record.args = masked, ()
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact(_EXCEPTIONS.formatException(record.exc_info))
        # The exception object may print its secrets again to a formatter of its own.
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._redacted = True


class RedactingFilter(logging.Filter):
    """A filter that masks every record it sees and lets it through."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_installed_factory: Callable[..., logging.LogRecord] | None = None


def install_log_redaction() -> None:
    """Mask every log record of this process from now on (idempotent)."""
    global _installed_factory
    current = logging.getLogRecordFactory()
    if current is not _installed_factory:
        previous = current

        def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redact_record(record)
            return record

        logging.setLogRecordFactory(redacting_factory)
        _installed_factory = redacting_factory
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
