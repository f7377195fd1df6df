"""OIDC login initiation and LTI message launch: pylti1p3's core, hardened.

What we add on top of pylti1p3 2.0 (its last release is from 2022):

* The login's state and nonce live in the database (`login_state`) and are consumed
  with one `DELETE … RETURNING`, so a launch passes once, even with several processes.
  pylti1p3 only checks that the nonce *exists* in a cookie session, so a captured
  id_token could be replayed.
* The state row binds state → nonce → registration, and the nonce is inside the
  platform-signed id_token. The web layer also binds the state to the browser (a state
  cookie, or the LMS's platform storage: tool/web/browser_state.py); where the browser
  blocks both (Safari in an iframe, an LMS without storage) this check alone remains.
* Platform keys are cached as key objects honouring Cache-Control, refetched once on an
  unknown kid (tool/lti/jwks.py). Only RS256 is accepted: "none" and HS256 are refused
  before any key is looked at.
* `aud` is verified (pylti1p3 turns that off), `azp` is checked when present and required
  when there are several audiences (OIDC Core §2), clock leeway is a setting.
* The deployment is checked against our policy: pending deployments wait for an admin
  unless the setting auto-activates them.
* Every refusal is a `LaunchError` with a code, the reason and a hint for the admin.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

import jwt
from pylti1p3.cookie import CookieService
from pylti1p3.exception import LtiException, OIDCException
from pylti1p3.message_launch import MessageLaunch
from pylti1p3.oidc_login import OIDCLogin
from pylti1p3.redirect import Redirect
from pylti1p3.request import Request
from pylti1p3.session import SessionService
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from tool.clock import utcnow
from tool.config import Settings
from tool.errors import DeploymentNotActive, LaunchError
from tool.lti import claims as c
from tool.lti.jwks import PlatformKeys
from tool.lti.models import Deployment, LoginState
from tool.lti.registry import DatabaseToolConf, ensure_deployment


# Statements of the launch hot path, built once (SQLAlchemy caches their compiled form).
_STATE = LoginState.__table__.c
_INSERT_STATE = insert(LoginState.__table__)
_CONSUME_STATE = (
    delete(LoginState.__table__)
    .where(_STATE.state == bindparam("state"))
    .returning(_STATE.nonce, _STATE.registration_id, _STATE.expires_at)
)
_DEP = Deployment.__table__.c
_DEPLOYMENT = select(_DEP.id, _DEP.deployment_id, _DEP.status).where(
    _DEP.registration_id == bindparam("registration_id"), _DEP.deployment_id == bindparam("deployment_id")
)


@dataclass(frozen=True)
class Launch:
    """A validated launch: who, where, with which roles and services."""

    registration_id: int
    registration_name: str
    deployment_pk: int
    issuer: str
    client_id: str
    deployment_id: str
    message_type: str
    sub: str
    name: str
    given_name: str
    family_name: str
    email: str
    context_id: str
    context_title: str
    context_label: str
    resource_link_id: str
    resource_link_title: str
    lti_roles: tuple[str, ...]
    roles: tuple[c.Role, ...]
    ags: Mapping[str, Any] | None
    nrps_url: str | None
    return_url: str | None
    claims: Mapping[str, Any] = field(repr=False)


# -- pylti1p3 adapters (framework-free: the web layer hands us a plain dict of params) ----


class _ParamsRequest(Request):
    def __init__(self, params: Mapping[str, str], *, secure: bool) -> None:
        self._params = params
        self._secure = secure

    @property
    def session(self) -> dict[str, Any]:
        return {}

    def is_secure(self) -> bool:
        return self._secure

    def get_param(self, key: str) -> str:
        return self._params.get(key) or ""


class _CapturingSession(SessionService):
    """Receives the nonce pylti1p3 generates; we store it with the state in the database."""

    def __init__(self) -> None:
        self.nonce: str | None = None

    def save_nonce(self, nonce: str) -> None:
        self.nonce = nonce

    def save_state_params(self, state: str, params: Any) -> None:
        pass


class _CapturingCookies(CookieService):
    """Receives the state; the web layer sets Tally's own state cookie (tool/web/browser_state.py)."""

    def __init__(self) -> None:
        self.state: str | None = None

    def get_cookie(self, name: str) -> str | None:
        return None

    def set_cookie(self, name: str, value: str | int, exp: int | None = 3600) -> None:
        self.state = str(value)


