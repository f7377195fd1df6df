"""Ledger services: record, correct and void entries; list them; totals and breakdowns.

Services take a Session and never commit. Totals count ACTIVE entries only and come from
one aggregate query per request, never a loop per student.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, func, insert, select, text
from sqlalchemy.orm import Session

from tool.clock import utcnow
from tool.errors import NotFound, ToolError
from tool.ledger.models import GradeEntry, GradeEntryRevision
from tool.lti.models import Membership, Person

ZERO = Decimal("0.00")


class EntryVoided(ToolError):
    """The entry was voided; it can be read but no longer changed."""

    code = "entry_voided"


class StudentNotInOffering(ToolError):
    """The person is not a student of the offering's course roster."""

    code = "student_not_in_offering"


class EntryChanged(ToolError):
    """The entry changed since the version the writer read (If-Match / `version`): nothing saved."""

    code = "entry_changed"


@dataclass(frozen=True)
class EntryValues:
    """The values of an entry a teacher writes."""

    points: Decimal
    type_code: str
    type_label: str | None = None
    description: str | None = None
    lesson_id: str | None = None
    homework_submission_id: str | None = None
    graded_at: dt.datetime | None = None


@dataclass(frozen=True)
class Window:
    """An optional graded_at window [since, until]."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def clauses(self) -> list[Any]:
        """SQL conditions for this window."""
        out = []
        if self.since is not None:
            out.append(GradeEntry.graded_at >= self.since)
        if self.until is not None:
            out.append(GradeEntry.graded_at <= self.until)
        return out


@dataclass
class Totals:
    """A student's total and breakdown (ACTIVE entries only)."""

    total: Decimal = ZERO
    count: int = 0
    by_type: dict[str, Decimal] = field(default_factory=dict)
    by_label: dict[str, Decimal] = field(default_factory=dict)  # CUSTOM entries by their label
    count_by_type: dict[str, int] = field(default_factory=dict)

    def add(self, type_code: str, label: str | None, points: Decimal, count: int) -> None:
        """Fold one aggregate row in."""
        self.total += points
        self.count += count
        self.by_type[type_code] = self.by_type.get(type_code, ZERO) + points
        self.count_by_type[type_code] = self.count_by_type.get(type_code, 0) + count
        if type_code == "CUSTOM" and label:
            self.by_label[label] = self.by_label.get(label, ZERO) + points


# -- roster ------------------------------------------------------------------------------


def roster_students(db: Session, *, course_id: int) -> list[Any]:
    """The course's active students (id, name, email, sub), by family name."""
    return list(
        db.connection().execute(
            select(Person.id, Person.name, Person.given_name, Person.family_name, Person.email, Person.sub)
            .join(Membership, Membership.person_id == Person.id)
            .where(Membership.course_id == course_id, Membership.is_student.is_(True), Membership.status == "active")
            .order_by(Person.family_name, Person.given_name, Person.name, Person.id)
        )
    )


def roster_student_ids(db: Session, *, course_id: int, candidates: Iterable[int] | None = None) -> set[int]:
    """Ids of active students of the course (restricted to `candidates` when given)."""
    stmt = select(Membership.person_id).where(
        Membership.course_id == course_id, Membership.is_student.is_(True), Membership.status == "active")
    wanted = None if candidates is None else set(candidates)
    if wanted is not None and len(wanted) <= 20:
        stmt = stmt.where(Membership.person_id.in_(list(wanted)))
    ids = set(db.scalars(stmt))
    # Many candidates (a bulk request): read the roster once and intersect here, rather than
    # send hundreds of parameters.
    return ids if wanted is None else ids & wanted


def belongs_to_offering(db: Session, *, course_id: int, offering_id: int, student_id: int) -> bool:
    """True for an active student of the course, or anyone with entries in the offering."""
    if roster_student_ids(db, course_id=course_id, candidates=[student_id]):
        return True
    return db.scalar(
        select(GradeEntry.id).where(GradeEntry.offering_id == offering_id, GradeEntry.student_id == student_id).limit(1)
    ) is not None


def require_students(db: Session, *, course_id: int, student_ids: Sequence[int]) -> None:
    """Raise StudentNotInOffering naming every id that is not an active student of the course."""
    known = roster_student_ids(db, course_id=course_id, candidates=student_ids)
    missing = [sid for sid in student_ids if sid not in known]
    if missing:
        raise StudentNotInOffering(
            "Not a student of this offering: " + ", ".join(str(m) for m in missing),
            details={"studentIds": missing},
        )


