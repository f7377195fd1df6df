"""Findings 7 and 11 of issue 11, replayed against a running tool.

11. The OIDC state was only checked server-side, so a victim's browser could be made to complete
    an attacker's launch (login CSRF). Now the launch must come back to the browser that started
    the login: a state cookie (SameSite=None; Secure) where the browser keeps cookies, platform
    storage (lti_storage_target, postMessage) where the LMS offers it, and the server-side check
    only as the last fallback (cookies blocked and no storage).
7.  Every /lti/login inserted a login_state row and every refusal a launch_record row, without
    bound. Now both are capped per client address (the purge of expired ones is in
    tests/e2e/test_maintenance.py).
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from tool.lti.models import LaunchRecord, LoginState
from tests.e2e.conftest import (
    BROWSER_MISSING,
    NO_BROWSER,
    NewStack,
    Stack,
    follow_check,
    form_of,
    no_cookies,
)

EVIL = "https://evil.example"
DATA = re.compile(r'data-([a-z]+)="([^"]*)"')


class LoopbackBrowser(requests.Session):
    """A browser that keeps the tool's cookies. Chromium treats loopback http as a secure context and
    sends `Secure` cookies there; Python's cookie jar would not, so they are sent as such here."""

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        for cookie in self.cookies:
            cookie.secure = False
        return super().prepare_request(request)


def keeping_cookies() -> requests.Session:
    return LoopbackBrowser()


