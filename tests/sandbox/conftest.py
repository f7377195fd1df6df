"""Fixtures: a sandbox platform on loopback per test, a tool key and a loopback tool JWKS server."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, jsonify

from tool.lti.keys import public_jwk, thumbprint
from tool.sandbox import Platform, SandboxConfig, create_sandbox_app
from tool.sandbox.tokens import SERVICE_SCOPES
from tool.serve import ServerThread

SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"


@dataclass
class ToolKey:
    """The test tool's signing key."""

    private_key: rsa.RSAPrivateKey
    kid: str

    def jwk(self) -> dict[str, str]:
        """The public JWK the tool's JWKS serves."""
        return {**public_jwk(self.private_key.public_key()), "kid": self.kid, "alg": "RS256", "use": "sig"}


def new_tool_key() -> ToolKey:
    """A fresh RSA key with its thumbprint as kid."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ToolKey(key, thumbprint(key.public_key()))


@dataclass
class ToolSite:
    """A loopback stand-in for the tool: serves its JWKS (the keys list can change)."""

    url: str
    keys: list[ToolKey] = field(default_factory=list)
    jwks_hits: int = 0


@pytest.fixture(scope="session")
def tool_key() -> ToolKey:
    """The tool key every test signs client assertions with."""
    return new_tool_key()


@pytest.fixture(scope="session")
def tool_site(tool_key: ToolKey) -> Iterator[ToolSite]:
    """A loopback server serving the test tool's JWKS at /jwks."""
    app = Flask("tool-site")
    site = ToolSite(url="")

    @app.get("/jwks")
    def jwks() -> Any:
        site.jwks_hits += 1
        return jsonify({"keys": [k.jwk() for k in site.keys]})

    with ServerThread(app) as server:
        site.url = server.url
        site.keys.append(tool_key)
        yield site


class _Deferred:
    """A WSGI app set after the server knows its port (the sandbox needs its own URL)."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self.app(environ, start_response)


@dataclass
class Sandbox:
    """A running sandbox platform and a tool-side helper to call it over HTTP."""

    url: str
    platform: Platform
    tool_key: ToolKey
    http: requests.Session
    _token: tuple[str, float] | None = None  # the helper's own token for every scope and its expiry

    @property
    def mode(self) -> str:
        """moodle or canvas."""
        return self.platform.mode

    def assertion(self, *, key: ToolKey | None = None, **overrides: Any) -> str:
        """A client assertion as the tool signs it; overrides replace claims (None drops one)."""
        key = key or self.tool_key
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.platform.client_id,
            "sub": self.platform.client_id,
            "aud": self.platform.paths.token_url,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})

    def request_token(self, scopes: list[str] | None = None, **form: str) -> requests.Response:
        """POST to the token endpoint with a fresh assertion unless `form` says otherwise."""
        data = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.assertion(),
            "scope": " ".join(scopes if scopes is not None else SERVICE_SCOPES),
        }
        data.update(form)
        return self.http.post(self.platform.paths.token_url, data=data)

    def token(self, *scopes: str) -> str:
        """A bearer token for the scopes (all service scopes by default)."""
        answer = self.request_token(list(scopes) if scopes else None)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def default_token(self) -> str:
        """A token with every scope, reused until it expires, as a real tool does (Canvas charges for each)."""
        if self._token is None or self._token[1] <= self.platform.epoch() + 60:
            answer = self.request_token()
            assert answer.status_code == 200, answer.text
            self._token = (str(answer.json()["access_token"]), self.platform.epoch() + answer.json()["expires_in"])
        return self._token[0]

    def call(self, method: str, url: str, *, token: str | None = None, **kwargs: Any) -> requests.Response:
        """An authorised service call (a token with every scope unless one is given)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        headers.setdefault("Authorization", f"Bearer {token or self.default_token()}")
        return self.http.request(method, url, headers=headers, **kwargs)

    def post_score(self, item_id: int, body: dict[str, Any], *, token: str | None = None,
                   **kwargs: Any) -> requests.Response:
        """POST a score to a line item."""
        headers = {"Content-Type": SCORE_TYPE, **kwargs.pop("headers", {})}
        return self.call("POST", self.platform.paths.scores_url(item_id), token=token, data=_json(body),
                         headers=headers, **kwargs)

    def create_line_item(self, body: dict[str, Any], *, token: str | None = None) -> requests.Response:
        """POST a line item to the container."""
        return self.call("POST", self.platform.paths.lineitems_url, token=token, data=_json(body),
                         headers={"Content-Type": LINEITEM_TYPE})


def _json(body: Any) -> str:
    import json

    return json.dumps(body)


def iso(moment: dt.datetime) -> str:
    """An ISO 8601 timestamp with milliseconds and a zone, as a tool sends it."""
    return moment.isoformat(timespec="milliseconds")


def now_utc() -> dt.datetime:
    """The current time, aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


def score(user_id: str, *, given: float | None = 8, maximum: float | None = 10, timestamp: str | None = None,
          activity: str = "Completed", grading: str = "FullyGraded", comment: str | None = None,
          **extra: Any) -> dict[str, Any]:
    """A score body (a FullyGraded 8/10 unless told otherwise)."""
    body: dict[str, Any] = {"userId": user_id, "timestamp": timestamp or iso(now_utc()),
                            "activityProgress": activity, "gradingProgress": grading}
    if given is not None:
        body["scoreGiven"] = given
    if maximum is not None:
        body["scoreMaximum"] = maximum
    if comment is not None:
        body["comment"] = comment
    body.update(extra)
    return body


@pytest.fixture(scope="session")
def platform_key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One platform key file for all sandboxes (generating a 2048-bit key per test is slow)."""
    return tmp_path_factory.mktemp("sandbox") / "platform.pem"


@pytest.fixture
def start_sandbox(
    tool_site: ToolSite, tool_key: ToolKey, platform_key_path: Path
) -> Iterator[Callable[..., Sandbox]]:
    """Start sandboxes on loopback: `start_sandbox("canvas", issuer=...)`; all stop after the test."""
    servers: list[ServerThread] = []
    sessions: list[requests.Session] = []

    def start(mode: str = "moodle", **config: Any) -> Sandbox:
        deferred = _Deferred()
        server = ServerThread(deferred)
        settings = {
            "base_url": server.url,
            "tool_login_url": tool_site.url + "/login",
            "tool_launch_url": tool_site.url + "/launch",
            "tool_jwks_url": tool_site.url + "/jwks",
            "mode": mode,
            "key_path": platform_key_path,
            **config,
        }
        app = create_sandbox_app(SandboxConfig(**settings))
        deferred.app = app
        app.extensions["sandbox"].serve_on(server.server)  # faults.refuse_connections reaches it
        server.start()
        servers.append(server)
        session = requests.Session()
        sessions.append(session)
        return Sandbox(server.url, app.extensions["sandbox"], tool_key, session)

    yield start
    for session in sessions:
        session.close()
    for server in servers:
        server.stop()


@pytest.fixture(params=["moodle", "canvas"])
def sandbox(request: pytest.FixtureRequest, start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A sandbox in each mode."""
    return start_sandbox(request.param)


@pytest.fixture
def moodle(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A sandbox in Moodle mode."""
    return start_sandbox("moodle")


@pytest.fixture
def canvas(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A sandbox in Canvas mode."""
    return start_sandbox("canvas")
