"""Grade scales as tables: the built-ins, custom scales, and what makes a scale invalid."""

from typing import Any

import pytest

from tool.errors import ValidationError
from tool.schemes.bands import SchemeInvalid
from tool.schemes.scale import GERMAN, LETTERS, PASS_FAIL, SCALES, Scale, scale_from


def test_the_german_scale_has_all_eleven_steps_and_only_5_0_fails() -> None:
    assert GERMAN.grades == ("1.0", "1.3", "1.7", "2.0", "2.3", "2.7", "3.0", "3.3", "3.7", "4.0", "5.0")
    assert GERMAN.passing_grades == GERMAN.grades[:10]
    assert GERMAN.failing_grades == ("5.0",)


@pytest.mark.parametrize(
    ("scale", "grade", "index", "passing"),
    [(GERMAN, "1.0", 0, True), (GERMAN, "2.7", 5, True), (GERMAN, "4.0", 9, True), (GERMAN, "5.0", 10, False),
     (LETTERS, "D", 3, True), (LETTERS, "F", 4, False), (PASS_FAIL, "pass", 0, True), (PASS_FAIL, "fail", 1, False)],
)
def test_index_and_passing_of_each_built_in_grade(scale: Scale, grade: str, index: int, passing: bool) -> None:
    assert (scale.index(grade), scale.is_passing(grade)) == (index, passing)


@pytest.mark.parametrize("grade", ["6.0", "1", "a", ""])
def test_a_grade_off_the_scale_is_refused_with_a_stable_code(grade: str) -> None:
    with pytest.raises(ValidationError) as caught:
        GERMAN.is_passing(grade)
    assert caught.value.code == "grade_not_on_scale"


@pytest.mark.parametrize(("raw", "scale"), [("german", GERMAN), ("letters", LETTERS), ("pass_fail", PASS_FAIL),
                                            (LETTERS, LETTERS)])
def test_built_in_scales_by_name(raw: Any, scale: Scale) -> None:
    assert scale_from(raw) is scale
    assert SCALES[scale.name] is scale


def test_a_custom_scale_keeps_its_order_and_failing_grades() -> None:
    scale = scale_from({"name": "ects", "grades": ["A", "B", "C", "D", "E", "FX", "F"], "failing": ["FX", "F"]})
    assert (scale.passing_grades, scale.failing_grades, scale.worst_failing) == (
        ("A", "B", "C", "D", "E"), ("FX", "F"), "F")
    assert scale.as_json() == {"name": "ects", "grades": ["A", "B", "C", "D", "E", "FX", "F"], "failing": ["FX", "F"]}


def test_a_custom_scale_may_have_no_failing_grade() -> None:
    scale = scale_from({"name": "attendance", "grades": ["full", "partial"]})
    assert (scale.passing_grades, scale.worst_failing) == (("full", "partial"), None)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("french", "unknown scale 'french'; known: german, letters, pass_fail"),
        (7, "must be a scale name"),
        ({"name": "x", "grades": ["a"]}, "at least two distinct grades"),
        ({"name": "x", "grades": ["a", "a"]}, "grade(s) a listed twice"),
        ({"name": "x", "grades": ["a", " "]}, "grades must not be empty"),
        ({"name": "x", "grades": "ab"}, "grades must be a list of strings"),
        ({"name": "x", "grades": ["a", 1]}, "grades must be a list of strings"),
        ({"name": "", "grades": ["a", "b"]}, "name must not be empty"),
        ({"grades": ["a", "b"]}, "name must be a string"),
        ({"name": "x", "grades": ["a", "b"], "failing": ["c"]}, "failing grade(s) c are not among the grades"),
        ({"name": "x", "grades": ["a", "b"], "failing": ["a", "b"]}, "at least one grade must pass"),
        ({"name": "x", "grades": ["a", "b", "c"], "failing": ["b"]}, "failing grades must be the worst ones"),
        ({"name": "x", "grades": ["a", "b"], "failing": ["b", "b"]}, "failing lists a grade twice"),
        ({"name": "x", "grades": ["a", "b"], "failing": "b"}, "failing must be a list"),
        ({"name": "x", "grades": ["a", "b"], "passing": ["a"]}, "unknown field(s) passing"),
    ],
)
def test_an_invalid_scale_is_refused_with_the_reason(raw: Any, words: str) -> None:
    with pytest.raises(SchemeInvalid) as caught:
        scale_from(raw)
    assert any(d["field"] == "scale" and words in d["message"] for d in caught.value.details), caught.value.details


def test_a_scale_built_in_code_is_checked_too() -> None:
    with pytest.raises(SchemeInvalid, match="failing grades must be the worst ones"):
        Scale("x", ("a", "b", "c"), frozenset({"a"}))
