"""Grade bands as tables: the seed's examples, lower bounds, rounding, every validation problem, hashing."""

import json
from decimal import Decimal
from typing import Any

import pytest

from tool.errors import ValidationError
from tool.schemes.bands import (Band, SchemeConfig, SchemeInvalid, canonical, grade_for, parse_config, problems,
                                round_to_step, to_seed_form, version_hash)
from tool.schemes.scale import GERMAN, LETTERS, PASS_FAIL
from tests.seed_schemes import SEED_PERCENT, SEED_POINTS  # the seed's examples, verbatim

SIXTY = Decimal(60)

GRADES = ["1.0", "1.3", "1.7", "2.0", "2.3", "3.0", "3.7", "4.0", "5.0"]
LOWER_POINTS: dict[str, Any] = {"unit": "points", "bands": [
    {"min": m, "grade": g} for m, g in zip(["54", "48", "42", "36", "33", "30", "27", "24", "0"], GRADES)]}
LOWER_PERCENT: dict[str, Any] = {"unit": "percent", "bands": [
    {"min": m, "grade": g} for m, g in zip([90, 80, 70, 60, 55, 50, 45, 40, 0], GRADES)]}
FORMS = {"seed points": SEED_POINTS, "seed percent": SEED_PERCENT,
         "lower-bound points": LOWER_POINTS, "lower-bound percent": LOWER_PERCENT}


def config_of(raw: dict[str, Any], max_points: Decimal = SIXTY) -> SchemeConfig:
    return parse_config(raw, max_points=max_points)


