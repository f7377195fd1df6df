"""LTI Dynamic Registration, platform side, as Moodle 4.5 and Canvas answer it.

    GET  /mod/lti/openid-configuration.php | /api/lti/security/openid-configuration
    POST /mod/lti/openid-registration.php  | /api/lti/registrations
    GET  /admin/tools                         the sandbox admin page: tools, "paste the registration URL"
    POST /admin/tools/register                mint a registration token, open the tool in an iframe
    POST /admin/tools/<client_id>/activate    Moodle: activate the pending tool; Canvas: install the app

Moodle (mod/lti/openid-registration.php) takes the registration token as a Bearer header: none
→ 401 `missing_registration_token`; a token whose client_id is registered → 401
`token_already_used`; a bad field → 400 with plain words (`missing required attribute X`,
`domain_targetlinkuri_mismatch`, `invalid_response_types`, …). Its answer echoes the tool's
values with `client_id` and the new tool type id as `deployment_id`; the tool stays
*Pending* until an admin activates it. Canvas wants the token on the configuration GET too,
answers JSON errors, and returns no deployment_id: the deployment appears when the admin
installs the app.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from flask import Flask, Response, jsonify, redirect, render_template, request

from tool.sandbox.oidc import openid_configuration
from tool.sandbox.platform import Platform
from tool.sandbox.tokens import (
    SCOPE_LINEITEM,
    SCOPE_LINEITEM_READONLY,
    SCOPE_NRPS,
    SCOPE_RESULT_READONLY,
    SCOPE_SCORE,
)

TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
CANVAS_PRIVACY_LEVEL = "https://canvas.instructure.com/lti/privacy_level"
TOKEN_LIFETIME = 3600  # Moodle: HOURSECS
REG_SCOPE = "reg"
# The fields Moodle's registration_helper requires, in the order it checks them.
MOODLE_REQUIRED = ("response_types", "initiate_login_uri", "redirect_uris", "client_name", "jwks_uri",
                   "token_endpoint_auth_method", TOOL_CONFIGURATION)
CANVAS_PLACEMENTS = ("course_navigation", "link_selection", "assignment_selection", "account_navigation")


class RegistrationRefused(Exception):
    """The platform refuses a registration request: a status and the platform's words."""

    def __init__(self, status: int, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field_name = field_name


@dataclass
class RegisteredTool:
    """A tool that registered itself, with what the platform stored of its request."""

    client_id: str
    client_name: str
    initiate_login_uri: str
    redirect_uris: list[str]
    jwks_uri: str
    target_link_uri: str
    domain: str
    deep_link_uri: str | None
    scopes: list[str]
    claims: list[str]
    messages: list[dict[str, Any]]
    privacy_level: str | None
    deployment_id: str | None
    state: str  # "pending" | "active"
    payload: dict[str, Any] = field(repr=False)
    registered_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    @property
    def placements(self) -> list[str]:
        """Canvas placements over all messages."""
        return [p for m in self.messages for p in m.get("placements") or []]


def moodle_domain(url: str) -> str:
    """Moodle's lti_get_domain_from_url: host[:port] without scheme, path and a leading www."""
    rest = url.split("://", 1)[-1]
    host = rest.split("/", 1)[0].lower()
    return host[4:] if host.startswith("www.") else host


def granted_scopes(requested: list[str]) -> list[str]:
    """What Moodle grants for requested scopes (registration_helper: AGS as a bundle, then lineitem, NRPS)."""
    ags = {SCOPE_SCORE, SCOPE_RESULT_READONLY, SCOPE_LINEITEM_READONLY, SCOPE_LINEITEM}
    granted = []
    if ags.intersection(requested):
        granted += [SCOPE_SCORE, SCOPE_RESULT_READONLY, SCOPE_LINEITEM_READONLY]
    if SCOPE_LINEITEM in requested:
        granted.append(SCOPE_LINEITEM)
    if SCOPE_NRPS in requested:
        granted.append(SCOPE_NRPS)
    return granted


class DynamicRegistrations:
    """The platform's registration tokens and the tools registered with them."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.tools: dict[str, RegisteredTool] = {}
        self.requests: list[dict[str, Any]] = []  # every registration POST body, for tests
        self._lock = threading.Lock()
        self._next_type_id = int(platform.deployment_id) + 1 if platform.deployment_id.isdigit() else 2
        self._next_key = 10000000000001

    # -- URLs --------------------------------------------------------------------------------

    @property
    def configuration_rule(self) -> str:
        """Where the mode publishes its OpenID configuration for Dynamic Registration."""
        return "/mod/lti/openid-configuration.php" if self.platform.mode == "moodle" else \
            "/api/lti/security/openid-configuration"

    @property
    def registration_rule(self) -> str:
        """The registration endpoint."""
        return "/mod/lti/openid-registration.php" if self.platform.mode == "moodle" else "/api/lti/registrations"

    @property
    def configuration_url(self) -> str:
        """Absolute URL of the configuration (the `openid_configuration` parameter)."""
        return self.platform.config.base_url + self.configuration_rule

    @property
    def registration_url(self) -> str:
        """Absolute URL of the registration endpoint."""
        return self.platform.config.base_url + self.registration_rule

    def configuration(self) -> dict[str, Any]:
        """The OpenID configuration with the registration endpoint and the messages it supports."""
        conf = openid_configuration(self.platform)
        conf["registration_endpoint"] = self.registration_url
        plat = dict(conf[PLATFORM_CONFIGURATION])
        if self.platform.mode == "canvas":
            conf["authorization_server"] = self.platform.config.base_url  # Canvas: the token audience
            plat["messages_supported"] = [
                {"type": "LtiResourceLinkRequest", "placements": ["course_navigation", "account_navigation"]},
                {"type": "LtiDeepLinkingRequest", "placements": ["link_selection", "assignment_selection"]},
            ]
            conf["https://canvas.instructure.com/lti/account_name"] = "Sandbox University"
        else:
            plat["messages_supported"] = [{"type": "LtiResourceLinkRequest"}, {"type": "LtiDeepLinkingRequest"}]
        conf[PLATFORM_CONFIGURATION] = plat
        return conf

    # -- tokens ------------------------------------------------------------------------------

    def new_token(self, *, lifetime: int = TOKEN_LIFETIME) -> str:
        """A registration token as Moodle mints it: {sub: the future client_id, scope: reg}, signed, 1 h."""
        now = int(self.platform.epoch())
        with self._lock:
            if self.platform.mode == "canvas":
                client_id = str(self._next_key)  # Canvas client ids are developer key numbers
                self._next_key += 1
            else:
                client_id = secrets.token_urlsafe(11)[:15]  # Moodle: random_string(15)
        return self.platform.sign({"sub": client_id, "scope": REG_SCOPE, "iat": now, "exp": now + lifetime})

    def start_url(self, tool_registration_url: str, *, token: str | None = None) -> str:
        """The tool's registration URL with the two parameters the platform adds."""
        params = urlencode({"openid_configuration": self.configuration_url,
                            "registration_token": token or self.new_token()})
        return tool_registration_url + ("&" if urlsplit(tool_registration_url).query else "?") + params

    def check_token(self, authorization: str | None) -> str:
        """The client_id of a valid, unused registration token, or RegistrationRefused."""
        if not authorization or not authorization.startswith("Bearer "):
            raise RegistrationRefused(401, "missing_registration_token")
        try:
            claims = jwt.decode(authorization[7:].strip(), self.platform.private_key.public_key(),
                                algorithms=["RS256"], options={"require": ["exp", "sub"], "verify_exp": False})
        except jwt.InvalidSignatureError:
            raise RegistrationRefused(401, "Signature verification failed") from None
        except jwt.PyJWTError:
            raise RegistrationRefused(401, "Wrong number of segments") from None
        if float(claims["exp"]) <= self.platform.epoch():
            raise RegistrationRefused(401, "Expired token")  # the words of Moodle's JWT library
        if claims.get("scope") != REG_SCOPE:
            raise RegistrationRefused(403, "Incorrect scope")
        client_id = str(claims["sub"])
        if client_id in self.tools:
            raise RegistrationRefused(401, "token_already_used")
        return client_id

    # -- registering -------------------------------------------------------------------------

    def _check_payload(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise RegistrationRefused(400, "missing required attribute response_types", "response_types")
        for name in MOODLE_REQUIRED:
            if not payload.get(name):
                raise RegistrationRefused(400, f"missing required attribute {name}", name)
        conf = payload[TOOL_CONFIGURATION]
        if not isinstance(conf, dict) or not conf.get("domain"):
            raise RegistrationRefused(400, "missing_domain", "domain")
        target = conf.get("target_link_uri") or "https://" + str(conf["domain"])
        if moodle_domain(str(conf["domain"])) != moodle_domain(str(target)):
            raise RegistrationRefused(400, "domain_targetlinkuri_mismatch", "domain")
        if not isinstance(payload["response_types"], list) or "id_token" not in payload["response_types"]:
            raise RegistrationRefused(400, "invalid_response_types", "response_types")
        if not isinstance(payload["redirect_uris"], list):
            raise RegistrationRefused(400, "invalid_redirect_uris", "redirect_uris")
        if payload["token_endpoint_auth_method"] != "private_key_jwt":
            raise RegistrationRefused(400, "invalid_token_endpoint_auth_method", "token_endpoint_auth_method")
        if payload.get("application_type") and payload["application_type"] != "web":
            raise RegistrationRefused(400, "invalid_application_type", "application_type")
        if self.platform.mode == "canvas":
            for message in conf.get("messages") or []:
                for placement in message.get("placements") or []:
                    if placement not in CANVAS_PLACEMENTS:
                        raise RegistrationRefused(422, f"unknown placement {placement!r}", "messages")
        return conf

    def register(self, authorization: str | None, payload: Any) -> dict[str, Any]:
        """Validate and store a registration; the answer the mode's platform gives."""
        with self._lock:
            self.requests.append(payload if isinstance(payload, dict) else {"unreadable": True})
        client_id = self.check_token(authorization)
        conf = self._check_payload(payload)
        messages = [m for m in conf.get("messages") or [] if isinstance(m, dict)]
        deep = next((m for m in messages if m.get("type") == "LtiDeepLinkingRequest"), None)
        requested = str(payload.get("scope") or "").split()
        with self._lock:
            if client_id in self.tools:  # two POSTs racing with one token
                raise RegistrationRefused(401, "token_already_used")
            deployment_id = None
            if self.platform.mode == "moodle":
                deployment_id = str(self._next_type_id)  # the new tool type's id
                self._next_type_id += 1
            tool = RegisteredTool(
                client_id=client_id, client_name=str(payload["client_name"]),
                initiate_login_uri=str(payload["initiate_login_uri"]),
                redirect_uris=[str(u) for u in payload["redirect_uris"]], jwks_uri=str(payload["jwks_uri"]),
                target_link_uri=str(conf.get("target_link_uri") or ""), domain=str(conf["domain"]),
                deep_link_uri=str(deep.get("target_link_uri") or conf.get("target_link_uri")) if deep else None,
                scopes=granted_scopes(requested) if self.platform.mode == "moodle" else
                [s for s in requested if s in (SCOPE_SCORE, SCOPE_RESULT_READONLY, SCOPE_LINEITEM_READONLY,
                                               SCOPE_LINEITEM, SCOPE_NRPS)],
                claims=[str(x) for x in conf.get("claims") or []], messages=messages,
                privacy_level=conf.get(CANVAS_PRIVACY_LEVEL), deployment_id=deployment_id, state="pending",
                payload=payload,
            )
            self.tools[client_id] = tool
        return self._answer(tool, conf)

    def _answer(self, tool: RegisteredTool, conf: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "client_id": tool.client_id,
            "response_types": ["id_token"],
            "jwks_uri": tool.jwks_uri,
            "initiate_login_uri": tool.initiate_login_uri,
            "grant_types": ["client_credentials", "implicit"],
            "redirect_uris": tool.redirect_uris,
            "application_type": "web",
            "token_endpoint_auth_method": "private_key_jwt",
            "client_name": tool.client_name,
            "scope": " ".join(tool.scopes),
        }
        if self.platform.mode == "moodle":
            answer["logo_uri"] = ""
            tool_conf: dict[str, Any] = {
                "version": "1.3.0", "deployment_id": tool.deployment_id, "target_link_uri": tool.target_link_uri,
                "domain": tool.domain, "description": str(conf.get("description") or ""),
                # Moodle answers the claims it will share, not the ones asked for.
                "claims": ["sub", "iss"] + [c for c in ("name", "family_name", "given_name", "email") if c in tool.claims],
            }
            if tool.deep_link_uri:
                tool_conf["messages"] = [{"type": "LtiDeepLinkingRequest", "target_link_uri": tool.deep_link_uri}]
        else:
            tool_conf = {k: v for k, v in conf.items()}
            answer["https://canvas.instructure.com/lti/registration_config_url"] = (
                f"{self.platform.config.base_url}/api/lti/registrations/{tool.client_id}/view")
        answer[TOOL_CONFIGURATION] = tool_conf
        return answer

    def activate(self, client_id: str) -> RegisteredTool:
        """Moodle: activate the pending tool. Canvas: install the app (a deployment appears). Then launch it."""
        with self._lock:
            tool = self.tools[client_id]
            if tool.deployment_id is None:  # Canvas: "<context id>:<hash>"
                tool.deployment_id = f"{len(self.tools)}:{secrets.token_hex(20)}"
            tool.state = "active"
        launch = tool.target_link_uri or (tool.redirect_uris[0] if tool.redirect_uris else "")
        self.platform.use_tool(client_id=tool.client_id, deployment_id=tool.deployment_id, login_url=tool.initiate_login_uri,
                               launch_url=launch, jwks_url=tool.jwks_uri, deep_link_url=tool.deep_link_uri)
        # What the registration granted is what the tool may use from now on: its launches list
        # those scopes, and its token requests are checked against them.
        self.platform.tool_scopes = tool.scopes
        return tool


def _refusal(platform: Platform, exc: RegistrationRefused) -> Response:
    if platform.mode == "moodle":
        # mod/lti/openid-registration.php: the status and the bare words as the body.
        return Response(exc.message, status=exc.status, content_type="text/plain; charset=utf-8")
    error: dict[str, Any] = {"message": exc.message}
    if exc.field_name:
        error["field"] = exc.field_name
    return Response(jsonify({"errors": [error]}).get_data(), status=exc.status, content_type="application/json")


def register(app: Flask, platform: Platform) -> DynamicRegistrations:
    """Add the Dynamic Registration routes and the admin page to the sandbox app."""
    dynreg = DynamicRegistrations(platform)
    app.extensions["sandbox_dynreg"] = dynreg

    def configuration() -> Response:
        if platform.mode == "canvas":
            try:  # Canvas serves its configuration only to the bearer of a registration token
                dynreg.check_token(request.headers.get("Authorization"))
            except RegistrationRefused as exc:
                if exc.message != "token_already_used":
                    return _refusal(platform, exc)
        return jsonify(dynreg.configuration())

    def registration() -> Response:
        payload = request.get_json(silent=True)
        try:
            answer = dynreg.register(request.headers.get("Authorization"), payload)
        except RegistrationRefused as exc:
            return _refusal(platform, exc)
        return Response(jsonify(answer).get_data(), status=200, content_type="application/json; charset=utf-8")

    def tools_page() -> str:
        suggested = platform.config.tool_login_url.rsplit("/lti/login", 1)[0] + "/lti/register"
        return render_template("sandbox/tools.html", platform=platform, dynreg=dynreg,
                               tools=list(dynreg.tools.values()), suggested=suggested)

    def start() -> Response | tuple[str, int]:
        url = (request.form.get("tool_url") or "").strip()
        if not url.startswith(("http://", "https://")):
            return render_template("sandbox/error.html", platform=platform,
                                   problem="Paste the tool's registration URL (http:// or https://)."), 400
        return Response(render_template("sandbox/tool_register.html", platform=platform, start_url=dynreg.start_url(url)),
                        content_type="text/html; charset=utf-8")

    def activate(client_id: str) -> Response | tuple[str, int]:
        if client_id not in dynreg.tools:
            return render_template("sandbox/error.html", platform=platform, problem="No such tool."), 404
        dynreg.activate(client_id)
        return redirect("/admin/tools", code=303)

    app.add_url_rule(dynreg.configuration_rule, "dynreg_configuration", configuration)
    app.add_url_rule(dynreg.registration_rule, "dynreg_registration", registration, methods=["POST"])
    app.add_url_rule("/admin/tools", "dynreg_tools", tools_page)
    app.add_url_rule("/admin/tools/register", "dynreg_start", start, methods=["POST"])
    app.add_url_rule("/admin/tools/<client_id>/activate", "dynreg_activate", activate, methods=["POST"])
    return dynreg
