"""One call at a time to a platform's services, answers kept as received: the admin console's
"Test services" and `python -m tool doctor` show them to the administrator.

The access token in a token answer is redacted: the page or the terminal shows the
platform's words, never a working bearer token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

from tool import outbound

from tool.ags.lineitems import LINEITEM_CONTAINER_TYPE
from tool.lti.assertion import token_request_form
from tool.lti.claims import SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY

MAX_BODY = 4000


@dataclass(frozen=True)
class ServiceProbe:
    """One call to the platform and its answer, as received."""

    step: str
    method: str
    url: str
    status: int | None
    reason: str
    body: str

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


def redact_token(text: str) -> str:
    """A token endpoint's answer with the access token cut short."""
    # Show the platform's token answer without handing out a working bearer token.
    try:
        body = json.loads(text)
    except ValueError:
        return text
    if isinstance(body, dict) and isinstance(body.get("access_token"), str):
        body["access_token"] = body["access_token"][:6] + "… (redacted)"
        return json.dumps(body, indent=2)
    return text


def probe_token(http: requests.Session, reg: dict[str, Any], keys: Any, timeout: float) -> tuple[ServiceProbe, str | None]:
    """POST a token request for the line item scopes; the answer, and the token when granted."""
    url = reg["auth_token_url"]
    data = token_request_form(keys, client_id=reg["client_id"], token_url=url, audience=reg["auth_audience"],
                              scopes=[SCOPE_LINEITEM_READONLY, SCOPE_LINEITEM])
    try:
        resp = outbound.fetch(http, "POST", url, data=data, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        return ServiceProbe("Access token", "POST", url, None, "unreachable", str(exc)), None
    token = None
    if resp.status_code == 200:
        try:
            token = str(resp.json()["access_token"])
        except (ValueError, KeyError, TypeError):
            token = None
    return ServiceProbe("Access token", "POST", url, resp.status_code, resp.reason or "",
                        redact_token(resp.text[:MAX_BODY])), token


def probe_lineitems(http: requests.Session, url: str, token: str, timeout: float) -> ServiceProbe:
    """GET a line items container with the token."""
    try:
        resp = outbound.fetch(http, "GET", url, timeout=timeout,
                              headers={"Accept": LINEITEM_CONTAINER_TYPE, "Authorization": f"Bearer {token}"})
    except requests.RequestException as exc:
        return ServiceProbe("Line items", "GET", url, None, "unreachable", str(exc))
    return ServiceProbe("Line items", "GET", url, resp.status_code, resp.reason or "", resp.text[:MAX_BODY])
