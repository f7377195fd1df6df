"""Browser-bound OIDC state: a launch must come back to the browser that started its login.

Without this, the state was only checked server-side: an attacker could start a login in their
own browser, take the platform's id_token form, and make a victim's browser post it (login
CSRF): the victim would then work in Tally as the attacker. Three ways, best first:

1. **The state cookie.** `/lti/login` sets `tally_state_<hash of the state>` (HttpOnly,
   `SameSite=None; Secure`, an HMAC of the state as value, for `state_ttl_seconds`). A launch
   that brings it back is bound: nothing more to do, no extra round trip.
2. **Platform storage** (1EdTech "LTI Client Side postMessages", `lti_storage_target`; Canvas
   offers it). Where the login initiation names a storage frame, `/lti/login` answers a small
   page that stores the state there (`lti.put_data`) before it goes on to the platform; the
   login row remembers that storage was offered.
3. **The check page.** A launch without the cookie is answered, once, with a page of Tally's
   own that re-posts the launch (same origin, checked by `Origin`/`Sec-Fetch-Site`), with the
   state it read back from platform storage (`lti.get_data`) when the login used it, and after
   setting a probe cookie. On the re-post:
     * storage was offered at login → the state must have been found there;
     * the probe cookie came back → this browser keeps Tally's cookies, so the missing state
       cookie means the login happened in another browser → refused;
     * otherwise (cookies blocked, no storage: Safari in an iframe with Moodle) → the
       server-side check alone, as before (the state row is still single-use and bound to its
       nonce and registration).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Mapping

from flask import Response, make_response, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from tool.config import Settings
from tool.errors import LaunchError
from tool.lti.models import LoginState, Registration

COOKIE_PREFIX = "tally_state_"
PROBE_COOKIE = "tally_cookies"
CHECK_FIELD = "tally_check"  # present on the check page's re-post
STORAGE_FIELD = "lti_storage_state"  # what the check page read back from platform storage
STORAGE_KEY_PREFIX = "tally_state_"  # platform storage key of a login's state
COOKIE_PATH = "/lti/"
MAX_FIELD = 20_000  # an id_token far larger than any platform sends is not echoed into a page


def cookie_name(state: str) -> str:
    """The state cookie's name: several logins (tabs, frames) may be under way at once."""
    return COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]


def cookie_value(secret: bytes, state: str) -> str:
    """An HMAC of the state: a cookie set by anyone but Tally (a sibling subdomain) does not fit."""
    return hmac.new(secret, b"state-cookie:" + state.encode(), hashlib.sha256).hexdigest()


def _secure_cookie(resp: Response, name: str, value: str, max_age: int) -> None:
    # SameSite=None: the launch is a cross-site POST from the platform; Secure: required with None
    # (browsers treat loopback http as secure, so development works too).
    resp.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, secure=True, httponly=True, samesite="None")


def bind_login(resp: Response, settings: Settings, secret: bytes, state: str) -> None:
    """Set the state cookie (and the probe cookie) on the login's answer."""
    if settings.state_cookie:
        _secure_cookie(resp, cookie_name(state), cookie_value(secret, state), settings.state_ttl_seconds)
        _secure_cookie(resp, PROBE_COOKIE, "1", 86400)


def login_page(*, url: str, state: str, target: str, origin: str) -> Response:
    """The login's answer where the platform offered storage: store the state there, then go on."""
    return make_response(render_template("lti_storage.html", mode="put", next_url=url, target=target,
                                         origin=origin, key=STORAGE_KEY_PREFIX + state, value=state))


def _same_origin(settings: Settings) -> bool:
    """True only for a POST from a page of Tally's own origin. Sec-Fetch-Site is set by the browser and
    cannot be forged by a page; without it, Origin must be ours (the check page's Referrer-Policy lets
    browsers send it: under Tally's default no-referrer they send "null")."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    return request.headers.get("Origin") == settings.public_base_url.rstrip("/")


def _refuse(message: str, code: str) -> LaunchError:
    return LaunchError(message, code=code, hint="Open Tally again from your course in the LMS. If this keeps "
                       "happening, the browser may be blocking Tally's cookies and storage, or the launch link "
                       "was sent to you by someone else.")


def check(db: Session, settings: Settings, secret: bytes, params: Mapping[str, str]) -> Response | None:
    """None when the launch may go on to validation; the check page to answer instead; LaunchError
    when the launch demonstrably started in another browser."""
    state = params.get("state") or ""
    if not settings.state_cookie or not state or not params.get("id_token"):
        return None
    cookie = request.cookies.get(cookie_name(state))
    if cookie is not None and hmac.compare_digest(cookie, cookie_value(secret, state)):
        return None
    row = db.execute(
        select(LoginState.storage_target, Registration.auth_login_url)
        .join(Registration, Registration.id == LoginState.registration_id).where(LoginState.state == state)
    ).first()
    if row is None:
        return None  # unknown, used or purged: validation refuses it as before
    if params.get(CHECK_FIELD) != "1":
        fields = {k: v for k, v in params.items() if k in ("id_token", "state", "lti_storage_target")}
        if any(len(v) > MAX_FIELD for v in fields.values()):
            raise LaunchError("The launch is far larger than any LMS sends.", code="launch_too_large",
                              hint="Open Tally again from your course in the LMS.")
        resp = check_page(fields, target=row.storage_target, auth_login_url=row.auth_login_url, state=state)
        _secure_cookie(resp, PROBE_COOKIE, "1", 86400)
        return resp
    if not _same_origin(settings):
        raise _refuse("This launch was re-posted from another site.", "launch_check_cross_site")
    if row.storage_target:
        found = params.get(STORAGE_FIELD) or ""
        if not hmac.compare_digest(found.encode(), state.encode()):
            raise _refuse("This launch was started in another browser: its login is not in this browser's "
                          "LMS storage.", "state_not_in_this_browser")
        return None
    if request.cookies.get(PROBE_COOKIE):
        raise _refuse("This launch was started in another browser: this browser keeps Tally's cookies but has "
                      "not got the one its login set.", "state_not_in_this_browser")
    return None  # cookies blocked and no platform storage: the server-side check alone


def check_page(fields: dict[str, str], *, target: str | None, auth_login_url: str, state: str) -> Response:
    """Tally's own page that re-posts the launch (reading the state from platform storage first)."""
    from urllib.parse import urlsplit

    auth = urlsplit(auth_login_url)
    resp = make_response(render_template("lti_storage.html", mode="get", fields=fields, target=target or "",
                                         origin=f"{auth.scheme}://{auth.netloc}", key=STORAGE_KEY_PREFIX + state,
                                         check_field=CHECK_FIELD, storage_field=STORAGE_FIELD))
    resp.headers["Referrer-Policy"] = "same-origin"  # so its re-post carries Origin (see _same_origin)
    return resp


def forget(resp: Any, state: str) -> None:
    """Delete a used state cookie from the launch's answer."""
    resp.delete_cookie(cookie_name(state), path=COOKIE_PATH, secure=True, httponly=True, samesite="None")
