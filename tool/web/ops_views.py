"""What operators and their tools see: request ids, request metrics, /healthz, /readyz, /metrics.

Every request gets an id: the `X-Request-ID` a proxy sent (nginx's `$request_id`, when it
looks like an id), else a new one. It is bound to every log line of the request and sent
back in the response's `X-Request-ID`, so a teacher's "reference" finds the lines.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request

from tool import logs, metrics
from tool.errors import Forbidden
from tool.ops.health import NotReady, delivery_facts, readiness
from tool.web.app import get_services

bp = Blueprint("ops", __name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
REQUEST_ID_HEADER = "X-Request-ID"


def request_id() -> str:
    """This request's id (the proxy's, or a new one)."""
    rid = g.get("request_id")
    if rid is None:
        sent = request.headers.get(REQUEST_ID_HEADER, "")
        rid = sent if _REQUEST_ID.match(sent) else secrets.token_hex(16)
        g.request_id = rid
    return rid


def _route() -> str:
    # The rule, not the path: /api/grades/entries/<int:entry_id> is one series, not one per entry.
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def register(app: Flask) -> None:
    """Install the request hooks and the endpoints."""
    app.register_blueprint(bp)

    @app.before_request
    def _begin() -> None:
        g.started = time.perf_counter()
        logs.clear()
        logs.bind(request_id=request_id())

    @app.after_request
    def _finish(resp: Response) -> Response:
        resp.headers[REQUEST_ID_HEADER] = request_id()
        route, method = _route(), request.method
        if "started" in g:
            metrics.HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - g.started)
        metrics.HTTP_REQUESTS.labels(route, method, str(resp.status_code)).inc()
        return resp

    @app.teardown_request
    def _forget(_exc: BaseException | None) -> None:
        logs.clear()


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness: the process answers (no database call: cheap enough for a tight probe)."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Any:
    """Readiness: database, migrations, a signing key, and (when expected) a live worker."""
    from tool.web.errors import status_for

    svc = get_services()
    checks = readiness(svc.sessions, svc.settings, svc.keys)
    body = {"status": "ready" if all(c.ok for c in checks) else "not_ready",
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}}
    if body["status"] == "ready":
        return jsonify(body)
    failed = ", ".join(c.name for c in checks if not c.ok)
    return jsonify(body), status_for(NotReady(f"not ready: {failed}"))


def _metrics_allowed() -> bool:
    settings = get_services().settings
    token = settings.metrics_token
    header = request.headers.get("Authorization", "")
    if token and header[:7].lower() == "bearer " and secrets.compare_digest(header[7:].strip(), token):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in settings.metrics_allowed_networks)


@bp.get("/metrics")
def metrics_view() -> Any:
    """Prometheus text format: from allowed networks, or with the metrics bearer token."""
    if not _metrics_allowed():
        raise Forbidden("/metrics answers only the networks in metrics_allowed_networks, "
                        "or a request with Authorization: Bearer <metrics_token>.", code="metrics_forbidden")
    svc = get_services()
    body, content_type = metrics.render(metrics.DatabaseCollector(lambda: delivery_facts(svc.sessions)))
    return Response(body, content_type=content_type)
