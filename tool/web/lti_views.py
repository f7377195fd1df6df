"""LTI endpoints: OIDC login initiation, launch, and the tool's JWKS."""

from __future__ import annotations

import logging
from typing import Any

import jwt
from flask import Blueprint, g, jsonify, make_response, redirect, render_template, request

from tool import gradebook, limits, logs, metrics
from tool.clock import utcnow
from tool.db import relax_durability
from tool.errors import LaunchError
from tool.lti.claims import DEPLOYMENT_ID, ROLES, Role, is_staff, map_roles
from tool.logs import event
from tool.lti.deeplink import DEEP_LINKING_REQUEST
from tool.lti.launch import begin_login, platform_refusal, validate_launch
from tool.lti.service import record_launch, record_refusal
from tool.web import browser_state, deeplink_views
from tool.web.app import get_db, get_services
from tool.web.auth import issue_token
from tool.web.pages import LandingView, landing_context

bp = Blueprint("lti", __name__)
log = logging.getLogger("tool.lti")


def _params() -> dict[str, str]:
    # Moodle POSTs the login initiation, Canvas may GET it: accept both, form wins.
    params = request.args.to_dict()
    params.update(request.form.to_dict())
    return params


@bp.route("/lti/login", methods=["GET", "POST"])
def login() -> Any:
    """OIDC third-party initiated login: store state + nonce, redirect to the platform."""
    svc = get_services()
    db = get_db()
    relax_durability(db)
    # Rows per anonymous client are capped: each login initiation stores a login_state row.
    decision = limits.limiter(svc.settings, db).hit(_login_rule(svc.settings), limits.client_key(request.remote_addr),
                                                    now=utcnow())
    if not decision.allowed:
        db.commit()
        metrics.LAUNCHES.labels("refused", "too_many_logins").inc()
        event(log, "login.limited", level=logging.WARNING, client=limits.client_key(request.remote_addr),
              retry_after=decision.retry_after)
        resp = make_response(render_template(
            "error.html", status=429, code="too_many_logins",
            message="Too many sign-ins from your network in a short time. Please wait a little and open Tally "
                    "again from your course."), 429)
        resp.headers["Retry-After"] = str(decision.retry_after)
        return resp
    try:
        target = begin_login(db, svc.settings, _params())
    except LaunchError as exc:
        db.rollback()
        _record_refusal(db, exc, {"iss": request.values.get("iss"), "aud": request.values.get("client_id")})
        db.commit()
        refused("login.refused", exc, {"iss": request.values.get("iss"), "aud": request.values.get("client_id")})
        raise
    db.commit()
    if target.storage_target and svc.settings.state_cookie:
        resp = browser_state.login_page(url=target.url, state=target.state, target=target.storage_target,
                                        origin=target.auth_origin)
    else:
        resp = redirect(target.url, code=302)
    browser_state.bind_login(resp, svc.settings, svc.session_secret, target.state)
    return resp


def _login_rule(settings: Any) -> limits.Rule:
    return limits.Rule("lti_login", settings.login_states_per_client, settings.state_ttl_seconds)


def _record_refusal(db: Any, exc: LaunchError, claims: dict[str, Any]) -> None:
    """Record a refused login or launch for the admin console, at most so many per client address per
    hour (the refusal page is shown either way)."""
    settings = get_services().settings
    rule = limits.Rule("refusal_record", settings.refusals_recorded_per_client, 3600)
    if limits.limiter(settings, db).hit(rule, limits.client_key(request.remote_addr), now=utcnow()).allowed:
        record_refusal(db, code=exc.code, reason=exc.message, claims=claims)
    else:
        metrics.LAUNCHES.labels("refused", "not_recorded").inc()


def refused(name: str, exc: LaunchError, claims: dict[str, Any]) -> None:
    """One event and one count for a refused login or launch; who sees the hint on the refusal page."""
    metrics.LAUNCHES.labels("refused", exc.code).inc()
    aud = claims.get("aud")
    event(log, name, level=logging.WARNING, code=exc.code, reason=exc.message,
          platform=claims.get("iss") or None, client_id=aud[0] if isinstance(aud, list) and aud else aud,
          deployment_id=claims.get(DEPLOYMENT_ID))
    g.launch_audience = refusal_audience(claims)


