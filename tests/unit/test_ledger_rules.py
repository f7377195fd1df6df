"""Ledger rules as tables: points, type code and label, text limits."""

from decimal import Decimal

import pytest

from tool.ledger.rules import RuleViolation, check_text, check_type, parse_points


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, "5.00"), ("12.5", "12.50"), (Decimal("-3.25"), "-3.25"), ("9999.99", "9999.99"), ("-9999.99", "-9999.99"),
     ("0", "0.00"), ("7", "7.00"), ("1.50", "1.50"), (0.5, "0.50")],
)
def test_points_are_kept_exactly(value: object, expected: str) -> None:
    assert parse_points(value) == Decimal(expected)
    assert str(parse_points(value)) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [("1.005", "two decimal"), (Decimal("0.001"), "two decimal"), ("10000", "between"), ("-10000.00", "between"),
     ("abc", "number"), (None, "number"), (True, "number"), ("NaN", "finite"), ("Infinity", "finite"), ("", "number"),
     # Issue 11: one strict grammar (tool/decimals.py): no spaces, no more than two places written.
     (" 7 ", "digits 0-9"), ("1.500", "two decimal")],
)
def test_bad_points_are_refused_never_rounded(value: object, problem: str) -> None:
    with pytest.raises(RuleViolation, match=problem):
        parse_points(value)


@pytest.mark.parametrize(
    ("code", "label", "expected"),
    [("EXAM", None, ("EXAM", None)), ("HOMEWORK", "", ("HOMEWORK", None)), ("CUSTOM", " Quiz bonus ", ("CUSTOM", "Quiz bonus"))],
)
def test_type_codes_and_labels_that_pass(code: str, label: str | None, expected: tuple[str, str | None]) -> None:
    assert check_type(code, label) == expected


@pytest.mark.parametrize(
    ("code", "label", "problem"),
    [("CUSTOM", None, "required"), ("CUSTOM", "  ", "required"), ("EXAM", "x", "only allowed"),
     ("exam", None, "one of"), ("QUIZ", None, "one of"), ("CUSTOM", "x" * 101, "at most")],
)
def test_type_codes_and_labels_that_fail(code: str, label: str | None, problem: str) -> None:
    with pytest.raises(RuleViolation, match=problem):
        check_type(code, label)


def test_text_limits() -> None:
    assert check_text("  ", limit=10) is None
    assert check_text("ok", limit=10) == "ok"
    with pytest.raises(RuleViolation, match="at most 10"):
        check_text("x" * 11, limit=10)
    with pytest.raises(RuleViolation, match="required"):
        check_text("", limit=10, required=True)
