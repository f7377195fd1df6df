"""Distribution statistics as tables, against hand-computed values."""

from decimal import Decimal
from fractions import Fraction

import pytest

from tool.errors import ValidationError
from tool.schemes.scale import GERMAN, LETTERS
from tool.schemes.stats import Bin, default_bin_width, distribution, grade_counts, pass_rate, percentile

D = Decimal
SIXTY = D(60)
SEED_STUDENTS = [D(55), D(38), D(28), D(22)]  # Alice, Bob, Carol, Dave


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [
        ("count", 4),
        ("min", D("22.00")),
        ("max", D("55.00")),
        ("mean", D("35.75")),  # 143 / 4
        ("median", D("33.00")),  # (28 + 38) / 2
        ("stdev", D("12.50")),  # population: √(624.75 / 4) = √156.1875 = 12.4975…
        ("percentiles", {10: D("23.80"), 25: D("26.50"), 50: D("33.00"), 75: D("42.25"), 90: D("49.90")}),
        ("max_possible", D(60)),
        ("bin_width", D(1)),
    ],
)
def test_the_seeds_four_students(statistic: str, expected: object) -> None:
    # Percentiles: h = 3·p/100 → p10 = 22 + 0.3·6, p25 = 22 + 0.75·6, p75 = 38 + 0.25·17, p90 = 38 + 0.7·17.
    assert getattr(distribution(SEED_STUDENTS, max_points=SIXTY), statistic) == expected


def test_statistics_are_rounded_half_up_to_two_places() -> None:
    stats = distribution([D(0), D("0.01")], max_points=SIXTY)
    assert (stats.mean, stats.median, stats.stdev) == (D("0.01"), D("0.01"), D("0.01"))  # 0.005 → 0.01
    assert str(distribution([D(1), D(2), D(2)], max_points=SIXTY).mean) == "1.67"


@pytest.mark.parametrize(
    ("points", "stdev"),
    [(["0", "1"], "0.50"), (["1", "2", "3", "4"], "1.12"), (["7"], "0.00"), (["10", "10", "10"], "0.00"),
     (["0", "60"], "30.00"), (["53.5", "47.5"], "3.00")],
)
def test_stdev_is_the_population_standard_deviation(points: list[str], stdev: str) -> None:
    # The sample stdev of 0 and 1 would be 0.71; the graded cohort is the whole population.
    assert distribution([D(p) for p in points], max_points=SIXTY).stdev == D(stdev)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [([1, 2, 3, 4], 50, "2.5"), ([1, 2, 3, 4], 25, "1.75"), ([1, 2, 3, 4], 90, "3.7"), ([1, 2, 3, 4], 10, "1.3"),
     ([5], 90, "5"), ([1, 2, 3], 50, "2"), ([1, 3], 75, "2.5"), ([1, 2, 3, 4], 100, "4"), ([1, 2, 3, 4], 0, "1")],
)
def test_percentiles_interpolate_linearly_between_closest_ranks_like_numpy(values: list[int], p: int,
                                                                           expected: str) -> None:
    assert percentile([Fraction(v) for v in values], p) == Fraction(expected)


def test_no_totals_give_count_0_no_statistics_and_empty_bins() -> None:
    stats = distribution([], max_points=D(10))
    assert (stats.count, stats.min, stats.max, stats.mean, stats.median, stats.stdev, stats.percentiles) == (
        0, None, None, None, None, None, None)
    assert stats.histogram == tuple(Bin(D(k), D(k + 1), 0) for k in range(10))


@pytest.mark.parametrize(
    ("max_points", "width"),
    [("10", "1"), ("60", "1"), ("60.5", "2.5"), ("61", "2.5"), ("75", "2.5"), ("76", "5"), ("100", "5"),
     ("150", "5"), ("151", "10"), ("300", "10"), ("301", "20"), ("601", "25"), ("1000", "50"), ("99999", "5000")],
)
def test_the_default_bin_width_is_1_up_to_60_points_then_nice_with_at_most_30_bins(max_points: str,
                                                                                   width: str) -> None:
    assert default_bin_width(D(max_points)) == D(width)


