"""Deep linking: the teacher's "add a graded Tally item" form and the answer to the LMS.

The launch endpoint (tool/web/lti_views.py) hands deep linking requests to `start`; the form
posts to `/lti/deep-link/respond`, which answers the LMS with an auto-submitted form.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from tool.errors import ValidationError
from tool.lti.deeplink import (
    SOURCES,
    content_item,
    deep_link_request,
    read_request_token,
    record_deep_link_launch,
    request_token,
    response_jwt,
    validate_choice,
)
from tool.lti.launch import Launch, launch_url
from tool.web.app import get_db, get_services
from tool.web.errors import status_for

bp = Blueprint("deeplink", __name__)
DEFAULT_MAXIMUM = "100"


def _form(token: str, req: Any, values: dict[str, str], errors: dict[str, str], message: str = "") -> str:
    return render_template("deeplink_form.html", dl=token, req=req, values=values, errors=errors, message=message,
                           sources=SOURCES)


def start(launch: Launch) -> Any:
    """A validated LtiDeepLinkingRequest: record it, show the teacher the form (commits)."""
    svc = get_services()
    db = get_db()
    req = deep_link_request(launch)
    record_deep_link_launch(db, launch)
    db.commit()
    token = request_token(svc.session_secret, req, ttl=svc.settings.session_ttl_seconds)
    if not req.may_add:
        return render_template("deeplink_refused.html", dl=token, req=req)
    title = req.title or ("Tally: " + req.context_title if req.context_title else "Tally")
    return _form(token, req, {"title": title, "score_maximum": DEFAULT_MAXIMUM, "source": "ledger_total"}, {})


@bp.post("/lti/deep-link/respond")
def respond() -> Any:
    """Answer the LMS: one graded item, or (cancel) none with a message."""
    svc = get_services()
    token = request.form.get("dl", "")
    req = read_request_token(svc.session_secret, token)
    if request.form.get("action") == "cancel" or not req.may_add:
        msg = "No Tally item was added." if req.may_add else None
        errormsg = None if req.may_add else "Only teachers can add Tally items."
        jwt_value = response_jwt(svc.keys, req, [], msg=msg, errormsg=errormsg)
        return render_template("deeplink_return.html", req=req, jwt=jwt_value, added=None)
    values = {k: request.form.get(k, "") for k in ("title", "score_maximum", "source")}
    try:
        choice = validate_choice(values)
    except ValidationError as exc:
        return _form(token, req, values, dict(exc.details or {}), exc.message), status_for(exc)
    item = content_item(launch_url(svc.settings), req, choice)
    jwt_value = response_jwt(svc.keys, req, [item], msg=f"Added “{choice.title}” from Tally.")
    return render_template("deeplink_return.html", req=req, jwt=jwt_value, added=choice)
