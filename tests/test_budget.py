"""Budgets written as papers write them (wpgdkit.budget.parse_budget)."""

from __future__ import annotations

import pytest

from wpgdkit.budget import parse_budget
from wpgdkit.errors import WpgdkitError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8/255", 8 / 255),
        ("2/255", 2 / 255),
        (" 4 / 255 ", 4 / 255),
        ("0.031", 0.031),
        ("0.5", 0.5),
        ("1e-2", 0.01),
        ("3", 3.0),
        ("1.5/2", 0.75),
    ],
)
def test_parses(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "abc", "8/", "/255", "8/255/2", "8 255", "0", "0/255", "-0.1", "-8/255", "8/-255", "1/0",
     "nan", "inf", "-inf", "1e400", "1e-400", "eval('1')"],
)
def test_rejects(text):
    with pytest.raises(WpgdkitError) as info:
        parse_budget(text)
    message = str(info.value)
    assert message == f"--eps must be a positive number or a fraction like 8/255, got {text!r}"
    assert "\n" not in message


def test_name_in_message():
    with pytest.raises(WpgdkitError, match=r"^--step-size must be a positive number .*got '0'$"):
        parse_budget("0", name="--step-size")


def test_non_string_rejected():
    with pytest.raises(WpgdkitError, match="--eps"):
        parse_budget(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("text, value", [("1", 1.0), ("0.5", 0.5), ("inf", float("inf")), ("1e3", 1000.0)])
def test_parse_lam_reads_positive_numbers_and_inf(text, value):
    from wpgdkit.budget import parse_lam

    assert parse_lam(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "nan", "x", ""])
def test_parse_lam_refuses_the_rest_naming_the_flag(text):
    from wpgdkit.budget import parse_lam
    from wpgdkit.errors import WpgdkitError

    with pytest.raises(WpgdkitError, match="--attack-lam"):
        parse_lam(text, name="--attack-lam")
