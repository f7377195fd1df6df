"""tool/schemes/curve.py default_curve: the scheme workspace's start is a valid scheme for every
maximum (the same function POST /api/curves/defaults answers with; tests/e2e/test_scheme_defaults.py
asks the endpoint)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tool.schemes import bands, curve
from tool.schemes.scale import GERMAN, LETTERS, PASS_FAIL, Scale

D = Decimal


@pytest.mark.parametrize("scale", [GERMAN, LETTERS, PASS_FAIL], ids=lambda s: s.name)
@pytest.mark.parametrize("unit", ["points", "percent"])
def test_every_maximum_from_1_to_1000_in_hundredths_of_a_step_gets_a_valid_curve(scale: Scale, unit: str) -> None:
    for maximum in [D(m) for m in range(1, 1001)] + [D("20.5"), D("1.25"), D("999.99")]:
        found = curve.default_curve(max_points=maximum, scale=scale, unit=unit)  # type: ignore[arg-type]
        config = bands.SchemeConfig(unit=unit, bands=found.bands, scale=scale, step=found.step)  # type: ignore[arg-type]
        assert bands.problems(config, max_points=maximum) == [], (maximum, found)
        assert found.step_changed is (found.step != 1)


def test_a_step_that_fits_is_kept_and_one_that_does_not_becomes_finer() -> None:
    assert curve.default_curve(max_points=D(60), step=D(2)).step == D(2)
    twenty = curve.default_curve(max_points=D(20), step=D(1))
    assert (twenty.step, twenty.passing, twenty.excellence, twenty.step_changed) == (D("0.5"), D(10), D(18), True)
    assert curve.default_curve(max_points=D(20), step=D("0.25")).step == D("0.25")
