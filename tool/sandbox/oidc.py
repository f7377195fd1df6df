"""OIDC third-party-initiated login: the authorization endpoint, the platform JWKS, and discovery.

The authorization endpoint checks what Moodle's auth.php checks (scope, response_type,
response_mode, prompt, client_id, registered redirect_uri, login_hint, the one-time
lti_message_hint) plus state and nonce, then answers an auto-submitting form that POSTs
`id_token` and `state` to the redirect_uri. Moodle shows a refusal as its own error page.

Canvas posts a refusal to the tool instead, when it knows where: an auto-submitting form with
`error`, `error_description` and `state` to the redirect_uri
(app/controllers/lti/ims/authentication_controller.rb, `set_oidc_error!`). Only an unknown
redirect_uri or an unreadable lti_message_hint get Canvas's own error page (`reject!`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from flask import Flask, Response, jsonify, render_template, request

from tool.sandbox.platform import AGS_CLAIM, LTI, NRPS_CLAIM, Platform
from tool.sandbox.tokens import SERVICE_SCOPES


class AuthRequestError(Exception):
    """A refused authorization request; the message names the field."""


@dataclass(frozen=True)
class OidcError:
    """A refusal Canvas posts back to the tool."""

    error: str
    description: str


def check_canvas_auth_request(platform: Platform, params: dict[str, str]) -> tuple[str, str, str] | OidcError:
    """Canvas's checks: (user_id, resource_link_id, redirect_uri), or the error it posts back.

    AuthRequestError for what Canvas refuses on its own page (unknown redirect_uri, a hint
    it cannot decode). As in Canvas, a later failing check replaces an earlier one's error,
    and the launch is looked up (and consumed) only when nothing failed before.
    """
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in platform.redirect_uris():
        raise AuthRequestError("Invalid redirect_uri")
    try:
        hint_claims = jwt.decode(params.get("lti_message_hint", ""), platform.private_key.public_key(),
                                 algorithms=["RS256"], options={"verify_exp": False})
    except jwt.PyJWTError:
        raise AuthRequestError("Invalid lti_message_hint") from None
    if float(hint_claims.get("exp", 0)) <= platform.epoch():
        raise AuthRequestError("Invalid lti_message_hint")  # Canvas::Security::TokenExpired
    error: OidcError | None = None
    required = ("client_id", "login_hint", "lti_message_hint", "nonce", "prompt", "redirect_uri",
                "response_mode", "response_type", "scope")
    missing = [name for name in required if not params.get(name)]
    if missing:
        error = OidcError("invalid_request_object", "The following parameters are missing: " + ",".join(missing))
    if params.get("scope") != "openid":
        error = OidcError("invalid_request_object", "The 'scope' must be 'openid'")
    if hint_claims.get("context_id") != platform.course.id or params.get("login_hint") not in platform.users:
        error = OidcError("login_required", "Must have an active user session")
    if params.get("client_id") != platform.client_id:
        error = OidcError("unauthorized_client", "Client not authorized in requested context")
    if error is not None:
        return error
    hint = platform.consume_hint(params["lti_message_hint"])
    if hint is None or hint.user_id != params["login_hint"]:
        return OidcError("launch_no_longer_valid", "The launch has either expired or already been consumed")
    return hint.user_id, hint.resource_link_id, redirect_uri


def check_auth_request(platform: Platform, params: dict[str, str]) -> tuple[str, str, str]:
    """Validate an authorization request; return (user_id, resource_link_id, redirect_uri)."""
    expected = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post", "prompt": "none"}
    for name, value in expected.items():
        if params.get(name) != value:
            raise AuthRequestError(f"{name} must be {value!r}, got {params.get(name)!r}")
    if params.get("client_id") != platform.client_id:
        raise AuthRequestError(f"client_id {params.get('client_id')!r} is not registered")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in platform.redirect_uris():
        raise AuthRequestError(f"redirect_uri {redirect_uri!r} is not registered for this tool")
    for name in ("state", "nonce", "login_hint", "lti_message_hint"):
        if not params.get(name):
            raise AuthRequestError(f"{name} is missing")
    hint = platform.consume_hint(params["lti_message_hint"])
    if hint is None:
        # Moodle drops the launch id from the session once used: a replayed login fails.
        raise AuthRequestError("lti_message_hint is unknown, expired or already used")
    if hint.user_id != params["login_hint"]:
        raise AuthRequestError("login_hint does not match the user who started the launch")
    return hint.user_id, hint.resource_link_id, redirect_uri


def openid_configuration(platform: Platform) -> dict[str, Any]:
    """The platform's OpenID configuration: only endpoints that exist are listed."""
    return {
        "issuer": platform.issuer,
        "authorization_endpoint": platform.paths.auth_url,
        "token_endpoint": platform.paths.token_url,
        "jwks_uri": platform.paths.jwks_url,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public", "pairwise"],
        "scopes_supported": ["openid", *SERVICE_SCOPES],
        "claims_supported": ["iss", "aud", "sub", "iat", "exp", "nonce", "name", "given_name", "family_name",
                             "email", LTI + "roles", LTI + "context", AGS_CLAIM, NRPS_CLAIM],
        "https://purl.imsglobal.org/spec/lti-platform-configuration": {
            "product_family_code": platform.mode,
            "version": "4.5.6" if platform.mode == "moodle" else "cloud",
            "messages_supported": [{"type": "LtiResourceLinkRequest"}],
            "variables": [],
        },
    }


def register(app: Flask, platform: Platform) -> None:
    """Add the OIDC routes to the sandbox app."""

    def authorize() -> Response | tuple[str, int]:
        params = dict(request.args if request.method == "GET" else request.values)
        try:
            if platform.mode == "canvas":
                checked = check_canvas_auth_request(platform, params)
                if isinstance(checked, OidcError):
                    fields = {"error": checked.error, "error_description": checked.description}
                    if params.get("state"):
                        fields["state"] = params["state"]
                    html = render_template("sandbox/autopost.html", title="The LMS refused the launch",
                                           action=params["redirect_uri"], method="post", fields=fields,
                                           platform=platform)
                    return Response(html, content_type="text/html; charset=utf-8")
                user_id, resource_link_id, redirect_uri = checked
            else:
                user_id, resource_link_id, redirect_uri = check_auth_request(platform, params)
        except AuthRequestError as exc:
            return render_template("sandbox/error.html", problem=str(exc), platform=platform), 400
        id_token = platform.id_token(user_id, nonce=params["nonce"], resource_link_id=resource_link_id)
        html = render_template(
            "sandbox/autopost.html",
            title="Signing you in to the tool",
            action=redirect_uri,
            method="post",
            fields={"id_token": id_token, **({"state": params["state"]} if params.get("state") else {})},
            platform=platform,
        )
        return Response(html, content_type="text/html; charset=utf-8")

    def jwks() -> Response:
        return jsonify(platform.jwks())

    def discovery() -> Response:
        return jsonify(openid_configuration(platform))

    app.add_url_rule(platform.paths.auth_rule, "oidc_authorize", authorize, methods=["GET", "POST"])
    app.add_url_rule(platform.paths.jwks_rule, "oidc_jwks", jwks)
    app.add_url_rule("/.well-known/openid-configuration", "oidc_discovery", discovery)
