"""What the teacher's sync page shows, and what it can do: retry failed, resend, set the total's maximum.

Services take a Session and never commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from tool.ags.client import is_canvas
from tool.ags.score import Score
from tool.delivery import rules
from tool.delivery.models import DELIVERY_STATES, LineItemBinding, ScoreDelivery
from tool.delivery.schedule import delivers, lock_offering_columns, reschedule_binding, total_binding
from tool.errors import NotFound, ToolError, ValidationError
from tool.lti.claims import SCOPE_LINEITEM
from tool.lti.models import Deployment, Offering, Person, Registration

_T = cast(Table, ScoreDelivery.__table__)
_B = cast(Table, LineItemBinding.__table__)


class MaximumFromLms(ToolError):
    """The total is bound to the LMS's own column, whose maximum the LMS decides."""

    code = "maximum_from_lms"


@dataclass(frozen=True)
class ColumnView:
    """One gradebook column Tally writes."""

    binding_id: int
    target: str
    assessment_id: int | None
    label: str
    score_maximum: Decimal
    maximum_source: str
    lineitem_url: str | None
    bound_via: str | None
    last_error: str | None
    next_attempt_at: dt.datetime | None


@dataclass(frozen=True)
class RowView:
    """One (column, student) pair: what Tally wants there, what the LMS accepted, and the state."""

    delivery_id: int
    binding_id: int
    person_id: int
    name: str
    state: str
    desired: Score
    accepted: Score | None
    accepted_at: dt.datetime | None
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status: int | None
    message: str | None  # the platform's words for failed, retrying and superseded rows
    note: str | None
    held: bool = False  # a change waits for the teacher's release (manual column)


@dataclass(frozen=True)
class OfferingDelivery:
    """The whole sync page of an offering."""

    offering_id: int
    connected: bool
    can_manage_columns: bool
    canvas: bool
    columns: list[ColumnView]
    rows: list[RowView]
    counts: dict[str, int]

    def rows_of(self, binding_id: int) -> list[RowView]:
        """The rows of one column."""
        return [r for r in self.rows if r.binding_id == binding_id]


def get_offering(db: Session, offering_id: int) -> Offering:
    """The offering, or NotFound."""
    offering = db.get(Offering, offering_id)
    if offering is None:
        raise NotFound(f"Offering {offering_id} does not exist.")
    return offering


NOT_OFFERED = ("The LMS does not accept grades from this placement: its launches carry no score permission. "
               "In Moodle, tick \"Accept grades from the tool\" on the activity, then open Tally again.")


def require_delivery(offering: Offering) -> Offering:
    """The offering, if its LMS accepts scores from it; ValidationError (delivery_not_offered) otherwise."""
    if not delivers(offering):
        raise ValidationError(NOT_OFFERED, code="delivery_not_offered")
    return offering


def registration_of(db: Session, offering: Offering) -> Registration:
    """The registration an offering was launched through."""
    reg = db.scalar(select(Registration).join(Deployment, Deployment.registration_id == Registration.id)
                    .where(Deployment.id == offering.deployment_id))
    if reg is None:
        raise NotFound("The offering's platform registration no longer exists.")
    return reg