class _UrlRedirect(Redirect[str]):
    def __init__(self, location: str) -> None:
        self._location = location

    def do_redirect(self) -> str:
        return self._location

    def do_js_redirect(self) -> str:
        return self._location

    def set_redirect_url(self, location: str) -> None:
        self._location = location

    def get_redirect_url(self) -> str:
        return self._location


class _Login(OIDCLogin[Any, DatabaseToolConf, _CapturingSession, _CapturingCookies, str]):
    def get_redirect(self, url: str) -> Redirect[str]:
        return _UrlRedirect(url)

    def _get_uuid(self) -> str:
        return secrets.token_urlsafe(24)

    def _generate_nonce(self) -> str:
        return secrets.token_urlsafe(24)


# `lti_storage_target`: "_parent" or the name of a frame in the parent window.
_FRAME_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class LoginRedirect:
    """Where to send the browser after a login initiation, and the state created."""

    url: str
    state: str
    storage_target: str | None = None  # the platform's storage frame, when it offered one
    auth_origin: str = ""  # origin of the platform's OIDC authorization URL (postMessage target origin)


def launch_url(settings: Settings) -> str:
    """The redirect_uri / target_link_uri of resource link launches."""
    return settings.public_base_url + "/lti/launch"


def begin_login(db: Session, settings: Settings, params: Mapping[str, str]) -> LoginRedirect:
    """Validate an OIDC third-party login initiation and store its state; return the auth redirect."""
    target = params.get("target_link_uri") or ""
    if target:
        ours = urlsplit(settings.public_base_url)
        theirs = urlsplit(target)
        if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
            raise LaunchError(
                f"target_link_uri {target!r} is not on this tool ({settings.public_base_url}).",
                code="target_link_uri_foreign",
                hint="Set the tool URL in the LMS to " + launch_url(settings),
            )
    if not params.get("iss"):
        raise LaunchError("The login initiation has no 'iss'.", code="login_missing_iss",
                          hint="The platform must send iss, login_hint and target_link_uri.")
    if not params.get("login_hint"):
        raise LaunchError("The login initiation has no 'login_hint'.", code="login_missing_login_hint",
                          hint="The platform must send iss, login_hint and target_link_uri.")
    conf = DatabaseToolConf(db)
    session, cookies = _CapturingSession(), _CapturingCookies()
    login = _Login(_ParamsRequest(params, secure=settings.public_base_url.startswith("https")), conf, session, cookies)
    try:
        url = login.get_redirect_object(launch_url(settings)).get_redirect_url()
    except OIDCException as exc:
        client = params.get("client_id") or "(none sent)"
        raise LaunchError(
            f"No registration for issuer {params.get('iss')!r} and client_id {client!r}.",
            code="unknown_registration",
            hint="Register this platform in Tally (python -m tool platforms add, or Dynamic Registration); "
            "if the issuer has several client_ids, the platform must send client_id.",
        ) from exc
    assert conf.registration is not None and session.nonce and cookies.state
    storage_target = params.get("lti_storage_target") or None
    if storage_target is not None and not _FRAME_NAME.fullmatch(storage_target):
        storage_target = None  # not a frame name we would post to
    db.connection().execute(
        _INSERT_STATE,
        {
            "state": cookies.state,
            "nonce": session.nonce,
            "registration_id": conf.registration.id,
            "expires_at": utcnow() + dt.timedelta(seconds=settings.state_ttl_seconds),
            "storage_target": storage_target,
        },
    )
    auth = urlsplit(conf.registration.auth_login_url)
    return LoginRedirect(url=url, state=cookies.state, storage_target=storage_target,
                         auth_origin=f"{auth.scheme}://{auth.netloc}")


