"""Band generators for the teacher's curve UI: two anchors with linear interpolation, or one boundary per grade.

Two-point formula. With the scale's passing grades g_0 (best) … g_{n-1} (worst passing),
the excellence threshold E and the passing threshold P:

    min(g_k) = snap(E − k · (E − P) / (n − 1))     for 0 < k < n − 1
    min(g_0) = E,  min(g_{n-1}) = P                (both anchors exact, never snapped)

where snap rounds half up to a multiple of `step`, computed exactly with fractions. The first
failing grade of the scale (German 5.0) gets the band at 0. Example: German, P = 30, E = 54,
step 1 → 54, 51, 49, 46, 43, 41, 38, 35, 33, 30 for 1.0 … 4.0 (from 54, 51.33, 48.67, 46, …).
When E − P is at least (n − 1) steps the snapped boundaries are at least one step apart, so
they can collide only in a range too narrow for the grades; both are refused, never merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tool.schemes.bands import (HUNDRED, Band, SchemeConfig, Unit, decimal_places, is_multiple, number_text,
                                parse_number, problems, round_fraction)
from tool.schemes.errors import SchemeInvalid, problem
from tool.schemes.scale import GERMAN, Scale


def _curve_invalid(found: list[dict[str, Any]]) -> SchemeInvalid:
    return SchemeInvalid(found, code="curve_invalid", what="curve")


def two_point(*, passing: Decimal, excellence: Decimal, max_points: Decimal, step: Decimal, scale: Scale = GERMAN,
              unit: Unit = "points") -> tuple[Band, ...]:
    """Bands from two anchors: `excellence` gets the best grade, `passing` the worst passing one, linear between."""
    found: list[dict[str, Any]] = []
    top = HUNDRED if unit == "percent" else max_points
    top_text = "100%" if unit == "percent" else f"the maximum {number_text(max_points)} points"
    step_ok = step > 0 and decimal_places(step) <= 2
    if not step_ok:
        found.append(problem("step", "must be greater than 0 with at most two decimal places, "
                                     f"not {number_text(step)}"))
    if passing <= 0:
        found.append(problem("passing", f"must be above 0 so that the failing band below it has room, "
                                        f"not {number_text(passing)}"))
    if passing >= excellence:
        found.append(problem("passing", f"{number_text(passing)} must be below the excellence threshold "
                                        f"{number_text(excellence)}"))
    if excellence > top:
        found.append(problem("excellence", f"{number_text(excellence)} is above {top_text}"))
    if step_ok:
        for field, anchor in (("passing", passing), ("excellence", excellence)):
            if not is_multiple(anchor, step):
                found.append(problem(field, f"{number_text(anchor)} is not a multiple of the step {number_text(step)}"))
    grades = scale.passing_grades
    n = len(grades)
    if not scale.failing:
        found.append(problem("scale", f"the {scale.name} scale has no failing grade for the band at 0"))
    if n < 2:
        found.append(problem("scale", f"the {scale.name} scale has one passing grade; two anchors need two "
                                      "(set its single boundary by hand)"))
    if found:
        raise _curve_invalid(found)

    room = (excellence - passing) / step  # a whole number: both anchors are multiples of the step
    if room < n - 1:
        found.append(problem("excellence", f"{number_text(passing)}–{number_text(excellence)} holds only "
                                           f"{int(room) + 1} "
                                           f"thresholds at step {number_text(step)}, but {n} passing grades need {n}"))
    e, p, s = Fraction(excellence), Fraction(passing), Fraction(step)
    mins = [excellence]
    for k in range(1, n - 1):
        snapped = round_fraction(e - k * (e - p) / (n - 1), s, "half_up")
        mins.append(Decimal(snapped.numerator) / Decimal(snapped.denominator))  # exact: a multiple of the step
    mins.append(passing)
    for k in range(1, n):
        if mins[k] >= mins[k - 1]:
            found.append(problem("min", f"snaps to {number_text(mins[k])}, the same threshold as {grades[k - 1]}",
                                 band=k, grade=grades[k]))
    if found:
        raise _curve_invalid(found)

    bands = (*(Band(m, g) for m, g in zip(mins, grades)), Band(Decimal(0), scale.failing_grades[0]))
    left = problems(SchemeConfig(unit=unit, bands=bands, scale=scale, step=step), max_points=max_points)
    if left:
        raise _curve_invalid(left)
    return bands


def from_boundaries(boundaries: Sequence[Decimal | str | int], *, scale: Scale, unit: Unit = "points",
                    max_points: Decimal | None = None, step: Decimal | None = None) -> tuple[Band, ...]:
    """Manual mode: one lower bound per grade but the worst, best first; the worst grade gets 0."""
    expected = len(scale.grades) - 1
    if len(boundaries) != expected:
        raise SchemeInvalid([problem("boundaries", f"needs {expected} boundaries, one per grade of the {scale.name} "
                                                   f"scale but the worst ({scale.grades[-1]}), not {len(boundaries)}")])
    found = []
    mins = []
    for i, (raw, grade) in enumerate(zip(boundaries, scale.grades)):
        try:
            mins.append(parse_number(raw))
        except ValueError as exc:
            found.append(problem("min", str(exc), band=i, grade=grade))
    if found:
        raise SchemeInvalid(found)
    bands = (*(Band(m, g) for m, g in zip(mins, scale.grades)), Band(Decimal(0), scale.grades[-1]))
    left = problems(SchemeConfig(unit=unit, bands=bands, scale=scale, step=step), max_points=max_points)
    if left:
        raise SchemeInvalid(left)
    return bands
