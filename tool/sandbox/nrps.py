"""Names and Role Provisioning Services 2.0: the course roster.

Enrolled members only (an unenrolled user disappears). Moodle keeps a Deleted or Inactive
member with that status and answers everything unless the tool sends `limit`. Canvas lists
the course's active users only, every one with status "Active"
(app/serializers/lti/ims/names_and_roles_serializer.rb), 50 a page by default and at most
(app/controllers/lti/ims/providers/memberships_provider.rb, `MAX_PAGE_SIZE`). `role` filters
by a full role URI or its short name ("Learner").
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, request

from tool.sandbox.errors import ServiceError
from tool.sandbox.guard import service_endpoint
from tool.sandbox.paging import paginate
from tool.sandbox.platform import Platform
from tool.sandbox.store import SandboxUser
from tool.sandbox.tokens import SCOPE_NRPS

MEMBERSHIP_CONTAINER_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"


def has_role(user: SandboxUser, role: str) -> bool:
    """True when the user holds the role, given as a URI or as its short name."""
    return any(r == role or r.rsplit("#", 1)[-1] == role for r in user.roles)


def member_json(user: SandboxUser, mode: str = "moodle") -> dict[str, Any]:
    """One member as NRPS JSON."""
    return {
        "status": "Active" if mode == "canvas" else user.status,
        "user_id": user.id,
        "name": user.name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "email": user.email,
        "roles": list(user.roles),
    }


def register(app: Flask, platform: Platform) -> None:
    """Add the NRPS route to the sandbox app."""

    @service_endpoint(platform)
    def memberships(context_id: str, type_id: str | None = None) -> Response:
        if context_id != platform.course.id or (type_id is not None and type_id != platform.deployment_id):
            raise ServiceError(404, "No such course")
        platform.tokens.authorize(request.headers.get("Authorization"), [SCOPE_NRPS])
        members = [u for u in list(platform.users.values()) if u.enrolled]
        if platform.mode == "canvas":
            members = [u for u in members if u.status == "Active"]  # `context.active_users`
        role = request.args.get("role")
        if role:
            members = [u for u in members if has_role(u, role)]
        page = paginate(members, mode=platform.mode, url=platform.config.base_url + request.path,
                        args=dict(request.args), nrps=True)
        course = platform.course
        body = {
            "id": platform.paths.memberships_url,
            "context": {"id": course.id, "label": course.label, "title": course.title},
            "members": [member_json(u, platform.mode) for u in page.items],
        }
        return Response(json.dumps(body), content_type=MEMBERSHIP_CONTAINER_TYPE, headers=page.headers())

    app.add_url_rule(platform.paths.memberships_rule, "nrps_memberships", memberships, methods=["GET"])
