"""Registering Tally: Dynamic Registration (`/lti/register`) and the Canvas developer key JSON.

`/lti/register` does nothing for an anonymous caller without a valid one-time invitation
(tool/lti/invitations.py), unless `dynamic_registration_open` (development, the sandbox).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, render_template, request
from sqlalchemy.exc import SQLAlchemyError

from tool.lti import invitations
from tool.lti.dynreg import (
    CLOSE_MESSAGE,
    DynamicRegistrationError,
    canvas_developer_key,
    register_dynamically,
    tool_urls,
)
from tool.logs import event
from tool.web.app import get_db, get_services
from tool.web.errors import status_for

bp = Blueprint("registration", __name__)
log = logging.getLogger("tool.lti.dynreg")


@bp.get("/lti/register")
def register() -> Any:
    """The registration URL the admin pastes into the LMS; the LMS opens it with its two parameters."""
    svc = get_services()
    urls = tool_urls(svc.settings)
    config_url = (request.args.get("openid_configuration") or "").strip()
    token = (request.args.get("registration_token") or "").strip()
    invitation = (request.args.get(invitations.PARAM) or "").strip()[:200]
    db = get_db()
    claimed: invitations.ClaimedInvitation | None = None
    try:
        if not config_url:
            raise DynamicRegistrationError(
                "This is Tally's Dynamic Registration URL; the LMS opens it with its own parameters.",
                code="openid_configuration_missing",
                hint=f"Paste {urls.register} into the LMS (Moodle: Site administration → Plugins → Activity modules → "
                "External tool → Manage tools → Tool URL… → Add LTI Advantage; Canvas: Developer Keys → "
                "+ Developer Key → + LTI Registration) instead of opening it here.",
            )
        if invitation or not svc.settings.dynamic_registration_open:
            # Held (and committed) before the platform is called: one registration per invitation.
            hold = 2 * svc.settings.outbound_deadline_seconds + 30
            claimed = invitations.claim(db, invitation, hold_seconds=hold)
        # The platform is called before the session touches the database (no transaction is open).
        outcome = register_dynamically(db, svc.settings, svc.http, openid_configuration=config_url,
                                       registration_token=token, name=claimed.name if claimed else "")
        if claimed is not None:
            invitations.use(db, claimed, outcome.registration_id)
        db.commit()
    except invitations.InvitationRefused as exc:
        db.rollback()
        event(log, "registration.refused", level=logging.WARNING, code=exc.code, reason=exc.message)
        refusal = DynamicRegistrationError(exc.message, code=exc.code, hint=invitations.help_text(svc.settings))
        return render_template("dynreg_error.html", error=refusal, urls=urls), 403
    except DynamicRegistrationError as exc:
        db.rollback()
        if claimed is not None:
            invitations.release(db, claimed)
        event(log, "registration.refused", level=logging.WARNING, code=exc.code, reason=exc.message,
              lms_status=exc.platform_status, openid_configuration=config_url[:500])
        return render_template("dynreg_error.html", error=exc, urls=urls), exc.http_status or status_for(exc)
    except SQLAlchemyError:
        db.rollback()
        log.exception("dynamic registration accepted by the platform but not stored")
        if claimed is not None:
            invitations.release(db, claimed)
        exc = DynamicRegistrationError(
            "The LMS accepted the registration, but Tally could not store it.", code="registration_not_stored",
            hint="Delete the new (pending) tool in the LMS and start again, or register it by hand with the "
            "values the LMS shows for it (admin page /admin/register).",
        )
        return render_template("dynreg_error.html", error=exc, urls=urls), status_for(exc)
    event(log, "registration.created", platform=outcome.issuer, client_id=outcome.client_id,
          deployment_id=outcome.deployment_id, deployment_status=outcome.deployment_status, source="dynamic")
    return render_template("dynreg_done.html", outcome=outcome, urls=urls, close_message=CLOSE_MESSAGE,
                           auto_activate=svc.settings.auto_activate_deployments)


@bp.get("/lti/canvas.json")
def canvas_json() -> Any:
    """The Canvas developer key configuration (Developer Keys → + LTI Key → Enter URL / Paste JSON)."""
    return jsonify(canvas_developer_key(get_services().settings))
