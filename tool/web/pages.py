"""HTML pages: the tool's front page, the teacher's offering overview, the student's view."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tool.errors import Forbidden, NotFound
from tool.lti.claims import Role, is_staff
from tool.lti.launch import launch_url
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


def render_landing(db: Session, ctx: LaunchContext, token: str) -> Any:
    """The page a launch or a later visit lands on, by role."""
    offering = db.get(Offering, ctx.offering_id)
    course = db.get(Course, ctx.course_id)
    person = db.get(Person, ctx.person_id)
    if offering is None or course is None or person is None or offering.course_id != course.id:
        raise NotFound("This course or placement no longer exists in Tally.")
    common = {"token": token, "offering": offering, "course": course, "person": person,
              "roles": [r.value for r in ctx.roles]}
    if is_staff(ctx.roles):
        roster = _roster(db, course.id)
        students = [p for p in roster if Role.STUDENT.value in p["roles"]]
        staff = [p for p in roster if Role.STUDENT.value not in p["roles"]]
        registration = db.get(Registration, ctx.registration_id)
        return render_template(
            "teacher_offering.html", **common, students=students, staff=staff, registration=registration,
            has_ags=bool(offering.ags_lineitems_url or offering.ags_lineitem_url),
            can_manage_columns="https://purl.imsglobal.org/spec/lti-ags/scope/lineitem" in (offering.ags_scopes or []),
            has_nrps=bool(offering.nrps_url or course.nrps_url),
        )
    if Role.STUDENT in ctx.roles:
        return render_template("student_home.html", **common)
    # The launch itself was valid (a mentor, an unknown role): a page, not an error status.
    return render_template("no_access.html", **common)


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


@bp.get("/offerings/<int:offering_id>")
@requires_session
def offering_page(offering_id: int) -> Any:
    """Reopen the landing page of the session's offering (links carry ?st=…)."""
    from flask import g

    s = current_session()
    if offering_id != s.offering_id:
        raise Forbidden("This session belongs to another placement. Open Tally from that course.")
    return render_landing(get_db(), s.to_context(), g.tally_token)


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness and database check for load balancers."""
    from sqlalchemy import text

    get_db().execute(text("SELECT 1"))
    return {"status": "ok"}
