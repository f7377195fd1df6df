"""Assessment services: participations and their points, scheme versions, distribution,
preview, apply (one transaction, batched), manual overrides and regrading.

Services never commit. Grades are computed by tool/schemes (pure); this module only loads
and stores. Every grade written leaves a GradeEvent naming what produced it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Sequence

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tool.assessments.models import Assessment, GradeEvent, GradeScheme, Participation, Task, TaskPoints
from tool import bonus
from tool.clock import utcnow
from tool.errors import NotFound, ToolError, ValidationError
from tool.ledger import service as ledger
from tool.schemes import bands as scheme_bands
from tool.schemes import stats

ZERO = Decimal("0.00")


class SchemeApplied(ToolError):
    """An applied scheme version never changes."""

    code = "scheme_applied"


class SchemeNotActive(ToolError):
    """Only the active version is applied; an older one comes back as a new version."""

    code = "scheme_not_active"


class OverrideInvalid(ToolError):
    """A manual grade must come from the scheme's scale and have a reason."""

    code = "override_invalid"


# -- assessments and participations --------------------------------------------------------


# -- locks: one writer of an assessment's participations and grades at a time ----------------------


def _locks_rows(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def lock_assessment(db: Session, assessment: Assessment) -> Assessment:
    """Lock the assessment for this transaction (PostgreSQL; SQLite serialises every writer) and read
    it as committed now. Every writer of its participations takes this lock first, so under READ
    COMMITTED each sees the changes committed before it (two applies: one changes the grades)."""
    if _locks_rows(db):
        db.execute(select(Assessment).where(Assessment.id == assessment.id).with_for_update(key_share=True)
                   .execution_options(populate_existing=True))
    return assessment


def lock_assessments(db: Session, ids: Iterable[int]) -> list[Assessment]:
    """Lock these assessments in id order (the lock order of every writer); them, in that order."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    stmt = select(Assessment).where(Assessment.id.in_(wanted)).order_by(Assessment.id)
    if _locks_rows(db):
        stmt = stmt.with_for_update(key_share=True).execution_options(populate_existing=True)
    return list(db.scalars(stmt))


def lock_ledger_fed(db: Session, *, offering_id: int) -> list[Assessment]:
    """The offering's ledger-fed assessments, locked in id order: a ledger change refreshes them."""
    stmt = select(Assessment).where(Assessment.offering_id == offering_id, Assessment.source == "ledger") \
        .order_by(Assessment.id)
    if _locks_rows(db):
        stmt = stmt.with_for_update(key_share=True).execution_options(populate_existing=True)
    return list(db.scalars(stmt))


def create_assessment(
    db: Session, *, offering_id: int, course_id: int, title: str, max_points: Decimal, source: str, kind: str,
    ledger_type_codes: Sequence[str] | None, tasks: Sequence[tuple[str, Decimal]], actor_id: int,
) -> Assessment:
    """Create an assessment with its tasks and a participation per roster student."""
    if tasks and source != "tasks":
        raise ValidationError("Only an assessment fed by tasks has tasks.",
                              details=[{"field": "tasks", "message": "not allowed with source ledger"}])
    assessment = Assessment(offering_id=offering_id, title=title, max_points=max_points, source=source, kind=kind,
                            ledger_type_codes=list(ledger_type_codes) if ledger_type_codes else None,
                            created_by=actor_id, created_at=utcnow())
    db.add(assessment)
    db.flush()
    for position, (task_title, task_max) in enumerate(tasks, start=1):
        db.add(Task(assessment_id=assessment.id, position=position, title=task_title, max_points=task_max))
    db.flush()
    add_participations(db, assessment=assessment,
                       student_ids=[p.id for p in ledger.roster_students(db, course_id=course_id)])
    return assessment


def missing_participants(db: Session, *, assessment: Assessment, course_id: int,
                         candidates: Iterable[int] | None = None) -> list[int]:
    """Roster students (of `candidates`, when given) without a participation yet (read only)."""
    roster = ledger.roster_student_ids(db, course_id=course_id, candidates=candidates)
    if not roster:
        return []
    have = set(db.scalars(select(Participation.student_id).where(Participation.assessment_id == assessment.id)))
    return sorted(roster - have)


def add_participations(db: Session, *, assessment: Assessment, student_ids: Sequence[int]) -> list[int]:
    """A pending participation for each student who has none (the caller holds the assessment's
    lock); a ledger-fed one gets its points and grade at once. The ids of the students added.

    Callers go through tool/gradebook, which schedules the new participations' scores.
    """
    if not student_ids:
        return []
    dialect = db.get_bind().dialect.name
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Participation.__table__) \
        .on_conflict_do_nothing(index_elements=["assessment_id", "student_id"]) \
        .returning(Participation.__table__.c.student_id)
    now = utcnow()
    db.flush()
    added = sorted(r[0] for r in db.connection().execute(stmt, [
        {"assessment_id": assessment.id, "student_id": sid, "status": "pending", "manual_override": False,
         "updated_at": now} for sid in sorted(set(student_ids))]))
    if added and assessment.source == "ledger":
        parts = refresh_ledger_points(db, assessment=assessment, student_ids=added)
        regrade(db, assessment=assessment, parts=parts, actor_id=None)
    db.flush()
    return added


