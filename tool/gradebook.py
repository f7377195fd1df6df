"""Use cases that cross packages. Every change to a student's total goes through here.

The web layer and the CLI call these, never the ledger service's writers directly, so
that score delivery (the AGS issue) has exactly one place to hook in: `totals_changed`,
which runs in the same transaction as the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence

from sqlalchemy.orm import Session

from tool.assessments import service as assessments
from tool.assessments.models import Assessment, GradeScheme, Participation
from tool.delivery import schedule as delivery
from tool.ledger import service as ledger
from tool.ledger.models import GradeEntry


@dataclass(frozen=True)
class TotalsChange:
    """Whose totals in which offering a write changed."""

    offering_id: int
    student_ids: tuple[int, ...]


def totals_changed(db: Session, *, offering_id: int, student_ids: Sequence[int],
                   actor_id: int | None = None) -> TotalsChange:
    """The one seam after every change of ledger totals (same transaction as the change).

    Ledger-fed assessments of the offering are refreshed and regraded here, and their grade
    changes go through `grades_changed` like any other.
    """
    change = TotalsChange(offering_id=offering_id, student_ids=tuple(sorted(set(student_ids))))
    parts = assessments.ledger_changed(db, offering_id=offering_id, student_ids=change.student_ids, actor_id=actor_id)
    by_assessment: dict[int, set[int]] = {}
    for p in parts:
        by_assessment.setdefault(p.assessment_id, set()).add(p.student_id)
    for assessment_id, sids in by_assessment.items():
        grades_changed(db, assessment_id=assessment_id, student_ids=sorted(sids))
    # The offering's total column: its desired scores, in this transaction (tool/delivery).
    delivery.totals_changed(db, offering_id=offering_id, student_ids=change.student_ids)
    return change


def grades_changed(db: Session, *, assessment_id: int, student_ids: Sequence[int] | None) -> None:
    """The one seam after every change of an assessment's points, status or grades (same
    transaction). `student_ids` None means every participation (an apply)."""
    # The assessment's column: its desired scores, in this transaction (tool/delivery).
    delivery.grades_changed(db, assessment_id=assessment_id, student_ids=student_ids)


def add_entry(db: Session, *, course_id: int, offering_id: int, student_id: int, actor_id: int,
              values: ledger.EntryValues) -> tuple[GradeEntry, TotalsChange]:
    """Record one entry for a student of the offering's roster."""
    ledger.require_students(db, course_id=course_id, student_ids=[student_id])
    entry = ledger.record_entry(db, offering_id=offering_id, student_id=student_id, actor_id=actor_id, values=values)
    return entry, totals_changed(db, offering_id=offering_id, student_ids=[student_id], actor_id=actor_id)


def add_entries(db: Session, *, course_id: int, offering_id: int, actor_id: int,
                items: Sequence[tuple[int, ledger.EntryValues]]) -> tuple[list[int], TotalsChange]:
    """Record many entries at once; every student must be on the roster (all or nothing)."""
    ledger.require_students(db, course_id=course_id, student_ids=[sid for sid, _ in items])
    ids = ledger.record_entries(db, offering_id=offering_id, actor_id=actor_id, items=items)
    return ids, totals_changed(db, offering_id=offering_id, student_ids=[sid for sid, _ in items], actor_id=actor_id)


def correct_entry(db: Session, *, entry: GradeEntry, actor_id: int, values: ledger.EntryValues) -> tuple[GradeEntry, TotalsChange]:
    """Change an ACTIVE entry, keeping the old values as a revision."""
    ledger.update_entry(db, entry=entry, actor_id=actor_id, values=values)
    return entry, totals_changed(db, offering_id=entry.offering_id, student_ids=[entry.student_id], actor_id=actor_id)


def void_entry(db: Session, *, entry: GradeEntry, actor_id: int, reason: str) -> tuple[GradeEntry, TotalsChange]:
    """Void an ACTIVE entry (it leaves every total)."""
    ledger.void_entry(db, entry=entry, actor_id=actor_id, reason=reason)
    return entry, totals_changed(db, offering_id=entry.offering_id, student_ids=[entry.student_id], actor_id=actor_id)


# -- assessments: every write of points, status or grades ends in grades_changed ------------------


def create_assessment(db: Session, **fields: Any) -> Assessment:
    """A new assessment with a participation per roster student; its LMS column is scheduled
    at once (every student Initialized/NotReady until points come in)."""
    assessment = assessments.create_assessment(db, **fields)
    grades_changed(db, assessment_id=assessment.id, student_ids=None)
    return assessment


def enter_points(db: Session, *, assessment: Assessment, part: Participation, points: Decimal | None,
                 task_points: dict[int, Decimal | None] | None, actor_id: int) -> Participation:
    """A student's total or task points (regraded at once after an apply, unless overridden)."""
    assessments.set_points(db, assessment=assessment, part=part, points=points, task_points=task_points,
                           actor_id=actor_id)
    grades_changed(db, assessment_id=assessment.id, student_ids=[part.student_id])
    return part


def set_status(db: Session, *, assessment: Assessment, part: Participation, status: str,
               actor_id: int) -> Participation:
    """Pending, graded, absent (the absent grade) or exempt (no grade)."""
    assessments.set_status(db, assessment=assessment, part=part, status=status, actor_id=actor_id)
    grades_changed(db, assessment_id=assessment.id, student_ids=[part.student_id])
    return part


def apply_scheme(db: Session, *, assessment: Assessment, scheme: GradeScheme, actor_id: int) -> assessments.ApplyResult:
    """Grade every participation with this scheme version (overrides skipped; idempotent)."""
    result = assessments.apply_scheme(db, assessment=assessment, scheme=scheme, actor_id=actor_id)
    if not result.already_applied:
        grades_changed(db, assessment_id=assessment.id, student_ids=None)
    return result


def override_grade(db: Session, *, assessment: Assessment, part: Participation, grade: str, reason: str,
                   actor_id: int) -> Participation:
    """A manual grade with a reason."""
    assessments.set_override(db, assessment=assessment, part=part, grade=grade, reason=reason, actor_id=actor_id)
    grades_changed(db, assessment_id=assessment.id, student_ids=[part.student_id])
    return part


def remove_override(db: Session, *, assessment: Assessment, part: Participation, actor_id: int) -> Participation:
    """Drop a manual grade; the applied scheme grades the student again."""
    assessments.remove_override(db, assessment=assessment, part=part, actor_id=actor_id)
    grades_changed(db, assessment_id=assessment.id, student_ids=[part.student_id])
    return part
