"""The admin console: registrations, deployments, recent launches and refusals, service tests,
and manual registration.

    GET  /admin                               overview (registrations, deployments, launches)
    POST /admin/deployments/<id>              activate or disable a deployment
    POST /admin/registrations/<id>/test       token request + line items GET, answers verbatim
    GET  /admin/register                      what to type into Moodle and Canvas; the form
    POST /admin/register                      take the platform's values back (local admin)
    POST /admin/invitations                   a one-time Dynamic Registration URL (local admin)
    GET, POST /admin/login · POST /admin/logout   the local administrator's password login

Who gets in is decided in tool/web/admin_auth.py.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from tool import limits
from tool.clock import utcnow
from tool.errors import Forbidden, NotFound, RegistrationError, ToolError, ValidationError
from tool.lti import registry
from tool.lti.dynreg import manual_instructions, tool_urls
from tool.lti.models import Course, Deployment, LaunchRecord, Offering, Registration
from tool.lti.probe import probe_lineitems, probe_token
from tool.web.admin_auth import (
    ADMIN_COOKIE,
    ADMIN_TTL,
    LOGIN_COOKIE,
    AdminIdentity,
    LoginRequired,
    check_password,
    current_admin,
    issue_admin_cookie,
    local_login_enabled,
    login_form_token,
    requires_admin,
    same_origin,
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


# -- invitations ----------------------------------------------------------------------------------


@bp.post("/admin/invitations")
@requires_admin
def create_invitation() -> Any:
    """Make a one-time Dynamic Registration URL and show it once (the local administrator only)."""
    from tool.lti import invitations

    admin = current_admin()
    if not admin.is_local:
        raise Forbidden("Only Tally's local administrator invites platforms; LMS administrators see their own.")
    svc = get_services()
    db = get_db()
    expires = (request.form.get("expires") or "").strip()
    seconds = invitations.parse_expiry(expires) if expires else svc.settings.invitation_ttl_seconds
    made = invitations.create_invitation(db, svc.settings, name=request.form.get("name", ""),
                                         expires_in_seconds=seconds, created_by=admin.label)
    db.commit()
    event(log, "invitation.created", invitation_id=made.id, invitation_name=made.name, expires_at=made.expires_at.isoformat(),
          by=admin.label)
    resp = make_response(render_template("admin/invitation.html", admin=admin, invitation=made,
                                         lifetime=invitations.describe_lifetime(seconds)))
    resp.headers["Cache-Control"] = "no-store"  # the URL is a one-time secret
    return resp


# -- the local administrator's login ------------------------------------------------------------


def login_rules(settings: Any) -> tuple[limits.Rule, limits.Rule]:
    """The admin login's limiter rules: per client address, and for the (one) account."""
    common = {"window_seconds": settings.admin_login_window_seconds,
              "lockout_seconds": settings.admin_login_lockout_seconds,
              "lockout_max_seconds": settings.admin_login_lockout_max_seconds}
    return (limits.Rule("admin_login_client", settings.admin_login_client_limit, **common),
            limits.Rule("admin_login_account", settings.admin_login_account_limit, **common))


def _login_page(svc: Any, *, enabled: bool, failed: bool = False, message: str = "", status: int = 200) -> Any:
    """The sign-in form with a fresh CSRF token bound to a fresh pre-login cookie."""
    nonce = secrets.token_urlsafe(24)
    resp = make_response(render_template("admin/login.html", enabled=enabled, failed=failed, message=message,
                                         csrf=login_form_token(svc.session_secret, nonce)), status)
    if enabled:
        resp.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="Strict",
                        secure=svc.settings.public_base_url.startswith("https://"), path="/admin")
    return resp


def _too_many(svc: Any, retry_after: int) -> Any:
    event(log, "admin.login_limited", level=logging.WARNING, client=limits.client_key(request.remote_addr),
          retry_after=retry_after)
    minutes = max(1, -(-retry_after // 60))
    resp = _login_page(svc, enabled=True, status=429,
                       message=f"Too many sign-in attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}.")
    resp.headers["Retry-After"] = str(retry_after)
    return resp


@bp.route("/admin/login", methods=["GET", "POST"])
def login() -> Any:
    """The password form of the local administrator: limited, then CSRF-checked, then hashed."""
    svc = get_services()
    enabled = local_login_enabled(svc.settings)
    if request.method == "GET" or not enabled:
        return _login_page(svc, enabled=enabled)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not same_origin(svc.settings) or not nonce or not hmac.compare_digest(
            request.form.get("csrf", ""), login_form_token(svc.session_secret, nonce)):
        event(log, "admin.login_csrf_refused", level=logging.WARNING, client=limits.client_key(request.remote_addr))
        return _login_page(svc, enabled=True, status=403,
                           message="This sign-in form is stale or came from another site. Please sign in again.")
    # Every attempt counts before the password is hashed (a success clears the client's count), so
    # parallel attempts cannot outrun the limit and a locked-out client costs no hashing at all.
    db = get_db()
    limiter = limits.limiter(svc.settings, db)
    client_rule, account_rule = login_rules(svc.settings)
    client = limits.client_key(request.remote_addr)
    now = utcnow()
    wait = limiter.locked(client_rule, client, now=now) or limiter.locked(account_rule, "admin", now=now)
    if not wait:
        for rule, who in ((client_rule, client), (account_rule, "admin")):
            decision = limiter.hit(rule, who, now=now)
            if not decision.allowed:
                wait = decision.retry_after
                break
    db.commit()
    if wait:
        return _too_many(svc, wait)
    if not check_password(svc.settings, request.form.get("password", ""), db):
        db.commit()
        event(log, "admin.login_refused", level=logging.WARNING, client=client)
        error = Forbidden("Wrong password.", code="admin_password_wrong")
        return _login_page(svc, enabled=True, failed=True, status=status_for(error))
    limiter.clear(client_rule, client)
    limiter.clear(account_rule, "admin")
    db.commit()
    event(log, "admin.login", client=client)
    resp = make_response(redirect("/admin", code=303))
    resp.set_cookie(ADMIN_COOKIE, issue_admin_cookie(svc.session_secret), max_age=ADMIN_TTL, httponly=True,
                    samesite="Strict", secure=svc.settings.public_base_url.startswith("https://"), path="/admin")
    resp.delete_cookie(LOGIN_COOKIE, path="/admin")
    return resp


@bp.post("/admin/logout")
def logout() -> Any:
    """Forget the local administrator's cookie (a same-site POST with the console's CSRF token)."""
    svc = get_services()
    try:
        admin = current_admin()
    except (LoginRequired, ToolError):
        admin = None
    if admin is not None and admin.is_local and (
            not same_origin(svc.settings) or not hmac.compare_digest(request.form.get("csrf", ""), admin.csrf)):
        raise Forbidden("This form is stale or came from another site. Reload the page and try again.",
                        code="csrf_invalid")
    resp = make_response(redirect("/admin/login", code=303))
    resp.delete_cookie(ADMIN_COOKIE, path="/admin")
    return resp
