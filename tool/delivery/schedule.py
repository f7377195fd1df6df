"""Desired scores, written in the same transaction as the change that causes them.

`tool/gradebook.py` calls `totals_changed` after every ledger change and `grades_changed`
after every change of an assessment's points, status or grades. Nothing here talks to the
LMS: a target that has no line item yet gets a binding row without a URL, which a worker
binds before it sends. A pair whose desired score did not change is left alone, so a
repeated apply or a no-op correction queues nothing.

One writer per column: a desired score is computed only after its binding row is locked
(`FOR NO KEY UPDATE` on PostgreSQL; on SQLite every write transaction is serialised anyway),
so under READ COMMITTED the totals and grades it is computed from include every change
committed before, and the last writer of a column sees all of them. The lock order of every
path that writes score_delivery rows — the web's writers, sync now, resend, the worker's
bind and record steps — is: bindings by id, then their score_delivery rows by id. (A claim
skips locked rows instead of waiting, so it never takes part in a deadlock.)
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Iterable, Mapping, Sequence, cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tool.ags.score import Score, format_timestamp
from tool.lti.claims import SCOPE_SCORE
from tool.assessments.models import Assessment, GradeScheme, Participation, Task, TaskPoints
from tool.clock import utcnow
from tool.db import upsert
from tool.delivery import columns, rules
from tool.delivery.models import LineItemBinding, ScoreDelivery
from tool.ledger import service as ledger
from tool.lti.models import Offering, Person

HELD_NOTE = ("Work in progress is not sent: the LMS holds a grade from Tally, and any progress but "
             "FullyGraded would clear it.")
_T = cast(Table, ScoreDelivery.__table__)
_B = cast(Table, LineItemBinding.__table__)


def delivers(offering: Offering | None) -> bool:
    """True when the offering's latest launch granted score posting (an AGS claim with the score scope)."""
    if offering is None or not (offering.ags_lineitems_url or offering.ags_lineitem_url):
        return False
    return SCOPE_SCORE in (offering.ags_scopes or [])


# -- locks -------------------------------------------------------------------------------------


def locks_rows(db: Session) -> bool:
    """True where row locks exist (PostgreSQL); SQLite serialises every write transaction instead."""
    return db.get_bind().dialect.name == "postgresql"


def lock_bindings(db: Session, binding_ids: Iterable[int]) -> None:
    """Lock these columns for this transaction, in id order (FOR NO KEY UPDATE: inserts of their
    score_delivery rows, whose foreign key takes KEY SHARE, are not blocked)."""
    ids = sorted(set(binding_ids))
    if ids and locks_rows(db):
        db.connection().execute(select(_B.c.id).where(_B.c.id.in_(ids)).order_by(_B.c.id)
                                .with_for_update(key_share=True))


def lock_columns(db: Session, *, offering_id: int, assessment_ids: Sequence[int], total: bool) -> None:
    """Lock the offering's columns of these assessments (and its total), in id order: before a
    change that writes several of them (a ledger change: the total and the ledger-fed ones)."""
    if not locks_rows(db) or not (assessment_ids or total):
        return
    which = _B.c.assessment_id.in_(list(assessment_ids))
    if total:
        which = or_(which, _B.c.target == rules.TOTAL_TARGET)
    db.connection().execute(select(_B.c.id).where(_B.c.offering_id == offering_id, which).order_by(_B.c.id)
                            .with_for_update(key_share=True))


def lock_assessment_columns(db: Session, assessment_ids: Sequence[int]) -> None:
    """Lock the columns of these assessments (of any offering), in id order: before a change that
    writes several of them (students who joined the course)."""
    if locks_rows(db) and assessment_ids:
        db.connection().execute(select(_B.c.id).where(_B.c.assessment_id.in_(list(assessment_ids)))
                                .order_by(_B.c.id).with_for_update(key_share=True))


def lock_offering_columns(db: Session, *, offering_id: int) -> None:
    """Lock every column of the offering, in id order: before a change that may touch several."""
    if locks_rows(db):
        db.connection().execute(select(_B.c.id).where(_B.c.offering_id == offering_id).order_by(_B.c.id)
                                .with_for_update(key_share=True))


# -- bindings (rows only; the worker binds them to LMS line items) ---------------------------------


def _binding(db: Session, offering_id: int, target: str, values: dict[str, Any]) -> LineItemBinding:
    upsert(db, LineItemBinding.__table__,
           {"offering_id": offering_id, "target": target, "needs_update": False, "attempts": 0,
            "updated_at": utcnow(), **values},
           conflict=("offering_id", "target"), update=())
    # The column's writer lock, read as committed now (a worker may have bound it meanwhile).
    binding = db.scalar(select(LineItemBinding).where(LineItemBinding.offering_id == offering_id,
                                                      LineItemBinding.target == target)
                        .with_for_update(key_share=True).execution_options(populate_existing=True))
    assert binding is not None
    return binding