def refusal_audience(claims: dict[str, Any]) -> str:
    """Whom the refusal page speaks to: "admin" (sees the hint), "staff" or "student".

    From the id_token's roles as sent; a forged role only shows the configuration hint,
    which holds nothing secret.
    """
    lti_roles = claims.get(ROLES)
    roles = map_roles([r for r in lti_roles if isinstance(r, str)]) if isinstance(lti_roles, list) else ()
    if Role.ADMIN in roles or Role.SUPER_ADMIN in roles:
        return "admin"
    return "staff" if is_staff(roles) else "student"


@bp.route("/lti/launch", methods=["POST"])
def launch() -> Any:
    """The platform's form POST with id_token and state: validate, record, hand over a session."""
    svc = get_services()
    db = get_db()
    params = request.form.to_dict()
    refusal = platform_refusal(db, params)
    if refusal is not None:
        # Canvas posts a refused login here with its reasons instead of an id_token.
        _record_refusal(db, refusal, {})
        db.commit()
        refused("launch.refused", refusal, {})
        raise refusal
    # The launch must come back to the browser that started its login (tool/web/browser_state.py).
    try:
        check_page = browser_state.check(db, svc.settings, svc.session_secret, params)
    except LaunchError as exc:
        db.rollback()
        _record_refusal(db, exc, {})
        db.commit()
        refused("launch.refused", exc, {})
        raise
    if check_page is not None:
        db.rollback()
        return check_page
    # The launch commits durably: its state must stay consumed even after a database crash.
    try:
        launch = validate_launch(db, svc.settings, params, keys=svc.platform_keys)
        if launch.message_type == DEEP_LINKING_REQUEST:
            # One redirect URI for both messages: "add a Tally item" goes to its own form.
            metrics.LAUNCHES.labels("accepted", "deep_linking").inc()
            event(log, "launch.accepted", platform=launch.issuer, client_id=launch.client_id,
                  deployment_id=launch.deployment_id, message_type=launch.message_type)
            return deeplink_views.start(launch)
        ctx = record_launch(db, launch)
        if Role.STUDENT in ctx.roles:
            # A student new to the course gets their participations now, not at a teacher's GET.
            gradebook.roster_changed(db, course_id=ctx.course_id, student_ids=[ctx.person_id])
    except LaunchError as exc:
        # Keep the state consumed (replays stay refused) and remember why we refused.
        try:
            unverified = jwt.decode(params.get("id_token", ""), options={"verify_signature": False})
        except jwt.InvalidTokenError:
            unverified = {}
        if not isinstance(unverified, dict):
            unverified = {}
        _record_refusal(db, exc, unverified)
        db.commit()
        refused("launch.refused", exc, unverified)
        raise
    metrics.LAUNCHES.labels("accepted", "ok").inc()
    logs.bind(platform=launch.issuer, offering=ctx.offering_id, person=ctx.person_id)
    event(log, "launch.accepted", client_id=launch.client_id, deployment_id=launch.deployment_id,
          roles=[r.value for r in launch.roles], message_type=launch.message_type)
    token = issue_token(svc.session_secret, ctx, ttl=svc.settings.session_ttl_seconds)
    template, context = landing_context(db, LandingView.from_launch(launch, ctx), token)
    db.commit()  # one transaction per launch; the page is rendered after it is durable
    resp = make_response(render_template(template, **context))
    if request.cookies.get(browser_state.cookie_name(params.get("state", ""))):
        browser_state.forget(resp, params.get("state", ""))
    return resp


@bp.get("/.well-known/jwks.json")
def jwks() -> Any:
    """The tool's public keys (service-call assertions are signed with one of these)."""
    resp = jsonify(get_services().keys.jwks())
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp
