"""The live stack: the tool and the sandbox LMS on loopback ports, talking real HTTP; an AGS
client for it; and headless Chromium for the browser tests."""

from __future__ import annotations

import html
import os
import re
import shutil
import time
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import Engine

from tool.config import Settings
from tool.db import make_session_factory
from tool.sandbox import Platform
from tool.sandbox.server import SandboxServer
from tool.serve import ServerThread, reserve_port
from tool.stack import make_sandbox, register_platform
from tool.web import create_app
from tests.conftest import make_settings
from tests.e2e.ags_support import Ags, open_ags

if TYPE_CHECKING:
    from playwright.sync_api import Browser, FrameLocator, Page

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


def follow_check(client: requests.Session, tool_url: str, answer: requests.Response,
                 storage: dict[str, str] | None = None) -> requests.Response:
    """What the tool's launch check page (tool/web/browser_state.py) makes a browser do: re-post the
    launch from Tally's own origin, with the state it found in the platform's storage (`storage`:
    that browser's storage, None for none). Other answers are returned as they are."""
    if 'id="lti-storage" data-mode="get"' not in answer.text:
        return answer
    action, fields = form_of(answer.text)
    key = re.search(r'data-key="([^"]+)"', answer.text)
    if storage is not None and key and html.unescape(key.group(1)) in storage:
        fields["lti_storage_state"] = storage[html.unescape(key.group(1))]
    return client.post(tool_url + action, data=fields, headers={"Origin": tool_url}, allow_redirects=False)


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
    sandbox: ServerThread | SandboxServer  # SandboxServer: keeps connections alive
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
        return LaunchResult(follow_check(client, self.tool_url, client.post(action, data=fields, allow_redirects=False)))

    def state_and_nonce(self, user_id: str, resource_link_id: str = "rl-1") -> tuple[str, str]:
        """Start a login and read the state and nonce the tool sent to the platform."""
        r = self.login(user_id, resource_link_id)
        assert r.status_code == 302, r.text[:500]
        q = parse_qs(urlsplit(r.headers["Location"]).query)
        return q["state"][0], q["nonce"][0]

    def post_id_token(self, id_token: str, state: str) -> LaunchResult:
        """POST an id_token (crafted by the test) to the tool's launch endpoint."""
        client = no_cookies()
        answer = client.post(self.tool_url + "/lti/launch", data={"id_token": id_token, "state": state},
                             allow_redirects=False)
        return LaunchResult(follow_check(client, self.tool_url, answer))

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


def start_stack(engine: Engine, database_url: str, keys_dir: Path, key_path: Path, mode: str, *,
                keepalive: bool = False, **overrides: Any) -> tuple[Stack, list[Any]]:
    """Tool + sandbox (settings `overrides`); with `keepalive` the sandbox keeps connections alive as
    a real LMS does and counts them (werkzeug's server closes each one, which would hide whether a
    client pools them). The stack, and what `stop_all` stops."""
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
    sandbox: ServerThread | SandboxServer
    if keepalive:
        sandbox = SandboxServer(sandbox_app, port=sandbox_port).start()
        platform.connections.attach(sandbox.server)
        platform.serve_on(sandbox.server)
    else:
        sandbox = ServerThread(sandbox_app, port=sandbox_port).start()
        platform.serve_on(sandbox.server)
    return Stack(settings, tool, sandbox, platform, engine), [tool, sandbox, app.extensions["tally"]]


def stop_all(things: list[Any]) -> None:
    """Stop the servers, then close the tool's services (pooled connections).

    A request thread may still be in its teardown after its answer went out (the server does not
    wait for it): its database connection is waited for, or it would go back to a pool already
    disposed and never be closed.
    """
    for thing in things:
        if isinstance(thing, (ServerThread, SandboxServer)):
            thing.stop()
        else:
            deadline = time.monotonic() + 5
            while thing.engine.pool.checkedout() and time.monotonic() < deadline:
                time.sleep(0.01)
            thing.close()


NewStack = Callable[..., Stack]


