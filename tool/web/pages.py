"""HTML pages: the tool's front page, the teacher's offering overview, the student's view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tool.errors import Forbidden, NotFound
from tool.lti.claims import SCOPE_LINEITEM, Role, is_staff
from tool.lti.launch import Launch, launch_url
from tool.lti.models import Course, Membership, Offering, Person, Registration
from tool.lti.service import LaunchContext
from tool.web.app import get_db, get_services
from tool.web.auth import current_session, requires_session

bp = Blueprint("pages", __name__)


def _roster(db: Session, course_id: int) -> list[dict[str, Any]]:
    rows = db.execute(
        select(Person.id, Person.name, Person.email, Membership.roles, Membership.last_launch_at)
        .join(Membership, Membership.person_id == Person.id)
        .where(Membership.course_id == course_id, Membership.status == "active")
        .order_by(Person.family_name, Person.name)
    ).all()
    return [
        {"id": r.id, "name": r.name or "(no name)", "email": r.email,
         "roles": [x for x in r.roles.split(",") if x], "last_launch_at": r.last_launch_at}
        for r in rows
    ]


@dataclass(frozen=True)
class LandingView:
    """What the landing page shows about the session's course and placement."""

    ctx: LaunchContext
    offering_title: str
    course_title: str
    course_label: str
    person_name: str
    person_email: str
    registration_name: str
    has_ags: bool
    can_manage_columns: bool
    has_nrps: bool

    @classmethod
    def from_launch(cls, launch: Launch, ctx: LaunchContext) -> "LandingView":
        """Straight from the launch: no query needed."""
        ags = launch.ags or {}
        scopes = ags.get("scope") if isinstance(ags.get("scope"), list) else []
        return cls(
            ctx=ctx, offering_title=launch.resource_link_title or launch.context_title or "Tally",
            course_title=launch.context_title or launch.context_label or launch.context_id,
            course_label=launch.context_label, person_name=launch.name, person_email=launch.email,
            registration_name=launch.registration_name,
            has_ags=bool(ags.get("lineitems") or ags.get("lineitem")), can_manage_columns=SCOPE_LINEITEM in scopes,
            has_nrps=bool(launch.nrps_url),
        )

    @classmethod
    def from_db(cls, db: Session, ctx: LaunchContext) -> "LandingView":
        """For a later visit: read what the latest launch stored."""
        offering = db.get(Offering, ctx.offering_id)
        course = db.get(Course, ctx.course_id)
        person = db.get(Person, ctx.person_id)
        registration = db.get(Registration, ctx.registration_id)
        if offering is None or course is None or person is None or registration is None or offering.course_id != course.id:
            raise NotFound("This course or placement no longer exists in Tally.")
        return cls(
            ctx=ctx, offering_title=offering.title, course_title=course.title, course_label=course.label,
            person_name=person.name, person_email=person.email,
            registration_name=registration.name or registration.issuer,
            has_ags=bool(offering.ags_lineitems_url or offering.ags_lineitem_url),
            can_manage_columns=SCOPE_LINEITEM in (offering.ags_scopes or []),
            has_nrps=bool(offering.nrps_url or course.nrps_url),
        )


def landing_context(db: Session, view: LandingView, token: str) -> tuple[str, dict[str, Any]]:
    """The template and its variables for a landing page, by role (queries the roster for staff)."""
    common: dict[str, Any] = {"token": token, "view": view, "roles": [r.value for r in view.ctx.roles]}
    if is_staff(view.ctx.roles):
        roster = _roster(db, view.ctx.course_id)
        common["students"] = [p for p in roster if Role.STUDENT.value in p["roles"]]
        common["staff"] = [p for p in roster if Role.STUDENT.value not in p["roles"]]
        return "teacher_offering.html", common
    if Role.STUDENT in view.ctx.roles:
        return "student_home.html", common
    # The launch itself was valid (a mentor, an unknown role): a page, not an error status.
    return "no_access.html", common


@bp.get("/")
def index() -> Any:
    """What Tally is, and the URLs an LMS admin needs."""
    s = get_services().settings
    db = get_db()
    return render_template(
        "index.html",
        base=s.public_base_url,
        login_url=s.public_base_url + "/lti/login",
        launch_url=launch_url(s),
        jwks_url=s.public_base_url + "/.well-known/jwks.json",
        registrations=db.scalar(select(func.count()).select_from(Registration)) or 0,
    )


@bp.route("/offerings/<int:offering_id>", methods=["GET", "POST"])
@requires_session
def offering_page(offering_id: int) -> Any:
    """Reopen the landing page of the session's offering (links POST the token: session.js)."""
    from flask import g

    s = current_session()
    if offering_id != s.offering_id:
        raise Forbidden("This session belongs to another placement. Open Tally from that course.")
    db = get_db()
    template, context = landing_context(db, LandingView.from_db(db, s.to_context()), g.tally_token)
    return render_template(template, **context)