# -- writing -----------------------------------------------------------------------------


def record_entry(db: Session, *, offering_id: int, student_id: int, actor_id: int, values: EntryValues) -> GradeEntry:
    """Create one ACTIVE entry."""
    now = utcnow()
    entry = GradeEntry(
        offering_id=offering_id, student_id=student_id, points=values.points, type_code=values.type_code,
        type_label=values.type_label, description=values.description, lesson_id=values.lesson_id,
        homework_submission_id=values.homework_submission_id, graded_at=values.graded_at or now,
        status="ACTIVE", version=1, created_by=actor_id, created_at=now,
    )
    db.add(entry)
    db.flush()
    return entry


_BULK_INSERT_PG = text(
    """
    INSERT INTO grade_entry (offering_id, student_id, points, type_code, type_label, description, lesson_id,
                             homework_submission_id, graded_at, status, version, created_by, created_at)
    SELECT :offering_id, t.student_id, t.points, t.type_code, t.type_label, t.description, t.lesson_id,
           t.homework_submission_id, t.graded_at, 'ACTIVE', 1, :actor_id, :now
    FROM unnest(CAST(:student_ids AS integer[]), CAST(:points AS numeric[]), CAST(:type_codes AS varchar[]),
                CAST(:type_labels AS varchar[]), CAST(:descriptions AS text[]), CAST(:lesson_ids AS varchar[]),
                CAST(:homework_ids AS varchar[]), CAST(:graded_ats AS timestamptz[]))
         WITH ORDINALITY AS t(student_id, points, type_code, type_label, description, lesson_id,
                              homework_submission_id, graded_at, n)
    ORDER BY t.n
    RETURNING id
    """
)


def record_entries(db: Session, *, offering_id: int, actor_id: int, items: Sequence[tuple[int, EntryValues]]) -> list[int]:
    """Create many ACTIVE entries in one statement (all or nothing: the caller's transaction); ids in item order."""
    if not items:
        return []
    now = utcnow()
    if db.get_bind().dialect.name == "postgresql":
        # One small statement with arrays instead of a 6,500-parameter VALUES list: psycopg
        # would parse the long SQL on every request and PostgreSQL plan it (benchmarks/ledger.py).
        params = {
            "offering_id": offering_id, "actor_id": actor_id, "now": now,
            "student_ids": [sid for sid, _ in items], "points": [v.points for _, v in items],
            "type_codes": [v.type_code for _, v in items], "type_labels": [v.type_label for _, v in items],
            "descriptions": [v.description for _, v in items], "lesson_ids": [v.lesson_id for _, v in items],
            "homework_ids": [v.homework_submission_id for _, v in items],
            "graded_ats": [v.graded_at or now for _, v in items],
        }
        return [r[0] for r in db.connection().execute(_BULK_INSERT_PG, params)]
    rows = [
        {
            "offering_id": offering_id, "student_id": student_id, "points": v.points, "type_code": v.type_code,
            "type_label": v.type_label, "description": v.description, "lesson_id": v.lesson_id,
            "homework_submission_id": v.homework_submission_id, "graded_at": v.graded_at or now,
            "status": "ACTIVE", "version": 1, "created_by": actor_id, "created_at": now,
        }
        for student_id, v in items
    ]
    stmt = insert(GradeEntry.__table__).returning(GradeEntry.__table__.c.id, sort_by_parameter_order=True)
    return [r[0] for r in db.connection().execute(stmt, rows)]


def get_entry(db: Session, entry_id: int, *, for_update: bool = False) -> GradeEntry:
    """The entry, or NotFound; `for_update` locks its row until the transaction ends and reads it
    as committed now, so writers of one entry take turns and each sees the one before."""
    entry = db.get(GradeEntry, entry_id, with_for_update=for_update or None, populate_existing=for_update)
    if entry is None:
        raise NotFound(f"Grade entry {entry_id} does not exist.")
    return entry


def require_version(entry: GradeEntry, expected: int | None) -> None:
    """EntryChanged unless the entry is still at the version the writer read (None: any version)."""
    if expected is not None and expected != entry.version:
        raise EntryChanged(
            f"Grade entry {entry.id} was changed by someone else since you read it (you read version {expected}, "
            f"it is now version {entry.version}). Nothing was saved; check its new values and save again.",
            details={"currentVersion": entry.version, "expectedVersion": expected})


