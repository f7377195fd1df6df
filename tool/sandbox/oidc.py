"""OIDC third-party-initiated login: the authorization endpoint, the platform JWKS, and discovery.

The authorization endpoint checks what Moodle's auth.php checks (scope, response_type,
response_mode, prompt, client_id, registered redirect_uri, login_hint, the one-time
lti_message_hint) plus state and nonce, then answers an auto-submitting form that POSTs
`id_token` and `state` to the redirect_uri.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request

from tool.sandbox.platform import AGS_CLAIM, LTI, NRPS_CLAIM, Platform
from tool.sandbox.tokens import SERVICE_SCOPES


class AuthRequestError(Exception):
    """A refused authorization request; the message names the field."""


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
            user_id, resource_link_id, redirect_uri = check_auth_request(platform, params)
        except AuthRequestError as exc:
            return render_template("sandbox/error.html", problem=str(exc), platform=platform), 400
        id_token = platform.id_token(user_id, nonce=params["nonce"], resource_link_id=resource_link_id)
        html = render_template(
            "sandbox/autopost.html",
            title="Signing you in to the tool",
            action=redirect_uri,
            method="post",
            fields={"id_token": id_token, "state": params["state"]},
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
