"""tool/bonus.py: which points need a confirmation, which are refused, and what the error says."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tool import bonus

D = Decimal


@pytest.mark.parametrize("points, outcome", [
    (None, None), (D("-3"), None), (D("20"), None),           # within the maximum: nothing to ask
    (D("20.01"), "confirm"), (D("40"), "confirm"),            # a bonus, up to twice the maximum
    (D("40.01"), "refused"), (D("999"), "refused"),           # a typo
])
def test_points_against_a_maximum_of_20(points: Decimal | None, outcome: str | None) -> None:
    found = bonus.against_maximum(points, D(20), field="tasks.7", what="task 1 (Proofs)")
    assert (None if found is None else "refused" if found.refused else "confirm") == outcome


def test_a_refusal_wins_over_a_confirmation_and_names_every_value() -> None:
    findings = [bonus.against_maximum(D("999"), D(20), field="tasks.3", what="task 3 (Essay)"),
                bonus.against_maximum(D("1035"), D(60), field="tasks", what="the total")]
    with pytest.raises(bonus.PointsTooHigh) as caught:
        bonus.enforce(findings, confirmed=True)
    assert caught.value.code == "points_too_high"
    assert [d["field"] for d in caught.value.details] == ["tasks.3", "tasks"]
    assert caught.value.details[0] == {
        "field": "tasks.3", "points": "999.00", "limit": "20.00",
        "message": "999.00 points for task 3 (Essay) is more than twice the maximum 20.00: a typo? "
                   "Enter at most 40.00."}


def test_a_bonus_needs_the_confirmation_and_passes_with_it() -> None:
    findings = [bonus.against_maximum(D("22"), D(20), field="tasks.1", what="task 1 (Proofs)"), None]
    with pytest.raises(bonus.BonusUnconfirmed) as caught:
        bonus.enforce(findings, confirmed=False)
    assert caught.value.code == "bonus_unconfirmed" and "confirmBonus" in caught.value.message
    bonus.enforce(findings, confirmed=True)  # no exception
    bonus.enforce([None, None], confirmed=False)


@pytest.mark.parametrize("points, asks", [(D("1000"), False), (D("-1000"), False), (D("1000.01"), True),
                                          (D("-1000.01"), True), (D("9999.99"), True)])
def test_ledger_entries_beyond_the_usual_range_ask_and_are_never_refused_here(points: Decimal, asks: bool) -> None:
    found = bonus.ledger_finding(points, D(1000), field="points")
    assert (found is not None) is asks
    if found is not None:
        assert not found.refused
        with pytest.raises(bonus.BonusUnconfirmed) as caught:
            bonus.enforce([found], confirmed=False)
        assert "usual range of ±1000.00" in caught.value.details[0]["message"]
