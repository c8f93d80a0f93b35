"""gateway.env_values: one rule per kind of setting value, and errors that name the variable."""

from __future__ import annotations

import pytest

from gateway.env_values import (
    flag,
    integer,
    non_negative_float,
    on_unless_off,
    optional_integer,
    positive_float,
)

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