def get_assessment(db: Session, assessment_id: int) -> Assessment:
    """The assessment, or NotFound."""
    a = db.get(Assessment, assessment_id)
    if a is None:
        raise NotFound(f"Assessment {assessment_id} does not exist.")
    return a


def assessments_of(db: Session, *, offering_id: int) -> list[Assessment]:
    """An offering's assessments, oldest first."""
    return list(db.scalars(select(Assessment).where(Assessment.offering_id == offering_id).order_by(Assessment.id)))


def tasks_of(db: Session, *, assessment_id: int) -> list[Task]:
    """An assessment's tasks in order."""
    return list(db.scalars(select(Task).where(Task.assessment_id == assessment_id).order_by(Task.position)))


def participations_of(db: Session, *, assessment_id: int) -> list[Participation]:
    """Every participation of an assessment."""
    return list(db.scalars(select(Participation).where(Participation.assessment_id == assessment_id)
                           .order_by(Participation.id)))


def task_points_of(db: Session, *, assessment_id: int) -> dict[int, dict[int, Decimal]]:
    """participation id → task id → points."""
    rows = db.execute(
        select(TaskPoints.participation_id, TaskPoints.task_id, TaskPoints.points)
        .join(Participation, Participation.id == TaskPoints.participation_id)
        .where(Participation.assessment_id == assessment_id)
    )
    out: dict[int, dict[int, Decimal]] = {}
    for pid, tid, pts in rows:
        out.setdefault(pid, {})[tid] = pts
    return out


def find_participation(db: Session, *, assessment_id: int, student_id: int,
                       fresh: bool = False) -> Participation | None:
    """The student's participation, if any (`fresh`: as committed now, after a lock)."""
    stmt = select(Participation).where(Participation.assessment_id == assessment_id,
                                       Participation.student_id == student_id)
    if fresh:
        stmt = stmt.execution_options(populate_existing=True)
    return db.scalar(stmt)


