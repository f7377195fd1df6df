"""The JSON API (every call carries `Authorization: Bearer <session token>`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from tool.web.auth import current_session, requires_session

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
