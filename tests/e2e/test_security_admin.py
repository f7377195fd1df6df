"""Finding 3 of issue 11, replayed against a running tool: /admin/login was an unthrottled CPU sink
(600,000 PBKDF2 iterations per attempt, no limit, no lockout) and login and logout took cross-site
POSTs. Now: a limiter counted before any hashing (per client address and for the account, shared
by every process through the database), 429 with Retry-After and a lockout that doubles; CSRF on
login and logout; Argon2id hashes, older PBKDF2 hashes still accepted and re-hashed."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from typing import Any, Callable, Iterator

import pytest
import requests
from sqlalchemy import select

from tool import clock, limits
from tool.serve import ServerThread, reserve_port
from tool.web import admin_views, create_app
from tests.e2e.conftest import ADMIN_PASSWORD, BROWSER_MISSING, NO_BROWSER, NewStack, Stack, stop_all

CSRF_FIELD = re.compile(r'<input type="hidden" name="csrf" value="([^"]+)">')
EVIL = "https://evil.example"


@pytest.fixture
def hashing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the tool hashed or checked (a spy around the real check)."""
    seen: list[str] = []
    real = admin_views.check_password

    def spy(settings: Any, given: str, *args: Any, **kwargs: Any) -> bool:
        seen.append(given)
        return real(settings, given, *args, **kwargs)

    monkeypatch.setattr(admin_views, "check_password", spy)
    return seen


@pytest.fixture
def console(new_stack: NewStack) -> Stack:
    """Moodle mode with a local admin password; 3 failures per client, 6 for the account, 60 s first lockout;
    one proxy in front (X-Forwarded-For names the client)."""
    return new_stack("moodle", admin_password=ADMIN_PASSWORD, admin_login_client_limit=3,
                     admin_login_account_limit=6, admin_login_window_seconds=600, admin_login_lockout_seconds=60,
                     admin_login_lockout_max_seconds=3600, trusted_proxies=1)


def login_form(client: requests.Session, base: str, **headers: str) -> str:
    """GET the sign-in form (sets the pre-login cookie); its CSRF token ('' when the form has none)."""
    page = client.get(base + "/admin/login", headers=headers)
    m = CSRF_FIELD.search(page.text)
    return m.group(1) if m else ""


def attempt(base: str, password: str, *, client_ip: str = "203.0.113.7", client: requests.Session | None = None,
            origin: str | None = None) -> requests.Response:
    """One sign-in as a same-site browser would send it (form first, then the POST)."""
    client = client or requests.Session()
    headers = {"X-Forwarded-For": client_ip}
    token = login_form(client, base, **headers)
    return client.post(base + "/admin/login", data={"password": password, "csrf": token},
                       headers={**headers, "Origin": origin or base}, allow_redirects=False)


# -- the limiter ---------------------------------------------------------------------------------


def test_past_the_client_limit_the_answer_is_429_with_retry_after_and_nothing_is_hashed(
        console: Stack, hashing: list[str]) -> None:
    base = console.tool_url
    answers = [attempt(base, f"guess-{i}").status_code for i in range(3)]
    assert answers == [403, 403, 403] and len(hashing) == 3

    r = attempt(base, "guess-4")
    assert r.status_code == 429, r.text[:300]
    assert 55 <= int(r.headers["Retry-After"]) <= 60
    assert "Too many sign-in attempts" in r.text
    # The right password during the lockout is not even checked: a locked client costs no hashing.
    r = attempt(base, ADMIN_PASSWORD)
    assert r.status_code == 429 and "tally_admin=" not in r.headers.get("Set-Cookie", "")
    assert len(hashing) == 3
    # Another client is not locked by this one (until the account limit).
    assert attempt(base, ADMIN_PASSWORD, client_ip="198.51.100.9").status_code == 303


def test_the_lockout_ends_after_retry_after_and_the_next_one_lasts_twice_as_long(
        new_stack: NewStack, hashing: list[str]) -> None:
    console = new_stack("moodle", admin_password=ADMIN_PASSWORD, admin_login_client_limit=3,
                        admin_login_account_limit=100, admin_login_lockout_seconds=60, trusted_proxies=1)
    base = console.tool_url
    for i in range(3):
        attempt(base, f"guess-{i}")
    first = attempt(base, "guess-3")
    assert first.status_code == 429 and int(first.headers["Retry-After"]) == 60

    clock.shift(61)  # the injectable clock: no sleeping
    assert attempt(base, "again-1").status_code == 403  # allowed again, and wrong
    for i in range(2):
        attempt(base, f"again-{i + 2}")
    second = attempt(base, "again-4")
    assert second.status_code == 429 and int(second.headers["Retry-After"]) == 120

    clock.shift(121)
    assert attempt(base, ADMIN_PASSWORD).status_code == 303  # and a success clears the count
    assert [attempt(base, f"after-{i}").status_code for i in range(3)] == [403, 403, 403]


