"""Grade scales: the ordered grades a scheme may give, best first, and which of them fail.

The failing grades are always the worst ones (a tail of the scale) and at least one grade
passes: a passing grade below a failing one has no meaning, and band order relies on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tool.errors import ValidationError
from tool.schemes.errors import SchemeInvalid, problem


def _scale_problems(name: str, grades: tuple[str, ...], failing: frozenset[str],
                    failing_list: list[str] | None = None) -> list[str]:
    """Why these parts do not make a scale (empty when they do)."""
    reasons = []
    if not name.strip():
        reasons.append("name must not be empty")
    if any(not g.strip() for g in grades):
        reasons.append("grades must not be empty")
    if len(set(grades)) != len(grades):
        twice = sorted({g for g in grades if grades.count(g) > 1})
        reasons.append(f"grade(s) {', '.join(twice)} listed twice")
    if len(set(grades)) < 2:
        reasons.append("needs at least two distinct grades")
    if failing_list is not None and len(set(failing_list)) != len(failing_list):
        reasons.append("failing lists a grade twice")
    off = sorted(failing - set(grades))
    if off:
        reasons.append(f"failing grade(s) {', '.join(off)} are not among the grades")
    elif grades and failing:
        if failing >= set(grades):
            reasons.append("at least one grade must pass")
        elif set(grades[len(grades) - len(failing):]) != failing:
            reasons.append("failing grades must be the worst ones (the end of the list)")
    return reasons


@dataclass(frozen=True)
class Scale:
    """An ordered grade scale, best grade first; `failing` is a tail of `grades`."""

    name: str
    grades: tuple[str, ...]
    failing: frozenset[str]

    def __post_init__(self) -> None:
        reasons = _scale_problems(self.name, self.grades, self.failing)
        if reasons:
            raise SchemeInvalid([problem("scale", r) for r in reasons])

    @property
    def passing_grades(self) -> tuple[str, ...]:
        """The passing grades, best first."""
        return tuple(g for g in self.grades if g not in self.failing)

    @property
    def failing_grades(self) -> tuple[str, ...]:
        """The failing grades, best (least bad) first."""
        return tuple(g for g in self.grades if g in self.failing)

    @property
    def worst_failing(self) -> str | None:
        """The worst grade of the scale when it fails (the default for absent students), else None."""
        return self.grades[-1] if self.grades[-1] in self.failing else None

    def index(self, grade: str) -> int:
        """The position of `grade`, 0 for the best; a grade off the scale is a ValidationError."""
        try:
            return self.grades.index(grade)
        except ValueError:
            raise ValidationError(f"{grade!r} is not a grade of the {self.name} scale.", code="grade_not_on_scale",
                                  details=[{"field": "grade", "message": "one of " + ", ".join(self.grades)}]) from None

    def is_passing(self, grade: str) -> bool:
        """True when `grade` is on the scale and not a failing grade."""
        self.index(grade)
        return grade not in self.failing

    def as_json(self) -> dict[str, Any]:
        """The full definition, failing grades in scale order (what `scale_from` accepts)."""
        return {"name": self.name, "grades": list(self.grades), "failing": list(self.failing_grades)}


GERMAN = Scale("german", ("1.0", "1.3", "1.7", "2.0", "2.3", "2.7", "3.0", "3.3", "3.7", "4.0", "5.0"),
               frozenset({"5.0"}))
LETTERS = Scale("letters", ("A", "B", "C", "D", "F"), frozenset({"F"}))
PASS_FAIL = Scale("pass_fail", ("pass", "fail"), frozenset({"fail"}))

# Read-only so that no caller can redefine a built-in scale for everyone.
SCALES: Mapping[str, Scale] = MappingProxyType({s.name: s for s in (GERMAN, LETTERS, PASS_FAIL)})


def scale_from(raw: Any) -> Scale:
    """A scale from a built-in name, a Scale, or `{"name", "grades": [...], "failing": [...]}` (custom)."""
    if isinstance(raw, Scale):
        return raw
    if isinstance(raw, str):
        if raw in SCALES:
            return SCALES[raw]
        raise SchemeInvalid([problem("scale", f"unknown scale {raw!r}; known: {', '.join(SCALES)}")])
    if not isinstance(raw, Mapping):
        raise SchemeInvalid([problem("scale", "must be a scale name or {name, grades, failing}")])
    reasons = []
    unknown = sorted(set(raw) - {"name", "grades", "failing"})
    if unknown:
        reasons.append(f"unknown field(s) {', '.join(map(str, unknown))}")
    name, grades, failing = raw.get("name"), raw.get("grades"), raw.get("failing", [])
    if not isinstance(grades, list | tuple) or not all(isinstance(g, str) for g in grades):
        reasons.append("grades must be a list of strings, best first")
        grades = []
    if not isinstance(failing, list | tuple) or not all(isinstance(g, str) for g in failing):
        reasons.append("failing must be a list of grades")
        failing = []
    if not isinstance(name, str):
        reasons.append("name must be a string")
        name = ""
    reasons += _scale_problems(name, tuple(grades), frozenset(failing), failing_list=list(failing))
    if reasons:
        raise SchemeInvalid([problem("scale", r) for r in dict.fromkeys(reasons)])
    return Scale(name, tuple(grades), frozenset(failing))