def set_points(
    db: Session, *, assessment: Assessment, part: Participation, points: Decimal | None,
    task_points: dict[int, Decimal | None] | None, actor_id: int, confirm_bonus: bool = False,
) -> Participation:
    """Enter a total or per-task points (None clears a task); regrade at once if a scheme was applied.

    Points above a task's or the assessment's maximum need `confirm_bonus`; more than twice a
    maximum is refused (tool/bonus.py). Both are checked before anything is written."""
    if assessment.source != "tasks":
        raise ValidationError("This assessment takes its points from the ledger; record ledger entries instead.",
                              code="points_from_ledger")
    tasks = {t.id: t for t in tasks_of(db, assessment_id=assessment.id)}
    if task_points is not None:
        unknown = [tid for tid in task_points if tid not in tasks]
        if unknown:
            raise ValidationError("Unknown task.", details=[{"field": f"tasks.{t}", "message": "no such task"} for t in unknown])
    if task_points is None and tasks and points is not None:
        raise ValidationError("This assessment has tasks: enter points per task.",
                              details=[{"field": "points", "message": "use tasks"}])
    _check_bonus(db, assessment=assessment, part=part, tasks=tasks, points=points, task_points=task_points,
                 confirmed=confirm_bonus)
    if task_points is not None:
        for tid, pts in task_points.items():
            existing = db.scalar(select(TaskPoints).where(TaskPoints.participation_id == part.id, TaskPoints.task_id == tid))
            if pts is None:
                if existing is not None:
                    db.delete(existing)
            elif existing is None:
                db.add(TaskPoints(participation_id=part.id, task_id=tid, points=pts))
            else:
                existing.points = pts
        db.flush()
        total = db.scalar(select(func.sum(TaskPoints.points)).where(TaskPoints.participation_id == part.id))
        has_any = db.scalar(select(func.count()).select_from(TaskPoints).where(TaskPoints.participation_id == part.id))
        part.points_total = total if has_any else None
    else:
        part.points_total = points
    if part.status in ("pending", "graded"):
        part.status = "graded" if part.points_total is not None else "pending"
    part.updated_at = utcnow()
    regrade(db, assessment=assessment, parts=[part], actor_id=actor_id)
    return part


def _check_bonus(db: Session, *, assessment: Assessment, part: Participation, tasks: dict[int, Task],
                 points: Decimal | None, task_points: dict[int, Decimal | None] | None, confirmed: bool) -> None:
    """Bonus and typo checks of a points change (tool/bonus.py), against what is stored now.

    A value already stored is not asked about again (a confirmed bonus stays confirmed), nor is
    a total above the maximum that the change lowers."""
    old_total = part.points_total
    findings: list[bonus.Finding | None] = []
    if task_points is not None:
        stored = dict(db.execute(select(TaskPoints.task_id, TaskPoints.points)
                                 .where(TaskPoints.participation_id == part.id)).all())
        for tid, pts in sorted(task_points.items()):
            if pts is not None and stored.get(tid) != pts:
                task = tasks[tid]
                findings.append(bonus.against_maximum(pts, task.max_points, field=f"tasks.{tid}",
                                                      what=f"task {task.position} ({task.title})"))
        merged = {**stored, **task_points}
        values = [v for v in merged.values() if v is not None]
        new_total = sum(values, ZERO) if values else None
    else:
        new_total = points
    lowered = old_total is not None and new_total is not None and old_total > assessment.max_points \
        and new_total <= old_total
    total = bonus.against_maximum(new_total, assessment.max_points,
                                  field="tasks" if task_points is not None else "points", what="the total")
    if total is not None and (total.refused or not lowered):  # a typo stored before these checks: still refused
        findings.append(total)
    bonus.enforce(findings, confirmed=confirmed)


def set_status(db: Session, *, assessment: Assessment, part: Participation, status: str, actor_id: int) -> Participation:
    """Mark a participation pending/graded/absent/exempt; regrade."""
    if status == "graded" and part.points_total is None:
        raise ValidationError("Enter points before marking a participation graded.",
                              details=[{"field": "status", "message": "no points yet"}])
    part.status = status
    part.updated_at = utcnow()
    regrade(db, assessment=assessment, parts=[part], actor_id=actor_id)
    return part


def ledger_points(totals: ledger.Totals | None, codes: Iterable[str]) -> Decimal | None:
    """A ledger-fed participation's points: the student's active total (of these type codes, when
    any are chosen); None without an active entry."""
    if totals is None or totals.count == 0:
        return None
    wanted = set(codes)
    if wanted:
        return sum((v for code, v in totals.by_type.items() if code in wanted), ZERO)
    return totals.total


