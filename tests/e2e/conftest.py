"""The live stack: the tool and the sandbox LMS on loopback ports, talking real HTTP."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import Engine

from tool.config import Settings
from tool.db import make_session_factory
from tool.sandbox import Platform
from tool.serve import ServerThread, reserve_port
from tool.stack import make_sandbox, register_platform
from tool.web import create_app
from tests.conftest import make_settings

META = re.compile(r'<meta name="tally-session" content="([^"]+)">')
CODE = re.compile(r"Reference code: <code>([^<]+)</code>")


def no_cookies() -> requests.Session:
    """A browser-like client that refuses every cookie (Safari in an iframe)."""
    s = requests.Session()
    s.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return s


def form_of(page: str) -> tuple[str, dict[str, str]]:
    """The action and fields of the auto-submitted form on a page."""
    action = re.search(r'<form[^>]*action="([^"]+)"', page)
    assert action, page[:500]
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
    return html.unescape(action.group(1)), {k: html.unescape(v) for k, v in fields.items()}


@dataclass
class LaunchResult:
    """What the tool answered to a launch."""

    response: requests.Response

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def token(self) -> str | None:
        m = META.search(self.response.text)
        return m.group(1) if m else None

    @property
    def refusal_code(self) -> str | None:
        m = CODE.search(self.response.text)
        return m.group(1) if m else None


@dataclass
class Stack:
    """Tool + sandbox on loopback."""

    settings: Settings
    tool: ServerThread
    sandbox: ServerThread
    platform: Platform
    engine: Engine

    @property
    def tool_url(self) -> str:
        return self.tool.url

    def session(self):  # type: ignore[no-untyped-def]
        return make_session_factory(self.engine)()

    def login(self, user_id: str, resource_link_id: str = "rl-1", *, client: requests.Session | None = None,
              params: dict[str, str] | None = None, method: str = "POST") -> requests.Response:
        """Send the platform's login initiation to the tool; return its (unfollowed) answer."""
        client = client or no_cookies()
        data = params if params is not None else self.platform.login_params(user_id, resource_link_id)
        if method == "GET":
            return client.get(self.tool_url + "/lti/login", params=data, allow_redirects=False)
        return client.post(self.tool_url + "/lti/login", data=data, allow_redirects=False)

    def launch(self, user_id: str, resource_link_id: str = "rl-1", *, client: requests.Session | None = None,
               method: str = "POST") -> LaunchResult:
        """The whole browser dance: login initiation → platform auth → form POST to the tool."""
        client = client or no_cookies()
        r = self.login(user_id, resource_link_id, client=client, method=method)
        assert r.status_code == 302, r.text[:500]
        auth = client.get(r.headers["Location"], allow_redirects=False)
        assert auth.status_code == 200, auth.text[:500]
        action, fields = form_of(auth.text)
        return LaunchResult(client.post(action, data=fields, allow_redirects=False))

    def state_and_nonce(self, user_id: str, resource_link_id: str = "rl-1") -> tuple[str, str]:
        """Start a login and read the state and nonce the tool sent to the platform."""
        r = self.login(user_id, resource_link_id)
        assert r.status_code == 302, r.text[:500]
        q = parse_qs(urlsplit(r.headers["Location"]).query)
        return q["state"][0], q["nonce"][0]

    def post_id_token(self, id_token: str, state: str) -> LaunchResult:
        """POST an id_token (crafted by the test) to the tool's launch endpoint."""
        return LaunchResult(no_cookies().post(self.tool_url + "/lti/launch", data={"id_token": id_token, "state": state},
                                              allow_redirects=False))

    def crafted_launch(self, mutate: Any = None, *, user_id: str | None = None, headers: dict[str, Any] | None = None,
                       key: Any = None, algorithm: str = "RS256") -> LaunchResult:
        """Login, then POST an id_token built from the platform's claims after `mutate(claims)` (in place)."""
        user_id = user_id or self.platform.teacher.id
        state, nonce = self.state_and_nonce(user_id)
        claims = self.platform.id_token_claims(user_id, nonce=nonce)
        if mutate is not None:
            mutate(claims)
        token = self.platform.sign(claims, headers=headers, key=key, algorithm=algorithm)
        return self.post_id_token(token, state)

    def api(self, token: str, path: str, method: str = "GET", **kw: Any) -> requests.Response:
        """Call the tool's JSON API with a session token."""
        headers = kw.pop("headers", None) or {"Authorization": f"Bearer {token}"}
        return no_cookies().request(method, self.tool_url + path, headers=headers, **kw)


@pytest.fixture(scope="session")
def sandbox_key_path(base_dir: Path) -> Path:
    return base_dir / "sandbox-platform.pem"


def start_stack(engine: Engine, database_url: str, keys_dir: Path, key_path: Path, mode: str,
                **overrides: Any) -> tuple[Stack, list[Any]]:
    tool_port, sandbox_port = reserve_port(), reserve_port()
    settings = make_settings(database_url, keys_dir, public_base_url=f"http://127.0.0.1:{tool_port}",
                             port=tool_port, sandbox_port=sandbox_port, **overrides)
    sandbox_app = make_sandbox(settings, base_url=f"http://127.0.0.1:{sandbox_port}", mode=mode, key_path=key_path)
    platform: Platform = sandbox_app.extensions["sandbox"]
    with make_session_factory(engine)() as db:
        register_platform(db, platform)
        db.commit()
    app = create_app(settings)
    tool = ServerThread(app, port=tool_port).start()
    sandbox = ServerThread(sandbox_app, port=sandbox_port).start()
    return Stack(settings, tool, sandbox, platform, engine), [tool, sandbox, app.extensions["tally"]]


def stop_all(things: list[Any]) -> None:
    """Stop the servers, then close the tool's services (pooled connections)."""
    for thing in things:
        if isinstance(thing, ServerThread):
            thing.stop()
        else:
            thing.close()


@pytest.fixture(params=["moodle", "canvas"])
def stack(request: pytest.FixtureRequest, clean_db: Engine, database_url: str, keys_dir: Path,
          sandbox_key_path: Path) -> Iterator[Stack]:
    """Tool + sandbox in each mode."""
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, request.param)
    yield s
    stop_all(servers)


@pytest.fixture
def moodle(clean_db: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator[Stack]:
    """Tool + sandbox in moodle mode only."""
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, "moodle")
    yield s
    stop_all(servers)