@pytest.fixture
def new_stack(clean_db: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator[NewStack]:
    """`new_stack(mode, *, keys_dir=…, keepalive=False, **settings)` starts tool + sandbox on the clean
    database (see `start_stack`); every stack it started is stopped after the test."""
    started: list[list[Any]] = []

    def start(mode: str, *, keys_dir: Path = keys_dir, **options: Any) -> Stack:
        s, things = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, mode, **options)
        started.append(things)
        return s

    yield start
    for things in started:
        stop_all(things)


@pytest.fixture(params=["moodle", "canvas"])
def stack(request: pytest.FixtureRequest, new_stack: NewStack) -> Stack:
    """Tool + sandbox in each mode."""
    return new_stack(request.param)


@pytest.fixture
def moodle(new_stack: NewStack) -> Stack:
    """Tool + sandbox in moodle mode only."""
    return new_stack("moodle")


ADMIN_PASSWORD = "correct horse battery staple"


@pytest.fixture(params=["moodle", "canvas"])
def admin_stack(request: pytest.FixtureRequest, new_stack: NewStack) -> Stack:
    """Tool + sandbox with a local admin password (ADMIN_PASSWORD), in each mode."""
    return new_stack(request.param, admin_password=ADMIN_PASSWORD)


@pytest.fixture
def ags(stack: Stack) -> Iterator[Ags]:
    """An AGS client for the `stack` fixture's sandbox (a module's own `stack` where it has one)."""
    a = open_ags(stack)
    yield a
    a.close()


# -- the browser ---------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Browser tests are skipped when Chromium is missing, unless TALLY_REQUIRE_BROWSER=1 (CI installs it
# and sets it): then they fail, and the `browser` fixture says why.
BROWSER_MISSING = CHROMIUM is None and os.environ.get("TALLY_REQUIRE_BROWSER") != "1"
NO_BROWSER = "Chromium is not installed (apt-get install chromium)"
needs_browser = pytest.mark.skipif(BROWSER_MISSING, reason=NO_BROWSER)
WAIT_MS = 15_000  # the browser tests' default timeout for every wait and action


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, one per test module."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "TALLY_REQUIRE_BROWSER=1 but Chromium is not installed"
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    """Options of the `page` fixture's browser context (viewport, downloads…): a module overrides this."""
    return {}


@pytest.fixture
def page(browser: Browser, browser_context_args: dict[str, Any]) -> Iterator[Page]:
    """A page in a fresh browser context that sends no cookie, with WAIT_MS as its default timeout."""
    context = browser.new_context(**browser_context_args)

    def strip_cookies(route, request) -> None:  # type: ignore[no-untyped-def]
        # Refuse every cookie, as Safari does for a tool inside an LMS iframe.
        route.continue_(headers={k: v for k, v in request.headers.items() if k.lower() != "cookie"})

    context.route("**/*", strip_cookies)
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    yield pg
    context.close()


def launch_from_sandbox(page: Page, stack: Stack, name: str) -> FrameLocator:
    """Open the sandbox's course page, launch Tally as the user called `name`; Tally's iframe."""
    page.goto(stack.sandbox.url + "/")
    page.get_by_role("button", name=f"Launch as {name}").click()
    # Where a user looks: below the course's people and links the frame starts off screen, and
    # Chromium stops drawing an off-screen frame of another origin, so a click in it waited for
    # animation frames that never came ("waiting for element to be visible, enabled and stable").
    page.locator("iframe[name=tool-frame]").scroll_into_view_if_needed()
    return page.frame_locator("iframe[name=tool-frame]")


def open_tally_page(page: Page, url: str, token: str) -> None:
    """Open a Tally page in the browser as its links do: a form POST carrying the session token
    (a token in the address is refused)."""
    page.goto("about:blank")
    with page.expect_navigation():
        page.evaluate("""([url, token]) => {
            const form = document.createElement("form");
            form.method = "post"; form.action = url;
            const field = document.createElement("input");
            field.type = "hidden"; field.name = "st"; field.value = token;
            form.appendChild(field); document.body.appendChild(form); form.submit();
        }""", [url, token])
