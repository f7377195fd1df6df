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
from dataclasses import dataclass
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


# -- the workspace's defaults -------------------------------------------------------------------

DEFAULT_PASSING_SHARE = Decimal("0.5")  # the passing threshold at 50 % of the maximum
DEFAULT_EXCELLENCE_SHARE = Decimal("0.9")  # the best grade from 90 %
# Steps tried, coarsest first, when the teacher's step cannot place every grade between the anchors.
DEFAULT_STEPS = (Decimal("1"), Decimal("0.5"), Decimal("0.25"), Decimal("0.1"), Decimal("0.05"), Decimal("0.01"))


@dataclass(frozen=True)
class DefaultCurve:
    """The anchors, step and bands the scheme workspace starts from (and "Reset to 50 % and 90 %")."""

    step: Decimal
    passing: Decimal
    excellence: Decimal
    bands: tuple[Band, ...]
    step_changed: bool  # the step asked for could not place every grade: a finer one was chosen


def _snapped(value: Decimal, step: Decimal) -> Decimal:
    snapped = round_fraction(Fraction(value), Fraction(step), "half_up")
    return Decimal(snapped.numerator) / Decimal(snapped.denominator)


def _single_pass(*, passing: Decimal, step: Decimal, scale: Scale, unit: Unit,
                 max_points: Decimal) -> tuple[Band, ...]:
    """A scale with one passing grade (pass/fail): its band from the passing threshold."""
    bands = (Band(passing, scale.passing_grades[0]), Band(Decimal(0), scale.failing_grades[0]))
    left = problems(SchemeConfig(unit=unit, bands=bands, scale=scale, step=step), max_points=max_points)
    if left or passing <= 0:
        raise _curve_invalid(left or [problem("passing", "must be above 0")])
    return bands


def default_curve(*, max_points: Decimal, scale: Scale = GERMAN, unit: Unit = "points",
                  step: Decimal | None = None) -> DefaultCurve:
    """Passing at 50 % and excellence at 90 % of the maximum, snapped to a step at which every
    passing grade of the scale gets its own threshold: the step asked for when it fits (1 when
    none is), else the coarsest of DEFAULT_STEPS below it that does. The result is always a
    valid, savable scheme (checked here with the validation every save runs); a scale without
    a failing grade has no two-point curve and is refused (SchemeInvalid), as two_point does."""
    top = HUNDRED if unit == "percent" else max_points
    wanted = step if step is not None and step > 0 and decimal_places(step) <= 2 else Decimal(1)
    candidates = [wanted, *(s for s in DEFAULT_STEPS if s < wanted)]
    last: SchemeInvalid | None = None
    for candidate in candidates:
        passing = _snapped(top * DEFAULT_PASSING_SHARE, candidate)
        excellence = _snapped(top * DEFAULT_EXCELLENCE_SHARE, candidate)
        try:
            if scale.failing and len(scale.passing_grades) == 1:
                bands = _single_pass(passing=passing, step=candidate, scale=scale, unit=unit, max_points=max_points)
            else:
                bands = two_point(passing=passing, excellence=excellence, max_points=max_points, step=candidate,
                                  scale=scale, unit=unit)
        except SchemeInvalid as exc:
            last = exc
            continue
        return DefaultCurve(candidate, passing, excellence, bands, step_changed=candidate != wanted)
    assert last is not None
    raise last
