"""Grade bands as lower bounds: parse, validate, look up, and hash a scheme's configuration.

A band is `{min, grade}`; the highest band whose min ≤ the value wins (DESIGN.md, "Bands are
lower bounds"). The seed's `min_points/max_points` and `min_pct/max_pct` forms are accepted and
their maxima checked for consistency, but only the minima carry meaning: a fractional total such
as 53.5 between the seed's "48–53" and "54–60" gets 1.3, never the seed's fall-through 5.0.

Validation (`problems`) is about meaning and reports every problem at once:

* a band with min 0 exists, so every total has a grade;
* thresholds are ≥ 0, ≤ the maximum (max_points, or 100 for percent), at most two decimal
  places, multiples of `step` when one is set, and strictly decreasing (distinct);
* every grade is on the scale, no grade is used twice, and grades get strictly worse from the
  highest band down. Grades may be skipped: the seed's own 60-point example leaves out 2.7 and
  3.3 of the German scale, so a scheme need not use every grade;
* when the scale has failing grades, some band must give one (with failing grades at the end of
  the scale this means the lowest band fails); otherwise nobody could fail the exam.

All arithmetic is exact: Decimal in, Fraction for comparisons and rounding, never float.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from math import ceil, floor
from typing import Any, Literal, get_args

from tool.decimals import parse_decimal
from tool.schemes.errors import SchemeInvalid, problem
from tool.schemes.scale import GERMAN, SCALES, Scale, scale_from

__all__ = ["Band", "Rounding", "SchemeConfig", "SchemeInvalid", "Unit", "canonical", "decimal_places", "grade_for",
           "is_multiple", "number_text", "parse_config", "parse_number", "problems", "round_fraction",
           "round_to_step", "to_seed_form", "version_hash"]

Unit = Literal["points", "percent"]
Rounding = Literal["none", "half_up", "down", "up"]
UNITS: tuple[str, ...] = get_args(Unit)
ROUNDINGS: tuple[str, ...] = get_args(Rounding)

HUNDREDTH = Decimal("0.01")
# Far beyond any exam, and small enough that exact fractions of it stay cheap.
NUMBER_LIMIT = Decimal(10) ** 9
HUNDRED = Decimal(100)
# Seed-form maxima may sit this far below the next band's min when no step is set: the seed
# writes whole points ("48–53", "54–60") as well as hundredths of a percent ("80–89.99").
SEED_GAP_WITHOUT_STEP = Decimal(1)

# The absent grade's default depends on the scale, which a field default cannot see.
_WORST_FAILING: Any = object()

_FORMS = {  # how each accepted band form names its keys: (min key, max key or None, unit)
    "min_points": ("min_points", "max_points", "points"),
    "min_pct": ("min_pct", "max_pct", "percent"),
    "min": ("min", None, None),
}
_TOP_KEYS = {"unit", "bands", "scale", "step", "rounding", "absentGrade"}


@dataclass(frozen=True)
class Band:
    """A lower bound: totals (or percentages) from `min` up get `grade`, unless a higher band starts."""

    min: Decimal
    grade: str


@dataclass(frozen=True)
class SchemeConfig:
    """A parsed scheme: bands highest min first, the scale, step, rounding, and the absent students' grade.

    `absent_grade` defaults to the scale's worst grade when it fails ("5.0"); None means absent
    students get no grade.
    """

    unit: Unit
    bands: tuple[Band, ...]
    scale: Scale = GERMAN
    step: Decimal | None = None
    rounding: Rounding = "none"
    absent_grade: str | None = _WORST_FAILING

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(self.bands))
        if self.absent_grade is _WORST_FAILING:
            object.__setattr__(self, "absent_grade", self.scale.worst_failing)


# -- numbers -----------------------------------------------------------------------------------


def parse_number(value: Any) -> Decimal:
    """A JSON number, Decimal or numeric string as a finite Decimal; ValueError says why not."""
    # tool/decimals.py's grammar; the places are counted below, where the value can be named.
    number = parse_decimal(value, places=None)
    if number.copy_abs() > NUMBER_LIMIT:  # copy_abs: no context, so a huge exponent cannot overflow
        raise ValueError(f"must be between -{NUMBER_LIMIT} and {NUMBER_LIMIT}")
    if decimal_places(number) > 10:  # 3 to 10 places are named by the checks of meaning, with the value
        raise ValueError("has more than two decimal places")
    return number


def _stripped(value: Decimal) -> Decimal:
    """The same value without trailing fractional zeros, exactly (normalize() would round to the context)."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        return value
    while exponent < 0 and len(digits) > 1 and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    return Decimal((sign, digits, exponent))


