"""The roster API: a course's members, and a sync from the LMS (staff of that course only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, jsonify, request

from tool.errors import Forbidden, ValidationError
from tool import gradebook
from tool.lti.roster import RosterEntry, list_roster
from tool.web.app import get_db, get_services
from tool.web.auth import current_session, requires_staff

bp = Blueprint("roster_api", __name__, url_prefix="/api/groups")

_STATUS_FILTERS = ("active", "all")


def _own_course(group_id: int) -> int:
    """The course id when it is the session's course; Forbidden otherwise."""
    # Staff of one course are nobody in another: the id in the URL must be the session's.
    if group_id != current_session().course_id:
        raise Forbidden("This session belongs to another course; open Tally from that course instead.")
    return group_id


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _entry_json(entry: RosterEntry) -> dict[str, Any]:
    return {
        "personId": entry.person_id,
        "name": entry.name,
        "email": entry.email,
        "roles": [r.value for r in entry.roles],
        "status": entry.status,
        "lastLaunchAt": _iso(entry.last_launch_at),
    }


@bp.get("/<int:group_id>/roster")
@requires_staff
def roster(group_id: int) -> Any:
    """The course's members, students first, by family name; `?status=active` (default) or `all`."""
    course_id = _own_course(group_id)
    status = request.args.get("status", "active")
    if status not in _STATUS_FILTERS:
        raise ValidationError("status must be active or all.", details={"status": "must be active or all"})
    entries = list_roster(get_db(), course_id=course_id, include_inactive=status == "all")
    return jsonify(groupId=course_id, members=[_entry_json(e) for e in entries])


@bp.post("/<int:group_id>/roster/sync")
@requires_staff
def sync(group_id: int) -> Any:
    """Read the roster from the LMS now: `{total, added, updated, left, syncedAt}`."""
    change = gradebook.sync_roster(get_services(), course_id=_own_course(group_id))
    return jsonify(total=change.total, added=change.added, updated=change.updated, left=change.left,
                   syncedAt=_iso(change.synced_at))