def test_bins_are_half_open_but_a_full_score_counts_in_the_last_bin() -> None:
    bins = distribution([D(0), D("53.5"), D("53.99"), D(54), D(60)], max_points=SIXTY).histogram
    assert len(bins) == 60
    assert (bins[0], bins[53], bins[54], bins[59]) == (
        Bin(D(0), D(1), 1), Bin(D(53), D(54), 2), Bin(D(54), D(55), 1), Bin(D(59), D(60), 1))


def test_the_last_bin_stops_at_the_maximum_when_the_width_does_not_divide_it() -> None:
    bins = distribution([D(61), D(60)], max_points=D(61)).histogram
    assert (len(bins), bins[-1]) == (25, Bin(D(60), D(61), 2))


@pytest.mark.parametrize(
    ("points", "first", "last"),
    [
        (["-2", "-0.5", "3"], Bin(D("-2.00"), D(0), 2), Bin(D(9), D(10), 0)),
        (["12.5", "10", "11"], Bin(D(0), D(1), 0), Bin(D(10), D("12.50"), 2)),
    ],
    ids=["negative totals get a bin in front", "bonus points get a bin after the maximum"],
)
def test_totals_outside_0_to_max_get_their_own_bin(points: list[str], first: Bin, last: Bin) -> None:
    bins = distribution([D(p) for p in points], max_points=D(10)).histogram
    assert (bins[0], bins[-1], len(bins)) == (first, last, 11)
    assert sum(b.count for b in bins) == len(points)


def test_an_explicit_bin_width() -> None:
    bins = distribution(SEED_STUDENTS, max_points=SIXTY, bin_width=D(10)).histogram
    assert [b.count for b in bins] == [0, 0, 2, 1, 0, 1]
    assert bins[-1] == Bin(D(50), D(60), 1)


@pytest.mark.parametrize(("max_points", "bin_width", "field"),
                         [("0", None, "max_points"), ("60", "0", "bin_width"), ("9999", "0.01", "bin_width")])
def test_a_distribution_that_cannot_be_binned_is_refused(max_points: str, bin_width: str | None, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        distribution(SEED_STUDENTS, max_points=D(max_points), bin_width=None if bin_width is None else D(bin_width))
    assert (caught.value.code, caught.value.details[0]["field"]) == ("distribution_invalid", field)


def test_grade_counts_list_every_grade_of_the_scale_in_order_zeros_included() -> None:
    counts = grade_counts(["1.0", "2.0", "5.0", None, "2.0"], GERMAN)
    assert list(counts) == list(GERMAN.grades)
    assert counts == {"1.0": 1, "1.3": 0, "1.7": 0, "2.0": 2, "2.3": 0, "2.7": 0, "3.0": 0, "3.3": 0, "3.7": 0,
                      "4.0": 0, "5.0": 1}


def test_a_grade_off_the_scale_is_refused_not_dropped() -> None:
    with pytest.raises(ValidationError, match="not a grade of the letters scale"):
        grade_counts(["A", "1.0"], LETTERS)


@pytest.mark.parametrize(
    ("grades", "rate"),
    [(["1.0", "2.0", "3.7", "5.0"], "0.7500"), (["5.0"], "0.0000"), (["4.0"], "1.0000"),
     (["1.0", "5.0", "5.0"], "0.3333"), (["1.0", "1.3", "5.0"], "0.6667"), (["1.0", None, "5.0"], "0.5000"),
     ([None], None), ([], None)],
)
def test_pass_rate_is_the_share_of_passing_grades_among_those_given(grades: list[str | None],
                                                                    rate: str | None) -> None:
    assert pass_rate(grades, GERMAN) == (None if rate is None else D(rate))
