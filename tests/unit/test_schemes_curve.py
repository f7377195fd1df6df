"""Curve generators as tables: two anchors with linear interpolation, and one boundary per grade."""

from decimal import Decimal
from typing import Any

import pytest

from tool.schemes.bands import SchemeConfig, SchemeInvalid, grade_for, number_text, problems
from tool.schemes.curve import from_boundaries, two_point
from tool.schemes.scale import GERMAN, LETTERS, PASS_FAIL, Scale, scale_from

D = Decimal
SIXTY = D(60)


def mins(bands: tuple[Any, ...]) -> list[tuple[str, str]]:
    return [(number_text(b.min), b.grade) for b in bands]


def test_the_seeds_two_anchors_54_and_30_interpolate_the_german_passing_grades() -> None:
    # 10 passing grades over 24 points: min(g_k) = 54 − k·24/9
    # → 54, 51.33, 48.67, 46, 43.33, 40.67, 38, 35.33, 32.67, 30, snapped half up to whole points.
    bands = two_point(passing=D(30), excellence=D(54), max_points=SIXTY, step=D(1))
    assert mins(bands) == [("54", "1.0"), ("51", "1.3"), ("49", "1.7"), ("46", "2.0"), ("43", "2.3"), ("41", "2.7"),
                           ("38", "3.0"), ("35", "3.3"), ("33", "3.7"), ("30", "4.0"), ("0", "5.0")]


def test_a_half_point_step_snaps_inner_boundaries_to_half_points() -> None:
    bands = two_point(passing=D(30), excellence=D(54), max_points=SIXTY, step=D("0.5"))
    assert mins(bands) == [("54", "1.0"), ("51.5", "1.3"), ("48.5", "1.7"), ("46", "2.0"), ("43.5", "2.3"),
                           ("40.5", "2.7"), ("38", "3.0"), ("35.5", "3.3"), ("32.5", "3.7"), ("30", "4.0"),
                           ("0", "5.0")]


@pytest.mark.parametrize(
    ("passing", "excellence", "step", "scale", "expected"),
    [
        ("25", "50", "1", GERMAN, ["50", "47", "44", "42", "39", "36", "33", "31", "28", "25", "0"]),
        ("30", "39", "1", GERMAN, ["39", "38", "37", "36", "35", "34", "33", "32", "31", "30", "0"]),  # just fits
        ("30", "57", "3", GERMAN, ["57", "54", "51", "48", "45", "42", "39", "36", "33", "30", "0"]),
        ("30", "54", "1", LETTERS, ["54", "46", "38", "30", "0"]),
        ("50", "55", "1", Scale("abc", ("A", "B", "C", "F"), frozenset({"F"})), ["55", "53", "50", "0"]),  # 52.5 → 53
        ("30.5", "54.5", "0.5", GERMAN, ["54.5", "52", "49", "46.5", "44", "41", "38.5", "36", "33", "30.5", "0"]),
    ],
    ids=["25 to 50", "one point per grade", "step 3", "letters", "a tie rounds half up", "half-point anchors"],
)
def test_both_anchors_are_exact_and_inner_boundaries_snap_half_up(passing: str, excellence: str, step: str,
                                                                   scale: Scale, expected: list[str]) -> None:
    bands = two_point(passing=D(passing), excellence=D(excellence), max_points=SIXTY, step=D(step), scale=scale)
    assert [m for m, _g in mins(bands)] == expected
    assert (bands[0].min, bands[-2].min) == (D(excellence), D(passing))
    assert [b.grade for b in bands] == [*scale.passing_grades, scale.failing_grades[0]]


def test_the_curve_is_a_valid_scheme_graded_by_lower_bounds() -> None:
    bands = two_point(passing=D(30), excellence=D(54), max_points=SIXTY, step=D(1))
    config = SchemeConfig(unit="points", bands=bands, step=D(1))
    assert problems(config, max_points=SIXTY) == []
    assert [grade_for(config, D(p), max_points=SIXTY) for p in ("60", "53.5", "30", "29.5", "0")] == [
        "1.0", "1.3", "4.0", "5.0", "5.0"]