def decimal_places(value: Decimal) -> int:
    """How many decimal places a value needs (53.50 → 1)."""
    exponent = _stripped(value).as_tuple().exponent
    return 0 if value == 0 or not isinstance(exponent, int) else max(0, -exponent)


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """True when value is a whole multiple of step (exactly)."""
    return (Fraction(value) / Fraction(step)).denominator == 1


def number_text(value: Decimal) -> str:
    """The stable normal form of a threshold: no exponent, no trailing zeros ("54", "53.5", "0")."""
    return "0" if value == 0 else format(_stripped(value), "f")


def round_fraction(value: Fraction, step: Fraction, rounding: Rounding) -> Fraction:
    """`value` rounded to a multiple of `step` exactly: half_up (ties away from 0), down (floor), up (ceiling)."""
    if rounding == "none":
        return value
    q = value / step
    if rounding == "down":
        n = floor(q)
    elif rounding == "up":
        n = ceil(q)
    else:  # half_up: ties away from zero, as in ROUND_HALF_UP and school arithmetic
        n = floor(q + Fraction(1, 2)) if q >= 0 else -floor(-q + Fraction(1, 2))
    return n * step


def round_to_step(value: Decimal, step: Decimal, rounding: Rounding) -> Decimal:
    """`value` rounded to a multiple of `step`: half_up, down (floor), up (ceiling), or none."""
    if rounding == "none":
        return value
    n = round_fraction(Fraction(value), Fraction(step), rounding) / Fraction(step)
    return Decimal(int(n)) * step


# -- validation of meaning -----------------------------------------------------------------------


_Entry = tuple[int, Decimal, "str | None"]  # (band index as given, min, grade or None when unusable)


def _setting_problems(*, unit: str | None, scale: Scale | None, step: Decimal | None, rounding: str | None,
                      absent_grade: str | None, check_absent: bool, max_points: Decimal | None) -> list[dict[str, Any]]:
    found = []
    if unit is not None and unit not in UNITS:
        found.append(problem("unit", f"must be one of {', '.join(UNITS)}, not {unit!r}"))
    if rounding is not None and rounding not in ROUNDINGS:
        found.append(problem("rounding", f"must be one of {', '.join(ROUNDINGS)}, not {rounding!r}"))
    if step is not None:
        if step <= 0:
            found.append(problem("step", f"must be greater than 0, not {number_text(step)}"))
        elif decimal_places(step) > 2:
            found.append(problem("step", f"{number_text(step)} has more than two decimal places"))
    if check_absent and scale is not None and absent_grade is not None and absent_grade not in scale.grades:
        found.append(problem("absentGrade", f"{absent_grade!r} is not a grade of the {scale.name} scale "
                                            f"({', '.join(scale.grades)})"))
    if max_points is not None and max_points <= 0:
        found.append(problem("max_points", "the assessment's maximum must be greater than 0, "
                                           f"not {number_text(max_points)}"))
    return found