def update_entry(db: Session, *, entry: GradeEntry, actor_id: int, values: EntryValues,
                 expected_version: int | None = None) -> GradeEntry:
    """Correct an ACTIVE entry, keeping its previous values as a revision.

    The caller holds the entry's row lock (get_entry(for_update=True)): the version read here is
    the committed one, so N accepted corrections make N revisions with consecutive versions.
    """
    if entry.status != "ACTIVE":
        raise EntryVoided(f"Grade entry {entry.id} is voided and cannot be changed.")
    require_version(entry, expected_version)
    db.add(
        GradeEntryRevision(
            entry_id=entry.id, version=entry.version, points=entry.points, type_code=entry.type_code,
            type_label=entry.type_label, description=entry.description, lesson_id=entry.lesson_id,
            homework_submission_id=entry.homework_submission_id, graded_at=entry.graded_at,
            changed_by=actor_id, changed_at=utcnow(),
        )
    )
    entry.points = values.points
    entry.type_code = values.type_code
    entry.type_label = values.type_label
    entry.description = values.description
    entry.lesson_id = values.lesson_id
    entry.homework_submission_id = values.homework_submission_id
    entry.graded_at = values.graded_at or entry.graded_at
    entry.version += 1
    entry.updated_by = actor_id
    entry.updated_at = utcnow()
    db.flush()
    return entry


def void_entry(db: Session, *, entry: GradeEntry, actor_id: int, reason: str,
               expected_version: int | None = None) -> GradeEntry:
    """Void an ACTIVE entry: it stays for audit but leaves every total (the caller holds its row lock)."""
    if entry.status != "ACTIVE":
        raise EntryVoided(f"Grade entry {entry.id} is already voided.")
    require_version(entry, expected_version)
    entry.status = "VOIDED"
    entry.voided_by = actor_id
    entry.voided_at = utcnow()
    entry.void_reason = reason
    db.flush()
    return entry


def entry_history(db: Session, *, entry_id: int) -> list[GradeEntryRevision]:
    """Earlier versions of an entry, oldest first."""
    return list(
        db.scalars(select(GradeEntryRevision).where(GradeEntryRevision.entry_id == entry_id).order_by(GradeEntryRevision.version))
    )


# -- reading -----------------------------------------------------------------------------


def list_entries(
    db: Session, *, offering_id: int, student_id: int | None = None, window: Window = Window(), include_voided: bool = False
) -> list[GradeEntry]:
    """Entries of an offering (optionally one student's), newest first; voided ones only on request."""
    stmt = select(GradeEntry).where(GradeEntry.offering_id == offering_id, *window.clauses())
    if student_id is not None:
        stmt = stmt.where(GradeEntry.student_id == student_id)
    if not include_voided:
        stmt = stmt.where(GradeEntry.status == "ACTIVE")
    return list(db.scalars(stmt.order_by(GradeEntry.graded_at.desc(), GradeEntry.id.desc())))


def totals_by_student(
    db: Session, *, offering_id: int, student_ids: Iterable[int] | None = None, window: Window = Window()
) -> dict[int, Totals]:
    """Totals and breakdowns per student over ACTIVE entries, from one aggregate query.

    Every student with entries in the window gets a Totals (zero when all were voided), so
    callers also learn who has entries without a second scan.
    """
    conditions = [GradeEntry.offering_id == offering_id, *window.clauses()]
    if student_ids is not None:
        conditions.append(GradeEntry.student_id.in_(list(set(student_ids))))
    active = GradeEntry.status == "ACTIVE"
    # One pass over the offering's index, in (student, type, label) order; voided rows only
    # say "has entries". Core rows, not ORM: thousands of rows for a class of 500.
    rows = db.connection().execute(
        select(GradeEntry.student_id, GradeEntry.type_code, GradeEntry.type_label,
               func.sum(GradeEntry.points).filter(active), func.count().filter(active))
        .where(and_(*conditions))
        .group_by(GradeEntry.student_id, GradeEntry.type_code, GradeEntry.type_label)
    ).all()  # one fetchall: row-at-a-time fetching costs more than the query here
    out: dict[int, Totals] = {}
    for student_id, type_code, label, points, count in rows:
        totals = out.get(student_id)
        if totals is None:
            totals = out[student_id] = Totals()
        if count:
            totals.add(type_code, label, points, count)
    return out


def people(db: Session, ids: Iterable[int]) -> list[Any]:
    """Name and email of these people (e.g. students who left the roster but have entries)."""
    wanted = list(set(ids))
    if not wanted:
        return []
    return list(db.execute(
        select(Person.id, Person.name, Person.given_name, Person.family_name, Person.email, Person.sub)
        .where(Person.id.in_(wanted))
    ))
