"""Who may use the admin console, and how they prove it.

Two kinds of administrator:

* **LTI administrators**: a launch whose roles map to ADMIN or SUPER_ADMIN (tool/lti/claims.py)
  hands the page its session token like every launch; the console accepts it in a POSTed
  form (its links POST it too: templates/static/session.js; never in an address) and shows
  only that session's registration. No cookie, so it works inside the LMS's iframe.
* **The local administrator**: whoever knows the password in the settings
  (`admin_password_hash`, or `admin_password` in development). A successful login sets a
  signed, HttpOnly, SameSite=Strict cookie: the console is then used first-party, outside
  any LMS. Its forms carry a CSRF token derived from the cookie.

Passwords are compared with `hmac.compare_digest`; hashes are PBKDF2-SHA256.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from urllib.parse import urlencode

import jwt
from flask import current_app, g, redirect, request

from tool.clock import epoch
from tool.config import Settings
from tool.errors import Forbidden
from tool.lti.claims import Role
from tool.web.auth import read_token, token_from_request

ADMIN_COOKIE = "tally_admin"
ADMIN_AUDIENCE = "tally-admin"
ADMIN_TTL = 8 * 3600
ADMIN_ROLES = frozenset({Role.ADMIN, Role.SUPER_ADMIN})
PBKDF2_ITERATIONS = 600_000
F = TypeVar("F", bound=Callable[..., Any])


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A PBKDF2-SHA256 hash for `admin_password_hash`: pbkdf2_sha256$<iterations>$<salt>$<hash>."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"pbkdf2_sha256${iterations}${b64(salt)}${b64(digest)}"


def check_password(settings: Settings, given: str) -> bool:
    """True when `given` is the configured admin password (hash preferred over plain)."""
    if settings.admin_password_hash:
        try:
            scheme, iterations, salt, digest = settings.admin_password_hash.split("$")
            if scheme != "pbkdf2_sha256":
                return False
            computed = hashlib.pbkdf2_hmac("sha256", given.encode(), base64.b64decode(salt), int(iterations))
            return hmac.compare_digest(computed, base64.b64decode(digest))
        except (ValueError, TypeError):
            return False
    if settings.admin_password:
        return hmac.compare_digest(given.encode(), settings.admin_password.encode())
    return False


def local_login_enabled(settings: Settings) -> bool:
    """True when a local admin password is configured."""
    return bool(settings.admin_password_hash or settings.admin_password)


def issue_admin_cookie(secret: bytes) -> str:
    """The signed value of the local admin's cookie."""
    now = int(epoch())
    return jwt.encode({"aud": ADMIN_AUDIENCE, "iat": now, "exp": now + ADMIN_TTL, "jti": secrets.token_urlsafe(12)},
                      secret, algorithm="HS256")


def _read_admin_cookie(secret: bytes, value: str) -> str | None:
    """The cookie's jti when it is valid and unexpired, else None."""
    try:
        data = jwt.decode(value, secret, algorithms=["HS256"], audience=ADMIN_AUDIENCE,
                          options={"require": ["exp", "iat", "jti"], "verify_exp": False})
    except jwt.InvalidTokenError:
        return None
    return str(data["jti"]) if int(data["exp"]) > epoch() else None


@dataclass(frozen=True)
class AdminIdentity:
    """The administrator of this request and what they may see."""

    kind: str  # "local" | "lti"
    registration_id: int | None  # None: every registration (local administrator)
    label: str
    session_token: str | None  # LTI administrators: carried in every link and form
    csrf: str

    @property
    def is_local(self) -> bool:
        """True for the local administrator (password login)."""
        return self.kind == "local"

    def url(self, path: str, **params: Any) -> str:
        """A console URL (never with the session token: LTI administrators POST it, see `redirect_code`)."""
        query = {k: v for k, v in params.items() if v is not None}
        return path + ("?" + urlencode(query) if query else "")

    @property
    def redirect_code(self) -> int:
        """After a POST: 303 for the local administrator (cookie), 307 for an LTI administrator, whose
        browser then POSTs its form, and so its token, to the console again."""
        return 307 if self.session_token else 303

    def sees(self, registration_id: int) -> bool:
        """True when this administrator may see and change the registration."""
        return self.registration_id is None or self.registration_id == registration_id


class LoginRequired(Exception):
    """No administrator credentials at all: the browser goes to the login page."""


def _csrf_for(secret: bytes, jti: str) -> str:
    return hmac.new(secret, b"csrf:" + jti.encode(), hashlib.sha256).hexdigest()


def current_admin() -> AdminIdentity:
    """The administrator of this request; SessionError/Forbidden/LoginRequired otherwise."""
    cached = g.get("tally_admin")
    if cached is not None:
        return cached
    secret: bytes = current_app.extensions["tally"].session_secret
    token = token_from_request()
    if token:
        claims = read_token(secret, token)
        if not ADMIN_ROLES.intersection(claims.roles):
            raise Forbidden("The admin console is for LMS administrators. Your roles in this course do not include "
                            "an administrator role.")
        admin = AdminIdentity(kind="lti", registration_id=claims.registration_id,
                              label="LMS administrator (" + ", ".join(r.value.lower() for r in claims.roles) + ")",
                              session_token=token, csrf=token)
    else:
        jti = _read_admin_cookie(secret, request.cookies.get(ADMIN_COOKIE, ""))
        if jti is None:
            raise LoginRequired()
        admin = AdminIdentity(kind="local", registration_id=None, label="local administrator", session_token=None,
                              csrf=_csrf_for(secret, jti))
    g.tally_admin = admin
    return admin


def requires_admin(view: F) -> F:
    """A console view: an LTI administrator or the logged-in local administrator; POSTs check CSRF."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            admin = current_admin()
        except LoginRequired:
            return redirect("/admin/login", code=303)
        if request.method == "POST" and admin.is_local:
            if not hmac.compare_digest(request.form.get("csrf", ""), admin.csrf):
                raise Forbidden("This form is stale or came from another site. Reload the page and try again.",
                                code="csrf_invalid")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
