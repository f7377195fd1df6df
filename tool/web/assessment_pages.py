"""The teacher's assessment page: task points, the grading-scheme workspace, grades and audit.

The page itself only carries ids and the session token; everything on it is loaded and
changed through the JSON API (tool/web/assessments_api.py) by templates/static/assessment.js
and schemes.js. Curves and checks are always computed by the server.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template

from tool.delivery import columns, release, rules
from tool.errors import Forbidden
from tool.lti.claims import Role
from tool.lti.models import Offering
from tool.web import released
from tool.web.app import get_db
from tool.web.assessments_api import assessment_for
from tool.web.auth import current_session, requires_session
from tool.web.ledger_api import money
from tool.web.pages import LandingView

bp = Blueprint("assessment_pages", __name__)


@bp.route("/assessments/<int:assessment_id>", methods=["GET", "POST"])
@requires_session
def assessment_page(assessment_id: int) -> Any:
    """The assessment's workspace for the staff of its course (links POST the token: session.js)."""
    s = current_session()
    if not s.is_staff:
        if Role.STUDENT in s.roles:
            raise Forbidden("This page is for the course's teachers. Your own grades are on your Tally page.")
        raise Forbidden("Only teachers and administrators of this course may open this page.")
    assessment = assessment_for(assessment_id, s)
    db = get_db()
    view = LandingView.from_db(db, s.to_context())
    key = columns.assessment_key(assessment.id)
    settings = columns.settings_for(db, offering_id=assessment.offering_id, key=key)
    held = release.held(db, db.get(Offering, assessment.offering_id), key, released.views)
    lms = {"key": key, "release": settings.release, "lmsValue": settings.lms_value, "held": len(held),
           "numbers": [(g, money(n)) for g, n in settings.numbers.items()] if settings.numbers else [],
           "canvas": [(g, money(p)) for g, p in rules.canvas_scheme(settings.numbers)] if settings.numbers else [],
           "moodleScale": rules.moodle_scale(settings.scale.grades) if settings.scale else None,
           "maximum": money(rules.column_maximum("grade", points_maximum=assessment.max_points,
                                                 numbers=settings.numbers)) if settings.numbers else None}
    return render_template(
        "assessment.html",
        token=g.tally_token,
        view=view,
        roles=[r.value for r in s.roles],
        lms=lms,
        assessment={"id": assessment.id, "title": assessment.title, "maxPoints": money(assessment.max_points),
                    "source": assessment.source, "kind": assessment.kind},
    )