def refresh_ledger_points(db: Session, *, assessment: Assessment, student_ids: Iterable[int]) -> list[Participation]:
    """Recompute a ledger-fed assessment's totals for these students (one aggregate query)."""
    ids = list(set(student_ids))
    if not ids:
        return []
    totals = ledger.totals_by_student(db, offering_id=assessment.offering_id, student_ids=ids)
    codes = set(assessment.ledger_type_codes or [])
    # As committed now (the caller holds the assessment's lock), not as this session last saw them.
    parts = list(db.scalars(select(Participation).where(Participation.assessment_id == assessment.id,
                                                        Participation.student_id.in_(ids))
                            .execution_options(populate_existing=True)))
    for part in parts:
        total = ledger_points(totals.get(part.student_id), codes)
        part.points_total = total
        if part.status in ("pending", "graded"):
            part.status = "graded" if total is not None else "pending"
        part.updated_at = utcnow()
    return parts


def ledger_changed(db: Session, *, assessments: Sequence[Assessment], student_ids: Sequence[int],
                   actor_id: int | None) -> list[Participation]:
    """After a ledger change: refresh and regrade these ledger-fed assessments (locked: lock_ledger_fed)."""
    changed: list[Participation] = []
    for a in assessments:
        parts = refresh_ledger_points(db, assessment=a, student_ids=student_ids)
        regrade(db, assessment=a, parts=parts, actor_id=actor_id)
        changed.extend(parts)
    return changed


# -- schemes ---------------------------------------------------------------------------------


def scheme_config(scheme: GradeScheme, assessment: Assessment) -> scheme_bands.SchemeConfig:
    """The parsed configuration of a stored scheme."""
    return scheme_bands.parse_config(scheme.config, max_points=assessment.max_points)


def active_scheme(db: Session, *, assessment_id: int) -> GradeScheme | None:
    """The active version (draft or applied)."""
    return db.scalar(select(GradeScheme).where(GradeScheme.assessment_id == assessment_id, GradeScheme.active))


def last_applied_scheme(db: Session, *, assessment_id: int) -> GradeScheme | None:
    """The most recently applied version: the one current grades came from."""
    return db.scalar(select(GradeScheme).where(GradeScheme.assessment_id == assessment_id,
                                               GradeScheme.applied_at.is_not(None))
                     .order_by(GradeScheme.applied_at.desc(), GradeScheme.version.desc()).limit(1))


def scheme_versions(db: Session, *, assessment_id: int) -> list[GradeScheme]:
    """Every version, newest first."""
    return list(db.scalars(select(GradeScheme).where(GradeScheme.assessment_id == assessment_id)
                           .order_by(GradeScheme.version.desc())))


def get_scheme(db: Session, scheme_id: int) -> GradeScheme:
    """The scheme version, or NotFound."""
    s = db.get(GradeScheme, scheme_id)
    if s is None:
        raise NotFound(f"Grade scheme {scheme_id} does not exist.")
    return s


def save_scheme(db: Session, *, assessment: Assessment, raw_config: dict[str, Any], actor_id: int,
                draft: GradeScheme | None = None) -> GradeScheme:
    """Validate a config and store it: into `draft` when it is an unapplied version, else as the next version."""
    config = scheme_bands.parse_config(raw_config, max_points=assessment.max_points)
    canonical, digest = scheme_bands.canonical(config), scheme_bands.version_hash(config)
    lock_assessment(db, assessment)  # two teachers saving at once make versions n+1 and n+2, not one twice
    if draft is not None:
        draft = db.scalar(select(GradeScheme).where(GradeScheme.id == draft.id)
                          .execution_options(populate_existing=True)) or draft
    if draft is not None and draft.applied_at is None:
        draft.config, draft.version_hash = canonical, digest
        return draft
    latest = db.scalar(select(func.max(GradeScheme.version)).where(GradeScheme.assessment_id == assessment.id)) or 0
    # Deactivate first: the partial unique index allows one active version per assessment.
    db.execute(update(GradeScheme).where(GradeScheme.assessment_id == assessment.id, GradeScheme.active)
               .values(active=False))
    scheme = GradeScheme(assessment_id=assessment.id, version=latest + 1, kind="absolute", config=canonical,
                         version_hash=digest, active=True, created_by=actor_id, created_at=utcnow())
    db.add(scheme)
    db.flush()
    return scheme