def test_a_percent_curve_is_bounded_by_100_not_the_points_maximum() -> None:
    bands = two_point(passing=D(50), excellence=D(95), max_points=SIXTY, step=D(5), unit="percent")
    assert [m for m, _g in mins(bands)] == ["95", "90", "85", "80", "75", "70", "65", "60", "55", "50", "0"]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"passing": D(30), "excellence": D(33)}, "excellence", "30–33 holds only 4 thresholds at step 1, but 10"),
        ({"passing": D(30), "excellence": D(33)}, "min", "snaps to 33, the same threshold as 1.0"),
        ({"passing": D(30), "excellence": D(38)}, "excellence", "holds only 9 thresholds"),
        ({"passing": D(30), "excellence": D(40), "step": D(2)}, "excellence", "holds only 6 thresholds at step 2"),
        ({"passing": D(54), "excellence": D(54)}, "passing", "54 must be below the excellence threshold 54"),
        ({"passing": D(55), "excellence": D(54)}, "passing", "must be below the excellence threshold"),
        ({"passing": D(0)}, "passing", "above 0 so that the failing band below it has room"),
        ({"passing": D(-5)}, "passing", "above 0"),
        ({"excellence": D(61)}, "excellence", "61 is above the maximum 60 points"),
        ({"excellence": D(101), "unit": "percent", "max_points": D(200)}, "excellence", "101 is above 100%"),
        ({"passing": D("30.5")}, "passing", "30.5 is not a multiple of the step 1"),
        ({"excellence": D("53.75"), "step": D("0.5")}, "excellence", "53.75 is not a multiple of the step 0.5"),
        ({"step": D(0)}, "step", "greater than 0"),
        ({"step": D("0.125")}, "step", "at most two decimal places"),
        ({"scale": PASS_FAIL}, "scale", "one passing grade"),
        ({"scale": scale_from({"name": "attendance", "grades": ["full", "partial"]})}, "scale", "no failing grade"),
    ],
    ids=["collision: 30 to 33 at step 1", "collisions are named", "one point short", "step 2 too coarse",
         "passing = excellence", "passing above excellence", "passing at 0", "passing negative", "excellence above max",
         "percent excellence above 100", "passing off the step", "excellence off the step", "step 0",
         "step three decimals", "pass/fail has one passing grade", "scale without a failing grade"],
)
def test_a_curve_that_cannot_work_is_refused_with_the_reason(changes: dict[str, Any], field: str, words: str) -> None:
    arguments: dict[str, Any] = {"passing": D(30), "excellence": D(54), "max_points": SIXTY, "step": D(1),
                                 **changes}
    with pytest.raises(SchemeInvalid) as caught:
        two_point(**arguments)
    assert caught.value.code == "curve_invalid"
    assert any(d["field"] == field and words in d["message"] for d in caught.value.details), caught.value.details


def test_collisions_name_the_band_and_grade() -> None:
    with pytest.raises(SchemeInvalid) as caught:
        two_point(passing=D(30), excellence=D(33), max_points=SIXTY, step=D(1))
    collisions = [(d["band"], d["grade"]) for d in caught.value.details if d["field"] == "min"]
    assert collisions == [(1, "1.3"), (3, "2.0"), (4, "2.3"), (6, "3.0"), (7, "3.3"), (9, "4.0")]


# -- manual boundaries ---------------------------------------------------------------------------


def test_boundaries_give_one_band_per_grade_and_the_worst_grade_starts_at_0() -> None:
    bands = from_boundaries([D(m) for m in ("54", "51", "48", "45", "42", "39", "36", "33", "30", "27")],
                            scale=GERMAN, max_points=SIXTY)
    assert mins(bands)[0] == ("54", "1.0")
    assert mins(bands)[-2:] == [("27", "4.0"), ("0", "5.0")]
    assert len(bands) == 11


@pytest.mark.parametrize(
    ("boundaries", "scale", "unit", "expected"),
    [
        (["90", "80", "70", "60"], LETTERS, "percent",
         [("90", "A"), ("80", "B"), ("70", "C"), ("60", "D"), ("0", "F")]),
        (["30"], PASS_FAIL, "points", [("30", "pass"), ("0", "fail")]),
        ([D("53.5"), 40, "20"], Scale("abcf", ("A", "B", "C", "F"), frozenset({"F"})), "points",
         [("53.5", "A"), ("40", "B"), ("20", "C"), ("0", "F")]),
    ],
)
def test_boundaries_for_other_scales_and_units(boundaries: list[Any], scale: Scale, unit: Any,
                                               expected: list[tuple[str, str]]) -> None:
    assert mins(from_boundaries(boundaries, scale=scale, unit=unit, max_points=SIXTY)) == expected


@pytest.mark.parametrize(
    ("boundaries", "band", "field", "words"),
    [
        (["30", "40"], None, "boundaries", "needs 1 boundaries"),
        ([], None, "boundaries", "not 0"),
        (["0"], 1, "min", "0 equals the min of band 1 (pass)"),
        (["61"], 0, "min", "above the maximum 60 points"),
        (["thirty"], 0, "min", "must be a number"),
        (["30.25"], 0, "min", "not a multiple of the step 0.5"),
    ],
)
def test_bad_boundaries_are_refused_naming_the_band(boundaries: list[Any], band: int | None, field: str,
                                                    words: str) -> None:
    with pytest.raises(SchemeInvalid) as caught:
        from_boundaries(boundaries, scale=PASS_FAIL, max_points=SIXTY, step=D("0.5"))
    assert caught.value.code == "scheme_invalid"
    assert any(d["band"] == band and d["field"] == field and words in d["message"] for d in caught.value.details), (
        caught.value.details)


def test_german_boundaries_out_of_order_are_refused_at_the_band_that_breaks_the_order() -> None:
    with pytest.raises(SchemeInvalid) as caught:
        from_boundaries([D(m) for m in ("54", "51", "52", "45", "42", "39", "36", "33", "30", "27")], scale=GERMAN,
                        max_points=SIXTY)
    assert [(d["band"], d["grade"]) for d in caught.value.details] == [(2, "1.7")]