def test_the_account_is_limited_across_client_addresses(console: Stack, hashing: list[str]) -> None:
    base = console.tool_url
    statuses = [attempt(base, "guess", client_ip=f"192.0.2.{i}").status_code for i in range(1, 8)]
    assert statuses[:6] == [403] * 6 and statuses[6] == 429, statuses
    assert len(hashing) == 6
    r = attempt(base, ADMIN_PASSWORD, client_ip="192.0.2.200")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_two_processes_count_together(console: Stack, hashing: list[str]) -> None:
    """Like two gunicorn workers: a second app on the same database shares the counts."""
    app = create_app(console.settings)
    second = ServerThread(app, port=reserve_port()).start()
    try:
        bases = [console.tool_url, second.url]
        # Both serve one public URL (behind one proxy), as gunicorn's workers do.
        statuses = [attempt(bases[i % 2], f"guess-{i}", origin=console.tool_url).status_code for i in range(4)]
        assert statuses == [403, 403, 403, 429], statuses
        assert attempt(second.url, ADMIN_PASSWORD, origin=console.tool_url).status_code == 429
    finally:
        stop_all([second, app.extensions["tally"]])


def test_parallel_attempts_cannot_outrun_the_limit(console: Stack, hashing: list[str]) -> None:
    base = console.tool_url
    statuses: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        s = attempt(base, f"parallel-{i}").status_code
        with lock:
            statuses.append(s)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses).count(403) == 3 and statuses.count(429) == 9, statuses
    assert len(hashing) == 3


# -- CSRF ------------------------------------------------------------------------------------------


def test_a_cross_site_login_post_is_refused_even_with_the_right_password(console: Stack) -> None:
    client = requests.Session()
    r = client.post(console.tool_url + "/admin/login", data={"password": ADMIN_PASSWORD},
                    headers={"Origin": EVIL}, allow_redirects=False)
    assert r.status_code == 403 and "tally_admin=" not in r.headers.get("Set-Cookie", "")
    assert client.get(console.tool_url + "/admin", allow_redirects=False).status_code == 303


def test_a_login_post_without_its_forms_token_is_refused(console: Stack) -> None:
    client = requests.Session()
    r = client.post(console.tool_url + "/admin/login", data={"password": ADMIN_PASSWORD}, allow_redirects=False)
    assert r.status_code == 403 and "tally_admin=" not in r.headers.get("Set-Cookie", "")
    # Another browser's token does not fit this browser's pre-login cookie.
    other = login_form(requests.Session(), console.tool_url)
    login_form(client, console.tool_url)
    r = client.post(console.tool_url + "/admin/login", data={"password": ADMIN_PASSWORD, "csrf": other},
                    allow_redirects=False)
    assert r.status_code == 403


def test_the_login_form_of_the_same_site_signs_in(console: Stack) -> None:
    client = requests.Session()
    r = attempt(console.tool_url, ADMIN_PASSWORD, client=client)
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin")
    assert client.get(console.tool_url + "/admin", allow_redirects=False).status_code == 200


def signed_in(stack: Stack) -> requests.Session:
    client = requests.Session()
    assert attempt(stack.tool_url, ADMIN_PASSWORD, client=client).status_code == 303
    return client


def test_a_cross_site_logout_is_refused_and_the_admin_stays_signed_in(console: Stack) -> None:
    client = signed_in(console)
    r = client.post(console.tool_url + "/admin/logout", headers={"Origin": EVIL}, allow_redirects=False)
    assert r.status_code == 403
    assert client.get(console.tool_url + "/admin", allow_redirects=False).status_code == 200


def test_logout_from_the_console_signs_out(console: Stack) -> None:
    client = signed_in(console)
    page = client.get(console.tool_url + "/admin").text
    token = CSRF_FIELD.search(page[page.index('action="/admin/logout"'):])
    assert token
    r = client.post(console.tool_url + "/admin/logout", data={"csrf": token.group(1)},
                    headers={"Origin": console.tool_url}, allow_redirects=False)
    assert r.status_code == 303
    assert client.get(console.tool_url + "/admin", allow_redirects=False).status_code == 303