@dataclass(frozen=True)
class PreviewRow:
    """What applying a scheme would do to one participation."""

    participation_id: int
    student_id: int
    status: str
    points: Decimal | None
    percentage: Decimal | None
    proposed_grade: str | None
    current_grade: str | None
    overridden: bool
    current_scheme_id: int | None = None  # the scheme version that produced the current grade

    @property
    def changes(self) -> bool:
        """True when applying would change this grade."""
        return not self.overridden and self.proposed_grade != self.current_grade


def proposed_grade(config: scheme_bands.SchemeConfig, status: str, points: Decimal | None,
                   max_points: Decimal) -> str | None:
    """The grade a scheme gives a participation of this status and points (None: no grade)."""
    if status == "exempt":
        return None
    if status == "absent":
        return config.absent_grade
    if points is None:
        return None
    return scheme_bands.grade_for(config, points, max_points=max_points)


def preview(db: Session, *, assessment: Assessment, config: scheme_bands.SchemeConfig) -> list[PreviewRow]:
    """Per participation: points, percentage, proposed and current grade (one query)."""
    rows = db.execute(
        select(Participation.id, Participation.student_id, Participation.status, Participation.points_total,
               Participation.grade_value, Participation.manual_override, Participation.grade_scheme_id)
        .where(Participation.assessment_id == assessment.id).order_by(Participation.id)
    )
    mx = assessment.max_points
    out = []
    # A cohort has few distinct (status, points) pairs (121 totals for a 60-point exam in
    # half points): grade each pair once.
    grades: dict[tuple[str, Decimal | None], str | None] = {}
    percents: dict[Decimal, Decimal] = {}
    for pid, sid, status, pts, current, overridden, current_scheme in rows:
        pct = None
        if pts is not None and mx:
            pct = percents.get(pts)
            if pct is None:
                pct = percents[pts] = (pts / mx * 100).quantize(Decimal("0.01"))
        if overridden:
            proposed = current
        else:
            key = (status, pts)
            if key in grades:
                proposed = grades[key]
            else:
                proposed = grades[key] = proposed_grade(config, status, pts, mx)
        out.append(PreviewRow(pid, sid, status, pts, pct, proposed, current, bool(overridden), current_scheme))
    return out


def distribution(db: Session, *, assessment: Assessment) -> stats.Distribution:
    """Statistics and histogram of the graded participations' points."""
    points = list(db.scalars(select(Participation.points_total).where(
        Participation.assessment_id == assessment.id, Participation.status == "graded",
        Participation.points_total.is_not(None))))
    return stats.distribution(points, max_points=assessment.max_points)


@dataclass(frozen=True)
class ApplyResult:
    """What an apply did."""

    scheme_id: int
    changed: int  # grades whose value changed (what the preview counts)
    unchanged: int
    overridden: int
    already_applied: bool
    restamped: int = 0  # same grade, now attributed to this version (audit only)


def _write_grades(db: Session, *, changes: list[dict[str, Any]], scheme_id: int | None, source: str,
                  actor_id: int | None) -> None:
    """Batched UPDATE of grades plus one GradeEvent per change (executemany, not a loop of ORM saves)."""
    if not changes:
        return
    now = utcnow()
    db.flush()
    if db.get_bind().dialect.name == "postgresql":
        _write_grades_pg(db, changes=changes, actor_id=actor_id, now=now)
        db.expire_all()
        return
    db.connection().execute(
        update(Participation.__table__).where(Participation.__table__.c.id == bindparam("pid")).values(
            grade_value=bindparam("grade"), grade_source=bindparam("gsource"),
            grade_scheme_id=bindparam("scheme_id"), updated_at=bindparam("now")),
        [{"pid": c["pid"], "grade": c["grade"], "gsource": c["gsource"], "scheme_id": c["scheme_id"], "now": now}
         for c in changes],
    )
    db.connection().execute(insert(GradeEvent.__table__), [
        {"participation_id": c["pid"], "grade_value": c["grade"], "source": c["esource"], "scheme_id": c["scheme_id"],
         "points_total": c["points"], "reason": None, "actor_id": actor_id, "at": now} for c in changes
    ])
    db.expire_all()


