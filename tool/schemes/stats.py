"""Distribution statistics of points totals and of grades, for the teacher's look before applying a scheme.

Choices:

* stdev is the *population* standard deviation (divide by n): the graded cohort is the whole
  population being graded, not a sample of a larger one.
* percentiles interpolate linearly between closest ranks, like numpy's default ("linear",
  Hyndman & Fan type 7): for p, h = (n − 1)·p/100 and the value is x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]).
  The median is the 50th percentile.
* everything is exact (fractions) until the end; each statistic is then rounded half up to two
  places. The square root uses Decimal at 50 significant digits before that rounding.
* histogram bins are half-open [lo, hi) except the last regular bin, which is closed [lo, max]
  so a full score counts. Totals above the maximum (bonus) get one extra bin (max, highest],
  negative totals one extra bin [lowest, 0) in front.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from math import ceil, floor
from typing import NamedTuple

from tool.errors import ValidationError
from tool.schemes.bands import decimal_places, parse_number, round_fraction
from tool.schemes.scale import Scale

PERCENTILES = (10, 25, 50, 75, 90)
DEFAULT_MAX_BINS = 30
BIN_LIMIT = 1000
_NICE = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5))
_SQRT_CONTEXT = Context(prec=50)


class Bin(NamedTuple):
    """One histogram bar: totals from lo up to hi (see the module docstring for which ends count)."""

    lo: Decimal
    hi: Decimal
    count: int


@dataclass(frozen=True)
class Distribution:
    """Statistics of points totals; every statistic is None when there are no totals."""

    count: int
    min: Decimal | None
    max: Decimal | None
    mean: Decimal | None
    median: Decimal | None
    stdev: Decimal | None
    percentiles: dict[int, Decimal] | None
    max_possible: Decimal
    bin_width: Decimal
    histogram: tuple[Bin, ...]


def _round(value: Fraction, places: int = 2) -> Decimal:
    """A fraction rounded half up (ties away from 0) to `places` decimals, exactly."""
    units = round_fraction(value, Fraction(1, 10**places), "half_up") * 10**places
    return Decimal(int(units)).scaleb(-places)


def percentile(ordered: Sequence[Fraction] | Sequence[int], p: int) -> Fraction:
    """The p-th percentile of sorted values by linear interpolation between closest ranks."""
    h = Fraction(len(ordered) - 1) * p / 100
    lo = floor(h)
    if lo + 1 >= len(ordered):
        return Fraction(ordered[lo])
    return ordered[lo] + (h - lo) * (ordered[lo + 1] - ordered[lo])


def default_bin_width(max_points: Decimal) -> Decimal:
    """1 point up to 60 points, else the smallest of 1, 2, 2.5, 5, 10, 20, 25, 50 … giving at most 30 bins."""
    if max_points <= 60:
        return Decimal(1)
    scale = Decimal(1)
    while True:
        for nice in _NICE:
            width = nice * scale
            if ceil(Fraction(max_points) / Fraction(width)) <= DEFAULT_MAX_BINS:
                return width
        scale *= 10


def _histogram(units: Sequence[int], scale: int, *, max_points: Decimal, width: Decimal) -> tuple[Bin, ...]:
    """Bins over totals given as integers in 1/scale points (exact: no float ever)."""
    top, w = Fraction(max_points) * scale, Fraction(width) * scale
    n_bins = ceil(Fraction(max_points) / Fraction(width))
    counts = [0] * n_bins
    below = above = 0
    for u in units:
        if u < 0:
            below += 1
        elif u > top:
            above += 1
        else:
            counts[min(floor(u / w) if w.denominator != 1 else u // w.numerator, n_bins - 1)] += 1
    bins = [Bin(width * k, min(width * (k + 1), max_points), c) for k, c in enumerate(counts)]
    if below:
        bins.insert(0, Bin(_round(Fraction(units[0], scale)), Decimal(0), below))
    if above:
        bins.append(Bin(max_points, _round(Fraction(units[-1], scale)), above))
    return tuple(bins)


def _as_units(points: Sequence[Decimal]) -> tuple[list[int], int]:
    """Sorted totals as integers in 1/scale points, scale = 10^(most decimal places), exactly."""
    numbers = [parse_number(p) for p in points]
    places = max((decimal_places(n) for n in numbers), default=0)
    scale = 10**places
    return sorted(int(n.scaleb(places)) for n in numbers), scale


def distribution(points: Sequence[Decimal], *, max_points: Decimal, bin_width: Decimal | None = None) -> Distribution:
    """Count, min, max, mean, median, population stdev, percentiles and histogram of points totals."""
    if max_points <= 0:
        raise ValidationError("The maximum must be greater than 0 for a distribution.", code="distribution_invalid",
                              details=[{"field": "max_points", "message": "must be greater than 0"}])
    width = default_bin_width(max_points) if bin_width is None else bin_width
    if width <= 0 or ceil(Fraction(max_points) / Fraction(width)) > BIN_LIMIT:
        raise ValidationError("The bin width does not fit the maximum.", code="distribution_invalid",
                              details=[{"field": "bin_width",
                                        "message": f"must be greater than 0 and give at most {BIN_LIMIT} bins"}])
    # Integers in 1/scale points keep every statistic exact and are far cheaper than Fractions.
    units, scale = _as_units(points)
    histogram = _histogram(units, scale, max_points=max_points, width=width)
    if not units:
        return Distribution(0, None, None, None, None, None, None, max_points, width, histogram)
    n = len(units)
    total, squares = sum(units), sum(u * u for u in units)
    mean = Fraction(total, n * scale)
    variance = Fraction(n * squares - total * total, n * n * scale * scale)
    root = _SQRT_CONTEXT.divide(Decimal(variance.numerator), Decimal(variance.denominator)).sqrt(_SQRT_CONTEXT)
    return Distribution(
        count=n,
        min=_round(Fraction(units[0], scale)),
        max=_round(Fraction(units[-1], scale)),
        mean=_round(mean),
        median=_round(percentile(units, 50) / scale),
        stdev=root.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP, context=_SQRT_CONTEXT),
        percentiles={p: _round(percentile(units, p) / scale) for p in PERCENTILES},
        max_possible=max_points,
        bin_width=width,
        histogram=histogram,
    )


def grade_counts(grades: Iterable[str | None], scale: Scale) -> dict[str, int]:
    """How many of each grade, every grade of the scale in order (zeros included); None (no grade) is skipped."""
    counts = dict.fromkeys(scale.grades, 0)
    for grade in grades:
        if grade is not None:
            scale.index(grade)  # a grade off the scale is refused, not silently dropped
            counts[grade] += 1
    return counts


def pass_rate(grades: Iterable[str | None], scale: Scale) -> Decimal | None:
    """The share of passing grades among those given (0.7500 = 75 %), or None when nobody has a grade."""
    given = [g for g in grades if g is not None]
    if not given:
        return None
    passed = sum(1 for g in given if scale.is_passing(g))
    return _round(Fraction(passed, len(given)), 4)
