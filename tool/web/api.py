"""The JSON API (every call carries `Authorization: Bearer <session token>`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from tool.clock import epoch
from tool.errors import SessionError
from tool.web.auth import current_session, issue_token, requires_session

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/me")
@requires_session
def me() -> Any:
    """Who this session is: `{personId, courseId, offeringId, roles}` (courseId = the seed's groupId)."""
    s = current_session()
    return jsonify(
        personId=s.person_id,
        courseId=s.course_id,
        offeringId=s.offering_id,
        roles=[r.value for r in s.roles],
        expiresAt=s.expires_at,
    )


@bp.post("/session/renew")
@requires_session
def renew_session() -> Any:
    """A fresh token for a still-valid session, so that an open page never loses a save to expiry.

    Renewals descend from one launch and stop `session_max_age_seconds` after it: then the
    person opens Tally from the LMS again, which checks their roles anew.
    """
    s = current_session()
    services = current_app.extensions["tally"]
    settings = services.settings
    now = int(epoch())
    if now - s.launched_at >= settings.session_max_age_seconds:
        raise SessionError("This Tally session is too old to renew. Open Tally again from your course.",
                           code="session_expired")
    ttl = min(settings.session_ttl_seconds, s.launched_at + settings.session_max_age_seconds - now)
    token = issue_token(services.session_secret, s.to_context(), ttl=ttl, launched_at=s.launched_at)
    return jsonify(token=token, expiresAt=now + ttl)