_PG_UPDATE_GRADES = text("""
    UPDATE participation AS p
    SET grade_value = v.grade, grade_source = v.gsource, grade_scheme_id = v.scheme_id, updated_at = :now
    FROM unnest(CAST(:pids AS integer[]), CAST(:grades AS varchar[]), CAST(:gsources AS varchar[]),
                CAST(:scheme_ids AS integer[])) AS v(pid, grade, gsource, scheme_id)
    WHERE p.id = v.pid
""")
_PG_INSERT_EVENTS = text("""
    INSERT INTO grade_event (participation_id, grade_value, source, scheme_id, points_total, reason, actor_id, at)
    SELECT v.pid, v.grade, v.esource, v.scheme_id, v.points, NULL, :actor_id, :now
    FROM unnest(CAST(:pids AS integer[]), CAST(:grades AS varchar[]), CAST(:esources AS varchar[]),
                CAST(:scheme_ids AS integer[]), CAST(:points AS numeric[])) WITH ORDINALITY
         AS v(pid, grade, esource, scheme_id, points, n)
    ORDER BY v.n
""")


def _write_grades_pg(db: Session, *, changes: list[dict[str, Any]], actor_id: int | None, now: dt.datetime) -> None:
    """PostgreSQL: one UPDATE and one INSERT for the whole batch (arrays), not a statement per row."""
    columns = {k: [c[k] for c in changes] for k in ("pid", "grade", "gsource", "esource", "scheme_id", "points")}
    conn = db.connection()
    conn.execute(_PG_UPDATE_GRADES, {"pids": columns["pid"], "grades": columns["grade"],
                                     "gsources": columns["gsource"], "scheme_ids": columns["scheme_id"], "now": now})
    conn.execute(_PG_INSERT_EVENTS, {"pids": columns["pid"], "grades": columns["grade"],
                                     "esources": columns["esource"], "scheme_ids": columns["scheme_id"],
                                     "points": columns["points"], "actor_id": actor_id, "now": now})


def _change(row: PreviewRow, scheme_id: int) -> dict[str, Any]:
    if row.status == "absent" and row.proposed_grade is not None:
        gsource, esource = "absent", "absent"
    elif row.proposed_grade is None:
        gsource, esource = None, "exempt" if row.status == "exempt" else "cleared"
    else:
        gsource, esource = "scheme", "scheme"
    return {"pid": row.participation_id, "grade": row.proposed_grade, "gsource": gsource, "esource": esource,
            "scheme_id": scheme_id if row.proposed_grade is not None else None, "points": row.points}


def apply_scheme(db: Session, *, assessment: Assessment, scheme: GradeScheme, actor_id: int) -> ApplyResult:
    """Grade every participation with this version (overrides skipped); idempotent, also when several
    applies of one version run at once: the assessment is locked and the version read again, so
    the first changes the grades and the others find them applied."""
    lock_assessment(db, assessment)
    scheme = db.scalar(select(GradeScheme).where(GradeScheme.id == scheme.id)
                       .execution_options(populate_existing=True)) or scheme
    if not scheme.active:
        raise SchemeNotActive(f"Version {scheme.version} is no longer the active version of this scheme; "
                              "save its bands again to make them the next version, then apply that.")
    config = scheme_config(scheme, assessment)
    rows = preview(db, assessment=assessment, config=config)
    changes = []
    for r in rows:
        if r.overridden:
            continue
        produced_here = r.current_scheme_id == scheme.id or r.proposed_grade is None
        if r.changes or (r.proposed_grade is not None and not produced_here):
            changes.append(_change(r, scheme.id))
    already = scheme.applied_at is not None and not changes
    if not already:
        _write_grades(db, changes=changes, scheme_id=scheme.id, source="scheme", actor_id=actor_id)
        scheme = db.get(GradeScheme, scheme.id) or scheme
        scheme.applied_at, scheme.applied_by = utcnow(), actor_id
    overridden = sum(1 for r in rows if r.overridden)
    changed_ids = {r.participation_id for r in rows if r.changes}
    changed = sum(1 for c in changes if c["pid"] in changed_ids)
    return ApplyResult(scheme.id, changed, len(rows) - changed - overridden, overridden, already,
                       restamped=len(changes) - changed)