def _band_problems(entries: list[_Entry], *, unit: str | None, scale: Scale | None, step: Decimal | None,
                   max_points: Decimal | None, min_field: str, complete: bool = True) -> list[dict[str, Any]]:
    """Every problem of the bands' meaning; entries keep the index each band had as given.

    `complete` is False when some band could not be read: the checks over all bands (a band at 0,
    someone can pass and fail) then wait, since the unreadable band may be the one they look for.
    """
    found = []
    top = HUNDRED if unit == "percent" else max_points if unit == "points" else None
    top_text = "100%" if unit == "percent" or top is None else f"{number_text(top)} points"
    for i, low, grade in entries:
        if low < 0:
            found.append(problem(min_field, f"must be 0 or more, not {number_text(low)}", band=i, grade=grade))
        if top is not None and top > 0 and low > top:
            found.append(problem(min_field, f"{number_text(low)} is above the maximum {top_text}", band=i, grade=grade))
        if decimal_places(low) > 2:
            found.append(problem(min_field, f"{number_text(low)} has more than two decimal places",
                                 band=i, grade=grade))
        elif step is not None and step > 0 and not is_multiple(low, step):
            found.append(problem(min_field, f"{number_text(low)} is not a multiple of the step {number_text(step)}",
                                 band=i, grade=grade))
        if grade is not None and scale is not None and grade not in scale.grades:
            found.append(problem("grade", f"{grade!r} is not a grade of the {scale.name} scale "
                                          f"({', '.join(scale.grades)})", band=i, grade=grade))
    for (j, above, above_grade), (i, low, grade) in zip(entries, entries[1:]):
        if low == above:
            found.append(problem(min_field, f"{number_text(low)} equals the min of band {j + 1} ({above_grade}); "
                                            "thresholds must be distinct", band=i, grade=grade))
        elif low > above:
            found.append(problem(min_field, f"{number_text(low)} must be below the min {number_text(above)} "
                                            f"of band {j + 1} ({above_grade}): bands go from the highest min down to 0",
                                 band=i, grade=grade))
    seen: dict[str, int] = {}
    better: tuple[int, str] | None = None  # the last band with a usable grade, for the order check
    for i, _low, grade in entries:
        if grade is None or scale is None or grade not in scale.grades:
            continue
        if grade in seen:
            found.append(problem("grade", f"{grade} is already the grade of band {seen[grade] + 1}", band=i, grade=grade))
            continue
        seen[grade] = i
        if better is not None and scale.index(grade) < scale.index(better[1]):
            found.append(problem("grade", f"{grade} must be worse than {better[1]} of band {better[0] + 1} above it: "
                                          "the highest band gives the best grade", band=i, grade=grade))
        better = (i, grade)
    if complete and entries and not any(low == 0 for _i, low, _g in entries):
        found.append(problem("bands", "no band starts at 0, so low totals would have no grade"))
    # Whether anyone can pass or fail is asked only once every grade is on the scale (no noise).
    graded = complete and bool(entries) and scale is not None and all(
        g is not None and g in scale.grades for _i, _l, g in entries)
    if graded and scale is not None and not any(g in scale.passing_grades for _i, _l, g in entries):
        found.append(problem("bands", "no band gives a passing grade, so nobody could pass"))
    if graded and scale is not None and scale.failing and not any(g in scale.failing for _i, _l, g in entries):
        i, _low, grade = entries[-1]
        found.append(problem("grade", f"no band gives a failing grade ({', '.join(scale.failing_grades)}): "
                                      "the lowest band should give one", band=i, grade=grade))
    return found


def problems(config: SchemeConfig, *, max_points: Decimal | None) -> list[dict[str, Any]]:
    """Every problem of a parsed scheme's meaning (empty when it is valid); max_points None skips that bound."""
    found = _setting_problems(unit=config.unit, scale=config.scale, step=config.step, rounding=config.rounding,
                              absent_grade=config.absent_grade, check_absent=True, max_points=max_points)
    if not config.bands:
        found.append(problem("bands", "needs at least one band, the one starting at 0"))
    entries: list[_Entry] = [(i, b.min, b.grade) for i, b in enumerate(config.bands)]
    found += _band_problems(entries, unit=config.unit, scale=config.scale, step=config.step, max_points=max_points,
                            min_field="min")
    return _in_order(found)