def total_binding(db: Session, offering: Offering) -> LineItemBinding:
    """The offering's total column (created as a row on first use, maximum 100 until bound or set)."""
    return _binding(db, offering.id, rules.TOTAL_TARGET, {
        "assessment_id": None, "label": f"{offering.title or 'Tally'} (total)",
        "score_maximum": rules.DEFAULT_TOTAL_MAXIMUM, "maximum_source": "default",
        "resource_id": rules.TOTAL_RESOURCE_ID, "tag": rules.TOTAL_TAG,
    })


def assessment_binding(db: Session, offering: Offering, assessment: Assessment,
                       settings: columns.ColumnSettings | None = None) -> tuple[LineItemBinding, bool]:
    """The assessment's column; True when its maximum changed (every score must follow). The maximum
    is what the column shows (`lmsValue`): the assessment's points, 100 (percent) or the top grade number."""
    settings = settings or columns.settings_for(db, offering_id=offering.id, key=columns.assessment_key(assessment.id))
    maximum = rules.column_maximum(settings.lms_value, points_maximum=assessment.max_points, numbers=settings.numbers)
    binding = _binding(db, offering.id, rules.assessment_target(assessment.id), {
        "assessment_id": assessment.id, "label": assessment.title, "score_maximum": maximum,
        "maximum_source": "assessment", "resource_id": rules.assessment_resource_id(assessment.id),
        "tag": rules.ASSESSMENT_TAG,
    })
    maximum_changed = binding.score_maximum != maximum
    if maximum_changed or binding.label != assessment.title:
        binding.label, binding.score_maximum = assessment.title, maximum
        binding.needs_update = binding.lineitem_url is not None
        binding.updated_at = utcnow()
        db.flush()
    return binding, maximum_changed


# -- desired scores ----------------------------------------------------------------------------


def _subs(db: Session, person_ids: Iterable[int]) -> dict[int, str]:
    ids = list(set(person_ids))
    if not ids:
        return {}
    return dict(db.execute(select(Person.id, Person.sub).where(Person.id.in_(ids))).all())


def _existing(db: Session, binding_id: int, person_ids: Sequence[int]) -> dict[int, Any]:
    if not person_ids:
        return {}
    stmt = (select(_T.c.id, _T.c.person_id, _T.c.state, _T.c.desired, _T.c.desired_kind, _T.c.desired_at,
                   _T.c.accepted, _T.c.ever_graded, _T.c.last_sent_ts, _T.c.next_attempt_at, _T.c.claimed_by)
            .where(_T.c.binding_id == binding_id, _T.c.person_id.in_(list(person_ids))))
    if locks_rows(db):
        # Under the binding's lock, rows by id: a claim in progress is waited for, not overwritten.
        stmt = stmt.order_by(_T.c.id).with_for_update(key_share=True)
    return {r.person_id: r for r in db.connection().execute(stmt)}


def _update_for(row: Any, desired: rules.Desired, body: dict[str, Any], at: dt.datetime,
                now: dt.datetime, hold: bool = False) -> dict[str, Any]:
    """The new queue state of an existing row whose desired score changed; under a manual release
    policy (`hold`) one that would go out is held instead (no next attempt) until released."""
    state, note, held = "pending", None, False
    next_at: dt.datetime | None = now
    if row.claimed_by is None and rules.same_content(row.accepted, body):
        state, next_at = "delivered", None  # back to what the LMS holds already
    elif not rules.should_send(desired.kind, ever_graded=bool(row.ever_graded)):
        state, next_at, note = "delivered", None, HELD_NOTE
    elif row.state in ("retrying", "waiting") and row.next_attempt_at is not None:
        state, next_at = row.state, row.next_attempt_at  # the LMS is failing or waiting: keep the pause
    if hold and state != "delivered" and rules.needs_release(
            desired.score, Score.from_json(row.accepted) if row.accepted else None):
        state, next_at, held = "pending", None, True
    return {"rid": row.id, "desired": body, "desired_kind": desired.kind.value, "desired_at": at, "state": state,
            "next_attempt_at": next_at, "note": note, "held": held, "updated_at": now}