def regrade(db: Session, *, assessment: Assessment, parts: Sequence[Participation], actor_id: int | None) -> int:
    """After a change of points or status: regrade these participations with the last applied version."""
    scheme = last_applied_scheme(db, assessment_id=assessment.id)
    if scheme is None or not parts:
        return 0
    config = scheme_config(scheme, assessment)
    changes = []
    for p in parts:
        if p.manual_override:
            continue
        proposed = proposed_grade(config, p.status, p.points_total, assessment.max_points)
        if proposed != p.grade_value or (proposed is not None and p.grade_scheme_id != scheme.id):
            pct = None
            row = PreviewRow(p.id, p.student_id, p.status, p.points_total, pct, proposed, p.grade_value, False)
            changes.append(_change(row, scheme.id))
    _write_grades(db, changes=changes, scheme_id=scheme.id, source="scheme", actor_id=actor_id)
    return len(changes)


# -- overrides and audit ------------------------------------------------------------------------


def set_override(db: Session, *, assessment: Assessment, part: Participation, grade: str, reason: str,
                 actor_id: int) -> Participation:
    """A manual grade with a reason; apply never overwrites it."""
    scheme = active_scheme(db, assessment_id=assessment.id) or last_applied_scheme(db, assessment_id=assessment.id)
    if scheme is not None:
        scale = scheme_config(scheme, assessment).scale
        if grade not in scale.grades:
            raise OverrideInvalid(f"{grade!r} is not a grade of the {scale.name} scale.",
                                  details=[{"field": "grade", "message": "one of " + ", ".join(scale.grades)}])
    if not reason.strip():
        raise OverrideInvalid("A manual grade needs a reason.", details=[{"field": "reason", "message": "required"}])
    now = utcnow()
    part.manual_override, part.grade_value, part.grade_source, part.grade_scheme_id = True, grade, "override", None
    part.override_reason, part.override_by, part.override_at, part.updated_at = reason, actor_id, now, now
    db.add(GradeEvent(participation_id=part.id, grade_value=grade, source="override", scheme_id=None,
                      points_total=part.points_total, reason=reason, actor_id=actor_id, at=now))
    db.flush()
    return part


def remove_override(db: Session, *, assessment: Assessment, part: Participation, actor_id: int) -> Participation:
    """Drop a manual grade; the last applied scheme grades the participation again."""
    if not part.manual_override:
        raise OverrideInvalid("This grade is not a manual override.")
    now = utcnow()
    part.manual_override, part.override_reason, part.override_by, part.override_at = False, None, None, None
    part.grade_value, part.grade_source, part.grade_scheme_id, part.updated_at = None, None, None, now
    db.add(GradeEvent(participation_id=part.id, grade_value=None, source="override_removed", scheme_id=None,
                      points_total=part.points_total, reason=None, actor_id=actor_id, at=now))
    db.flush()
    regrade(db, assessment=assessment, parts=[part], actor_id=actor_id)
    return part


def grade_history(db: Session, *, participation_id: int) -> list[GradeEvent]:
    """Every grade a participation had, oldest first."""
    return list(db.scalars(select(GradeEvent).where(GradeEvent.participation_id == participation_id)
                           .order_by(GradeEvent.id)))


def applied_at_of(schemes: Iterable[GradeScheme]) -> dict[int, dt.datetime | None]:
    """scheme id → applied_at (for audit listings)."""
    return {s.id: s.applied_at for s in schemes}