def attackers_launch_form(stack: Stack, attacker: requests.Session | None = None,
                          storage: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """The attacker starts a login in their own browser and keeps the LMS's id_token form."""
    attacker = attacker or keeping_cookies()
    r = stack.login(stack.platform.teacher.id, client=attacker)
    auth_url = storage_step(r, storage) if r.status_code == 200 else r.headers["Location"]
    auth = attacker.get(auth_url, allow_redirects=False)
    assert auth.status_code == 200, auth.text[:300]
    return form_of(auth.text)


def storage_step(login_answer: requests.Response, storage: dict[str, str] | None) -> str:
    """What the tool's login page makes the browser do with platform storage: put the state there
    (into `storage`, this browser's storage at the LMS), then go on; returns where it goes."""
    data = {k: html.unescape(v) for k, v in DATA.findall(login_answer.text)}
    assert data["mode"] == "put", login_answer.text[:500]
    if storage is not None:
        storage[data["key"]] = data["value"]
    return data["next"]


def count(stack: Stack, model: type) -> int:
    with stack.session() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


# -- the state cookie ---------------------------------------------------------------------------------


def test_the_login_binds_its_state_to_the_browser_with_a_cookie(moodle: Stack) -> None:
    browser = keeping_cookies()
    r = moodle.login(moodle.platform.teacher.id, client=browser)
    assert r.status_code == 302
    cookies = [c for c in r.raw.headers.getlist("Set-Cookie") if c.startswith("tally_state_")]
    assert len(cookies) == 1, r.headers
    flags = {part.strip().lower() for part in cookies[0].split(";")}
    assert {"samesite=none", "secure", "httponly"} <= flags
    state = parse_qs(urlsplit(r.headers["Location"]).query)["state"][0]
    assert state not in cookies[0]  # the value is an HMAC of the state, not the state

    # The same browser comes back with it: straight in, no check page.
    auth = browser.get(r.headers["Location"], allow_redirects=False)
    action, fields = form_of(auth.text)
    landing = browser.post(action, data=fields, allow_redirects=False)
    assert landing.status_code == 200 and 'name="tally-session"' in landing.text
    assert 'id="lti-storage"' not in landing.text


@pytest.mark.parametrize("mode", ["moodle", "canvas"])
def test_a_victim_whose_browser_keeps_cookies_cannot_complete_an_attackers_launch(
        new_stack: NewStack, mode: str) -> None:
    stack = new_stack(mode)
    action, fields = attackers_launch_form(stack)
    victim = keeping_cookies()
    # The attacker's page makes the victim's browser post the form; Tally's own check page then
    # re-posts it from Tally's origin (what the browser does by itself).
    answer = follow_check(victim, stack.tool_url, victim.post(action, data=fields, allow_redirects=False))

    assert answer.status_code == 400, answer.text[:500]
    assert 'name="tally-session"' not in answer.text
    assert "state_not_in_this_browser" in answer.text
    with stack.session() as db:
        assert db.scalar(select(LaunchRecord.code).where(LaunchRecord.outcome == "refused")) == \
            "state_not_in_this_browser"


def test_the_check_pages_repost_from_another_site_is_refused(moodle: Stack) -> None:
    action, fields = attackers_launch_form(moodle)
    victim = no_cookies()
    forged = victim.post(action, data={**fields, "tally_check": "1"}, headers={"Origin": EVIL},
                         allow_redirects=False)
    assert forged.status_code == 400 and "launch_check_cross_site" in forged.text
    assert 'name="tally-session"' not in forged.text


def test_without_cookies_and_without_storage_the_server_side_check_remains(moodle: Stack) -> None:
    """Safari in an iframe with Moodle: no cookie, no storage: the launch still works, once."""
    client = no_cookies()
    r = moodle.login(moodle.platform.teacher.id, client=client)
    auth = client.get(r.headers["Location"], allow_redirects=False)
    action, fields = form_of(auth.text)
    first = client.post(action, data=fields, allow_redirects=False)
    assert 'id="lti-storage" data-mode="get"' in first.text  # Tally's check page, once
    landing = follow_check(client, moodle.tool_url, first)
    assert landing.status_code == 200 and 'name="tally-session"' in landing.text
    replay = follow_check(client, moodle.tool_url, client.post(action, data=fields, allow_redirects=False))
    assert replay.status_code == 400 and "state_invalid" in replay.text


# -- platform storage -----------------------------------------------------------------------------------


@pytest.fixture
def canvas_storage(new_stack: NewStack) -> Stack:
    """Canvas mode, offering platform storage (lti_storage_target=post_message_forwarding)."""
    return new_stack("canvas", sandbox_platform_storage=True)


def test_with_platform_storage_the_login_keeps_the_state_there_before_going_to_the_lms(
        canvas_storage: Stack) -> None:
    r = canvas_storage.login(canvas_storage.platform.teacher.id, method="GET")
    assert r.status_code == 200, r.text[:300]
    data = {k: html.unescape(v) for k, v in DATA.findall(r.text)}
    state = parse_qs(urlsplit(data["next"]).query)["state"][0]
    assert data["mode"] == "put" and data["target"] == "post_message_forwarding"
    assert data["origin"] == canvas_storage.sandbox.url  # the LMS's authorization URL's origin
    assert data["value"] == state and state in data["key"]
    assert data["next"].startswith(canvas_storage.platform.paths.auth_url)
    with canvas_storage.session() as db:
        assert db.scalar(select(LoginState.storage_target)) == "post_message_forwarding"


def test_with_platform_storage_the_own_browser_gets_in_without_cookies(canvas_storage: Stack) -> None:
    browser, storage = no_cookies(), {}
    action, fields = attackers_launch_form(canvas_storage, browser, storage)  # here: one's own launch
    first = browser.post(action, data=fields, allow_redirects=False)
    assert 'data-target="post_message_forwarding"' in first.text
    landing = follow_check(browser, canvas_storage.tool_url, first, storage)
    assert landing.status_code == 200 and 'name="tally-session"' in landing.text


def test_with_platform_storage_a_victim_cannot_complete_an_attackers_launch(canvas_storage: Stack) -> None:
    attacker_storage: dict[str, str] = {}
    action, fields = attackers_launch_form(canvas_storage, no_cookies(), attacker_storage)
    victim = no_cookies()  # blocks cookies, so only the storage can tell
    answer = follow_check(victim, canvas_storage.tool_url, victim.post(action, data=fields, allow_redirects=False),
                          storage={})
    assert answer.status_code == 400 and "state_not_in_this_browser" in answer.text
    assert 'name="tally-session"' not in answer.text
    # Pretending to have found it does not help: the value is the attacker's state, but the
    # re-post must come from Tally's own page (same origin), which the attacker cannot make post.
    forged = victim.post(action, data={**fields, "tally_check": "1", "lti_storage_state": fields["state"]},
                         headers={"Origin": EVIL}, allow_redirects=False)
    assert forged.status_code == 400 and 'name="tally-session"' not in forged.text


@pytest.mark.browser
@pytest.mark.skipif(BROWSER_MISSING, reason=NO_BROWSER)
def test_a_browser_without_cookies_launches_through_the_sandboxs_platform_storage(canvas_storage: Stack,
                                                                                   page) -> None:  # noqa: ANN001
    from tests.e2e.conftest import launch_from_sandbox

    def forget_cookies(route) -> None:  # noqa: ANN001
        # On its way to the LMS the browser loses Tally's cookies (Safari in an LMS iframe keeps none):
        # only the platform storage can bind the launch to this browser.
        page.context.clear_cookies()
        route.continue_()

    page.route(canvas_storage.platform.paths.auth_url + "*", forget_cookies)
    seen: list[str] = []
    page.on("request", lambda req: seen.append(req.url) if req.url.startswith(canvas_storage.tool_url) else None)
    teacher = canvas_storage.platform.teacher
    frame = launch_from_sandbox(page, canvas_storage, teacher.name)
    frame.get_by_role("heading", name="Teaching staff (1)").wait_for()
    assert frame.locator('meta[name="tally-session"]').get_attribute("content")
    # Login (storage page), the launch, Tally's check page's re-post: the storage path was taken.
    assert sum(u.endswith("/lti/launch") for u in seen) == 2, "\n".join(u[-70:] for u in seen)


# -- rows per anonymous client (finding 7) ------------------------------------------------------------------


def test_login_initiations_per_client_are_capped(new_stack: NewStack) -> None:
    stack = new_stack("moodle", login_states_per_client=5, trusted_proxies=1)
    params = stack.platform.login_params(stack.platform.teacher.id)
    statuses = [no_cookies().post(stack.tool_url + "/lti/login", data=params, allow_redirects=False,
                                  headers={"X-Forwarded-For": "203.0.113.5"}).status_code for _ in range(8)]
    assert statuses == [302] * 5 + [429] * 3, statuses
    limited = no_cookies().post(stack.tool_url + "/lti/login", data=params, allow_redirects=False,
                                headers={"X-Forwarded-For": "203.0.113.5"})
    assert 0 < int(limited.headers["Retry-After"]) <= stack.settings.state_ttl_seconds
    assert count(stack, LoginState) == 5
    other = no_cookies().post(stack.tool_url + "/lti/login", data=params, allow_redirects=False,
                              headers={"X-Forwarded-For": "198.51.100.77"})
    assert other.status_code == 302 and count(stack, LoginState) == 6


def test_recorded_refusals_per_client_are_capped_but_every_one_is_refused(new_stack: NewStack) -> None:
    stack = new_stack("moodle", refusals_recorded_per_client=3)
    answers = [no_cookies().post(stack.tool_url + "/lti/launch", data={"id_token": "x.y.z", "state": f"s{i}"},
                                 allow_redirects=False) for i in range(6)]
    assert [a.status_code for a in answers] == [400] * 6
    assert all("state_invalid" in a.text for a in answers)
    assert count(stack, LaunchRecord) == 3


def test_padding_the_launch_does_not_skip_the_browser_check(moodle: Stack) -> None:
    action, fields = attackers_launch_form(moodle)
    victim = keeping_cookies()
    padded = {**fields, "junk": "x" * 50_000}
    answer = follow_check(victim, moodle.tool_url, victim.post(action, data=padded, allow_redirects=False))
    assert answer.status_code == 400 and "state_not_in_this_browser" in answer.text