def write_desired(db: Session, *, binding_id: int, desired: Mapping[int, rules.Desired], hold: bool = False) -> int:
    """Store the desired score of each person (id → Desired) where it changed; the count changed.
    With `hold` (the column's release policy is manual) a change that shows something is held.

    Each new desired score gets its timestamp here: now, or the next whole second after the
    pair's previous desired or sent one, so timestamps strictly increase and never repeat a
    second (Moodle refuses an equal second with 409).
    """
    if not desired:
        return 0
    now = utcnow()
    existing = _existing(db, binding_id, list(desired))
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for person_id, want in desired.items():
        row = existing.get(person_id)
        plain = want.score.to_json()
        if row is not None and row.desired_kind == want.kind.value and rules.same_content(row.desired, plain):
            continue
        at = rules.next_timestamp(now, rules.latest(row.desired_at, row.last_sent_ts) if row is not None else None)
        body = {**plain, "timestamp": format_timestamp(at)}  # what with_timestamp(at).to_json() gives, once
        if row is None:
            held = hold and rules.needs_release(want.score, None)
            inserts.append({"binding_id": binding_id, "person_id": person_id, "user_id": want.score.user_id,
                            "state": "pending", "desired": body, "desired_kind": want.kind.value,
                            "desired_version": 1, "desired_at": at, "ever_graded": False, "attempts": 0,
                            "next_attempt_at": None if held else now, "held": held, "updated_at": now})
        else:
            updates.append(_update_for(row, want, body, at, now, hold))
    conn = db.connection()
    changed = _apply_updates(conn, updates)
    if inserts:
        # ON CONFLICT DO NOTHING: under the binding's lock no other writer inserts this pair; should
        # one have all the same, its row is then updated like any other, never a 500.
        added = {r.person_id for r in conn.execute(_insert_pairs(db).returning(_T.c.person_id), inserts)}
        changed += len(added)
        raced = {row["person_id"]: desired[row["person_id"]] for row in inserts if row["person_id"] not in added}
        if raced:
            changed += write_desired(db, binding_id=binding_id, desired=raced, hold=hold)
    return changed


@functools.cache
def _insert_pairs_for(dialect: str) -> Any:
    base = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_T)
    return base.on_conflict_do_nothing(index_elements=["binding_id", "person_id"])


def _insert_pairs(db: Session) -> Any:
    return _insert_pairs_for(db.get_bind().dialect.name)


def _apply_updates(conn: Any, updates: list[dict[str, Any]]) -> int:
    if updates:
        conn.execute(
            update(_T).where(_T.c.id == bindparam("rid")).values(
                desired=bindparam("desired"), desired_kind=bindparam("desired_kind"),
                desired_at=bindparam("desired_at"), state=bindparam("state"),
                next_attempt_at=bindparam("next_attempt_at"), note=bindparam("note"),
                held=bindparam("held"), updated_at=bindparam("updated_at"),
                # In SQL, not from what we read: two writers of one row both count.
                desired_version=_T.c.desired_version + 1),
            sorted(updates, key=lambda u: u["rid"]),  # rows by id: the lock order
        )
    return len(updates)


def totals_changed(db: Session, *, offering_id: int, student_ids: Sequence[int]) -> int:
    """Schedule the total of these students (same transaction as the ledger change)."""
    offering = db.get(Offering, offering_id)
    if not delivers(offering) or not student_ids:
        return 0
    assert offering is not None
    binding = total_binding(db, offering)
    return _schedule_totals(db, binding, student_ids)


def holds(db: Session, binding: LineItemBinding) -> bool:
    """True when the column's release policy is manual (read under the column's lock)."""
    key = rules.column_key(binding.target)
    return columns.settings_for(db, offering_id=binding.offering_id, key=key).manual


def total_desires(db: Session, binding: LineItemBinding, student_ids: Iterable[int]) -> dict[int, rules.Desired]:
    """The desired total score of these students in the total column, from the ledger as it is."""
    ids = sorted(set(student_ids))
    totals = ledger.totals_by_student(db, offering_id=binding.offering_id, student_ids=ids)
    subs = _subs(db, ids)
    desired = {}
    for sid in ids:
        if sid not in subs:
            continue
        t = totals.get(sid)
        desired[sid] = rules.total_desired(user_id=subs[sid], has_entries=t is not None,
                                           active_total=t.total if t is not None and t.count else None,
                                           maximum=binding.score_maximum)
    return desired


def assessment_desires(db: Session, binding: LineItemBinding, assessment_id: int,
                       student_ids: Sequence[int] | None) -> dict[int, rules.Desired]:
    """The desired score of these participations (None: all) in the assessment's column."""
    facts = _facts(db, assessment_id, student_ids)
    subs = _subs(db, [sid for sid, _ in facts])
    graded_before = dict(db.execute(select(_T.c.person_id, _T.c.ever_graded).where(_T.c.binding_id == binding.id)).all())
    settings = columns.settings_for(db, offering_id=binding.offering_id, key=columns.assessment_key(assessment_id))
    assessment = db.get(Assessment, assessment_id)
    points_maximum = assessment.max_points if assessment is not None else binding.score_maximum
    out = {}
    for sid, f in facts:
        if sid not in subs:
            continue
        want = rules.assessment_desired(user_id=subs[sid], facts=f, maximum=points_maximum,
                                        graded_before=bool(graded_before.get(sid)))
        out[sid] = rules.as_lms_value(want, mode=settings.lms_value, grade=f.grade, numbers=settings.numbers,
                                      points_maximum=points_maximum)
    return out


