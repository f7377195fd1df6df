"""The admin console: registrations, deployments, recent launches and refusals, service tests,
and manual registration.

    GET  /admin                               overview (registrations, deployments, launches)
    POST /admin/deployments/<id>              activate or disable a deployment
    POST /admin/registrations/<id>/test       token request + line items GET, answers verbatim
    GET  /admin/register                      what to type into Moodle and Canvas; the form
    POST /admin/register                      take the platform's values back (local admin)
    GET, POST /admin/login · POST /admin/logout   the local administrator's password login

Who gets in is decided in tool/web/admin_auth.py.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from tool.errors import Forbidden, NotFound, RegistrationError, ValidationError
from tool.lti import registry
from tool.lti.dynreg import manual_instructions, tool_urls
from tool.lti.models import Course, Deployment, LaunchRecord, Offering, Registration
from tool.lti.probe import probe_lineitems, probe_token
from tool.web.admin_auth import (
    ADMIN_COOKIE,
    ADMIN_TTL,
    AdminIdentity,
    check_password,
    current_admin,
    issue_admin_cookie,
    local_login_enabled,
    requires_admin,
)
from tool.logs import event
from tool.web.app import get_db, get_services
from tool.web.errors import status_for

bp = Blueprint("admin", __name__)
log = logging.getLogger("tool.admin")

RECENT_LAUNCHES = 50


def _registrations(db: Session, admin: AdminIdentity) -> list[Registration]:
    stmt = select(Registration).order_by(Registration.id)
    if admin.registration_id is not None:
        stmt = stmt.where(Registration.id == admin.registration_id)
    return list(db.scalars(stmt))


def _recent_launches(db: Session, admin: AdminIdentity, regs: list[Registration]) -> list[LaunchRecord]:
    stmt = select(LaunchRecord).order_by(LaunchRecord.at.desc(), LaunchRecord.id.desc()).limit(RECENT_LAUNCHES)
    if admin.registration_id is not None:
        if not regs:
            return []
        stmt = stmt.where(LaunchRecord.issuer == regs[0].issuer, LaunchRecord.client_id == regs[0].client_id)
    return list(db.scalars(stmt))


def _registration_in_scope(db: Session, admin: AdminIdentity, registration_id: int) -> Registration:
    reg = db.get(Registration, registration_id)
    if reg is None or not admin.sees(reg.id):
        raise NotFound("No such registration.")
    return reg


@bp.route("/admin", methods=["GET", "POST"])
@requires_admin
def console() -> Any:
    """The overview: every registration the admin may see, its deployments, recent launches."""
    admin = current_admin()
    db = get_db()
    regs = _registrations(db, admin)
    return render_template(
        "admin/console.html", admin=admin, token=admin.session_token, registrations=regs, records=_recent_launches(db, admin, regs),
        urls=tool_urls(get_services().settings), settings=get_services().settings,
        notice=request.args.get("notice", ""),
    )


@bp.post("/admin/deployments/<int:deployment_pk>")
@requires_admin
def change_deployment(deployment_pk: int) -> Any:
    """Activate or disable one deployment."""
    admin = current_admin()
    db = get_db()
    dep = db.get(Deployment, deployment_pk)
    if dep is None or not admin.sees(dep.registration_id):
        raise NotFound("No such deployment.")
    action = request.form.get("action", "")
    if action not in ("activate", "disable"):
        raise ValidationError("Choose activate or disable.", details={"action": "must be activate or disable"})
    reg = dep.registration
    status = "active" if action == "activate" else "disabled"
    registry.set_deployment_status(db, issuer=reg.issuer, client_id=reg.client_id,
                                   deployment_id=dep.deployment_id, status=status)
    db.commit()
    event(log, "deployment.status_changed", platform=reg.issuer, client_id=reg.client_id,
          deployment_id=dep.deployment_id, status=status, by=admin.label)
    notice = f"Deployment {dep.deployment_id} of {reg.name or reg.issuer} is now {status}."
    return redirect(admin.url("/admin", notice=notice), code=admin.redirect_code)


# -- test services ----------------------------------------------------------------------------


@bp.post("/admin/registrations/<int:registration_id>/test")
@requires_admin
def test_services(registration_id: int) -> Any:
    """Ask the platform for a token and GET the line items of the latest offering; show the answers."""
    admin = current_admin()
    svc = get_services()
    db = get_db()
    reg = _registration_in_scope(db, admin, registration_id)
    values = {"client_id": reg.client_id, "auth_token_url": reg.auth_token_url, "auth_audience": reg.auth_audience,
              "name": reg.name or reg.issuer, "issuer": reg.issuer, "id": reg.id}
    offering = db.execute(
        select(Offering.title, Offering.ags_lineitems_url)
        .join(Course, Course.id == Offering.course_id)
        .where(Course.registration_id == reg.id, Offering.ags_lineitems_url.is_not(None))
        .order_by(Offering.updated_at.desc()).limit(1)
    ).first()
    db.commit()  # end the read transaction: the platform is never called inside one
    timeout = svc.settings.http_timeout_seconds
    probes = []
    token_probe, token = probe_token(svc.http, values, svc.keys, timeout)
    probes.append(token_probe)
    if token and offering is not None:
        probes.append(probe_lineitems(svc.http, offering.ags_lineitems_url, token, timeout))
    return render_template("admin/test_services.html", admin=admin, token=admin.session_token, registration=values, probes=probes,
                           offering=offering, token_granted=token is not None)


# -- manual registration ----------------------------------------------------------------------


_FORM_FIELDS = ("name", "issuer", "client_id", "deployment_id", "auth_login_url", "auth_token_url", "key_set_url",
                "auth_audience")
_REQUIRED = ("issuer", "client_id", "auth_login_url", "auth_token_url", "key_set_url")


def _register_page(admin: AdminIdentity, form: dict[str, str], errors: dict[str, str] | None = None,
                   message: str = "") -> str:
    settings = get_services().settings
    return render_template("admin/register.html", admin=admin, token=admin.session_token, urls=tool_urls(settings),
                           platforms=manual_instructions(settings), form=form, errors=errors or {}, message=message)


@bp.get("/admin/register")
@requires_admin
def register_form() -> Any:
    """What to type into Moodle and Canvas, and the form for the platform's values."""
    return _register_page(current_admin(), {})


