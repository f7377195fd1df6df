"""Issue 11, findings 1 and 2, replayed against a running Tally with local listeners.

The stack runs as production does: registration by invitation only, and outbound fetches
refused to loopback except the sandbox's port and the "public" attacker host 127.0.0.2
(loopback aliases stand in for the internet here). The listeners:

- a "secret" internal service on 127.0.0.1 that must never be reached;
- an attacker's platform on 127.0.0.2: a full OpenID configuration and a registration endpoint;
- an attacker configuration whose registration_endpoint points at the secret service;
- a configuration that trickles one byte at a time, and one of 50 MB;
- a port that accepts and resets, and a closed port (they must look alike).
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import func, select

from tool.config import Settings
from tool.lti.models import Registration
from tests.e2e.conftest import NewStack, Stack, no_cookies

SECRET = "TOP-SECRET-internal-answer-4f1c"
PUBLIC = "127.0.0.2"  # the attacker's "internet" host, allow-listed like a public LMS would be
TRICKLE_BYTES = 60
TRICKLE_EVERY = 0.25  # seconds between two bytes: well under the per-read timeout
HUGE_BYTES = 50 * 1024 * 1024


class Listener:
    """A threaded HTTP server on a loopback address; `handle(handler)` answers every request."""

    def __init__(self, host: str, handle: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.requests: list[tuple[str, str, str]] = []  # (method, path, body)
        self.stop = threading.Event()
        self.finished = threading.Event()  # a streaming answer went out in full
        self.sent = 0  # body bytes written by a streaming answer
        self.hung_up = threading.Event()  # the client closed while a streaming answer went out
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                outer.requests.append((self.command, self.path, body))
                handle(self)

            do_GET = do_POST = _any

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def _answer(handler: BaseHTTPRequestHandler, status: int, body: str | bytes, ctype: str = "application/json") -> None:
    data = body.encode() if isinstance(body, str) else body
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _configuration(base: str, registration_endpoint: str | None = None) -> dict[str, Any]:
    return {
        "issuer": base, "authorization_endpoint": base + "/auth", "token_endpoint": base + "/token",
        "jwks_uri": base + "/jwks", "registration_endpoint": registration_endpoint or base + "/register",
        "https://purl.imsglobal.org/spec/lti-platform-configuration": {"product_family_code": "moodle"},
    }


@pytest.fixture
def listeners() -> Any:
    made: list[Listener] = []

    def make(host: str, handle: Callable[[BaseHTTPRequestHandler], None]) -> Listener:
        made.append(Listener(host, handle))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def secret(listeners: Any) -> Listener:
    """The internal service: answers 400 with a secret (the old page echoed non-200 bodies)."""
    return listeners("127.0.0.1", lambda h: _answer(h, 400, SECRET, "text/plain"))


def _known(**settings: Any) -> dict[str, Any]:
    # Settings this file needs that the code before issue 11 did not have are left out there,
    # so the same file replays the findings on that code (and fails there).
    return {k: v for k, v in settings.items() if k in Settings.model_fields}


@pytest.fixture
def guarded(new_stack: NewStack) -> Stack:
    """Tool + sandbox configured as in production: invitations only, loopback refused but the
    sandbox and the "public" host; a short total deadline and a 1 MB cap for the slow/huge cases."""
    return new_stack("moodle", **_known(
        dynamic_registration_open=False, outbound_deadline_seconds=2.0, outbound_max_bytes=1_000_000,
        http_timeout_seconds=10.0, outbound_allowed_hosts=("sandbox", PUBLIC)))


def _registrations(stack: Stack) -> int:
    with stack.session() as db:
        return int(db.scalar(select(func.count()).select_from(Registration)) or 0)


def _invited(stack: Stack, name: str = "") -> str:
    """A fresh invitation URL (the code before issue 11 had none: its plain registration URL)."""
    try:
        from tool.lti.invitations import create_invitation
    except ImportError:
        return stack.tool_url + "/lti/register"
    with stack.session() as db:
        inv = create_invitation(db, stack.settings, name=name, created_by="test")
        db.commit()
    return inv.url


def _open(url: str, configuration: str, token: str = "attacker-token") -> requests.Response:
    sep = "&" if "?" in url else "?"
    return no_cookies().get(url + sep + urlencode({"openid_configuration": configuration,
                                                   "registration_token": token}), timeout=120)


def _visible(page: str) -> str:
    """The page without its per-request parts (request ids), to compare two refusals."""
    return re.sub(r"[0-9a-f]{12,}", "…", page)


# -- finding 1: anonymous SSRF and anonymous pending registrations --------------------------------


def test_anonymous_register_fetches_nothing_and_stores_nothing(guarded: Stack, secret: Listener,
                                                               listeners: Any) -> None:
    holder: dict[str, Listener] = {}

    def platform(h: BaseHTTPRequestHandler) -> None:
        base = holder["p"].base
        if h.command == "GET":
            _answer(h, 200, json.dumps(_configuration(base)))
        else:
            _answer(h, 200, json.dumps({"client_id": "evil", "https://purl.imsglobal.org/spec/lti-tool-configuration":
                                        {"deployment_id": "1"}}))

    holder["p"] = attacker = listeners(PUBLIC, platform)
    for target in (secret.base + "/secret", attacker.base + "/.well-known/openid-configuration"):
        r = _open(guarded.tool_url + "/lti/register", target)
        assert r.status_code == 403, (r.status_code, r.text[:300])
        assert SECRET not in r.text
        assert "invitation" in r.text.lower()
    assert secret.requests == [] and attacker.requests == []
    assert _registrations(guarded) == 1  # the sandbox's own, registered by the test stack


def test_invited_registration_never_reaches_an_internal_address(guarded: Stack, secret: Listener) -> None:
    r = _open(_invited(guarded), secret.base + "/secret")
    assert r.status_code in (400, 403, 502), r.status_code
    assert SECRET not in r.text
    assert secret.requests == []


def test_registration_endpoint_must_be_on_the_issuers_host(guarded: Stack, secret: Listener, listeners: Any) -> None:
    holder: dict[str, Listener] = {}
    holder["a"] = attacker = listeners(
        PUBLIC, lambda h: _answer(h, 200, json.dumps(_configuration(holder["a"].base, secret.base + "/admin/reset"))))
    r = _open(_invited(guarded), attacker.base + "/conf")
    assert r.status_code in (400, 403, 502), r.status_code
    assert SECRET not in r.text
    assert secret.requests == []  # no POST reached the internal service
    assert [m for m, _, _ in attacker.requests] == ["GET"]


def test_a_refusal_shows_status_and_short_text_never_the_body(guarded: Stack, listeners: Any) -> None:
    long_secret = SECRET + " " + "x" * 3000
    lms = listeners(PUBLIC, lambda h: _answer(h, 500, long_secret, "text/plain"))
    r = _open(_invited(guarded), lms.base + "/conf")
    assert r.status_code == 502
    assert "500" in r.text
    assert SECRET not in r.text and "xxxxxxxxxx" not in r.text

    holder: dict[str, Listener] = {}

    def refusing(h: BaseHTTPRequestHandler) -> None:
        if h.command == "GET":
            _answer(h, 200, json.dumps(_configuration(holder["p"].base)))
        else:
            _answer(h, 400, long_secret, "text/plain")

    holder["p"] = platform = listeners(PUBLIC, refusing)
    r = _open(_invited(guarded), platform.base + "/conf")
    assert r.status_code == 400  # the platform refused: its status, never its words
    assert 'id="platform-status">400' in r.text and SECRET not in r.text


def test_refused_and_reset_connections_look_alike(guarded: Stack) -> None:
    closed = socket.socket()
    closed.bind((PUBLIC, 0))  # bound, never listening: connection refused
    resetter = socket.socket()
    resetter.bind((PUBLIC, 0))
    resetter.listen(8)
    stop = threading.Event()

    def reset_all() -> None:
        resetter.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = resetter.accept()
            except OSError:
                continue
            conn.recv(1024)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST: "connection reset" / RemoteDisconnected

    t = threading.Thread(target=reset_all, daemon=True)
    t.start()
    try:
        url = _invited(guarded)
        refused = _open(url, "http://%s:%d/conf" % closed.getsockname())
        reset = _open(url, "http://%s:%d/conf" % resetter.getsockname())
    finally:
        stop.set()
        t.join()
        closed.close()
        resetter.close()
    assert refused.status_code == reset.status_code == 502
    strip = lambda page: re.sub(r":\d+/conf", ":PORT/conf", _visible(page))  # noqa: E731
    assert strip(refused.text) == strip(reset.text)
    assert "refused" not in refused.text.lower() and "reset" not in reset.text.lower()


# -- finding 2: denial of service through the same endpoint -----------------------------------------


def test_a_trickling_configuration_is_cut_off_at_the_total_deadline(guarded: Stack, listeners: Any) -> None:
    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(TRICKLE_BYTES))
        h.end_headers()
        h.wfile.flush()
        try:
            for _ in range(TRICKLE_BYTES):
                if lms.stop.wait(TRICKLE_EVERY):
                    return
                h.wfile.write(b" ")
                h.wfile.flush()
                lms.sent += 1
            lms.finished.set()
        except OSError:
            lms.hung_up.set()

    lms = listeners(PUBLIC, trickle)
    r = _open(_invited(guarded), lms.base + "/conf")
    # Each byte came well within the per-read timeout: only a total deadline stops this.
    assert not lms.finished.is_set(), "Tally read the trickle to its end"
    assert r.status_code == 502
    assert lms.sent < TRICKLE_BYTES


def test_a_huge_configuration_is_not_read_past_the_cap(guarded: Stack, listeners: Any) -> None:
    chunk = b" " * 65536

    def huge(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(HUGE_BYTES))
        h.end_headers()
        try:
            while lms.sent < HUGE_BYTES and not lms.stop.is_set():
                h.wfile.write(chunk)
                lms.sent += len(chunk)
            lms.finished.set()
        except OSError:
            lms.hung_up.set()

    lms = listeners(PUBLIC, huge)
    r = _open(_invited(guarded), lms.base + "/conf")
    assert r.status_code in (413, 502)
    assert lms.hung_up.wait(30) and not lms.finished.is_set()
    # What went out before Tally hung up: its 1 MB cap plus what the loopback buffers hold.
    assert lms.sent < 16 * 1024 * 1024, lms.sent


# -- registration by invitation ------------------------------------------------------------------


def test_an_invitation_registers_once_through_the_sandbox(guarded: Stack) -> None:
    from tests.e2e.registration_support import dynreg_of, paste_registration_url

    from tool.lti.invitations import create_invitation

    with guarded.session() as db:
        inv = create_invitation(db, guarded.settings, name="Moodle (Faculty of Law)", created_by="test")
        db.commit()
    assert inv.url.startswith(guarded.tool_url + "/lti/register?invitation=")

    page = no_cookies().post(guarded.platform.config.base_url + "/admin/tools/register", data={"tool_url": inv.url})
    start = re.search(r'<iframe id="registration-frame"[^>]*src="([^"]+)"', page.text)
    assert start is not None
    first = no_cookies().get(start.group(1).replace("&amp;", "&"))
    assert first.status_code == 200, first.text[:500]
    with guarded.session() as db:
        names = list(db.scalars(select(Registration.name).where(Registration.source == "dynamic")))
    assert names == ["Moodle (Faculty of Law)"]

    # The same URL pasted again (or replayed by someone who saw it) does nothing.
    dynreg = dynreg_of(guarded)
    before = len(dynreg.requests)
    again = no_cookies().get(dynreg.start_url(inv.url))
    assert again.status_code == 403 and "used" in again.text.lower()
    assert len(dynreg.requests) == before
    assert _registrations(guarded) == 2
    # Without the invitation, a paste does nothing either.
    _, plain = paste_registration_url(guarded)
    assert plain.status_code == 403 and _registrations(guarded) == 2


def test_an_expired_or_forged_invitation_is_refused(guarded: Stack, listeners: Any) -> None:
    from tool import clock
    from tool.lti.invitations import create_invitation

    lms = listeners(PUBLIC, lambda h: _answer(h, 200, "{}"))
    with guarded.session() as db:
        inv = create_invitation(db, guarded.settings, expires_in_seconds=3600, created_by="test")
        db.commit()
    clock.shift(3601)
    r = _open(inv.url, lms.base + "/conf")
    assert r.status_code == 403 and "expired" in r.text.lower()
    forged = re.sub(r"invitation=[^&]+", "invitation=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", inv.url)
    r = _open(forged, lms.base + "/conf")
    assert r.status_code == 403
    assert lms.requests == []


def test_a_failed_registration_leaves_the_invitation_usable(guarded: Stack, listeners: Any) -> None:
    from tool.lti.invitations import create_invitation

    lms = listeners(PUBLIC, lambda h: _answer(h, 503, "down", "text/plain"))
    with guarded.session() as db:
        inv = create_invitation(db, guarded.settings, created_by="test")
        db.commit()
    assert _open(inv.url, lms.base + "/conf").status_code == 502
    # The LMS admin starts again from the LMS with the same URL: this time it works.
    page = no_cookies().post(guarded.platform.config.base_url + "/admin/tools/register", data={"tool_url": inv.url})
    start = re.search(r'<iframe id="registration-frame"[^>]*src="([^"]+)"', page.text)
    assert start is not None
    assert no_cookies().get(start.group(1).replace("&amp;", "&")).status_code == 200
    assert _registrations(guarded) == 2


def test_two_browsers_with_one_invitation_register_once(guarded: Stack) -> None:
    from tests.e2e.registration_support import dynreg_of

    from tool.lti.invitations import create_invitation

    with guarded.session() as db:
        inv = create_invitation(db, guarded.settings, created_by="test")
        db.commit()
    dynreg = dynreg_of(guarded)
    urls = [dynreg.start_url(inv.url) for _ in range(4)]
    answers: list[int] = []
    barrier = threading.Barrier(len(urls))

    def go(u: str) -> None:
        barrier.wait()
        answers.append(no_cookies().get(u).status_code)

    threads = [threading.Thread(target=go, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers).count(200) == 1, answers
    assert set(answers) <= {200, 403, 409}
    assert _registrations(guarded) == 2


def test_the_admin_button_and_the_command_line_print_an_invitation(new_stack: NewStack,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.e2e.registration_support import admin_client, csrf_of

    from tool import cli

    stack = new_stack("moodle", admin_password="correct horse battery staple", dynamic_registration_open=False)
    client = admin_client(stack)
    console = client.get(stack.tool_url + "/admin")
    assert 'action="/admin/invitations"' in console.text
    r = client.post(stack.tool_url + "/admin/invitations",
                    data={"csrf": csrf_of(console.text), "name": "Canvas <test>", "expires": "2d"})
    assert r.status_code == 200, r.text[:500]
    m = re.search(r'id="invitation-url"[^>]*>([^<]+)<', r.text)
    assert m and m.group(1).startswith(stack.tool_url + "/lti/register?invitation=")
    assert "Canvas &lt;test&gt;" in r.text
    # Without the console's CSRF token the button does nothing.
    assert client.post(stack.tool_url + "/admin/invitations", data={"name": "x"}).status_code == 403

    for name, value in {"TOOL_ENV": "test", "TOOL_DATABASE_URL": stack.settings.database_url,
                        "TOOL_PUBLIC_BASE_URL": stack.settings.public_base_url,
                        "TOOL_KEYS_DIR": stack.settings.keys_dir}.items():
        monkeypatch.setenv(name, value)
    code = cli.main(["platforms", "invite", "--name", "Moodle", "--expires", "12h"])
    out = capsys.readouterr().out
    assert code == 0
    url = re.search(r"(http://\S+/lti/register\?invitation=\S+)", out)
    assert url, out
    assert "12 hours" in out or "expires" in out.lower()
    with stack.session() as db:
        from tool.lti.models import RegistrationInvitation

        rows = list(db.scalars(select(RegistrationInvitation).order_by(RegistrationInvitation.id)))
    assert [r.name for r in rows] == ["Canvas <test>", "Moodle"]
    assert all(url.group(1).split("invitation=")[1] not in (r.token_hash or "") for r in rows)  # only a hash kept
    assert cli.main(["platforms", "invite", "--expires", "soon"]) == 2


def test_open_registration_is_for_development_only() -> None:
    from tool.errors import ConfigError
    from tool.ops import guards
    from tests.conftest import make_settings

    settings = make_settings("postgresql://x@127.0.0.1/x", "keys", env="production", sandbox_enabled=False,
                             dynamic_registration_open=True, public_base_url="https://tally.example.edu",
                             secret_key="s" * 40)
    with pytest.raises(ConfigError, match="dynamic_registration_open"):
        guards.enforce(settings)
    dev = make_settings("sqlite:///x.db", "keys")
    assert dev.dynamic_registration_open is True  # the test stack and `make run` register through the sandbox
