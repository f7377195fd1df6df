"""Release of held changes (issue 15): a column under the `manual` policy holds every change that
would show something, to the LMS and to the student alike, until a teacher releases the column or
chosen students. Releasing goes through the normal delivery: the held rows become due.

What a student sees of a manual column is their own answer as it was at their last release
(`released_view`); the web layer builds those answers (`Views`) and passes them in, so a held
change is one where the LMS row is held, or where the student's answer differs from the released one.

Two teachers releasing at once release each score once: a release locks the offering row, then the
column (the lock order of tool/delivery/schedule.py: bindings by id, then their rows), and reads
what is held under those locks; the second release finds nothing left. Services never commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable, Sequence, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from tool.ags.score import Score
from tool.assessments.models import Assessment
from tool.clock import utcnow
from tool.db import upsert
from tool.delivery import columns, rules, schedule
from tool.delivery.models import DeliveryColumn, LineItemBinding, ReleasedView, ScoreDelivery
from tool.errors import NotFound, ValidationError
from tool.ledger import service as ledger
from tool.lti.models import Offering

_T = cast(Table, ScoreDelivery.__table__)
_O = cast(Table, Offering.__table__)

# (db, offering, key, student ids) → each student's own answer now (None: nothing to show yet)
Views = Callable[[Session, Offering, str, Sequence[int]], dict[int, dict[str, Any] | None]]


@dataclass(frozen=True)
class Held:
    """One student's held change in a column: the score the LMS would get (None: only Tally's view)."""

    student_id: int
    score: Score | None


def lock_offering(db: Session, offering_id: int) -> Offering:
    """The offering, its row locked for this transaction (the first lock of a release or settings change)."""
    if schedule.locks_rows(db):
        db.connection().execute(select(_O.c.id).where(_O.c.id == offering_id).with_for_update(key_share=True))
    offering = db.get(Offering, offering_id)
    if offering is None:
        raise NotFound(f"Offering {offering_id} does not exist.")
    return offering


def require_column(db: Session, offering: Offering, key: str) -> str:
    """The key, if it names a column of this offering; NotFound (unknown_column) otherwise."""
    target = rules.target_of_key(key)
    if target is not None and target != rules.TOTAL_TARGET:
        a = db.get(Assessment, int(key.removeprefix("assessment-")))
        if a is None or a.offering_id != offering.id:
            target = None
    if target is None:
        raise NotFound(f"This offering has no LMS column {key!r}: the keys are 'total' and 'assessment-<id>'.",
                       code="unknown_column")
    return key


def column_keys(db: Session, offering_id: int) -> list[str]:
    """The offering's columns: its total, then each assessment."""
    ids = db.scalars(select(Assessment.id).where(Assessment.offering_id == offering_id).order_by(Assessment.id))
    return [rules.TOTAL_KEY] + [columns.assessment_key(i) for i in ids]


def binding_of(db: Session, offering_id: int, key: str) -> LineItemBinding | None:
    target = rules.target_of_key(key)
    return db.scalar(select(LineItemBinding).where(LineItemBinding.offering_id == offering_id,
                                                   LineItemBinding.target == target))


def students_of(db: Session, offering: Offering, key: str) -> list[int]:
    """Everyone a column concerns: the roster, anyone with a score row or a released answer."""
    ids = set(ledger.roster_student_ids(db, course_id=offering.course_id))
    binding = binding_of(db, offering.id, key)
    if binding is not None:
        ids |= set(db.scalars(select(_T.c.person_id).where(_T.c.binding_id == binding.id)))
    ids |= set(db.scalars(select(ReleasedView.student_id).where(ReleasedView.offering_id == offering.id,
                                                                ReleasedView.key == key)))
    if key == rules.TOTAL_KEY:
        ids |= set(ledger.totals_by_student(db, offering_id=offering.id))
    return sorted(ids)


