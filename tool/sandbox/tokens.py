"""The OAuth 2 token endpoint (client credentials with a JWT client assertion) and access tokens.

The tool proves itself with a JWT signed by a key its JWKS serves (fetched over HTTP from
`tool_jwks_url`, cached, refetched when an unknown `kid` shows up). Moodle answers 400
`"kid" invalid` when the assertion's kid is not in that JWKS.

Scopes: Moodle grants what it allows of the scopes asked for and refuses only when that is
nothing. Canvas grants all or nothing: every scope asked for must be on the developer key, or
the answer is 400 `invalid_scope` naming the missing ones (lib/canvas/oauth/provider.rb
`valid_scopes?`, lib/canvas/oauth/invalid_scope_error.rb). A service call whose token lacks
the scope it needs is 401 "Insufficient permissions" on Canvas
(app/controllers/lti/ims/concerns/lti_services.rb, `verify_access_scope`), 403 on Moodle.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
import requests
from flask import Flask, Response, jsonify, request

from tool.sandbox.errors import ServiceError, reason_phrase
from tool.sandbox.guard import refusal_before_call, throttle_begin, throttle_end, throttled_response

if TYPE_CHECKING:
    from tool.sandbox.platform import Platform

AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCOPE_LINEITEM = AGS + "lineitem"
SCOPE_LINEITEM_READONLY = AGS + "lineitem.readonly"
SCOPE_RESULT_READONLY = AGS + "result.readonly"
SCOPE_SCORE = AGS + "score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SERVICE_SCOPES = (SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY, SCOPE_SCORE, SCOPE_NRPS)

GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_LIFETIME = 3600
ASSERTION_LEEWAY = 5


class TokenError(Exception):
    """A refused token request: an OAuth 2 error code and a description."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class AccessToken:
    """A bearer token the platform issued."""

    value: str
    scopes: frozenset[str]
    expires_at: float
    client_id: str


