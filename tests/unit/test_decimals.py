"""Issue 11, finding 9: one strict decimal grammar (tool/decimals.py) for the API, the OpenAPI
patterns and the pages' scripts (templates/static/api.js, run here with Node)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from tool import decimals
from tool.config import PROJECT_ROOT
from tool.ledger.rules import RuleViolation, parse_points
from tool.schemes.bands import parse_number

REFUSED = ["1e3", "1E3", "1e-2", "1_0", "1_000.5", "\u0663", "\uff15", "\u0665.\u0660", "+5", " 5", "5 ", "5\n", "5.",
           ".5", "1.005", "1.000", "0x10", "NaN", "nan", "Infinity", "-Infinity", "-", "", "1,5", "--1", "- 1", "5-",
           "1.2.3", "\u00b2", "1\u00a0000", "1 000", "five"]
ACCEPTED = {"5": "5.00", "-0.5": "-0.50", "9999.99": "9999.99", "07": "7.00", "0": "0.00", "-9999.99": "-9999.99",
            "12.5": "12.50"}


@pytest.mark.parametrize("text", REFUSED)
def test_text_outside_the_grammar_is_refused(text: str) -> None:
    with pytest.raises(RuleViolation):
        parse_points(text)
    with pytest.raises(ValueError):
        decimals.parse_decimal(text)
    assert not decimals.is_decimal(text)


@pytest.mark.parametrize("text,stored", ACCEPTED.items())
def test_text_in_the_grammar_is_read_exactly(text: str, stored: str) -> None:
    assert str(parse_points(text)) == stored
    assert decimals.is_decimal(text)


@pytest.mark.parametrize("value", [True, False, None, [], {}, Decimal("NaN"), Decimal("Infinity"), Decimal("1.005"),
                                   "1" * 41])
def test_values_that_are_not_numbers_of_the_grammar_are_refused(value: object) -> None:
    with pytest.raises(RuleViolation):
        parse_points(value)


def test_json_numbers_and_ints_pass_with_the_same_limits() -> None:
    assert parse_points(Decimal("12.5")) == Decimal("12.50")
    assert parse_points(7) == Decimal("7.00")
    with pytest.raises(RuleViolation):
        parse_points(Decimal("10000"))
    with pytest.raises(RuleViolation):
        parse_points(10**50)


def test_scheme_numbers_use_the_grammar_too() -> None:
    for text in ("1e3", "1_0", "\u0663", "+5", " 5", "NaN"):
        with pytest.raises(ValueError):
            parse_number(text)
    assert parse_number("87.5") == Decimal("87.5")


def test_the_openapi_patterns_are_the_grammar() -> None:
    for text in REFUSED:
        assert not re.fullmatch(decimals.POINTS_PATTERN[1:-1], text), text  # JSON Schema's $ is Python's \Z
    for text in ACCEPTED:
        assert re.fullmatch(decimals.POINTS_PATTERN[1:-1], text), text
    assert decimals.DECIMAL_PATTERN == "^" + decimals.GRAMMAR + "$"
    assert r"\d" not in decimals.POINTS_PATTERN + decimals.pattern(8)  # \d matches other scripts' digits


NODE = shutil.which("node") or shutil.which("nodejs")


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_pages_use_the_same_grammar() -> None:
    """api.js's Tally.decimal, run in Node, judges every text as tool/decimals.py does."""
    api_js = Path(PROJECT_ROOT, "templates", "static", "api.js").read_text()
    typed = REFUSED + list(ACCEPTED) + [" 7,5 ", "7,5", "-0,25", "+5", "1e3", "٣"]
    script = ("var window = {}; var document = {querySelector: function () { return null; }};\n" + api_js +
              "\nvar d = window.Tally.decimal; var out = {pattern: d.pattern, results: []};\n"
              "JSON.parse(process.argv[1]).forEach(function (t) {"
              " out.results.push([d.valid(t), d.normalise(t)]); });\n"
              "process.stdout.write(JSON.stringify(out));\n")
    done = subprocess.run([NODE, "-e", script, json.dumps(typed)], capture_output=True, text=True, timeout=30,
                          check=True)
    out = json.loads(done.stdout)
    assert out["pattern"] == decimals.DECIMAL_PATTERN
    for text, (valid, normalised) in zip(typed, out["results"]):
        assert valid == decimals.is_decimal(text), text
        # What the page sends is what a teacher typed, tidied (spaces around, decimal comma) but
        # never made valid otherwise: "+5" and "1e3" reach the API as typed and are refused there.
        expected = text.strip()
        if re.fullmatch(r"-?[0-9]*,[0-9]*", expected):
            expected = expected.replace(",", ".")
        assert normalised == expected, text


@pytest.mark.parametrize("typed", ["1e3", "1_0", "+5", "\u0663", "Infinity"])
def test_the_deep_linking_form_reads_its_maximum_with_the_grammar(typed: str) -> None:
    from tool.errors import ValidationError
    from tool.lti.deeplink import validate_choice

    with pytest.raises(ValidationError) as caught:
        validate_choice({"title": "Quiz", "score_maximum": typed, "source": "ledger_total"})
    assert "score_maximum" in str(caught.value.details)
    assert validate_choice({"title": "Quiz", "score_maximum": " 12,5 ", "source": "ledger_total"}).score_maximum == \
        Decimal("12.5")