@bp.post("/admin/register")
@requires_admin
def register_submit() -> Any:
    """Store a registration from the platform's values (the local administrator only)."""
    admin = current_admin()
    if request.values.get("nav") == "1":
        return _register_page(admin, {})  # an LTI administrator's link to this page (a POST carrying the token)
    if not admin.is_local:
        raise Forbidden("Only Tally's local administrator adds registrations; LMS administrators see their own.")
    form = {k: (request.form.get(k) or "").strip() for k in _FORM_FIELDS}
    missing = {k: "required" for k in _REQUIRED if not form[k]}
    db = get_db()
    try:
        if missing:
            raise ValidationError("Please fill in the marked fields.", details=missing)
        reg = registry.add_registration(
            db, issuer=form["issuer"], client_id=form["client_id"], auth_login_url=form["auth_login_url"],
            auth_token_url=form["auth_token_url"], key_set_url=form["key_set_url"],
            auth_audience=form["auth_audience"] or None, name=form["name"],
            deployment_ids=[form["deployment_id"]] if form["deployment_id"] else [], source="admin",
        )
        db.commit()
    except (ValidationError, RegistrationError) as exc:
        db.rollback()
        details = exc.details if isinstance(exc.details, dict) else {}
        return _register_page(admin, form, {k: str(v) for k, v in details.items()}, exc.message), status_for(exc)
    event(log, "registration.saved", platform=reg.issuer, client_id=reg.client_id, source="admin",
          deployment_id=form["deployment_id"] or None, by=admin.label)
    notice = f"Registered {reg.name} (client_id {reg.client_id})."
    return redirect(admin.url("/admin", notice=notice), code=admin.redirect_code)


# -- the local administrator's login ------------------------------------------------------------


@bp.route("/admin/login", methods=["GET", "POST"])
def login() -> Any:
    """The password form of the local administrator."""
    svc = get_services()
    enabled = local_login_enabled(svc.settings)
    if request.method == "GET" or not enabled:
        return render_template("admin/login.html", enabled=enabled, failed=False)
    if not check_password(svc.settings, request.form.get("password", "")):
        log.warning("admin login refused from %s", request.remote_addr)
        error = Forbidden("Wrong password.", code="admin_password_wrong")
        return render_template("admin/login.html", enabled=True, failed=True), status_for(error)
    resp = make_response(redirect("/admin", code=303))
    resp.set_cookie(ADMIN_COOKIE, issue_admin_cookie(svc.session_secret), max_age=ADMIN_TTL, httponly=True,
                    samesite="Strict", secure=svc.settings.public_base_url.startswith("https://"), path="/admin")
    return resp


@bp.post("/admin/logout")
def logout() -> Any:
    """Forget the local administrator's cookie."""
    resp = make_response(redirect("/admin/login", code=303))
    resp.delete_cookie(ADMIN_COOKIE, path="/admin")
    return resp
