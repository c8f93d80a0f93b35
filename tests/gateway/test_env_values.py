"""gateway.env_values: one rule per kind of setting value, and errors that name the variable."""

from __future__ import annotations

import pytest

from gateway.cli import main
from gateway.deadlines import load_deadline_settings
from gateway.env_values import (
    flag,
    integer,
    non_negative_float,
    on_unless_off,
    optional_integer,
    positive_float,
)
from gateway.limits import LimitSettings, load_limit_settings
from gateway.provider_settings import load_provider_settings
from gateway.settings import load_settings

# Integers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7", 7), (" 7 ", 7), ("\t7\n", 7), ("+5", 5), ("0", 0), ("007", 7), ("-0", 0)],
)
def test_an_integer_is_read_with_whitespace_and_a_plus_sign(text: str, expected: int) -> None:
    assert integer({"N": text}, "N", 3, minimum=0) == expected


def test_an_absent_integer_is_its_default() -> None:
    assert integer({}, "N", 3, minimum=1) == 3
    assert integer({"OTHER": "9"}, "N", 3, minimum=1) == 3


@pytest.mark.parametrize(
    "text",
    ["0.5", "1.0", "2.7", "1e3", "1_000", "0x10", "five", "5 5", "+", "--5", "nan", "inf", "٣"],
)
def test_an_integer_refuses_fractions_exponents_and_garbage(text: str) -> None:
    with pytest.raises(ValueError, match=r"^RATE_LIMIT_X must be an integer >= 1, got ") as refused:
        integer({"RATE_LIMIT_X": text}, "RATE_LIMIT_X", 10, minimum=1)
    assert repr(text.strip()) in str(refused.value)


@pytest.mark.parametrize(("text", "minimum"), [("0", 1), ("-1", 0), ("-5", 1), ("4", 5)])
def test_an_integer_below_its_minimum_is_refused(text: str, minimum: int) -> None:
    with pytest.raises(ValueError, match=rf"^N must be an integer >= {minimum}, got '{text}'$"):
        integer({"N": text}, "N", 10, minimum=minimum)


def test_an_integer_is_held_to_its_maximum() -> None:
    assert integer({"DAYS": "366"}, "DAYS", 2, minimum=0, maximum=366) == 366
    with pytest.raises(ValueError, match=r"^DAYS must be an integer from 0 to 366, got '367'$"):
        integer({"DAYS": "367"}, "DAYS", 2, minimum=0, maximum=366)


def test_an_empty_integer_is_refused_unless_it_means_the_default() -> None:
    for text in ("", "   "):
        with pytest.raises(ValueError, match=r"^N must be an integer >= 1, got ''$"):
            integer({"N": text}, "N", 4, minimum=1)
        assert integer({"N": text}, "N", 4, minimum=1, empty_is_default=True) == 4


def test_an_optional_integer_is_none_when_absent_or_empty() -> None:
    assert optional_integer({}, "PORT", minimum=1, maximum=65535) is None
    assert optional_integer({"PORT": " "}, "PORT", minimum=1, maximum=65535) is None
    assert optional_integer({"PORT": " +9464 "}, "PORT", minimum=1, maximum=65535) == 9464
    for text in ("0", "65536", "http", "94.64"):
        with pytest.raises(ValueError, match=r"^PORT must be an integer from 1 to 65535, got "):
            optional_integer({"PORT": text}, "PORT", minimum=1, maximum=65535)


# Numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.25", 0.25), (" 5 ", 5.0), ("+5", 5.0), ("5.", 5.0), (".5", 0.5), ("1e-3", 0.001)],
)
def test_a_positive_float_is_read(text: str, expected: float) -> None:
    assert positive_float({"T": text}, "T", 1.0) == expected


@pytest.mark.parametrize(
    "text",
    ["0", "-1", "0.0", "-0", "nan", "NaN", "inf", "-inf", "Infinity", "1e999", "1_0", "x", "",
     " ", ".", "e3", "1e", "0x1p3"],
)  # fmt: skip
def test_a_positive_float_refuses_zero_negatives_nan_inf_and_garbage(text: str) -> None:
    with pytest.raises(ValueError, match=r"^T must be a number > 0, got "):
        positive_float({"T": text}, "T", 1.0)


def test_a_positive_float_is_held_to_its_maximum_and_may_read_empty_as_default() -> None:
    assert positive_float({"T": "3600"}, "T", 1.0, maximum=3600) == 3600.0
    with pytest.raises(ValueError, match=r"^T must be a number > 0 and <= 3600, got '3600.5'$"):
        positive_float({"T": "3600.5"}, "T", 1.0, maximum=3600)
    assert positive_float({}, "T", 2.5) == 2.5
    assert positive_float({"T": ""}, "T", 2.5, empty_is_default=True) == 2.5