def offering_delivery(db: Session, *, offering_id: int) -> OfferingDelivery:
    """Every column of the offering and every pair's state, students by name."""
    offering = get_offering(db, offering_id)
    columns = [ColumnView(b.id, b.target, b.assessment_id, b.label, b.score_maximum, b.maximum_source,
                          b.lineitem_url, b.bound_via, b.last_error, b.next_attempt_at)
               for b in db.scalars(select(LineItemBinding).where(LineItemBinding.offering_id == offering.id)
                                   .order_by(LineItemBinding.assessment_id.is_not(None), LineItemBinding.id))]
    rows = []
    if columns:
        result = db.execute(
            select(_T.c.id, _T.c.binding_id, _T.c.person_id, _T.c.state, _T.c.desired, _T.c.accepted,
                   _T.c.accepted_at, _T.c.attempts, _T.c.next_attempt_at, _T.c.last_status, _T.c.last_error,
                   _T.c.note, _T.c.held, Person.name, Person.family_name, Person.given_name)
            .join(Person, Person.id == _T.c.person_id)
            .where(_T.c.binding_id.in_([c.binding_id for c in columns]))
            .order_by(Person.family_name, Person.given_name, Person.name, _T.c.id))
        for row in result:
            shows_words = row.state in ("failed", "retrying", "waiting", "superseded")
            rows.append(RowView(row.id, row.binding_id, row.person_id, row.name or "(no name)", row.state,
                                Score.from_json(row.desired), Score.from_json(row.accepted) if row.accepted else None,
                                row.accepted_at, row.attempts, row.next_attempt_at, row.last_status,
                                row.last_error if shows_words else None, row.note, bool(row.held)))
    counts = {state: 0 for state in DELIVERY_STATES}
    counts["held"] = 0  # changes of manual columns waiting for release (their state says what was before)
    for r in rows:
        counts["held" if r.held else r.state] += 1
    reg = registration_of(db, offering)
    return OfferingDelivery(offering.id, delivers(offering), SCOPE_LINEITEM in (offering.ags_scopes or []),
                            is_canvas(reg), columns, rows, counts)


def _offering_rows(offering_id: int) -> Any:
    return select(_B.c.id).where(_B.c.offering_id == offering_id).scalar_subquery()


def retry_failed(db: Session, *, offering_id: int, now: dt.datetime) -> int:
    """Send the offering's failed scores again (attempts start over); how many."""
    get_offering(db, offering_id)
    lock_offering_columns(db, offering_id=offering_id)
    result = db.connection().execute(
        update(_T).where(_T.c.binding_id.in_(_offering_rows(offering_id)), _T.c.state == "failed",
                         _T.c.held.is_(False))
        .values(state="pending", next_attempt_at=now, attempts=0, updated_at=now))
    return int(result.rowcount or 0)


def resend(db: Session, *, offering_id: int, delivery_ids: Sequence[int], now: dt.datetime) -> int:
    """Send these pairs' scores again with a new timestamp, over whatever the LMS holds now.

    For a superseded score, or one the read-back shows was changed in the LMS: the teacher
    decides that Tally's grade wins, so the new version is marked to pass the check of what
    Canvas holds (tool/delivery/guard.py). Ids not of this offering are refused (none is changed).
    """
    get_offering(db, offering_id)
    wanted = sorted(set(delivery_ids))
    if not wanted:
        raise ValidationError("Name the scores to send again.", details=[{"field": "deliveryIds",
                                                                         "message": "at least one id"}])
    lock_offering_columns(db, offering_id=offering_id)
    rows = db.connection().execute(
        select(_T.c.id, _T.c.desired, _T.c.desired_at, _T.c.last_sent_ts, _T.c.held)
        .where(_T.c.id.in_(wanted), _T.c.binding_id.in_(_offering_rows(offering_id)))).all()
    unknown = sorted(set(wanted) - {r.id for r in rows})
    if unknown:
        raise ValidationError("Some scores are not of this offering.",
                              details=[{"field": "deliveryIds", "message": f"unknown id {i}"} for i in unknown])
    changes = []
    for r in rows:
        if r.held:
            continue  # a held change goes out with its release, not before
        at = rules.next_timestamp(now, rules.latest(r.desired_at, r.last_sent_ts))
        changes.append({"rid": r.id, "desired": Score.from_json(r.desired).with_timestamp(at).to_json(), "at": at,
                        "now": now})
    db.connection().execute(
        update(_T).where(_T.c.id == bindparam("rid")).values(
            desired=bindparam("desired"), desired_at=bindparam("at"), desired_version=_T.c.desired_version + 1,
            # SET reads the row as it was: the override names the version this update writes.
            lms_override_version=_T.c.desired_version + 1,
            state="pending", next_attempt_at=bindparam("now"), attempts=0, note=None, updated_at=bindparam("now")),
        changes) if changes else None
    return len(changes)


