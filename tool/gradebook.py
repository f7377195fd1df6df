"""Use cases that cross packages. Every change of points, grades or participations goes through here.

The web layer, the CLI and the LTI entry points (launch, roster sync) call these, never the
services' writers directly, so that score delivery has exactly one place to hook in:
`totals_changed` and `grades_changed`, which run in the same transaction as the change.

Two writers, always: each use case takes its locks first, in the one order every path keeps
(PostgreSQL row locks; SQLite serialises every write transaction anyway):

1. the grade entry a correction or void changes (the web layer reads it `for_update`);
2. assessments by id — every writer of an assessment's participations and grades, and every
   ledger change for the offering's ledger-fed assessments;
3. the delivery columns (line_item_binding) by id, then their score_delivery rows by id
   (tool/delivery/schedule.py).

Under READ COMMITTED, what a writer computes after its locks (totals, points, grades, desired
scores) includes every change committed before, so the last writer of a column sees them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from tool.assessments import service as assessments
from tool.assessments.models import Assessment, GradeScheme, Participation
from tool.delivery import schedule as delivery
from tool.ledger import service as ledger
from tool.ledger.models import GradeEntry
from tool.lti.models import Offering
from tool.lti.roster import RosterChange, RosterServices, sync_roster as sync_roster_from_lms


@dataclass(frozen=True)
class TotalsChange:
    """Whose totals in which offering a write changed."""

    offering_id: int
    student_ids: tuple[int, ...]


def _ledger_writing(db: Session, offering_id: int) -> list[Assessment]:
    """Locks of a ledger change (after the entry's own): the offering's ledger-fed assessments, then
    the delivery columns they and the total feed. The ledger-fed assessments, locked."""
    fed = assessments.lock_ledger_fed(db, offering_id=offering_id)
    if delivery.delivers(db.get(Offering, offering_id)):
        delivery.lock_columns(db, offering_id=offering_id, assessment_ids=[a.id for a in fed], total=True)
    return fed


def totals_changed(db: Session, *, offering_id: int, student_ids: Sequence[int],
                   actor_id: int | None = None) -> TotalsChange:
    """The one seam after every change of ledger totals (same transaction as the change).

    Ledger-fed assessments of the offering are refreshed and regraded here, and their grade
    changes go through `grades_changed` like any other.
    """
    change = TotalsChange(offering_id=offering_id, student_ids=tuple(sorted(set(student_ids))))
    fed = _ledger_writing(db, offering_id)
    parts = assessments.ledger_changed(db, assessments=fed, student_ids=change.student_ids, actor_id=actor_id)
    by_assessment: dict[int, set[int]] = {}
    for p in parts:
        by_assessment.setdefault(p.assessment_id, set()).add(p.student_id)
    for assessment_id, sids in sorted(by_assessment.items()):
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


def correct_entry(db: Session, *, entry: GradeEntry, actor_id: int, values: ledger.EntryValues,
                  expected_version: int | None = None) -> tuple[GradeEntry, TotalsChange]:
    """Change an ACTIVE entry (read `for_update`), keeping the old values as a revision; EntryChanged
    when `expected_version` is given and no longer the entry's."""
    ledger.update_entry(db, entry=entry, actor_id=actor_id, values=values, expected_version=expected_version)
    return entry, totals_changed(db, offering_id=entry.offering_id, student_ids=[entry.student_id], actor_id=actor_id)


def void_entry(db: Session, *, entry: GradeEntry, actor_id: int, reason: str,
               expected_version: int | None = None) -> tuple[GradeEntry, TotalsChange]:
    """Void an ACTIVE entry (read `for_update`): it leaves every total."""
    ledger.void_entry(db, entry=entry, actor_id=actor_id, reason=reason, expected_version=expected_version)
    return entry, totals_changed(db, offering_id=entry.offering_id, student_ids=[entry.student_id], actor_id=actor_id)


# -- the roster: students who join get their participations through the seam -----------------------


def roster_changed(db: Session, *, course_id: int, student_ids: Sequence[int] | None = None) -> int:
    """Students who joined the course (of `student_ids`, or anyone on the roster) get a participation
    in each of its assessments, with points and grade where they come from the ledger, and their
    scores scheduled. After a launch and a roster sync (same transaction); the count added."""
    candidates = None if student_ids is None else sorted(set(student_ids))
    if candidates == []:
        return 0
    lacking = select(Assessment.id).join(Offering, Offering.id == Assessment.offering_id) \
        .where(Offering.course_id == course_id).order_by(Assessment.id)
    if candidates is not None and len(candidates) == 1:
        # A launch: one cheap question on the hot path, usually answered "none".
        lacking = lacking.where(~exists().where(Participation.assessment_id == Assessment.id,
                                                Participation.student_id == candidates[0]))
    ids = list(db.scalars(lacking))
    if candidates is None or len(candidates) > 1:
        # A roster sync, usually with nobody new: lock only the assessments someone is missing from.
        ids = [a.id for a in db.scalars(select(Assessment).where(Assessment.id.in_(ids)).order_by(Assessment.id))
               if assessments.missing_participants(db, assessment=a, course_id=course_id, candidates=candidates)]
    added = 0
    locked = assessments.lock_assessments(db, ids)
    delivery.lock_assessment_columns(db, [a.id for a in locked])  # then their columns, in id order
    for assessment in locked:
        missing = assessments.missing_participants(db, assessment=assessment, course_id=course_id,
                                                   candidates=candidates)
        new = assessments.add_participations(db, assessment=assessment, student_ids=missing)
        if new:
            grades_changed(db, assessment_id=assessment.id, student_ids=new)
            added += len(new)
    return added


def sync_roster(services: RosterServices, *, course_id: int) -> RosterChange:
    """Read the course's roster from the LMS and write it; whoever joined gets their participations
    in the same transaction. Commits its own transactions (the LMS is asked outside them)."""
    return sync_roster_from_lms(services, course_id=course_id,
                                after_write=lambda db: roster_changed(db, course_id=course_id))


# -- assessments: every write of points, status or grades ends in grades_changed ------------------


def create_assessment(db: Session, **fields: Any) -> Assessment:
    """A new assessment with a participation per roster student; its LMS column is scheduled
    at once (every student Initialized/NotReady until points come in)."""
    assessment = assessments.create_assessment(db, **fields)
    grades_changed(db, assessment_id=assessment.id, student_ids=None)
    return assessment


def participation_for_write(db: Session, *, assessment: Assessment, student_id: int,
                            course_id: int) -> Participation:
    """Lock the assessment, then the student's participation as committed now: the first step of
    every write of one student's points, status or grade. A roster student without one (joined
    since) gets it through the seam; anyone else is refused (StudentNotInOffering)."""
    assessments.lock_assessment(db, assessment)
    part = assessments.find_participation(db, assessment_id=assessment.id, student_id=student_id, fresh=True)
    if part is None:
        ledger.require_students(db, course_id=course_id, student_ids=[student_id])
        if assessments.add_participations(db, assessment=assessment, student_ids=[student_id]):
            grades_changed(db, assessment_id=assessment.id, student_ids=[student_id])
        part = assessments.find_participation(db, assessment_id=assessment.id, student_id=student_id, fresh=True)
    assert part is not None
    return part


def enter_points(db: Session, *, assessment: Assessment, part: Participation, points: Decimal | None,
                 task_points: dict[int, Decimal | None] | None, actor_id: int,
                 confirm_bonus: bool = False) -> Participation:
    """A student's total or task points (regraded at once after an apply, unless overridden);
    `part` from participation_for_write. Bonus points need `confirm_bonus` (tool/bonus.py)."""
    assessments.set_points(db, assessment=assessment, part=part, points=points, task_points=task_points,
                           actor_id=actor_id, confirm_bonus=confirm_bonus)
    grades_changed(db, assessment_id=assessment.id, student_ids=[part.student_id])
    return part


def set_status(db: Session, *, assessment: Assessment, part: Participation, status: str,
               actor_id: int) -> Participation:
    """Pending, graded, absent (the absent grade) or exempt (no grade); `part` from participation_for_write."""
    assessments.set_status(db, assessment=assessment, part=part, status=status, actor_id=actor_id)
    grades_changed(db, assessment_id=assessment.id, student_ids=[part.student_id])
    return part


def save_scheme(db: Session, *, assessment: Assessment, raw_config: dict[str, Any], actor_id: int,
                draft: GradeScheme | None = None) -> GradeScheme:
    """Save a scheme version (assessments.save_scheme). While no version was ever applied, the
    assessment's points wait for its grades: their scores are computed again (points without a
    grade are no longer sent as FullyGraded; tool/delivery/rules.py)."""
    scheme = assessments.save_scheme(db, assessment=assessment, raw_config=raw_config, actor_id=actor_id,
                                     draft=draft)
    if assessments.last_applied_scheme(db, assessment_id=assessment.id) is None:
        grades_changed(db, assessment_id=assessment.id, student_ids=None)
    return scheme


def apply_scheme(db: Session, *, assessment: Assessment, scheme: GradeScheme, course_id: int,
                 actor_id: int) -> assessments.ApplyResult:
    """Grade every participation with this scheme version (overrides skipped; idempotent, also
    when applies run at once). Roster students without a participation get one first."""
    assessments.lock_assessment(db, assessment)
    missing = assessments.missing_participants(db, assessment=assessment, course_id=course_id)
    added = assessments.add_participations(db, assessment=assessment, student_ids=missing)
    if added:
        grades_changed(db, assessment_id=assessment.id, student_ids=added)
    result = assessments.apply_scheme(db, assessment=assessment, scheme=scheme, actor_id=actor_id)
    if not result.already_applied:
        grades_changed(db, assessment_id=assessment.id, student_ids=None)
    return result


def override_grade(db: Session, *, assessment: Assessment, part: Participation, grade: str, reason: str,
                   actor_id: int) -> Participation:
    """A manual grade with a reason; `part` from participation_for_write."""
    assessments.set_override(db, assessment=assessment, part=part, grade=grade, reason=reason, actor_id=actor_id)
    grades_changed(db, assessment_id=assessment.id, student_ids=[part.student_id])
    return part


def remove_override(db: Session, *, assessment: Assessment, part: Participation, actor_id: int) -> Participation:
    """Drop a manual grade; the applied scheme grades the student again. `part` from participation_for_write."""
    assessments.remove_override(db, assessment=assessment, part=part, actor_id=actor_id)
    grades_changed(db, assessment_id=assessment.id, student_ids=[part.student_id])
    return part