@pytest.mark.parametrize(("text", "expected"), [("0", 0.0), (" 0.5 ", 0.5), ("+250", 250.0)])
def test_a_non_negative_float_accepts_zero(text: str, expected: float) -> None:
    assert non_negative_float({"MS": text}, "MS", 1.0) == expected


@pytest.mark.parametrize("text", ["-0.1", "-1", "nan", "inf", "", "soon"])
def test_a_non_negative_float_refuses_negatives_nan_inf_and_garbage(text: str) -> None:
    with pytest.raises(ValueError, match=r"^MS must be a number >= 0, got "):
        non_negative_float({"MS": text}, "MS", 1.0)


def test_an_absent_non_negative_float_is_its_default() -> None:
    assert non_negative_float({}, "MS", 7.5) == 7.5
    assert non_negative_float({"MS": " "}, "MS", 7.5, empty_is_default=True) == 7.5


# Booleans ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "true", "TRUE", " yes ", "On"])
def test_a_flag_reads_the_true_spellings(text: str) -> None:
    assert flag({"F": text}, "F", False) is True


@pytest.mark.parametrize("text", ["0", "false", "False", " no ", "OFF"])
def test_a_flag_reads_the_false_spellings(text: str) -> None:
    assert flag({"F": text}, "F", True) is False


@pytest.mark.parametrize("text", ["maybe", "y", "n", "enabled", "disabled", "2", "+1", "", " "])
def test_a_flag_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"^F must be a boolean \(1, true, yes, on or 0, false"):
        flag({"F": text}, "F", True)


def test_a_flag_defaults_when_absent_or_when_empty_means_default() -> None:
    assert flag({}, "F", True) is True
    assert flag({}, "F", False) is False
    assert flag({"F": ""}, "F", False, empty_is_default=True) is False


def test_on_unless_off_is_on_unless_an_off_spelling_is_given() -> None:
    assert on_unless_off({}, "SWITCH") is True
    assert on_unless_off({"SWITCH": ""}, "SWITCH") is True
    assert on_unless_off({"SWITCH": " on "}, "SWITCH") is True
    for text in ("0", "off", "false", "no", " NO "):
        assert on_unless_off({"SWITCH": text}, "SWITCH") is False
    with pytest.raises(ValueError, match=r"^SWITCH must be a boolean"):
        on_unless_off({"SWITCH": "disabled"}, "SWITCH")


# Through the real loaders -------------------------------------------------------------------