def set_total_maximum(db: Session, *, offering_id: int, maximum: Decimal, now: dt.datetime) -> LineItemBinding:
    """The maximum of the offering's total column; every total score follows."""
    offering = require_delivery(get_offering(db, offering_id))
    binding = total_binding(db, offering)
    if binding.maximum_source == "lms":
        raise MaximumFromLms("The total goes to the LMS's own column for this placement; its maximum "
                             f"({rules.points_text(binding.score_maximum)}) is set in the LMS.")
    if binding.score_maximum == maximum and binding.maximum_source == "teacher":
        return binding
    binding.score_maximum, binding.maximum_source, binding.updated_at = maximum, "teacher", now
    binding.needs_update = binding.lineitem_url is not None
    db.flush()
    reschedule_binding(db, binding)
    return binding


def counts_by_state(db: Session, *, offering_id: int) -> dict[str, int]:
    """How many pairs of the offering are in each state."""
    counts = {state: 0 for state in DELIVERY_STATES}
    for state, n in db.execute(select(_T.c.state, func.count()).where(
            _T.c.binding_id.in_(_offering_rows(offering_id))).group_by(_T.c.state)):
        counts[state] = n
    return counts


# -- release (issue 15): each column's settings, and per student what is held --------------------------


@dataclass(frozen=True)
class StudentRelease:
    """One student in one column: `held` (a change waits for release), else where the released one is."""

    student_id: int
    name: str
    state: str  # held | released (on its way) | delivered | superseded | failed | none
    held: bool
    held_score: Score | None


@dataclass(frozen=True)
class ColumnRelease:
    """One LMS column: its settings, its students, and how many are in each release state."""

    key: str
    label: str
    settings: Any  # columns.ColumnSettings
    students: list[StudentRelease]
    counts: dict[str, int]


RELEASE_STATES = ("held", "released", "delivered", "superseded", "failed")
_ROW_STATE = {"delivered": "delivered", "superseded": "superseded", "failed": "failed", "pending": "released",
              "retrying": "released", "waiting": "released"}


def _empty(row: RowView) -> bool:
    """True for a pair with nothing to tell: no grade or comment wanted, none in the LMS."""
    def says(score: Score | None) -> bool:
        return score is not None and (score.score_given is not None or bool(score.comment))
    return not says(row.desired) and not says(row.accepted)


def column_releases(db: Session, view: OfferingDelivery, views: Any) -> list[ColumnRelease]:
    """Every column of the offering (total, then each assessment) with its release states."""
    from tool.assessments.models import Assessment
    from tool.delivery import columns, release

    offering = get_offering(db, view.offering_id)
    titles = dict(db.execute(select(Assessment.id, Assessment.title).where(Assessment.offering_id == offering.id)).all())
    rows_by_target = {c.target: view.rows_of(c.binding_id) for c in view.columns}
    out = []
    for key in release.column_keys(db, offering.id):
        settings = columns.settings_for(db, offering_id=offering.id, key=key)
        label = "Total" if key == rules.TOTAL_KEY else titles.get(int(key.removeprefix("assessment-")), key)
        held = release.held(db, offering, key, views)
        rows = {r.person_id: r for r in rows_by_target.get(rules.target_of_key(key) or "", [])}
        ids = release.students_of(db, offering, key)
        seen = set(release.released_views(db, offering.id, key, ids))
        names = dict(db.execute(select(Person.id, Person.name).where(Person.id.in_(ids))).all()) if ids else {}
        students, counts = [], {s: 0 for s in RELEASE_STATES}
        for sid in ids:
            h = held.get(sid)
            row = rows.get(sid)
            if h is not None:
                state = "held"
            elif row is not None and not _empty(row):
                state = _ROW_STATE.get(row.state, row.state)
            else:
                state = "released" if sid in seen else "none"
            if state in counts:
                counts[state] += 1
            students.append(StudentRelease(sid, names.get(sid) or "(no name)", state, h is not None,
                                           h.score if h is not None else None))
        out.append(ColumnRelease(key, label, settings, students, counts))
    return out