def with_bands(raw: dict[str, Any], **changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `raw` whose band n gets the keys of changes["b<n>"] (None removes a key)."""
    bands = [dict(b) for b in raw["bands"]]
    for key, fields in changes.items():
        band = bands[int(key[1:])]
        for field, value in fields.items():
            if value is None:
                band.pop(field, None)
            else:
                band[field] = value
    return {**raw, "bands": bands}


def refusal(raw: Any, max_points: Decimal = SIXTY) -> list[dict[str, Any]]:
    with pytest.raises(SchemeInvalid) as caught:
        parse_config(raw, max_points=max_points)
    assert caught.value.code == "scheme_invalid"
    return caught.value.details


# -- the seed's examples ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("student", "points", "grade"),
                         [("Alice", "55", "1.0"), ("Bob", "38", "2.0"), ("Carol", "28", "3.7"), ("Dave", "22", "5.0")])
def test_the_seeds_four_students_get_the_seeds_grades_in_every_form(form: str, student: str, points: str,
                                                                    grade: str) -> None:
    assert grade_for(config_of(FORMS[form]), Decimal(points), max_points=SIXTY) == grade


@pytest.mark.parametrize(
    ("form", "points", "max_points", "grade"),
    [
        ("seed points", "53.5", "60", "1.3"),  # the seed's algorithm: 53.5 is in no [min, max] → 5.0
        ("seed points", "47.5", "60", "1.7"),
        ("seed points", "23.5", "60", "5.0"),
        ("seed points", "53.99", "60", "1.3"),
        ("seed percent", "179.99", "200", "1.3"),  # 89.995 %: between the seed's 89.99 and 90
        ("seed percent", "53.5", "60", "1.3"),  # 89.1666… %
        ("seed percent", "47.99", "60", "1.7"),  # 79.9833… %, above the seed's max 79.99
    ],
)
def test_half_points_never_fall_through_a_gap_where_the_seeds_algorithm_gives_5_0(form: str, points: str,
                                                                                 max_points: str, grade: str) -> None:
    assert grade_for(config_of(FORMS[form], Decimal(max_points)), Decimal(points),
                     max_points=Decimal(max_points)) == grade


@pytest.mark.parametrize(
    ("form", "points", "grade"),
    [
        ("lower-bound points", "54", "1.0"),  # a min is inclusive
        ("lower-bound points", "53.99", "1.3"),
        ("lower-bound percent", "54", "1.0"),  # exactly 90 %
        ("lower-bound percent", "53.99", "1.3"),  # 89.9833 %, never rounded up to 90.00 %
        ("lower-bound points", "0", "5.0"),
        ("lower-bound points", "-2", "5.0"),  # a negative total gets the band at 0
        ("lower-bound points", "63", "1.0"),  # bonus points above the maximum stay in the top band
        ("lower-bound percent", "75", "1.0"),  # 125 %
        ("lower-bound percent", "-1", "5.0"),
    ],
)
def test_a_min_is_inclusive_and_totals_outside_0_to_max_stay_in_the_end_bands(form: str, points: str,
                                                                               grade: str) -> None:
    assert grade_for(config_of(FORMS[form]), Decimal(points), max_points=SIXTY) == grade


def test_bands_given_lowest_first_to_grade_for_still_mean_lower_bounds() -> None:
    config = SchemeConfig(unit="points", bands=(Band(Decimal(0), "5.0"), Band(Decimal(30), "4.0")))
    assert grade_for(config, Decimal(31), max_points=SIXTY) == "4.0"


def test_a_scheme_without_a_band_at_0_cannot_grade_a_total_below_its_lowest_band() -> None:
    config = SchemeConfig(unit="points", bands=(Band(Decimal(30), "4.0"),))
    with pytest.raises(SchemeInvalid, match="no band covers"):
        grade_for(config, Decimal(10), max_points=SIXTY)


def test_a_percent_scheme_needs_a_positive_maximum_to_grade() -> None:
    with pytest.raises(SchemeInvalid, match="max_points"):
        grade_for(config_of(LOWER_PERCENT), Decimal(10), max_points=Decimal(0))


# -- rounding --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rounding", "step", "points", "grade"),
    [
        ("none", None, "53.99", "1.3"),
        ("half_up", None, "53.995", "1.0"),  # to 0.01 without a step: 54.00
        ("half_up", None, "53.994", "1.3"),
        ("half_up", "1", "53.5", "1.0"),  # ties go up
        ("half_up", "1", "53.49", "1.3"),
        ("down", "1", "53.99", "1.3"),
        ("up", "1", "53.01", "1.0"),
        ("up", "1", "47.01", "1.3"),  # 48 is 1.3's min
        ("up", "0.5", "53.25", "1.3"),  # 53.5 < 54
        ("half_up", "0.5", "53.75", "1.0"),
        ("down", "0.5", "23.99", "5.0"),  # 23.5
    ],
)
def test_rounding_applies_to_the_points_total_at_the_step_before_lookup(rounding: str, step: str | None,
                                                                        points: str, grade: str) -> None:
    config = config_of({**LOWER_POINTS, "rounding": rounding, "step": step})
    assert grade_for(config, Decimal(points), max_points=SIXTY) == grade


@pytest.mark.parametrize(
    ("rounding", "points", "grade"),
    [("none", "53.7", "1.3"), ("half_up", "53.7", "1.0"), ("half_up", "53.69", "1.3"), ("up", "53.41", "1.0"),
     ("down", "53.99", "1.3")],
)
def test_a_percent_scheme_rounds_the_percentage_at_its_step(rounding: str, points: str, grade: str) -> None:
    # 53.7 of 60 is 89.5 %; the step of a percent scheme is in percent.
    config = config_of({**LOWER_PERCENT, "rounding": rounding, "step": 1})
    assert grade_for(config, Decimal(points), max_points=SIXTY) == grade


@pytest.mark.parametrize(
    ("value", "step", "rounding", "expected"),
    [("53.5", "1", "half_up", "54"), ("-0.5", "1", "half_up", "-1"), ("53.5", "1", "down", "53"),
     ("53.01", "1", "up", "54"), ("53.24", "0.5", "half_up", "53"), ("53.25", "0.5", "half_up", "53.5"),
     ("-0.25", "0.5", "down", "-0.5"), ("7.777", "0.01", "half_up", "7.78"), ("7.777", "0.25", "none", "7.777")],
)
def test_round_to_step(value: str, step: str, rounding: Any, expected: str) -> None:
    assert round_to_step(Decimal(value), Decimal(step), rounding) == Decimal(expected)


# -- parsing -----------------------------------------------------------------------------------------


def test_the_seed_points_form_parses_to_lower_bounds_with_the_german_defaults() -> None:
    config = config_of(SEED_POINTS)
    assert config.unit == "points"
    assert [(b.min, b.grade) for b in config.bands] == [(Decimal(m), g) for m, g in zip(
        [54, 48, 42, 36, 33, 30, 27, 24, 0], GRADES)]
    assert (config.scale, config.step, config.rounding, config.absent_grade) == (GERMAN, None, "none", "5.0")


@pytest.mark.parametrize(("written", "expected"),
                         [(89.99, "89.99"), (0.1, "0.1"), ("53.50", "53.50"), ("48", "48"), (Decimal("42.0"), "42.0"),
                          (36, "36")])
def test_numbers_may_be_json_numbers_decimals_or_strings_and_floats_go_through_str(written: Any, expected: str) -> None:
    config = config_of({"unit": "percent", "bands": [{"min": written, "grade": "1.0"}, {"min": 0, "grade": "5.0"}]})
    assert str(config.bands[0].min) == expected


@pytest.mark.parametrize(
    ("extra", "scale", "absent"),
    [({}, GERMAN, "5.0"), ({"absentGrade": None}, GERMAN, None), ({"absentGrade": "4.0"}, GERMAN, "4.0"),
     ({"scale": "letters"}, LETTERS, "F"), ({"scale": "pass_fail"}, PASS_FAIL, "fail")],
)
def test_absent_students_get_the_scales_worst_failing_grade_unless_configured(extra: dict[str, Any], scale: Any,
                                                                              absent: str | None) -> None:
    raw = {"unit": "points", "bands": [{"min": 30, "grade": scale.grades[0]}, {"min": 0, "grade": scale.grades[-1]}]}
    config = config_of({**raw, **extra})
    assert (config.scale, config.absent_grade) == (scale, absent)


def test_a_custom_scale_with_no_failing_grade_has_no_absent_grade() -> None:
    raw = {"unit": "points", "scale": {"name": "attendance", "grades": ["full", "partial"]},
           "bands": [{"min": 10, "grade": "full"}, {"min": 0, "grade": "partial"}]}
    assert config_of(raw).absent_grade is None


@pytest.mark.parametrize(
    "raw",
    [
        SEED_POINTS,  # skips 2.7 and 3.3: a scheme need not use every grade of the scale
        {"unit": "points", "bands": [{"min": 30, "grade": "4.0"}, {"min": 0, "grade": "5.0"}]},  # pass mark only
        {"unit": "points", "step": "0.5", "bands": [{"min": "53.5", "grade": "1.0"}, {"min": 0, "grade": "5.0"}]},
        {"unit": "points", "bands": [{"min": 60, "grade": "1.0"}, {"min": 0, "grade": "5.0"}]},  # min = max
        {"unit": "percent", "bands": [{"min": 100, "grade": "1.0"}, {"min": "0.01", "grade": "4.0"},
                                      {"min": 0, "grade": "5.0"}]},
        {"bands": [{"min_points": 30, "grade": "4.0"}, {"min_points": 0, "grade": "5.0"}]},  # maxima are optional
        {"bands": [{"min_points": 30, "max_points": 99, "grade": "4.0"}, {"min_points": 0, "max_points": 29,
                                                                          "grade": "5.0"}]},  # top beyond max
        {"bands": [{"min_points": 30, "max_points": 60, "grade": "4.0"}, {"min_points": 0, "max_points": 29.99,
                                                                          "grade": "5.0"}]},
        {"unit": "points", "bands": [{"min_points": 30, "grade": "4.0"}, {"min_points": 0, "grade": "5.0"}]},
    ],
    ids=["seed skipping grades", "pass mark only", "half-point step", "top at max", "percent to 100",
         "seed without maxima", "top max beyond max", "seed with hundredths", "seed form with matching unit"],
)
def test_valid_schemes_parse_and_have_no_problems(raw: dict[str, Any]) -> None:
    assert problems(config_of(raw), max_points=SIXTY) == []


# -- every validation problem, named -----------------------------------------------------------------

LETTER_BANDS = {"unit": "points", "scale": "letters",
                "bands": [{"min": 50, "grade": "A"}, {"min": 40, "grade": "B"}, {"min": 0, "grade": "F"}]}

PROBLEMS = [
    # (why, raw config, band, field, words of the message)
    ("config is not an object", ["bands"], None, "config", "must be an object"),
    ("bands are missing", {"unit": "points"}, None, "bands", "non-empty list"),
    ("bands are empty", {"unit": "points", "bands": []}, None, "bands", "non-empty list"),
    ("a band is not an object", with_bands(LOWER_POINTS) | {"bands": [*LOWER_POINTS["bands"], 7]}, 9, "bands",
     "must be an object"),
    ("a field is unknown", {**LOWER_POINTS, "kind": "absolute"}, None, "kind", "unknown field"),
    ("a band's field is unknown", with_bands(LOWER_POINTS, b2={"label": "x"}), 2, "label", "unknown field"),
    ("a band mixes forms", with_bands(SEED_POINTS, b3={"min_pct": 60}), 3, "min_pct",
     "band uses min_pct but the scheme uses min_points"),
    ("the unit is missing for min bands", {"bands": LOWER_POINTS["bands"]}, None, "unit", "required"),
    ("the unit is unknown", {**LOWER_POINTS, "unit": "marks"}, None, "unit", "must be one of points, percent"),
    ("the unit contradicts the seed form", {**SEED_POINTS, "unit": "percent"}, None, "unit", "bands use min_points"),
    ("a grade is missing", with_bands(LOWER_POINTS, b1={"grade": None}), 1, "grade", "is required"),
    ("a grade is blank", with_bands(LOWER_POINTS, b1={"grade": " "}), 1, "grade", "is required"),
    ("a min is missing", with_bands(SEED_POINTS, b4={"min_points": None}), 4, "min_points", "is required"),
    ("a min is not a number", with_bands(SEED_POINTS, b4={"min_points": "33a"}), 4, "min_points", "must be a number"),
    ("a min is true", with_bands(LOWER_POINTS, b4={"min": True}), 4, "min", "must be a number"),
    ("a min is NaN", with_bands(LOWER_POINTS, b4={"min": "NaN"}), 4, "min", "finite"),
    ("a max is not a number", with_bands(SEED_POINTS, b4={"max_points": []}), 4, "max_points", "must be a number"),
    ("no band starts at 0", with_bands(LOWER_POINTS, b8={"min": 1}), None, "bands", "no band starts at 0"),
    ("a min is negative", with_bands(LOWER_POINTS, b8={"min": -1}), 8, "min", "0 or more"),
    ("a min is above the maximum", with_bands(LOWER_POINTS, b0={"min": 61}), 0, "min", "above the maximum 60 points"),
    ("a percent min is above 100", with_bands(LOWER_PERCENT, b0={"min": "100.5"}), 0, "min", "above the maximum 100%"),
    ("a min has three decimals", with_bands(LOWER_POINTS, b1={"min": "47.125"}), 1, "min",
     "47.125 has more than two decimal places"),
    ("a min has absurdly many decimals", with_bands(LOWER_POINTS, b1={"min": "0." + "1" * 30}), 1, "min",
     "has more than two decimal places"),
    ("a min is absurdly large", with_bands(LOWER_POINTS, b0={"min": "9" * 30}), 0, "min",
     "must be between -1000000000 and 1000000000"),
    ("a min has an exponent", with_bands(LOWER_POINTS, b0={"min": "1E+999999"}), 0, "min", "digits 0-9"),
    ("a min has a plus", with_bands(LOWER_POINTS, b0={"min": "+54"}), 0, "min", "no '+'"),
    ("a percent min has three decimals", with_bands(SEED_PERCENT, b1={"min_pct": 79.995}), 1, "min_pct",
     "two decimal places"),
    ("a min is off the step", {**LOWER_POINTS, "step": "0.5"} | with_bands(LOWER_POINTS, b2={"min": "41.75"}), 2,
     "min", "not a multiple of the step 0.5"),
    ("two mins are equal", with_bands(LOWER_POINTS, b2={"min": 48}), 2, "min", "equals the min of band 2 (1.3)"),
    ("mins go up", with_bands(LOWER_POINTS, b2={"min": 50}), 2, "min", "must be below the min 48 of band 2 (1.3)"),
    ("a grade is off the scale", with_bands(LOWER_POINTS, b3={"grade": "2.5"}), 3, "grade",
     "'2.5' is not a grade of the german scale"),
    ("a grade is used twice", with_bands(LOWER_POINTS, b1={"grade": "1.0"}), 1, "grade",
     "already the grade of band 1"),
    ("grades go the wrong way", with_bands(LOWER_POINTS, b1={"grade": "1.7"}, b2={"grade": "1.3"}), 2, "grade",
     "1.3 must be worse than 1.7 of band 2"),
    ("no band fails", with_bands(LOWER_POINTS, b6={"grade": "3.3"}, b7={"grade": "3.7"}, b8={"grade": "4.0"}),
     8, "grade", "no band gives a failing grade (5.0)"),
    ("no band passes", {"unit": "points", "bands": [{"min": 0, "grade": "5.0"}]}, None, "bands",
     "no band gives a passing grade"),
    ("the step is 0", {**LOWER_POINTS, "step": 0}, None, "step", "greater than 0"),
    ("the step has three decimals", {**LOWER_POINTS, "step": "0.125"}, None, "step", "two decimal places"),
    ("the step is not a number", {**LOWER_POINTS, "step": "one"}, None, "step", "must be a number"),
    ("the rounding is unknown", {**LOWER_POINTS, "rounding": "bankers"}, None, "rounding", "must be one of none"),
    ("the absent grade is off the scale", {**LOWER_POINTS, "absentGrade": "6.0"}, None, "absentGrade",
     "not a grade of the german scale"),
    ("the absent grade is not text", {**LOWER_POINTS, "absentGrade": 5}, None, "absentGrade", "a grade of the scale"),
    ("the scale is unknown", {**LOWER_POINTS, "scale": "french"}, None, "scale", "unknown scale 'french'"),
    ("a custom scale has one grade", {**LOWER_POINTS, "scale": {"name": "x", "grades": ["ok"]}}, None, "scale",
     "at least two distinct grades"),
    ("a custom scale fails a grade it lacks", {**LOWER_POINTS, "scale": {"name": "x", "grades": ["a", "b"],
                                                                          "failing": ["c"]}},
     None, "scale", "failing grade(s) c are not among the grades"),
    ("a seed max is below its min", with_bands(SEED_POINTS, b2={"max_points": 41}), 2, "max_points",
     "below the band's own min 42"),
    ("the top band stops short", with_bands(SEED_POINTS, b0={"max_points": 59}), 0, "max_points",
     "must reach the maximum 60 points"),
    ("the top percent band stops short", with_bands(SEED_PERCENT, b0={"max_pct": 99}), 0, "max_pct",
     "must reach the maximum 100%"),
    ("a seed max overlaps the band above", with_bands(SEED_POINTS, b1={"max_points": 54}), 1, "max_points",
     "overlaps band 1 (1.0), which starts at 54"),
    ("a seed max leaves a gap", with_bands(SEED_POINTS, b1={"max_points": 50}), 1, "max_points",
     "leaves a gap below band 1 (1.0)"),
    ("a seed max leaves a gap wider than the step", {**SEED_POINTS, "step": "0.5"}, 1, "max_points",
     "the gap may be at most 0.5"),
]


@pytest.mark.parametrize(("raw", "band", "field", "words"), [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS])
def test_every_validation_problem_names_the_band_field_and_reason(raw: Any, band: int | None, field: str,
                                                                   words: str) -> None:
    details = refusal(raw)
    matching = [d for d in details if d["band"] == band and d["field"] == field and words in d["message"]]
    assert matching, details
    if band is not None and isinstance(raw["bands"][band], dict):
        given = raw["bands"][band].get("grade")
        assert matching[0]["grade"] == (given if isinstance(given, str) and given.strip() else None)


def test_the_maximum_must_be_positive() -> None:
    assert {"band": None, "grade": None, "field": "max_points",
            "message": "the assessment's maximum must be greater than 0, not 0"} in refusal(LOWER_POINTS, Decimal(0))


def test_every_problem_is_listed_at_once_settings_first_then_band_by_band() -> None:
    raw = {"unit": "points", "step": 0, "rounding": "bankers", "bands": [
        {"min": "54.5", "grade": "1.0", "note": "x"}, {"min": 70, "grade": "9"}, {"min": 3, "grade": "1.3"}]}
    details = refusal(raw)
    assert [(d["band"], d["field"]) for d in details] == [
        (None, "rounding"), (None, "step"), (None, "bands"), (0, "note"), (1, "min"), (1, "grade"), (1, "min")]
    assert details[4] == {"band": 1, "grade": "9", "field": "min", "message": "70 is above the maximum 60 points"}


def test_an_unreadable_band_holds_back_the_checks_over_all_bands() -> None:
    # Band 8 may be the band at 0 and the failing one: only its own problem is reported.
    assert refusal(with_bands(LOWER_POINTS, b8={"min": "zero"})) == [
        {"band": 8, "grade": "5.0", "field": "min", "message": "must be a number"}]


def test_refusal_is_a_validation_error_whose_message_names_each_band() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_config(with_bands(LOWER_POINTS, b2={"min": 50}), max_points=SIXTY)
    assert "band 3 (1.7) min: 50 must be below the min 48 of band 2 (1.3)" in caught.value.message


def test_problems_of_a_config_built_in_code_use_the_field_min() -> None:
    config = SchemeConfig(unit="points", bands=(Band(Decimal(30), "4.0"), Band(Decimal(40), "1.0")), step=Decimal(0))
    assert [(p["band"], p["field"]) for p in problems(config, max_points=SIXTY)] == [
        (None, "step"), (None, "bands"), (1, "min"), (1, "grade"), (1, "grade")]


def test_problems_without_a_maximum_skip_only_that_bound() -> None:
    config = SchemeConfig(unit="points", bands=(Band(Decimal(500), "1.0"), Band(Decimal(0), "5.0")))
    assert problems(config, max_points=None) == []
    assert problems(config, max_points=SIXTY)[0]["message"] == "500 is above the maximum 60 points"


def test_letter_bands_validate_against_the_letters_scale() -> None:
    assert problems(config_of(LETTER_BANDS), max_points=SIXTY) == []


# -- canonical form and version hash ---------------------------------------------------------------------


def test_the_canonical_form_is_the_lower_bound_form_with_normal_form_strings() -> None:
    raw = {"unit": "points", "step": "0.50", "bands": [{"min": "53.50", "grade": "1.0"}, {"min": 48.0, "grade": "1.3"},
                                                        {"min": "0.00", "grade": "5.0"}]}
    assert canonical(config_of(raw)) == {
        "unit": "points", "bands": [{"min": "53.5", "grade": "1.0"}, {"min": "48", "grade": "1.3"},
                                    {"min": "0", "grade": "5.0"}],
        "scale": "german", "step": "0.5", "rounding": "none", "absentGrade": "5.0"}


def test_a_custom_scale_is_spelled_out_in_the_canonical_form() -> None:
    raw = {"unit": "points", "scale": {"name": "ects", "grades": ["A", "B", "FX", "F"], "failing": ["F", "FX"]},
           "bands": [{"min": 50, "grade": "A"}, {"min": 0, "grade": "FX"}]}
    assert canonical(config_of(raw))["scale"] == {"name": "ects", "grades": ["A", "B", "FX", "F"],
                                                   "failing": ["FX", "F"]}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (SEED_POINTS, LOWER_POINTS),
        (SEED_PERCENT, LOWER_PERCENT),
        (LOWER_POINTS, json.loads(json.dumps(LOWER_POINTS, indent=4, sort_keys=True))),
        (LOWER_POINTS, {"bands": LOWER_POINTS["bands"], "unit": "points", "scale": "german", "rounding": "none",
                        "step": None, "absentGrade": "5.0"}),
        (LOWER_POINTS, with_bands(LOWER_POINTS, b0={"min": "54.00"}, b1={"min": 48.0}, b2={"min": Decimal("42.0")})),
        (LOWER_POINTS, {**LOWER_POINTS, "scale": {"name": "german", "grades": list(GERMAN.grades),
                                                  "failing": ["5.0"]}}),
    ],
    ids=["seed points = lower points", "seed percent = lower percent", "whitespace and key order",
         "defaults spelled out", "54 = 54.00 = 54.0", "built-in scale spelled out"],
)
def test_equal_meaning_gives_an_equal_version_hash(first: dict[str, Any], second: dict[str, Any]) -> None:
    assert version_hash(config_of(first)) == version_hash(config_of(second))


@pytest.mark.parametrize(
    "changed",
    [
        with_bands(LOWER_POINTS, b1={"min": 47}),
        with_bands(LOWER_POINTS, b1={"min": "48.5"}),
        {**LOWER_POINTS, "step": 1},
        {**LOWER_POINTS, "rounding": "half_up"},
        {**LOWER_POINTS, "absentGrade": None},
        {**LOWER_POINTS, "unit": "percent"},
    ],
    ids=["one threshold moves", "by half a point", "a step is set", "rounding is set", "absent get no grade",
         "percent instead of points"],
)
def test_a_different_meaning_gives_a_different_version_hash(changed: dict[str, Any]) -> None:
    assert version_hash(config_of(changed)) != version_hash(config_of(LOWER_POINTS))


def test_the_version_hash_is_sha256_hex_of_the_sorted_compact_canonical_json() -> None:
    import hashlib

    config = config_of(SEED_POINTS)
    text = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"))
    assert version_hash(config) == hashlib.sha256(text.encode()).hexdigest()
    assert len(version_hash(config)) == 64


@pytest.mark.parametrize("form", FORMS)
def test_the_canonical_and_seed_forms_parse_back_to_the_same_config(form: str) -> None:
    config = config_of(FORMS[form])
    assert config_of(canonical(config)) == config
    assert config_of(to_seed_form(config, max_points=SIXTY)) == config


def test_the_seed_form_for_display_ends_each_band_one_hundredth_below_the_next() -> None:
    shown = to_seed_form(config_of(SEED_POINTS), max_points=SIXTY)
    assert shown["bands"][:2] == [{"min_points": "54", "max_points": "60", "grade": "1.0"},
                                  {"min_points": "48", "max_points": "53.99", "grade": "1.3"}]
    assert shown["bands"][-1] == {"min_points": "0", "max_points": "23.99", "grade": "5.0"}


def test_the_seed_form_for_display_ends_each_band_one_step_below_the_next() -> None:
    shown = to_seed_form(config_of({**SEED_PERCENT, "step": "0.5"}), max_points=SIXTY)
    assert [(b["min_pct"], b["max_pct"]) for b in shown["bands"][:3]] == [("90", "100"), ("80", "89.5"), ("70", "79.5")]
