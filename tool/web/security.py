"""Security headers of every answer, and the refusal of session tokens in URLs (issue 11, findings 5, 6).

* **Content-Security-Policy.** A page runs only Tally's own script files and inline scripts
  carrying the nonce made for this response (`csp_nonce()` in templates); no
  `'unsafe-inline'` script, no plugin, no `<base>`. Styles may be inline (style attributes
  carry no code). `frame-ancestors` names who may show Tally in a frame: Tally itself, the
  origins (issuer and login URL) of every registration with an active deployment, Canvas
  Cloud's `https://*.instructure.com` for a Canvas Cloud registration, the sandbox LMS where
  it is enabled, and `frame_ancestors` from the settings (a Canvas on its own domain). The
  dynamic registration page may also be framed by the platform whose configuration it was
  given, and the refusal of a login or launch by any (it must explain itself inside an LMS not
  active yet, and holds no token and no action). Answers that are not pages (JSON, CSV) may
  not be framed at all.
* **Cache-Control: no-store** on every answer that does not set its own caching: pages carry
  the session token, API answers carry grades. Static files and the public JWKS keep theirs.
* **Strict-Transport-Security** when the public URL is https.
* **No token in a URL.** Navigation inside Tally POSTs the token in a form body
  (templates/static/session.js); a request with `st` in its query string is refused with a
  page that says why, so an old bookmark or a copied link cannot go on putting tokens into
  the logs of proxies.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, g, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from tool.errors import SessionError
from tool.logs import event

log = logging.getLogger("tool.web")

HSTS = "max-age=31536000"  # one year (RFC 6797); the public URL is https for good
# What may stand in a CSP source list: an origin, a wildcard host (*.instructure.com) or a keyword.
_ORIGIN = re.compile(r"^https?://(?:\*\.)?[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::\d{1,5})?$")
# Canvas Cloud signs as one issuer for every school; the school's pages are on *.instructure.com.
_CANVAS_CLOUD = {"canvas.instructure.com", "canvas.beta.instructure.com", "canvas.test.instructure.com"}
TOKEN_IN_URL = ("This address carries a session token. Tally no longer accepts tokens in an address, where "
                "they end up in browser history and in the logs of every proxy. Open Tally again from your course.")


def csp_nonce() -> str:
    """This response's script nonce (made on first use)."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return str(nonce)


def origin_of(url: str | None, *, allow_wildcard: bool = False) -> str | None:
    """scheme://host[:port] of an http(s) URL, lower case; None when it is not one (never a CSP injection)."""
    if not url or not isinstance(url, str):
        return None
    if allow_wildcard and _ORIGIN.match(url.strip().lower().rstrip("/")):
        return url.strip().lower().rstrip("/")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return None
    default = 443 if parts.scheme == "https" else 80
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")
    return origin if _ORIGIN.match(origin) and "*" not in origin else None


def platform_origins(db: Any) -> set[str]:
    """The origins of the registrations that have an active deployment (issuer and login URL)."""
    from tool.lti.models import Deployment, Registration

    rows = db.execute(
        select(Registration.issuer, Registration.auth_login_url)
        .where(Registration.id.in_(select(Deployment.registration_id).where(Deployment.status == "active")))
    ).all()
    origins: set[str] = set()
    for issuer, login_url in rows:
        for url in (issuer, login_url):
            o = origin_of(url)
            if o:
                origins.add(o)
        if (urlsplit(issuer or "").hostname or "") in _CANVAS_CLOUD:
            origins.add("https://*.instructure.com")
    return origins


def frame_ancestors() -> list[str]:
    """Who may frame this page (see the module's docstring)."""
    from tool.web.app import get_db, get_services

    settings = get_services().settings
    sources = {o for o in (origin_of(x, allow_wildcard=True) for x in settings.frame_ancestors) if o}
    if settings.sandbox_enabled:
        sources.add(settings.sandbox_base_url)
    if request.path == "/lti/register":
        o = origin_of(request.args.get("openid_configuration"))
        if o:
            sources.add(o)
    try:
        sources |= platform_origins(get_db())
    except SQLAlchemyError as exc:
        # The database is down (the page says so): the answer still goes out, framed by fewer.
        event(log, "csp.platforms_unavailable", level=logging.WARNING, error=type(exc).__name__)
    return ["'self'", *sorted(sources)]


def page_policy(nonce: str, ancestors: list[str]) -> str:
    """The Content-Security-Policy of an HTML page."""
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors " + " ".join(ancestors),
    ])


NOT_A_PAGE_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def register(app: Flask) -> None:
    """Install the refusal of `?st=` and the headers on `app`."""
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    https = app.extensions["tally"].settings.public_base_url.startswith("https://")

    @app.before_request
    def _no_token_in_url() -> None:
        if "st" in request.args:
            raise SessionError(TOKEN_IN_URL, code="token_in_url")

    @app.after_request
    def _headers(resp: Any) -> Any:
        h = resp.headers
        if "Content-Security-Policy" not in h:
            # A redirect's body is never shown: it needs no page policy (and no platform lookup).
            if resp.mimetype == "text/html" and not 300 <= resp.status_code < 400:
                # A refused login or launch explains itself inside whichever LMS sent it (a platform
                # not registered or not active yet): that page holds no token and no action.
                refusal = request.path.startswith("/lti/") and resp.status_code >= 400
                h["Content-Security-Policy"] = page_policy(csp_nonce(), ["*"] if refusal else frame_ancestors())
            else:
                h["Content-Security-Policy"] = NOT_A_PAGE_POLICY
        if "Cache-Control" not in h and request.endpoint != "static":
            h["Cache-Control"] = "no-store"
        if https:
            h.setdefault("Strict-Transport-Security", HSTS)
        return resp
