"""Bonus and typo checks over plain values (no database): points that are far from what a teacher
usually enters are saved only when the teacher says so.

* task points above the task's maximum, and an assessment's total above its maximum, are bonus
  points: saved only with `"confirmBonus": true` (the page asks in a dialog first);
* more than twice a maximum is refused, confirmed or not: 999 typed into a task out of 20 is a
  typo, never a bonus;
* a ledger entry has no maximum: beyond ± `ledger_confirm_points` (a setting, default 1,000) it
  needs the same confirmation.

`BonusUnconfirmed` (409 `bonus_unconfirmed`) and `PointsTooHigh` (422 `points_too_high`) list
every value that tripped a check in `details`, each with its field, points and limit, so a
client can show them all and send the request again with the confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

from tool.errors import ValidationError

REFUSE_FACTOR = Decimal(2)


class BonusUnconfirmed(ValidationError):
    """Points above a maximum (or far outside the ledger's usual range) without `confirmBonus`."""

    code = "bonus_unconfirmed"


class PointsTooHigh(ValidationError):
    """Points above twice the maximum: refused even when confirmed."""

    code = "points_too_high"


@dataclass(frozen=True)
class Finding:
    """One value that needs a confirmation (`refused` False) or is refused."""

    field: str
    what: str  # "task 2 (Proofs)", "the total", "the entry"
    points: Decimal
    limit: Decimal  # the maximum, or the ledger's usual bound
    refused: bool

    def as_detail(self) -> dict[str, Any]:
        return {"field": self.field, "points": _text(self.points), "limit": _text(self.limit),
                "message": self.message()}

    def message(self) -> str:
        if self.refused:
            return (f"{_text(self.points)} points for {self.what} is more than twice the maximum "
                    f"{_text(self.limit)}: a typo? Enter at most {_text(self.limit * REFUSE_FACTOR)}.")
        return f"{_text(self.points)} points for {self.what} is above the maximum {_text(self.limit)}."


def _text(value: Decimal) -> str:
    return f"{value:.2f}"


def against_maximum(points: Decimal | None, maximum: Decimal, *, field: str, what: str) -> Finding | None:
    """A value checked against its maximum: None when within it."""
    if points is None or points <= maximum:
        return None
    return Finding(field, what, points, maximum, refused=points > maximum * REFUSE_FACTOR)


def ledger_finding(points: Decimal | None, bound: Decimal, *, field: str) -> Finding | None:
    """A ledger entry's points checked against the usual range ± bound (never refused here: the
    ledger's own limit of ± 9999.99 does that)."""
    if points is None or abs(points) <= bound:
        return None
    return Finding(field, "the entry", points, bound, refused=False)


def enforce(findings: Iterable[Finding | None], *, confirmed: bool) -> None:
    """Raise PointsTooHigh when any value is refused, else BonusUnconfirmed when any needs a
    confirmation that was not given; return when everything may be saved."""
    found = [f for f in findings if f is not None]
    refused = [f for f in found if f.refused]
    if refused:
        raise PointsTooHigh(
            " ".join(f.message() for f in refused) + " Nothing was saved.",
            details=[f.as_detail() for f in refused])
    if found and not confirmed:
        ledger = all(f.what == "the entry" for f in found)
        ask = ("Points this far outside the usual range are saved only when confirmed"
               if ledger else "Bonus points are saved only when confirmed")
        raise BonusUnconfirmed(
            " ".join(_unconfirmed_message(f) for f in found) + f" {ask}: send \"confirmBonus\": true. Nothing was saved.",
            details=[{**f.as_detail(), "message": _unconfirmed_message(f)} for f in found])


def _unconfirmed_message(f: Finding) -> str:
    if f.what == "the entry":
        return f"{_text(f.points)} points is outside the usual range of ±{_text(f.limit)} for one entry."
    return f.message()