class _Launch(MessageLaunch[Any, DatabaseToolConf, Any, Any]):
    def __init__(self, request: _ParamsRequest, conf: DatabaseToolConf, *, db: Session, settings: Settings,
                 keys: PlatformKeys) -> None:
        super().__init__(request, conf, session_service=_CapturingSession(), cookie_service=_CapturingCookies(),
                         requests_session=keys.http)
        self._db = db
        self._settings = settings
        self._keys = keys
        self._state_row: Any = None
        self.deployment: Any = None

    def _get_request_param(self, key: str) -> str:
        return self._request.get_param(key)

    def validate_state(self) -> "_Launch":
        state = self._get_request_param("state")
        if not state:
            raise LaunchError("The launch has no 'state'.", code="missing_state",
                              hint="Launches must come back from the platform's OIDC authorization endpoint.")
        # Consume first, check after: a state is single-use whatever the outcome.
        row = self._db.connection().execute(_CONSUME_STATE, {"state": state}).first()
        if row is None:
            raise LaunchError(
                "This launch's login state is unknown or was already used (a replayed or duplicated launch).",
                code="state_invalid",
                hint="Launch again from the LMS. If it keeps failing, the LMS may be posting to a different Tally instance.",
            )
        if row.expires_at <= utcnow():
            raise LaunchError("The login took too long: its state expired.", code="state_expired",
                              hint="Launch again from the LMS.")
        self._state_row = row
        return self

    def validate_jwt_format(self) -> "_Launch":
        try:
            super().validate_jwt_format()
        except LtiException as exc:
            raise LaunchError(f"The id_token is not a JWT: {exc}", code="id_token_malformed") from exc
        alg = self._jwt.get("header", {}).get("alg")
        if alg != "RS256":
            raise LaunchError(
                f"The id_token is signed with {alg!r}; LTI 1.3 requires RS256.",
                code="bad_algorithm",
                hint="The platform must sign id_tokens with its RSA key (RS256).",
            )
        if not self._jwt.get("header", {}).get("kid"):
            raise LaunchError("The id_token header has no 'kid'.", code="missing_kid",
                              hint="The platform must name its signing key (kid) in the id_token header.")
        return self

    def validate_nonce(self) -> "_Launch":
        nonce = self._get_jwt_body().get("nonce")
        if not nonce or not secrets.compare_digest(str(nonce), self._state_row.nonce):
            raise LaunchError(
                "The id_token's nonce does not belong to this login (a replayed id_token).",
                code="nonce_invalid",
                hint="Launch again from the LMS.",
            )
        return self

    def validate_registration(self) -> "_Launch":
        body = self._get_jwt_body()
        iss, aud, azp = body.get("iss"), body.get("aud"), body.get("azp")
        if not iss:
            raise LaunchError("The id_token has no 'iss'.", code="missing_iss")
        audiences = aud if isinstance(aud, list) else [aud] if aud else []
        client_id = azp if azp else (audiences[0] if audiences else None)
        if not client_id or client_id not in audiences:
            raise LaunchError(
                f"The id_token's audience {aud!r} / azp {azp!r} does not name one client_id.",
                code="bad_audience",
                hint="aud must contain the tool's client_id, and azp must equal it when present.",
            )
        if len(audiences) > 1 and not azp:
            raise LaunchError("The id_token has several audiences but no 'azp'.", code="missing_azp")
        reg = self._tool_config.find_registration_by_params(str(iss), str(client_id))
        if reg is None:
            raise LaunchError(
                f"No registration for issuer {iss!r} and client_id {client_id!r}.",
                code="unknown_registration",
                hint="Register this platform in Tally, or check the issuer and client ID it was registered with.",
            )
        self._registration = reg
        db_reg = self._tool_config.registration
        assert db_reg is not None
        if db_reg.id != self._state_row.registration_id:
            raise LaunchError(
                "The id_token comes from a different registration than the login that started it.",
                code="registration_mismatch",
            )
        return self

    def validate_jwt_signature(self) -> "_Launch":
        db_reg = self._tool_config.registration
        assert db_reg is not None
        key = self._keys.get(db_reg.key_set_url, str(self._jwt["header"]["kid"]))
        try:
            jwt.decode(
                self._get_id_token(),
                key,
                algorithms=["RS256"],
                audience=db_reg.client_id,
                issuer=db_reg.issuer,
                leeway=self._settings.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise LaunchError("The id_token has expired.", code="id_token_expired",
                              hint="Check that the clocks of the LMS and Tally are right (NTP); leeway is "
                              f"{self._settings.leeway_seconds} s.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise LaunchError("The id_token was issued in the future (iat/nbf).", code="id_token_not_yet_valid",
                              hint="Check that the clocks of the LMS and Tally are right (NTP).") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise LaunchError(f"The id_token lacks a required claim: {exc}", code="id_token_claim_missing") from exc
        except jwt.InvalidTokenError as exc:
            raise LaunchError(f"The id_token's signature or claims are invalid: {exc}", code="id_token_invalid") from exc
        return self

    def validate_deployment(self) -> "_Launch":
        db_reg = self._tool_config.registration
        assert db_reg is not None
        dep_id = self._get_jwt_body().get(c.DEPLOYMENT_ID)
        if not dep_id or not isinstance(dep_id, str):
            raise LaunchError("The id_token has no deployment_id.", code="missing_deployment_id")
        _check_text("deployment_id", dep_id, 255)
        dep = self._db.connection().execute(_DEPLOYMENT, {"registration_id": db_reg.id, "deployment_id": dep_id}).first()
        if dep is None:
            status = "active" if self._settings.auto_activate_deployments else "pending"
            dep = ensure_deployment(self._db, registration_id=db_reg.id, deployment_id=dep_id, status=status)
        if dep.status != "active":
            raise DeploymentNotActive(
                f"Deployment {dep_id!r} of {db_reg.name or db_reg.issuer} is {dep.status}.",
                hint="An administrator must activate it: python -m tool platforms activate "
                f"--issuer {db_reg.issuer} --client-id {db_reg.client_id} --deployment-id {dep_id}",
            )
        self.deployment = dep
        return self

    def validate_message(self) -> "_Launch":
        check_claim_shapes(self._get_jwt_body())  # before pylti1p3 reads them as objects
        try:
            super().validate_message()
        except LtiException as exc:
            raise LaunchError(f"The launch message is invalid: {exc}", code="message_invalid",
                              hint="The platform sent an LTI message Tally cannot accept.") from exc
        return self

    def save_launch_data(self) -> "_Launch":
        return self  # Tally keeps what it needs in its own tables (tool/lti/service.py)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


# The claims Tally stores, with the longest text its columns hold (tool/lti/models.py). A platform
# that sends more, or an object claim as a string, gets the refusal page (and a launch record),
# never a half-stored launch or a 500.
# A display name is kept to 200 characters like its parts (longer is no one's name).
_TOP_TEXTS = {"sub": 255, "name": 200, "given_name": 200, "family_name": 200, "email": 320}
_OBJECT_TEXTS = {c.CONTEXT: {"id": 255, "title": 500, "label": 255},
                 c.RESOURCE_LINK: {"id": 255, "title": 500},
                 c.NRPS: {"context_memberships_url": 1000},
                 c.LAUNCH_PRESENTATION: {}}
_OPTIONAL_OBJECT_TEXTS = {c.AGS_ENDPOINT: {"lineitems": 1000, "lineitem": 1000}}  # ignored when not an object


def _check_text(name: str, value: Any, limit: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise LaunchError(f"The id_token's {name!r} claim is not a string.", code="claim_malformed",
                          hint="The platform sent a claim in a form LTI 1.3 does not allow.")
    if len(value) > limit:
        raise LaunchError(f"The id_token's {name!r} claim is {len(value)} characters long; Tally keeps at most {limit}.",
                          code="claim_too_long", hint="The platform sent a value longer than LTI tools can expect.")
    if "\x00" in value:
        raise LaunchError(f"The id_token's {name!r} claim contains a NUL character.", code="claim_malformed",
                          hint="The platform sent a claim in a form LTI 1.3 does not allow.")


def check_claim_shapes(body: Mapping[str, Any]) -> None:
    """Refuse claims Tally could not store as sent: objects that are not objects, texts too long."""
    for name, limit in _TOP_TEXTS.items():
        _check_text(name, body.get(name), limit)
    for claim, fields in _OBJECT_TEXTS.items():
        value = body.get(claim)
        if value is None:
            continue
        short = claim.rsplit("/", 1)[-1]
        if not isinstance(value, dict):
            raise LaunchError(f"The id_token's {short!r} claim is not an object.", code="claim_malformed",
                              hint="The platform sent a claim in a form LTI 1.3 does not allow.")
        for key, limit in fields.items():
            _check_text(f"{short}.{key}", value.get(key), limit)
    for claim, fields in _OPTIONAL_OBJECT_TEXTS.items():
        value = body.get(claim)
        if isinstance(value, dict):
            for key, limit in fields.items():
                if isinstance(value.get(key), str):
                    _check_text(f"{claim.rsplit('/', 1)[-1]}.{key}", value[key], limit)
    roles = body.get(c.ROLES)
    if roles is not None and (not isinstance(roles, list) or len(roles) > 100):
        raise LaunchError("The id_token's 'roles' claim is not a list of roles.", code="claim_malformed",
                          hint="The platform sent a claim in a form LTI 1.3 does not allow.")


def validate_launch(db: Session, settings: Settings, params: Mapping[str, str], *, keys: PlatformKeys) -> Launch:
    """Validate a launch POST (id_token + state); consume its state; return the Launch."""
    conf = DatabaseToolConf(db)
    if not params.get("id_token"):
        raise LaunchError("The launch has no id_token.", code="missing_id_token",
                          hint="The platform must POST id_token and state to " + launch_url(settings))
    launch = _Launch(_ParamsRequest(params, secure=False), conf, db=db, settings=settings, keys=keys)
    try:
        launch.validate()
    except LtiException as exc:  # any pylti1p3 check we did not wrap ourselves
        raise LaunchError(str(exc), code="launch_invalid") from exc
    body = launch.get_launch_data()
    reg, dep = conf.registration, launch.deployment
    assert reg is not None and dep is not None
    context = body.get(c.CONTEXT) or {}
    link = body.get(c.RESOURCE_LINK) or {}
    lti_roles = tuple(r for r in body.get(c.ROLES) or [] if isinstance(r, str))
    nrps = body.get(c.NRPS) or {}
    presentation = body.get(c.LAUNCH_PRESENTATION) or {}
    return Launch(
        registration_id=reg.id,
        registration_name=reg.name or reg.issuer,
        deployment_pk=dep.id,
        issuer=reg.issuer,
        client_id=reg.client_id,
        deployment_id=dep.deployment_id,
        message_type=_str(body.get(c.MESSAGE_TYPE)),
        sub=_str(body.get("sub")),
        name=_str(body.get("name")),
        given_name=_str(body.get("given_name")),
        family_name=_str(body.get("family_name")),
        email=_str(body.get("email")),
        context_id=_str(context.get("id")),
        context_title=_str(context.get("title")),
        context_label=_str(context.get("label")),
        resource_link_id=_str(link.get("id")),
        resource_link_title=_str(link.get("title")),
        lti_roles=lti_roles,
        roles=c.map_roles(lti_roles),
        ags=body.get(c.AGS_ENDPOINT) if isinstance(body.get(c.AGS_ENDPOINT), dict) else None,
        nrps_url=_str(nrps.get("context_memberships_url")) or None,
        return_url=_str(presentation.get("return_url")) or None,
        claims=body,
    )


# What a platform's OIDC error codes ask of the person who launched (OpenID Connect Core §3.1.2.6;
# Canvas posts them to the redirect URI: instructure/canvas-lms,
# app/controllers/lti/ims/authentication_controller.rb `set_oidc_error!`).
_PLATFORM_ERROR_HINTS = {
    "login_required": "Sign in to the LMS again (your session there may have ended), then open Tally from "
                      "your course.",
    "launch_no_longer_valid": "Open Tally again from your course: this launch expired or was already used.",
    "unauthorized_client": "The LMS administrator must switch Tally's developer key on, or install the tool, for "
                           "this course or account.",
    "invalid_request_object": "The LMS refused Tally's login request; the LMS administrator should check Tally's "
                              "registration (redirect URI, client ID).",
}
_MAX_PLATFORM_WORDS = 500


def _words(value: str | None, limit: int) -> str:
    text = " ".join(str(value or "").split())  # one line, no control characters
    return text if len(text) <= limit else text[: limit - 1] + "…"


def platform_refusal(db: Session, params: Mapping[str, str]) -> LaunchError | None:
    """The LMS's own refusal, posted back instead of an id_token (`error`, `error_description`), as a
    LaunchError with its words; None for a launch. Its login state is used up."""
    if params.get("id_token") or not params.get("error"):
        return None
    if params.get("state"):
        db.connection().execute(_CONSUME_STATE, {"state": params["state"]})
    error = _words(params.get("error"), 100)
    description = _words(params.get("error_description"), _MAX_PLATFORM_WORDS)
    message = f"The LMS refused to sign you in to Tally: {description or error} ({error})."
    hint = _PLATFORM_ERROR_HINTS.get(error, "Open Tally again from your course; if the LMS keeps refusing, send its "
                                            "words above to the LMS administrator.")
    return LaunchError(message, code="platform_refused_login", hint=hint,
                       details={"error": error, "error_description": description})


def purge_expired_states(db: Session) -> int:
    """Delete login states whose launch never came; returns how many."""
    result = db.execute(delete(LoginState).where(LoginState.expires_at <= utcnow()))
    return int(result.rowcount or 0)


__all__ = ["Launch", "LoginRedirect", "begin_login", "validate_launch", "launch_url", "platform_refusal",
           "purge_expired_states"]
