"""Client assertions for the platform's OAuth 2 token endpoint (LTI Security Framework §4.1).

The tool authenticates with a JWT signed by its own key (`private_key_jwt`); the platform
verifies it against our JWKS, so the header's `kid` must be one the JWKS serves (Moodle
answers 400 `"kid" invalid` otherwise). The AGS issue builds its token cache on this.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Iterable

import requests

from tool import outbound
from tool.ags.http import platform_words
from tool.clock import epoch
from tool.errors import ToolError
from tool.lti.keys import KeyStore
from tool.logs import event
from tool.metrics import TOKEN_FETCHES, platform_label

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def client_assertion(keys: KeyStore, *, client_id: str, audience: str, lifetime: int = 300) -> str:
    """A signed, single-use client assertion: iss = sub = client_id, aud = the token endpoint."""
    now = int(epoch())
    return keys.sign(
        {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + lifetime,
         "jti": secrets.token_urlsafe(16)}
    )


@dataclass(frozen=True)
class AccessToken:
    """An access token granted by a platform."""

    token: str
    scopes: tuple[str, ...]
    expires_in: int


class TokenRequestError(ToolError):
    """The platform refused to grant an access token; the message carries its words."""

    code = "token_refused"


def token_request_form(keys: KeyStore, *, client_id: str, token_url: str, audience: str | None,
                       scopes: Iterable[str]) -> dict[str, str]:
    """The client-credentials form a token endpoint takes, with a freshly signed assertion."""
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(keys, client_id=client_id, audience=audience or token_url),
        "scope": " ".join(sorted(set(scopes))),
    }


def _oauth_error(resp: requests.Response) -> str | None:
    """The OAuth error code of a refusal (RFC 6749 §5.2: `invalid_scope`, …), if the body has one."""
    try:
        body = resp.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error[:100] if isinstance(error, str) else None


def request_access_token(
    http: requests.Session, keys: KeyStore, *, client_id: str, token_url: str, audience: str | None,
    scopes: Iterable[str], timeout: float = 10.0,
) -> AccessToken:
    """Ask the platform for an access token with the client-credentials grant."""
    data = token_request_form(keys, client_id=client_id, token_url=token_url, audience=audience, scopes=scopes)
    platform = platform_label(token_url)
    try:
        resp = outbound.fetch(http, "POST", token_url, data=data, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        TOKEN_FETCHES.labels(platform, "unreachable").inc()
        event(log, "token.unreachable", level=logging.WARNING, platform=platform, token_url=token_url, error=str(exc))
        raise TokenRequestError(f"token endpoint {token_url} unreachable: {exc}") from exc
    TOKEN_FETCHES.labels(platform, "granted" if resp.status_code == 200 else "refused").inc()
    if resp.status_code != 200:
        # Moodle puts the detail in the reason phrase, Canvas in a JSON body: keep both. An HTML
        # error page (Moodle's token.php when its HTTP security blocks the tool's JWKS URL) is
        # one line, its title: never markup in a teacher's page or the log.
        words = platform_words(resp)
        event(log, "token.refused", level=logging.WARNING, platform=platform, token_url=token_url,
              status=resp.status_code, lms_reason=resp.reason, lms_words=words)
        raise TokenRequestError(
            f"token endpoint answered {resp.status_code} {resp.reason}: {words}",
            details={"status": resp.status_code, "reason": resp.reason, "body": words, "error": _oauth_error(resp)},
        )
    try:
        body = resp.json()
        return AccessToken(
            token=str(body["access_token"]),
            scopes=tuple(str(body.get("scope") or data["scope"]).split()),
            expires_in=int(body.get("expires_in") or 3600),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenRequestError(f"token endpoint answered an unreadable body: {resp.text[:200]}") from exc