def released_views(db: Session, offering_id: int, key: str, student_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The answers the students saw at their last release (none: nothing released yet)."""
    ids = list(set(student_ids))
    if not ids:
        return {}
    return dict(db.execute(select(ReleasedView.student_id, ReleasedView.data).where(
        ReleasedView.offering_id == offering_id, ReleasedView.key == key, ReleasedView.student_id.in_(ids))).all())


def held(db: Session, offering: Offering, key: str, views: Views,
         student_ids: Sequence[int] | None = None) -> dict[int, Held]:
    """The held changes of a manual column (of these students, or all); {} for an automatic one."""
    if not columns.settings_for(db, offering_id=offering.id, key=key).manual:
        return {}
    who = students_of(db, offering, key) if student_ids is None else sorted(set(student_ids))
    out: dict[int, Held] = {}
    binding = binding_of(db, offering.id, key)
    if binding is not None and who:
        for person_id, desired in db.execute(select(_T.c.person_id, _T.c.desired).where(
                _T.c.binding_id == binding.id, _T.c.held.is_(True), _T.c.person_id.in_(who))):
            out[person_id] = Held(person_id, Score.from_json(desired))
    now_views = views(db, offering, key, who)
    seen = released_views(db, offering.id, key, who)
    for sid in who:
        if sid not in out and now_views.get(sid) != seen.get(sid):
            out[sid] = Held(sid, None)
    return out


def _snapshot(db: Session, offering: Offering, key: str, views: Views, student_ids: Sequence[int],
              now: dt.datetime) -> None:
    current = views(db, offering, key, student_ids)
    gone = [sid for sid in student_ids if current.get(sid) is None]
    if gone:
        db.execute(delete(ReleasedView).where(ReleasedView.offering_id == offering.id, ReleasedView.key == key,
                                              ReleasedView.student_id.in_(gone)))
    for sid in student_ids:
        data = current.get(sid)
        if data is not None:
            upsert(db, ReleasedView.__table__, {"offering_id": offering.id, "key": key, "student_id": sid,
                                                "data": data, "released_at": now},
                   conflict=("offering_id", "key", "student_id"), update=("data", "released_at"))


def _release_locked(db: Session, offering: Offering, key: str, views: Views, student_ids: Sequence[int] | None,
                    now: dt.datetime) -> int:
    binding = binding_of(db, offering.id, key)
    if binding is not None:
        schedule.lock_bindings(db, [binding.id])
    found = held(db, offering, key, views, student_ids)
    if not found:
        return 0
    if binding is not None:
        stmt = select(_T.c.id, _T.c.desired, _T.c.accepted).where(
            _T.c.binding_id == binding.id, _T.c.held.is_(True), _T.c.person_id.in_(sorted(found)))
        if schedule.locks_rows(db):
            stmt = stmt.order_by(_T.c.id).with_for_update(key_share=True)
        for row in db.connection().execute(stmt).all():
            same = rules.same_content(row.accepted, row.desired)
            db.connection().execute(update(_T).where(_T.c.id == row.id, _T.c.held.is_(True)).values(
                held=False, state="delivered" if same else "pending", next_attempt_at=None if same else now,
                attempts=0, updated_at=now))
    _snapshot(db, offering, key, views, sorted(found), now)
    return len(found)


def release(db: Session, *, offering_id: int, key: str, views: Views, student_ids: Sequence[int] | None = None,
            now: dt.datetime | None = None) -> int:
    """Release the held changes of a column (of these students, or all held): how many students."""
    offering = lock_offering(db, offering_id)
    require_column(db, offering, key)
    if student_ids is not None:
        roster = set(students_of(db, offering, key))
        unknown = sorted(set(student_ids) - roster)
        if unknown:
            raise ValidationError("Some students are not in this column.", code="unknown_student",
                                  details=[{"field": "studentIds", "message": f"unknown student {i}"} for i in unknown])
    return _release_locked(db, offering, key, views, student_ids, now or utcnow())


def _numbers_in(raw: dict[str, Any], settings: columns.ColumnSettings) -> dict[str, str]:
    if settings.numbers is None or settings.scale is None:
        raise ValidationError("This column has no grading scheme, so it has no grades to map to numbers.",
                              code="no_scheme", details=[{"field": "gradeNumbers", "message": "no scheme"}])
    problems = []
    out: dict[str, str] = {}
    for grade, value in raw.items():
        if grade not in settings.numbers:
            problems.append({"field": f"gradeNumbers.{grade}"[:80], "message": "not a grade of the scheme's scale"})
            continue
        out[grade] = str(value)
    merged = {**{g: str(n) for g, n in settings.numbers.items()}, **out}
    order = [Decimal(merged[g]) for g in settings.scale.grades]
    if any(a < b for a, b in zip(order, order[1:])):
        problems.append({"field": "gradeNumbers", "message": "a better grade needs a number at least as high as a worse one"})
    if max(order) <= 0:
        problems.append({"field": "gradeNumbers", "message": "the best grade needs a number above 0"})
    if problems:
        raise ValidationError("These grade numbers cannot be used.", code="invalid_grade_numbers", details=problems)
    return out


def set_column(db: Session, *, offering_id: int, key: str, views: Views, release_policy: str | None = None,
               lms_value: str | None = None, grade_numbers: dict[str, Any] | None = None,
               now: dt.datetime | None = None) -> columns.ColumnSettings:
    """Change a column's settings. manual → automatic sends what is held; automatic → manual keeps what
    students saw; another value or other numbers compute every score of the column again (held
    under manual)."""
    now = now or utcnow()
    offering = lock_offering(db, offering_id)
    require_column(db, offering, key)
    before = columns.settings_for(db, offering_id=offering.id, key=key)
    if lms_value is not None and lms_value != "points" and key == rules.TOTAL_KEY:
        raise ValidationError("The total column shows points: its scale is the maximum set on the sync page "
                              "(set it to 100 for a percentage).", code="lms_value_not_for_total",
                              details=[{"field": "lmsValue", "message": "only points for the total"}])
    if lms_value == "grade" and not before.numbers:
        raise ValidationError("This assessment has no grading scheme yet: the column can show grades once it has "
                              "one.", code="no_scheme", details=[{"field": "lmsValue", "message": "no scheme"}])
    numbers_in = _numbers_in(grade_numbers, before) if grade_numbers else None
    row = db.scalar(select(DeliveryColumn).where(DeliveryColumn.offering_id == offering.id, DeliveryColumn.key == key))
    stored_numbers = dict((row.grade_numbers or {}) if row is not None else {})
    if numbers_in:
        stored_numbers.update(numbers_in)
    upsert(db, DeliveryColumn.__table__, {
        "offering_id": offering.id, "key": key, "release": release_policy or before.release,
        "lms_value": lms_value or before.lms_value, "grade_numbers": stored_numbers or None, "updated_at": now},
        conflict=("offering_id", "key"), update=("release", "lms_value", "grade_numbers", "updated_at"))
    after = columns.settings_for(db, offering_id=offering.id, key=key)
    if after.manual and not before.manual:
        # Students keep what they saw until now; what changes from here on is held.
        _snapshot(db, offering, key, views, students_of(db, offering, key), now)
    if (after.lms_value, after.numbers) != (before.lms_value, before.numbers) and schedule.delivers(offering):
        target = rules.target_of_key(key)
        binding = binding_of(db, offering.id, key)
        if binding is not None or target != rules.TOTAL_TARGET:
            schedule.grades_changed(db, assessment_id=int(key.removeprefix("assessment-")), student_ids=None)
    if before.manual and not after.manual:
        # After the scores were computed with the new settings: everything held goes out.
        _release_all_rows(db, offering, key, now)
    return after


def _release_all_rows(db: Session, offering: Offering, key: str, now: dt.datetime) -> None:
    """A column that is automatic now: every held row goes out (students see the live values anyway)."""
    binding = binding_of(db, offering.id, key)
    if binding is None:
        return
    schedule.lock_bindings(db, [binding.id])
    rows = db.connection().execute(select(_T.c.id, _T.c.desired, _T.c.accepted).where(
        _T.c.binding_id == binding.id, _T.c.held.is_(True)).order_by(_T.c.id)).all()
    for row in rows:
        same = rules.same_content(row.accepted, row.desired)
        db.connection().execute(update(_T).where(_T.c.id == row.id).values(
            held=False, state="delivered" if same else "pending", next_attempt_at=None if same else now,
            attempts=0, updated_at=now))
