"""The sandbox LMS as a Flask app: a small real LTI 1.3 platform imitating Moodle 4.5 or Canvas.

Endpoints (Moodle mode | Canvas mode; see paths.py):

    GET  /                                   launch page: course, links, people, the tool in an iframe
    POST /launch                             starts a login initiation (user_id, resource_link_id)
    GET  /lti/post_message_forwarding        Canvas: the platform storage frame (lti.put_data / lti.get_data)
    GET  /gradebook                          line items x users, and every score post with its answer
    POST /gradebook/grades                   a teacher edits a grade (form or JSON: line item, user, score, comment)
    POST /gradebook/assignments/<id>/publish        Canvas: publish (published=1) or unpublish (0)
    POST /gradebook/assignments/<id>/grading-period Canvas: close (closed=1) or reopen (0) its grading period
    POST /gradebook/course                          Canvas: conclude (concluded=422|404) or reopen ("")
    GET  /.well-known/openid-configuration   platform discovery
    GET  /mod/lti/certs.php | /api/lti/security/jwks                     platform JWKS
    GET, POST /mod/lti/auth.php | /api/lti/authorize_redirect           OIDC authorization
    POST /mod/lti/token.php | /login/oauth2/token                        client-credentials tokens
    GET, POST /mod/lti/services.php/<ctx>/lineitems?type_id=1 | /api/lti/courses/<ctx>/line_items
    GET, PUT, DELETE …/lineitems/<id>/lineitem?type_id=1 | …/line_items/<id>
    POST …/lineitems/<id>/lineitem/scores?type_id=1 | …/line_items/<id>/scores
    GET  …/lineitems/<id>/lineitem/results?type_id=1 | …/line_items/<id>/results
    GET  /mod/lti/services.php/CourseSection/<ctx>/bindings/<type_id>/memberships
         | /api/lti/courses/<ctx>/names_and_roles

Each concept registers its own routes (`oidc`, `tokens`, `ags`, `nrps`, `dynreg` for Dynamic
Registration and its admin page /admin/tools, `deeplink` for "Add a Tally item").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, redirect, render_template, request

from tool.sandbox import ags, deeplink, dynreg, nrps, oidc, tokens
from tool.sandbox.config import SandboxConfig
from tool.sandbox.platform import Platform

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def register_pages(app: Flask, platform: Platform) -> None:
    """Add the human pages: launch page, launch start, gradebook."""

    def index() -> str:
        return render_template("sandbox/index.html", platform=platform,
                               users=list(platform.users.values()),
                               links=list(platform.resource_links.values()),
                               selected_link=request.args.get("resource_link_id", "rl-1"))

    def launch() -> Response | tuple[str, int]:
        user_id = request.form.get("user_id", "")
        link_id = request.form.get("resource_link_id", "rl-1")
        if user_id not in platform.users or link_id not in platform.resource_links:
            return render_template("sandbox/error.html", platform=platform,
                                   problem="Unknown user or resource link"), 400
        params = platform.login_params(user_id, link_id)
        html = render_template(
            "sandbox/autopost.html",
            platform=platform,
            title=f"Launching the tool as {platform.users[user_id].name}",
            action=platform.config.tool_login_url,
            # Moodle POSTs the login initiation; Canvas sends a GET with a query.
            method="post" if platform.mode == "moodle" else "get",
            fields=params,
        )
        return Response(html, content_type="text/html; charset=utf-8")

    def gradebook() -> str:
        store = platform.store
        with store.lock:
            items = sorted(store.line_items.values(), key=lambda li: li.id)
            results = dict(store.results)
            posts = list(reversed(store.score_posts))
        students = [u for u in platform.users.values() if u.kind == "student" or
                    any(key[1] == u.id for key in results)]
        assignments = {a.id: a for a in platform.store.assignments.values()}
        grading = {li.id: platform.store.is_assignment_line_item(li) for li in items}
        return render_template("sandbox/gradebook.html", platform=platform, items=items, results=results,
                               students=students, posts=posts, assignments=assignments, grading=grading)

    def refused(problem: str) -> tuple[str, int]:
        return render_template("sandbox/error.html", platform=platform, problem=problem), 400

    def publish(assignment_id: int) -> Response | tuple[str, int]:
        try:
            platform.publish(assignment_id, request.form.get("published", "1") == "1")
        except KeyError:
            return refused("Unknown assignment")
        return redirect("/gradebook", 303)

    def grading_period(assignment_id: int) -> Response | tuple[str, int]:
        try:
            platform.set_grading_period_closed(assignment_id, request.form.get("closed", "1") == "1")
        except KeyError:
            return refused("Unknown assignment")
        return redirect("/gradebook", 303)

    def course_state() -> Response | tuple[str, int]:
        value = request.form.get("concluded", "")
        if value not in ("", "404", "422"):
            return refused("concluded must be 422, 404 or empty")
        platform.conclude_course(int(value) if value else None)
        return redirect("/gradebook", 303)

    def edit_grade() -> Response | tuple[Response | str, int]:
        # The gradebook page's "Save grade" (a form) and the same for tests (JSON):
        # {lineItemId, userId, score (null or "" removes the grade), comment}.
        data = request.get_json(silent=True) if request.is_json else request.form.to_dict()
        data = data if isinstance(data, dict) else {}
        raw_score = data.get("score", data.get("grade"))
        comment = str(data.get("comment") or "").strip() or None
        problem = None
        try:
            item_id = int(data.get("lineItemId", data.get("line_item_id", "")))
            text = raw_score.strip().replace(",", ".") if isinstance(raw_score, str) else raw_score
            score = None if text in (None, "") else float(text)
            if score is not None and not math.isfinite(score):
                raise ValueError(text)
        except (TypeError, ValueError):
            problem = "The line item and the grade must be numbers"
        else:
            try:
                result = platform.teacher_edits_grade(item_id, str(data.get("userId", data.get("user_id", ""))),
                                                      score, comment)
            except KeyError:
                problem = "Unknown line item or user"
        if problem is not None:
            return (jsonify(error=problem), 400) if request.is_json else refused(problem)
        if request.is_json:
            return jsonify(lineItemId=item_id, userId=result.user_id, score=result.final, comment=result.comment,
                           timestamp=result.timestamp_text)
        return redirect("/gradebook#item-%d" % item_id, code=303)

    def post_message_forwarding() -> str:
        return render_template("sandbox/post_message_forwarding.html")

    app.add_url_rule("/", "index", index)
    if platform.mode == "canvas" and platform.config.platform_storage:
        app.add_url_rule("/lti/post_message_forwarding", "post_message_forwarding", post_message_forwarding)
    app.add_url_rule("/launch", "launch", launch, methods=["POST"])
    app.add_url_rule("/gradebook", "gradebook", gradebook)
    app.add_url_rule("/gradebook/grades", "gradebook_edit_grade", edit_grade, methods=["POST"])
    if platform.mode == "canvas":
        app.add_url_rule("/gradebook/assignments/<int:assignment_id>/publish", "gradebook_publish", publish,
                         methods=["POST"])
        app.add_url_rule("/gradebook/assignments/<int:assignment_id>/grading-period", "gradebook_grading_period",
                         grading_period, methods=["POST"])
        app.add_url_rule("/gradebook/course", "gradebook_course", course_state, methods=["POST"])


def create_sandbox_app(config: SandboxConfig) -> Flask:
    """Build the sandbox platform app; `app.extensions["sandbox"]` is its Platform."""
    app = Flask(__name__, template_folder=str(TEMPLATES), static_folder=None)
    platform = Platform(config)
    app.extensions["sandbox"] = platform
    register_pages(app, platform)
    oidc.register(app, platform)
    tokens.register(app, platform)
    ags.register(app, platform)
    nrps.register(app, platform)
    dynreg.register(app, platform)
    deeplink.register(app, platform)
    _script_policy(app)
    return app


def _script_policy(app: Flask) -> None:
    """As in Tally's pages: scripts run only with this response's nonce (its auto-submitting forms)."""
    from tool.web.security import csp_nonce

    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _csp(resp: Any) -> Any:
        if resp.mimetype == "text/html":
            resp.headers.setdefault("Content-Security-Policy",
                                    f"script-src 'nonce-{csp_nonce()}'; object-src 'none'; base-uri 'none'")
        return resp
