"""The invariant check of one offering: `python -m tool verify --offering N`.

Everything Tally derives is computed again from what it is derived from, and compared:

* every grade entry has one revision per earlier version, versions 1 … n−1, each once (a lost
  correction leaves a gap or a repeat);
* a ledger-fed participation's points are its student's ledger total (of its type codes);
* a participation's grade is what the last applied scheme gives (manual grades excepted), and
  its last grade event says the same;
* each delivery column's desired score of every student is what the ledger total or the
  participation gives now; a pair `delivered` holds in `accepted` what it desires (a held-back
  progress score excepted); the queue columns agree with the state.

Read only: it writes nothing and never calls the LMS. A difference is a bug (or a write
still in flight: run it when writes have settled).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, func, or_, select
from sqlalchemy.orm import Session

from tool.assessments import service as assessments
from tool.assessments.models import Assessment, GradeEvent, Participation
from tool.delivery import rules
from tool.delivery import schedule
from tool.delivery.models import DUE_STATES, LineItemBinding, ScoreDelivery
from tool.errors import NotFound
from tool.ledger import service as ledger
from tool.ledger.models import GradeEntry, GradeEntryRevision
from tool.lti.models import Membership, Offering, Person

_T = cast(Table, ScoreDelivery.__table__)


@dataclass(frozen=True)
class Difference:
    """One place where what Tally stores differs from what it is derived from."""

    kind: str  # entry_history | ledger_points | grade | grade_event | desired | accepted | queue
    subject: str  # what, in words: "entry 17", "Ann Lee in Final exam"
    expected: str
    actual: str

    def line(self) -> str:
        """The difference as one line for people."""
        return f"{self.kind}: {self.subject}: expected {self.expected}, found {self.actual}"


@dataclass
class Report:
    """What one check of an offering covered and found."""

    offering_id: int
    checked: Counter[str] = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing differs."""
        return not self.differences

    def summary(self) -> str:
        """What was checked, in one line."""
        parts = [f"{n} {what}" for what, n in sorted(self.checked.items())]
        return f"offering {self.offering_id}: checked " + (", ".join(parts) if parts else "nothing")


def _score_text(score: dict[str, Any] | None) -> str:
    if score is None:
        return "nothing"
    content = rules.content(score) or {}
    return ", ".join(f"{k}={content[k]}" for k in sorted(content))


def _check_entries(db: Session, offering_id: int, report: Report, name: dict[int, str]) -> None:
    revisions = {r.entry_id: r for r in db.execute(
        select(GradeEntryRevision.entry_id, func.count().label("n"),
               func.count(func.distinct(GradeEntryRevision.version)).label("distinct"),
               func.min(GradeEntryRevision.version).label("low"), func.max(GradeEntryRevision.version).label("high"))
        .join(GradeEntry, GradeEntry.id == GradeEntryRevision.entry_id)
        .where(GradeEntry.offering_id == offering_id).group_by(GradeEntryRevision.entry_id))}
    for entry_id, version, student_id in db.execute(select(GradeEntry.id, GradeEntry.version, GradeEntry.student_id)
                                                    .where(GradeEntry.offering_id == offering_id)):
        report.checked["entries"] += 1
        r = revisions.get(entry_id)
        n, distinct, low, high = (r.n, r.distinct, r.low, r.high) if r is not None else (0, 0, None, None)
        report.checked["revisions"] += n
        expected_high = version - 1 if version > 1 else None
        if (n, distinct, low if n else None, high) != (version - 1, version - 1, 1 if version > 1 else None,
                                                      expected_high):
            report.differences.append(Difference(
                "entry_history", f"entry {entry_id} of {name.get(student_id, student_id)}",
                f"version {version} with revisions 1…{version - 1}, each once",
                f"{n} revisions, {distinct} distinct, versions {low}…{high}"))


def _check_assessments(db: Session, offering_id: int, report: Report, name: dict[int, str]) -> None:
    for a in db.scalars(select(Assessment).where(Assessment.offering_id == offering_id).order_by(Assessment.id)):
        parts = assessments.participations_of(db, assessment_id=a.id)
        report.checked["participations"] += len(parts)
        if a.source == "ledger":
            totals = ledger.totals_by_student(db, offering_id=offering_id, student_ids=[p.student_id for p in parts])
            for p in parts:
                want = assessments.ledger_points(totals.get(p.student_id), a.ledger_type_codes or [])
                if want != p.points_total:
                    report.differences.append(Difference("ledger_points", f"{name.get(p.student_id)} in {a.title}",
                                                         f"{want} points (the ledger)", f"{p.points_total}"))
        scheme = assessments.last_applied_scheme(db, assessment_id=a.id)
        config = assessments.scheme_config(scheme, a) if scheme is not None else None
        last_events = dict(db.execute(
            select(GradeEvent.participation_id, GradeEvent.grade_value)
            .where(GradeEvent.id.in_(select(func.max(GradeEvent.id)).join(
                Participation, Participation.id == GradeEvent.participation_id)
                .where(Participation.assessment_id == a.id).group_by(GradeEvent.participation_id)))).all())
        for p in parts:
            who = f"{name.get(p.student_id, p.student_id)} in {a.title}"
            if not p.manual_override:
                report.checked["grades"] += 1
                want = assessments.proposed_grade(config, p.status, p.points_total, a.max_points) \
                    if config is not None else None
                if want != p.grade_value:
                    report.differences.append(Difference("grade", who, f"grade {want} (the applied scheme)",
                                                         f"grade {p.grade_value}"))
            if p.id in last_events and last_events[p.id] != p.grade_value:
                report.differences.append(Difference("grade_event", who, f"the last grade event says {p.grade_value}",
                                                     f"it says {last_events[p.id]}"))


def _check_column(db: Session, binding: LineItemBinding, report: Report, name: dict[int, str]) -> None:
    rows = {r.person_id: r for r in db.execute(
        select(_T.c.id, _T.c.person_id, _T.c.state, _T.c.desired, _T.c.desired_kind, _T.c.accepted,
               _T.c.next_attempt_at, _T.c.note, _T.c.held).where(_T.c.binding_id == binding.id))}
    if binding.assessment_id is not None:
        desires = schedule.assessment_desires(db, binding, binding.assessment_id, None)
    else:
        with_entries = set(ledger.totals_by_student(db, offering_id=binding.offering_id))
        desires = schedule.total_desires(db, binding, with_entries | set(rows))
    for person_id in sorted(set(desires) | set(rows)):
        who = f"{name.get(person_id, person_id)} in {binding.label}"
        want, row = desires.get(person_id), rows.get(person_id)
        report.checked["delivery rows"] += 1
        if want is None or row is None:
            report.differences.append(Difference("desired", who, _score_text(want.score.to_json()) if want else "no row",
                                                 _score_text(row.desired) if row is not None else "no row"))
            continue
        if row.desired_kind != want.kind.value or not rules.same_content(row.desired, want.score.to_json()):
            report.differences.append(Difference("desired", who, _score_text(want.score.to_json()),
                                                 _score_text(row.desired)))
        if row.state == "delivered":
            held_back = row.note == schedule.HELD_NOTE
            if not held_back and not rules.same_content(row.accepted, row.desired):
                report.differences.append(Difference("accepted", who, _score_text(row.desired),
                                                     _score_text(row.accepted)))
        due = row.next_attempt_at is not None
        if due != (row.state in DUE_STATES and not row.held):
            report.differences.append(Difference("queue", who, f"state {row.state} and next attempt "
                                                 f"{'set' if row.state in DUE_STATES else 'empty'}",
                                                 f"next attempt {'set' if due else 'empty'}"))


def verify_offering(db: Session, *, offering_id: int) -> Report:
    """Every difference between what Tally stores for the offering and what it is derived from."""
    offering = db.get(Offering, offering_id)
    if offering is None:
        raise NotFound(f"Offering {offering_id} does not exist.")
    report = Report(offering_id)
    name = dict(db.execute(select(Person.id, Person.name).where(or_(
        Person.id.in_(select(Membership.person_id).where(Membership.course_id == offering.course_id)),
        Person.id.in_(select(GradeEntry.student_id).where(GradeEntry.offering_id == offering_id))))).all())
    _check_entries(db, offering_id, report, name)
    _check_assessments(db, offering_id, report, name)
    bindings = list(db.scalars(select(LineItemBinding).where(LineItemBinding.offering_id == offering_id)
                               .order_by(LineItemBinding.id)))
    report.checked["delivery columns"] += len(bindings)
    for binding in bindings:
        _check_column(db, binding, report, name)
    return report