def _schedule_totals(db: Session, binding: LineItemBinding, student_ids: Iterable[int]) -> int:
    return write_desired(db, binding_id=binding.id, desired=total_desires(db, binding, student_ids),
                         hold=holds(db, binding))


def _facts(db: Session, assessment_id: int, student_ids: Sequence[int] | None) -> list[tuple[int, rules.ParticipationFacts]]:
    stmt = select(Participation.id, Participation.student_id, Participation.status, Participation.points_total,
                  Participation.grade_value, Participation.manual_override).where(
        Participation.assessment_id == assessment_id)
    if student_ids is not None:
        stmt = stmt.where(Participation.student_id.in_(list(set(student_ids))))
    parts = db.execute(stmt).all()
    tasks = db.scalar(select(func.count()).select_from(Task).where(Task.assessment_id == assessment_id)) or 0
    schemes = db.execute(select(func.count(), func.count(GradeScheme.applied_at))
                         .where(GradeScheme.assessment_id == assessment_id)).one()
    awaiting = bool(schemes[0]) and not schemes[1]  # a scheme exists, none was ever applied
    entered: dict[int, int] = {}
    if tasks:
        entered = dict(db.execute(
            select(TaskPoints.participation_id, func.count())
            .join(Participation, Participation.id == TaskPoints.participation_id)
            .where(Participation.assessment_id == assessment_id)
            .group_by(TaskPoints.participation_id)).all())
    return [(p.student_id, rules.ParticipationFacts(status=p.status, points=p.points_total, grade=p.grade_value,
                                                    override=bool(p.manual_override), tasks=tasks,
                                                    tasks_entered=entered.get(p.id, 0),
                                                    awaiting_scheme=awaiting))
            for p in parts]


def grades_changed(db: Session, *, assessment_id: int, student_ids: Sequence[int] | None) -> int:
    """Schedule an assessment's scores (None: every participation, e.g. after an apply)."""
    assessment = db.get(Assessment, assessment_id)
    offering = db.get(Offering, assessment.offering_id) if assessment is not None else None
    if assessment is None or not delivers(offering):
        return 0
    assert offering is not None
    settings = columns.settings_for(db, offering_id=offering.id, key=columns.assessment_key(assessment.id))
    binding, maximum_changed = assessment_binding(db, offering, assessment, settings)
    # Under the column's lock, the settings as committed now: a teacher may have changed them meanwhile.
    locked = columns.settings_for(db, offering_id=offering.id, key=columns.assessment_key(assessment.id))
    if locked != settings:
        settings = locked
        binding, again = assessment_binding(db, offering, assessment, settings)
        maximum_changed = maximum_changed or again
    desired = assessment_desires(db, binding, assessment.id, None if maximum_changed else student_ids)
    return write_desired(db, binding_id=binding.id, desired=desired, hold=settings.manual)


def reschedule_binding(db: Session, binding: LineItemBinding) -> int:
    """Compute every score of a column again (its maximum changed)."""
    if binding.assessment_id is not None:
        return grades_changed(db, assessment_id=binding.assessment_id, student_ids=None)
    people = list(db.scalars(select(_T.c.person_id).where(_T.c.binding_id == binding.id)))
    return _schedule_totals(db, binding, people)


def reconcile_offering(db: Session, *, offering_id: int) -> int:
    """Compute every desired score of the offering again ("sync now"); the count that changed.

    The total covers every student with ledger entries (and anyone already delivered to);
    a student with nothing entered gets no total score, so a grade a teacher typed into the
    LMS column is not cleared by a sync.
    """
    offering = db.get(Offering, offering_id)
    if not delivers(offering):
        return 0
    assert offering is not None
    lock_offering_columns(db, offering_id=offering.id)  # before anything is computed
    changed = 0
    with_entries = set(ledger.totals_by_student(db, offering_id=offering.id))
    existing = db.scalar(select(LineItemBinding).where(LineItemBinding.offering_id == offering.id,
                                                       LineItemBinding.target == rules.TOTAL_TARGET))
    if with_entries or existing is not None:
        binding = existing or total_binding(db, offering)
        delivered_to = set(db.scalars(select(_T.c.person_id).where(_T.c.binding_id == binding.id)))
        changed += _schedule_totals(db, binding, with_entries | delivered_to)
    for assessment_id in db.scalars(select(Assessment.id).where(Assessment.offering_id == offering.id)):
        changed += grades_changed(db, assessment_id=assessment_id, student_ids=None)
    return changed
