"""The session token: handed to the page at launch, carried by every later request.

It is an HS256 JWT bound to person, course, offering, registration and roles, valid for
`session_ttl_seconds`. Pages expose it to scripts as `<meta name="tally-session">`; the
JSON API takes it as `Authorization: Bearer …`; a page is opened by a form POST carrying it
as `st` (templates/static/session.js), never by a URL holding it: URLs end up in logs and
browser history, and a `?st=` URL is refused (tool/web/security.py).
No cookie is involved, so it works in iframes where the browser blocks third-party
cookies (Safari, Chrome with tracking protection).
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import jwt
from flask import current_app, g, request

from tool import logs
from tool.clock import epoch
from tool.errors import Forbidden, SessionError
from tool.lti.claims import Role, is_staff
from tool.lti.service import LaunchContext

AUDIENCE = "tally-session"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class SessionClaims:
    """What a valid session token says."""

    registration_id: int
    person_id: int
    course_id: int
    offering_id: int
    roles: tuple[Role, ...]
    expires_at: int
    launched_at: int = 0

    @property
    def is_staff(self) -> bool:
        """True for TEACHER, MODERATOR, ADMIN and SUPER_ADMIN."""
        return is_staff(self.roles)

    def to_context(self) -> LaunchContext:
        """The launch context this session was issued for."""
        return LaunchContext(self.registration_id, self.person_id, self.course_id, self.offering_id, self.roles)


def issue_token(secret: bytes, ctx: LaunchContext, *, ttl: int, launched_at: int | None = None) -> str:
    """Sign a session token for a launch context (`launched_at`: the launch a renewal descends from)."""
    now = int(epoch())
    claims = {
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl,
        "lat": launched_at if launched_at is not None else now,
        "jti": secrets.token_urlsafe(8),
        "reg": ctx.registration_id,
        "pid": ctx.person_id,
        "cid": ctx.course_id,
        "oid": ctx.offering_id,
        "roles": [r.value for r in ctx.roles],
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def read_token(secret: bytes, token: str) -> SessionClaims:
    """Verify a session token; raise SessionError saying why it is refused."""
    try:
        data = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE,
                          options={"require": ["exp", "iat"], "verify_exp": False, "verify_iat": False})
        # Expiry (and not iat) is checked against tool.clock, so tests can move time.
        if int(data["exp"]) <= epoch():
            raise jwt.ExpiredSignatureError
        return SessionClaims(
            registration_id=int(data["reg"]),
            person_id=int(data["pid"]),
            course_id=int(data["cid"]),
            offering_id=int(data["oid"]),
            roles=tuple(Role(r) for r in data.get("roles", [])),
            expires_at=int(data["exp"]),
            launched_at=int(data.get("lat", data["iat"])),
        )
    except jwt.ExpiredSignatureError:
        raise SessionError("Your Tally session has expired. Open Tally again from your course.",
                           code="session_expired") from None
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
        raise SessionError("The session token is invalid.", code="session_invalid") from None


def token_from_request() -> str | None:
    """The token of this request: Authorization: Bearer, else `st` in a POSTed form (never the query)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.form.get("st") or None


def current_session() -> SessionClaims:
    """The verified session of this request (cached on `g`)."""
    cached = g.get("tally_session")
    if cached is not None:
        return cached
    token = token_from_request()
    if not token:
        raise SessionError("No session: open Tally from your course in the LMS.", code="session_missing")
    claims = read_token(current_app.extensions["tally"].session_secret, token)
    logs.bind(offering=claims.offering_id, person=claims.person_id, registration=claims.registration_id)
    g.tally_session = claims
    g.tally_token = token
    return claims


def requires_session(view: F) -> F:
    """A view that needs a valid session token."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current_session()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def requires_staff(view: F) -> F:
    """A view for teachers, moderators and admins of the session's course."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_session().is_staff:
            raise Forbidden("Only teachers and administrators of this course may do this.")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