def test_the_settings_loaders_strip_whitespace_and_accept_a_plus_sign() -> None:
    settings = load_settings(
        {
            "LOCK_TIMEOUT_MS": " 7 ",
            "MAX_PAGE_SIZE": "+50",
            "RATE_LIMIT_PARTNER": " 300 ",
            "RATE_LIMIT_LEASE_PERCENT": " 0 ",
            "RATE_LIMIT_LEASE_MS": "250",
            "RATE_LIMIT_PROCESSES": " 3",
            "RECONCILIATION_LOOKBACK_DAYS": "+7",
            "CORS_MAX_AGE_SECONDS": " 60",
            "OPERATION_TIMEOUT_SECONDS": " 2.5 ",
            "PROVIDER_TIMEOUT_SECONDS": "+1.5",
            "RESPONSE_CACHE": " OFF ",
            "METRICS_PORT": " 9464 ",
        }
    )
    assert settings.deadlines.lock_timeout_ms == 7
    assert settings.max_page_size == 50
    assert settings.rate_limits.limits["partner"] == 300
    assert (settings.rate_limits.lease_percent, settings.rate_limits.lease_seconds) == (0, 0.25)
    assert settings.rate_limits.processes == 3
    assert settings.reconciliation.lookback_days == 7
    assert settings.cors.max_age_seconds == 60
    assert settings.deadlines.seconds_for("partner") == 2.5
    assert settings.providers.timeout_seconds == 1.5
    assert settings.response_cache is False
    assert settings.telemetry.metrics_port == 9464


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATE_LIMIT_PARTNER", "0.5"),  # was int(0.5): a budget of 0 points
        ("RATE_LIMIT_PERIOD_SECONDS", "0.5"),  # was a period of 0 seconds
        ("RATE_LIMIT_REDIS_TIMEOUT_MS", "nan"),  # was accepted
        ("RATE_LIMIT_LEASE_PERCENT", "60"),  # a lease of more than half a budget
        ("RATE_LIMIT_LEASE_PERCENT", "-1"),
        ("RATE_LIMIT_LEASE_MS", "0"),
        ("RATE_LIMIT_PROCESSES", "0"),
        ("RATE_LIMITS", "disabled"),  # was read as on
        ("COST_ANALYSIS", "maybe"),  # was read as on
        ("COST_MAX_PARTNER", "1e4"),
        ("COST_DEFAULT_LIST_SIZE", "-1"),  # was clamped to 0: lists cost nothing
        ("ADYEN_INGEST_CONCURRENCY", "inf"),  # was an OverflowError without the name
        ("ADYEN_INGEST_CONCURRENCY", "0"),  # was raised to 1
        ("PROVIDER_MAX_CONCURRENCY", "0"),  # was a semaphore nothing passes
        ("PROVIDER_MAX_CONCURRENCY", "2.5"),  # was truncated to 2
        ("PROVIDER_BREAKER_FAILURE_THRESHOLD", "0"),  # was raised to 1
        ("PROVIDER_CACHE_TTL_SECONDS", "inf"),
        ("WEBHOOK_MAX_BODY_BYTES", "1e6"),
        ("SANDBOX_LATENCY_MS", "nan"),
        ("LOCK_TIMEOUT_MS", "2.5"),
        ("OPERATION_TIMEOUT_SECONDS", "3601"),
        ("SUBSCRIPTION_INIT_TIMEOUT_SECONDS", "2.5"),
        ("EXPORT_MAX_DAYS", "0"),
        ("RECONCILIATION_WINDOW_BEFORE_DAYS", "367"),
        ("METRICS_PORT", "65536"),
        ("MAX_ALIASES", "-1"),
        ("GATEWAY_PORT", "80.0"),
        ("GATEWAY_PORT", "65536"),  # was accepted, then refused by the socket at bind
        ("PROVIDER_TIMEOUT_SECONDS", "0"),  # was accepted: every provider read timed out
        ("DATABASE_POOL_SIZE", ""),  # empty stays refused where it always was
        ("CORS_ALLOW_CREDENTIALS", ""),
    ],
)
def test_a_malformed_value_refuses_to_load_and_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be ") as refused:
        load_settings({name: value})
    assert f"got {value.strip()!r}" in str(refused.value)


def test_empty_values_keep_their_old_meaning() -> None:
    settings = load_settings(
        {
            "MAX_TOKENS": "",
            "OPERATION_TIMEOUT_SECONDS_ANALYST": "",
            "RATE_LIMITS": "",
            "COST_ANALYSIS": " ",
            "METRICS_PORT": "",
        }
    )
    assert settings.limits == LimitSettings()
    assert settings.deadlines.seconds_for("analyst") == 30.0
    assert (settings.rate_limits.enabled, settings.cost.enabled) == (True, True)
    assert settings.telemetry.metrics_port is None


def test_switches_turn_off_only_with_an_off_spelling() -> None:
    settings = load_settings(
        {"RATE_LIMITS": "off", "COST_ANALYSIS": "0", "COST_REPORT_ANALYSTS": "no"}
    )
    assert settings.rate_limits.enabled is False
    assert settings.cost.enabled is False
    assert settings.cost.report_to_analysts is False  # "no" used to leave it on
    assert load_settings({"GATEWAY_ENV": "development"}).graphiql is True
    assert load_settings({"GRAPHIQL": " false "}).graphiql is False


def test_the_module_loaders_refuse_on_their_own() -> None:
    assert load_limit_settings({"MAX_LIST_LENGTH": " +20 "}).max_list_length == 20
    with pytest.raises(ValueError, match=r"^MAX_LIST_LENGTH must be an integer >= 1, got '0'$"):
        load_limit_settings({"MAX_LIST_LENGTH": "0"})
    assert load_deadline_settings({"LOCK_TIMEOUT_MS": "+250"}).lock_timeout_ms == 250
    with pytest.raises(ValueError, match=r"^LOCK_TIMEOUT_MS must be an integer >= 1, got '0'$"):
        load_deadline_settings({"LOCK_TIMEOUT_MS": "0"})
    read = load_provider_settings({"SANDBOX_LATENCY_MS": " 250 "}, environment="development")
    assert read.sandbox_latency_seconds == 0.25


def test_the_command_line_reports_a_malformed_value_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RATE_LIMIT_ANALYST", "0.5")
    assert main(["export-schema"]) == 2
    assert "configuration error: RATE_LIMIT_ANALYST must be an integer >= 1, got '0.5'" in (
        capsys.readouterr().err
    )