class TokenService:
    """Issues access tokens for client assertions and checks them on every service call."""

    def __init__(
        self,
        *,
        client_id: str,
        audiences: Iterable[str],
        tool_jwks_url: str,
        clock: Callable[[], float],
        mode: str = "moodle",
    ) -> None:
        self.mode = mode
        # What the developer key (Canvas) or the tool type's settings (Moodle) allow.
        self.allowed_scopes: frozenset[str] = frozenset(SERVICE_SCOPES)
        self.client_id = client_id
        self.audiences = list(audiences)
        self.tool_jwks_url = tool_jwks_url
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, AccessToken] = {}
        self._seen_jti: dict[str, float] = {}
        self._tool_keys: dict[str, dict[str, Any]] = {}
        self.requests = 0  # every call of the token endpoint (tests check that tools cache tokens)
        # Some platforms trust a fetched tool JWKS for a fixed time and ignore unknown kids until
        # then; with `jwks_cache_seconds` set, this one does too (key rotation tests).
        self.jwks_cache_seconds: float | None = None
        self._tool_keys_until = 0.0
        self.issued = 0
        self.jwks_fetches = 0

    # -- the tool's JWKS -------------------------------------------------------------------

    def _fetch_tool_jwks(self) -> None:
        try:
            answer = requests.get(self.tool_jwks_url, timeout=5, headers={"Accept": "application/json"})
            answer.raise_for_status()
            keys = answer.json().get("keys", [])
        except (requests.RequestException, ValueError, AttributeError) as exc:
            raise TokenError("invalid_client", f"could not fetch the tool JWKS: {exc}") from exc
        with self._lock:
            self.jwks_fetches += 1
            self._tool_keys = {k["kid"]: k for k in keys if isinstance(k, dict) and "kid" in k}
            self._tool_keys_until = time.monotonic() + (self.jwks_cache_seconds or 0.0)

    def _tool_key(self, kid: str) -> Any:
        if self.jwks_cache_seconds is not None:
            if time.monotonic() >= self._tool_keys_until:
                self._fetch_tool_jwks()  # the strict cache expired: fetch, whatever the kid
        elif kid not in self._tool_keys:
            self._fetch_tool_jwks()  # refetch on an unknown kid: the tool may have rotated
        jwk = self._tool_keys.get(kid)
        if jwk is None:
            raise TokenError("invalid_client", '"kid" invalid')  # Moodle's exact words
        try:
            return jwt.PyJWK(jwk).key
        except jwt.PyJWTError as exc:
            raise TokenError("invalid_client", f"unusable key in the tool JWKS: {exc}") from exc

    # -- issuing ---------------------------------------------------------------------------

    def count_request(self) -> None:
        """Count one call of the token endpoint, answered or not."""
        with self._lock:
            self.requests += 1

    def issue(self, form: dict[str, str]) -> dict[str, Any]:
        """Check a token request's form fields and answer the token response."""
        if form.get("grant_type") != GRANT_TYPE:
            raise TokenError("unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion")
        if not assertion:
            raise TokenError("invalid_request", "client_assertion is missing")
        claims = self._verify_assertion(assertion)
        requested = form.get("scope", "").split()
        if self.mode == "canvas":
            missing = [s for s in requested if s not in self.allowed_scopes]
            if missing or not requested:
                raise TokenError("invalid_scope", "A requested scope is invalid, unknown, malformed, or exceeds the "
                                 "scope granted by the resource owner. The following scopes were requested, but "
                                 "not granted: " + _sentence(missing))
            granted = list(dict.fromkeys(requested))
        else:
            granted = [s for s in requested if s in SERVICE_SCOPES and s in self.allowed_scopes]
            if not granted:
                raise TokenError("invalid_scope", "no AGS or NRPS scope requested")
        token = AccessToken(
            value=secrets.token_urlsafe(32),
            scopes=frozenset(granted),
            expires_at=self._clock() + TOKEN_LIFETIME,
            client_id=claims["sub"],
        )
        with self._lock:
            self._tokens[token.value] = token
            self.issued += 1
        return {"access_token": token.value, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                "scope": " ".join(granted)}

    def _verify_assertion(self, assertion: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise TokenError("invalid_request", f"client_assertion is not a JWT: {exc}") from exc
        if header.get("alg") != "RS256":
            raise TokenError("invalid_client", "client_assertion must be signed with RS256")
        kid = header.get("kid")
        if not kid:
            raise TokenError("invalid_client", '"kid" empty')
        key = self._tool_key(kid)
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=self.audiences,  # the token URL; the issuer is accepted too
                issuer=self.client_id,
                leeway=ASSERTION_LEEWAY,
                # exp, iat and nbf are checked below against the platform's clock, which tests
                # move together with the tool's (token renewal an hour later).
                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"],
                         "verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.InvalidAudienceError as exc:
            raise TokenError("invalid_client", f"client_assertion aud is not the token endpoint: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise TokenError("invalid_client", f"client_assertion refused: {exc}") from exc
        if claims["sub"] != self.client_id:
            raise TokenError("invalid_client", "client_assertion sub must be the client_id")
        now = self._clock()
        self._check_times(claims, now)
        with self._lock:
            self._seen_jti = {j: exp for j, exp in self._seen_jti.items() if exp + ASSERTION_LEEWAY > now}
            if claims["jti"] in self._seen_jti:
                raise TokenError("invalid_client", "client_assertion jti was already used")
            self._seen_jti[claims["jti"]] = float(claims["exp"])
        return claims

    @staticmethod
    def _check_times(claims: dict[str, Any], now: float) -> None:
        try:
            exp, iat = float(claims["exp"]), float(claims["iat"])
            nbf = float(claims["nbf"]) if "nbf" in claims else None
        except (TypeError, ValueError):
            raise TokenError("invalid_client", "client_assertion refused: exp, iat and nbf must be numbers") from None
        if exp <= now - ASSERTION_LEEWAY:
            raise TokenError("invalid_client", "client_assertion refused: Signature has expired")
        if iat > now + ASSERTION_LEEWAY:
            raise TokenError("invalid_client", "client_assertion refused: The token is not yet valid (iat)")
        if nbf is not None and nbf > now + ASSERTION_LEEWAY:
            raise TokenError("invalid_client", "client_assertion refused: The token is not yet valid (nbf)")

    # -- checking --------------------------------------------------------------------------

    def lookup(self, authorization: str | None) -> AccessToken | None:
        """The token an Authorization header names, if the platform issued it (expired or not)."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        with self._lock:
            return self._tokens.get(authorization[len("Bearer "):].strip())

    def authorize(self, authorization: str | None, accepted_scopes: Iterable[str]) -> AccessToken:
        """The token behind an Authorization header, if it covers one of the accepted scopes."""
        if not authorization or not authorization.startswith("Bearer "):
            raise ServiceError(401, "Missing access token")
        token = self.lookup(authorization)
        if token is None:
            raise ServiceError(401, "Invalid access token")
        if token.expires_at <= self._clock():
            raise ServiceError(401, "Access token expired")
        if not token.scopes.intersection(accepted_scopes):
            if self.mode == "canvas":
                raise ServiceError(401, "Insufficient permissions")
            raise ServiceError(403, "Access token does not cover this call")
        return token

    def use_client(self, client_id: str, tool_jwks_url: str) -> None:
        """Accept assertions of another client (a tool registered dynamically); forget cached keys."""
        with self._lock:
            self.client_id = client_id
            self.tool_jwks_url = tool_jwks_url
            self._tool_keys = {}
            self._tool_keys_until = 0.0

    def expire_all(self) -> None:
        """Make every issued token expired (tests of the tool's token refresh)."""
        with self._lock:
            self._tokens = {
                v: AccessToken(t.value, t.scopes, 0.0, t.client_id) for v, t in self._tokens.items()
            }

def _sentence(words: list[str]) -> str:
    """Words joined as Rails' `to_sentence` does: "a", "a and b", "a, b, and c"."""
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + ", and " + words[-1]


def register(app: Flask, platform: Platform) -> None:
    """Add the token endpoint to the sandbox app."""

    def token() -> Response:
        platform.tokens.count_request()
        # A token request carries no access token: Canvas buckets it by the caller's address.
        ticket = throttle_begin(platform, f"ip:{request.remote_addr}")
        if ticket is not None and ticket.throttled:
            return throttle_end(platform, ticket, throttled_response())
        refusal = refusal_before_call(platform, "token")
        if refusal is not None:
            return throttle_end(platform, ticket, refusal)
        try:
            response = jsonify(platform.tokens.issue(request.form.to_dict()))
        except TokenError as exc:
            response = jsonify({"error": exc.error, "error_description": exc.description})
            response.status_code = exc.status
            if platform.mode == "moodle":
                # Moodle's status line carries the detail too: `400 "kid" invalid`.
                response.status = f"{exc.status} {reason_phrase(exc.description)}"
            return throttle_end(platform, ticket, response)
        return throttle_end(platform, ticket, response, extra=platform.throttle.settings.token_cost)

    app.add_url_rule(platform.paths.token_rule, "token", token, methods=["POST"])