def _in_order(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Settings first, then band by band in the order given, each band's problems as found."""
    return sorted(found, key=lambda p: -1 if p["band"] is None else p["band"])


def _max_problems(entries: list[tuple[int, Decimal, str | None, Decimal | None]], *, top: Decimal | None,
                  top_text: str, gap: Decimal, max_field: str) -> list[dict[str, Any]]:
    """Seed-form maxima: each reaches up to the next band's min within `gap`, the top one to the maximum."""
    found = []
    for pos, (i, low, grade, high) in enumerate(entries):
        if high is None:
            continue
        if decimal_places(high) > 2:
            found.append(problem(max_field, f"{number_text(high)} has more than two decimal places",
                                 band=i, grade=grade))
        if high < low:
            found.append(problem(max_field, f"{number_text(high)} is below the band's own min {number_text(low)}",
                                 band=i, grade=grade))
            continue
        if pos == 0:
            if top is not None and high < top:
                found.append(problem(max_field, f"the top band must reach the maximum {top_text}, not stop at "
                                                f"{number_text(high)}", band=i, grade=grade))
            continue
        j, above, above_grade, _high = entries[pos - 1]
        if above <= low:
            continue  # the mins are out of order; that problem is reported once, on the min
        if high >= above:
            found.append(problem(max_field, f"{number_text(high)} overlaps band {j + 1} ({above_grade}), which starts at "
                                            f"{number_text(above)}", band=i, grade=grade))
        elif above - high > gap:
            found.append(problem(max_field, f"{number_text(high)} leaves a gap below band {j + 1} ({above_grade}), which "
                                            f"starts at {number_text(above)}; the gap may be at most "
                                            f"{number_text(gap)}",
                                 band=i, grade=grade))
    return found


# -- parsing ---------------------------------------------------------------------------------------


def parse_config(raw: Any, *, max_points: Decimal) -> SchemeConfig:
    """A SchemeConfig from the seed's min/max form or the lower-bound form; SchemeInvalid lists every problem."""
    if not isinstance(raw, Mapping):
        raise SchemeInvalid([problem("config", "must be an object with a bands list")])
    found: list[dict[str, Any]] = [problem(str(k), "unknown field") for k in raw if k not in _TOP_KEYS]

    scale: Scale | None = None
    try:
        scale = scale_from(raw.get("scale", GERMAN.name))
    except SchemeInvalid as exc:
        found.extend(exc.details)

    step: Decimal | None = None
    if raw.get("step") is not None:
        try:
            step = parse_number(raw["step"])
        except ValueError as exc:
            found.append(problem("step", str(exc)))

    rounding = raw.get("rounding", "none")
    unit = raw.get("unit")
    unit_reported = "unit" in raw and unit not in UNITS
    if unit_reported:
        found.append(problem("unit", f"must be one of {', '.join(UNITS)}, not {unit!r}"))
        unit = None
    absent: str | None = _WORST_FAILING
    if "absentGrade" in raw:
        absent = raw["absentGrade"]
        if absent is not None and (not isinstance(absent, str) or not absent):
            found.append(problem("absentGrade", "must be a grade of the scale or null"))
            absent = None
    found += _setting_problems(unit=None, scale=scale, step=step, rounding=rounding, absent_grade=absent,
                               check_absent=absent is not _WORST_FAILING, max_points=max_points)

    bands_raw = raw.get("bands")
    entries: list[tuple[int, Decimal, str | None, Decimal | None]] = []
    min_key, max_key = "min", None
    if not isinstance(bands_raw, list) or not bands_raw:
        found.append(problem("bands", "must be a non-empty list of bands, highest min first"))
        bands_raw = []
    form = next((k for b in bands_raw if isinstance(b, Mapping) for k in _FORMS if k in b), None)
    if form is not None:
        min_key, max_key, form_unit = _FORMS[form]
        if form_unit is not None:
            if unit is not None and unit != form_unit:
                found.append(problem("unit", f"is {unit!r} but the bands use {min_key}"))
            unit = form_unit
        elif unit is None and not unit_reported:
            found.append(problem("unit", "is required with {min, grade} bands: \"points\" or \"percent\""))
    allowed = {min_key, "grade"} | ({max_key} if max_key else set())
    for i, band in enumerate(bands_raw):
        if not isinstance(band, Mapping):
            found.append(problem("bands", "must be an object with a min and a grade", band=i))
            continue
        grade = band.get("grade")
        if not isinstance(grade, str) or not grade.strip():
            found.append(problem("grade", "is required: a grade of the scale", band=i))
            grade = None
        for key in band:
            if key not in allowed:
                other = f"; band uses {key} but the scheme uses {min_key}" if key in _FORMS or key in (
                    "max_points", "max_pct") else ""
                found.append(problem(str(key), "unknown field" + other, band=i, grade=grade))
        if min_key not in band:
            found.append(problem(min_key, "is required", band=i, grade=grade))
            continue
        try:
            low = parse_number(band[min_key])
        except ValueError as exc:
            found.append(problem(min_key, str(exc), band=i, grade=grade))
            continue
        high = None
        if max_key is not None and band.get(max_key) is not None:
            try:
                high = parse_number(band[max_key])
            except ValueError as exc:
                found.append(problem(max_key, str(exc), band=i, grade=grade))
        entries.append((i, low, grade, high))

    found += _band_problems([(i, low, g) for i, low, g, _h in entries], unit=unit, scale=scale,
                            step=step if step is not None and step > 0 else None, max_points=max_points,
                            min_field=min_key, complete=len(entries) == len(bands_raw))
    if max_key is not None:
        top = HUNDRED if unit == "percent" else max_points
        top_text = "100%" if unit == "percent" else f"{number_text(max_points)} points"
        found += _max_problems(entries, top=top, top_text=top_text,
                               gap=step if step is not None and step > 0 else SEED_GAP_WITHOUT_STEP,
                               max_field=max_key)
    if found:
        raise SchemeInvalid(_in_order(found))
    assert scale is not None and unit is not None
    return SchemeConfig(unit=unit, bands=tuple(Band(low, g or "") for _i, low, g, _h in entries), scale=scale,
                        step=step, rounding=rounding, absent_grade=absent)


# -- lookup ----------------------------------------------------------------------------------------


def grade_for(config: SchemeConfig, points: Decimal, *, max_points: Decimal) -> str:
    """The grade of a points total: round as configured, then the highest band whose min ≤ the value.

    Points schemes round the total to the step (0.01 without one). Percent schemes compare
    points / max_points × 100 exactly (53.5 of 60 is 89.1666…%, never 89.17%); their rounding,
    when configured, applies to that percentage at the step (0.01 without one), because a
    percent scheme's step is in percent. Bonus points above the maximum stay in the top band;
    a negative total gets the grade of the band at 0.
    """
    granularity = Fraction(config.step if config.step is not None else HUNDREDTH)
    value = Fraction(points)
    if config.unit == "percent":
        if max_points <= 0:
            raise SchemeInvalid([problem("max_points", "must be greater than 0 to compute a percentage")])
        value = value * 100 / Fraction(max_points)
    value = round_fraction(value, granularity, config.rounding)
    ordered = sorted(config.bands, key=lambda b: b.min, reverse=True)
    for band in ordered:
        if value >= Fraction(band.min):
            return band.grade
    if ordered and ordered[-1].min == 0:
        return ordered[-1].grade
    raise SchemeInvalid([problem("bands", f"no band covers the total {points}: the scheme has no band at 0")])


# -- canonical form, hash, display -------------------------------------------------------------------


def _scale_json(scale: Scale) -> str | dict[str, Any]:
    return scale.name if SCALES.get(scale.name) == scale else scale.as_json()


def canonical(config: SchemeConfig) -> dict[str, Any]:
    """The lower-bound form with every setting spelled out and numbers as normal-form strings ("54", "53.5")."""
    return {
        "unit": config.unit,
        "bands": [{"min": number_text(b.min), "grade": b.grade} for b in config.bands],
        "scale": _scale_json(config.scale),
        "step": None if config.step is None else number_text(config.step),
        "rounding": config.rounding,
        "absentGrade": config.absent_grade,
    }


def version_hash(config: SchemeConfig) -> str:
    """SHA-256 hex of the canonical form as compact JSON with sorted keys: equal meaning, equal hash."""
    text = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_seed_form(config: SchemeConfig, *, max_points: Decimal) -> dict[str, Any]:
    """The min/max form for display: each max is the next band's min less one step (0.01 without one)."""
    min_key, max_key = ("min_pct", "max_pct") if config.unit == "percent" else ("min_points", "max_points")
    top = HUNDRED if config.unit == "percent" else max_points
    less = config.step if config.step is not None else HUNDREDTH
    bands = []
    for k, band in enumerate(config.bands):
        high = top if k == 0 else config.bands[k - 1].min - less
        bands.append({min_key: number_text(band.min), max_key: number_text(high), "grade": band.grade})
    body = canonical(config)
    del body["unit"]
    return {**body, "bands": bands}