# -- the hash ----------------------------------------------------------------------------------------


def old_pbkdf2_hash(password: str, iterations: int = 1000) -> str:
    """A hash as earlier versions of `admin hash-password` made it (fewer iterations: a quick test)."""
    salt = b"0123456789abcdef"
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_new_hashes_are_argon2id() -> None:
    from tool.web.admin_auth import hash_password

    hashed = hash_password(ADMIN_PASSWORD)
    assert hashed.startswith("$argon2id$") and ADMIN_PASSWORD not in hashed


@pytest.fixture
def legacy_console(new_stack: NewStack) -> Stack:
    return new_stack("moodle", admin_password_hash=old_pbkdf2_hash(ADMIN_PASSWORD))


def test_an_old_pbkdf2_hash_still_signs_in_and_is_rehashed_with_argon2(
        legacy_console: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from tool.ops.models import AdminPasswordUpgrade

    assert attempt(legacy_console.tool_url, "wrong password").status_code == 403
    with legacy_console.session() as db:
        assert db.scalars(select(AdminPasswordUpgrade)).all() == []  # a failure upgrades nothing
    assert attempt(legacy_console.tool_url, ADMIN_PASSWORD).status_code == 303
    with legacy_console.session() as db:
        rows = db.scalars(select(AdminPasswordUpgrade)).all()
    assert len(rows) == 1 and rows[0].hash.startswith("$argon2id$")

    # From now on the Argon2 hash is checked: PBKDF2 is not run again, and the password still works.
    calls: list[int] = []
    real = hashlib.pbkdf2_hmac
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert attempt(legacy_console.tool_url, ADMIN_PASSWORD).status_code == 303
    assert attempt(legacy_console.tool_url, "wrong again").status_code == 403
    assert calls == []


def test_a_changed_configured_hash_wins_over_an_earlier_upgrade(legacy_console: Stack) -> None:
    from tool.web.admin_auth import check_password, hash_password

    assert attempt(legacy_console.tool_url, ADMIN_PASSWORD).status_code == 303
    changed = legacy_console.settings.model_copy(update={"admin_password_hash": hash_password("a new admin password")})
    with legacy_console.session() as db:
        assert not check_password(changed, ADMIN_PASSWORD, db)
        assert check_password(changed, "a new admin password", db)


@pytest.mark.browser
@pytest.mark.skipif(BROWSER_MISSING, reason=NO_BROWSER)
def test_a_real_browser_signs_in_and_out_with_the_forms(console: Stack, browser) -> None:  # noqa: ANN001
    """Chromium's own headers (Sec-Fetch-Site, Origin: null under no-referrer) pass the CSRF checks."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(console.tool_url + "/admin/login")
        page.get_by_label("Admin password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Registrations").wait_for()
        page.get_by_role("button", name="Sign out").click()
        page.get_by_label("Admin password").wait_for()
        assert page.url.endswith("/admin/login")
        page.goto(console.tool_url + "/admin")
        assert page.url.endswith("/admin/login")
    finally:
        context.close()


def redis_or_skip() -> Any:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    return client


def test_with_redis_configured_the_limiter_counts_there_and_shares_across_processes(
        new_stack: NewStack, hashing: list[str]) -> None:
    from tool.ops.models import RateLimit

    client = redis_or_skip()
    console = new_stack("moodle", admin_password=ADMIN_PASSWORD, admin_login_client_limit=2,
                        admin_login_account_limit=100, admin_login_lockout_seconds=60, trusted_proxies=1,
                        limiter="redis", redis_url="redis://127.0.0.1:6379/0")
    ip = f"2001:db8:{secrets.randbelow(65536):x}:{secrets.randbelow(65536):x}::7"  # this test's own keys
    app = create_app(console.settings)
    second = ServerThread(app, port=reserve_port()).start()
    try:
        statuses = [attempt(base, "guess", client_ip=ip, origin=console.tool_url).status_code
                    for base in (console.tool_url, second.url, console.tool_url)]
        assert statuses == [403, 403, 429], statuses
        assert len(hashing) == 2
        with console.session() as db:
            assert db.scalars(select(RateLimit)).all() == []  # nothing counted in the database
        clock.shift(61)
        assert attempt(second.url, ADMIN_PASSWORD, client_ip=ip, origin=console.tool_url).status_code == 303
    finally:
        stop_all([second, app.extensions["tally"]])
        for key in client.scan_iter(match="tally:limit:*" + limits.client_key(ip)):
            client.delete(key)
