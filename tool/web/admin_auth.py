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

Hashes are Argon2id (argon2-cffi); PBKDF2-SHA256 hashes of earlier versions still sign in and
are re-hashed on success. The login form is limited before any hashing (tool/limits.py) and,
like logout, refuses cross-site POSTs (Origin / Sec-Fetch-Site, and a token bound to a
pre-login cookie).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from urllib.parse import urlencode, urlsplit

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app, g, redirect, request
from sqlalchemy.orm import Session

from tool.clock import epoch, utcnow
from tool.config import Settings
from tool.db import upsert
from tool.errors import Forbidden
from tool.lti.claims import Role
from tool.ops.models import AdminPasswordUpgrade
from tool.web.auth import read_token, token_from_request

ADMIN_COOKIE = "tally_admin"
ADMIN_AUDIENCE = "tally-admin"
ADMIN_TTL = 8 * 3600
ADMIN_ROLES = frozenset({Role.ADMIN, Role.SUPER_ADMIN})
log = logging.getLogger("tool.admin")
F = TypeVar("F", bound=Callable[..., Any])


_HASHER = PasswordHasher()  # Argon2id with argon2-cffi's current recommended parameters


def hash_password(password: str) -> str:
    """An Argon2id hash for `admin_password_hash` (the PHC string: $argon2id$v=19$m=…,t=…,p=…$salt$hash)."""
    return _HASHER.hash(password)


def _check_pbkdf2(stored: str, given: str) -> bool:
    """The hashes earlier versions made: pbkdf2_sha256$<iterations>$<salt>$<hash>."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256" or not 0 < int(iterations) <= 10_000_000:
            return False
        computed = hashlib.pbkdf2_hmac("sha256", given.encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(computed, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def _check_argon2(stored: str, given: str) -> bool:
    try:
        return _HASHER.verify(stored, given)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_password(settings: Settings, given: str, db: Session | None = None) -> bool:
    """True when `given` is the configured admin password (hash preferred over plain).

    An older configured hash (PBKDF2, or Argon2 with weaker parameters) still works; with `db`, a
    successful login stores an Argon2id hash of the password made from it (`admin_password_upgrade`),
    and later logins check that one while the configured hash stays the same.
    """
    configured = settings.admin_password_hash
    if configured:
        source = hashlib.sha256(configured.encode()).hexdigest()
        upgraded = db.get(AdminPasswordUpgrade, source) if db is not None else None
        stored = upgraded.hash if upgraded is not None else configured
        ok = _check_argon2(stored, given) if stored.startswith("$argon2") else _check_pbkdf2(stored, given)
        if ok and db is not None and (not stored.startswith("$argon2") or _HASHER.check_needs_rehash(stored)):
            upsert(db, AdminPasswordUpgrade.__table__,
                   {"source": source, "hash": hash_password(given), "upgraded_at": utcnow()},
                   conflict=("source",), update=("hash", "upgraded_at"))
            log.warning("the admin password's configured hash is of an older kind; Tally re-hashed it with "
                        "Argon2id. Replace admin_password_hash with `python -m tool admin hash-password`.")
        return ok
    if settings.admin_password:
        return hmac.compare_digest(given.encode(), settings.admin_password.encode())
    return False


LOGIN_COOKIE = "tally_admin_login"


def login_form_token(secret: bytes, nonce: str) -> str:
    """The login form's CSRF token: bound to the pre-login cookie the form's GET set."""
    return hmac.new(secret, b"login:" + nonce.encode(), hashlib.sha256).hexdigest()


def same_origin(settings: Settings) -> bool:
    """False when the browser says the request came from another site (Sec-Fetch-Site, else Origin).

    Tally's pages send no Referer (no-referrer), so browsers send `Origin: null` on their form POSTs;
    the form token is what proves a login or logout form is ours, this refuses what is visibly not.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    parts = urlsplit(settings.public_base_url or request.host_url)
    return origin == f"{parts.scheme}://{parts.netloc}"


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
