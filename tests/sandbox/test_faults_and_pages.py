"""Fault knobs (outage, queued failures, latency) and the sandbox's own pages."""

from __future__ import annotations

import html
import re
import time

from tests.sandbox.conftest import Sandbox, score


def test_a_platform_that_is_down_answers_503_everywhere(sandbox: Sandbox) -> None:
    token = sandbox.token()
    sandbox.platform.faults.down = True

    answers = [
        sandbox.call("GET", sandbox.platform.paths.lineitems_url, token=token),
        sandbox.post_score(1, score(sandbox.platform.students[0].id), token=token),
        sandbox.call("GET", sandbox.platform.paths.memberships_url, token=token),
        sandbox.request_token(),
    ]

    assert [a.status_code for a in answers] == [503, 503, 503, 503]


def test_a_queued_429_carries_retry_after_and_then_the_platform_recovers(sandbox: Sandbox) -> None:
    token = sandbox.token()
    sandbox.platform.faults.fail_next(2, 429, retry_after=3)
    body = score(sandbox.platform.students[0].id)

    first = sandbox.post_score(1, body, token=token)
    second = sandbox.post_score(1, body, token=token)
    third = sandbox.post_score(1, body, token=token)

    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "3"
    assert [p.status for p in sandbox.platform.store.posts_for(1)] == [429, 429, 200]


def test_canvas_can_throttle_the_old_way_with_403_rate_limit_exceeded(canvas: Sandbox) -> None:
    token = canvas.token()
    canvas.platform.faults.fail_next(1, 403, "403 Forbidden (Rate Limit Exceeded)\n")

    answer = canvas.call("GET", canvas.platform.paths.lineitems_url, token=token)

    assert answer.status_code == 403
    assert "Rate Limit Exceeded" in answer.text
    assert answer.headers["X-Rate-Limit-Remaining"] == "0.0"


def test_moodle_reports_a_queued_failure_in_the_reason_phrase(moodle: Sandbox) -> None:
    token = moodle.token()
    moodle.platform.faults.fail_next(1, 500, reason="Database connection lost")

    answer = moodle.call("GET", moodle.platform.paths.lineitems_url, token=token)

    assert (answer.status_code, answer.reason) == (500, "Database connection lost")


def test_queued_failures_can_target_the_token_endpoint(sandbox: Sandbox) -> None:
    sandbox.platform.faults.fail_next(1, 500, where="token")

    failed = sandbox.request_token()
    ok = sandbox.request_token()

    assert (failed.status_code, ok.status_code) == (500, 200)


def test_latency_slows_every_service_call(sandbox: Sandbox) -> None:
    token = sandbox.token()
    sandbox.platform.faults.latency_ms = 150

    started = time.monotonic()
    sandbox.call("GET", sandbox.platform.paths.lineitems_url, token=token)

    assert time.monotonic() - started >= 0.15


def test_the_launch_page_offers_a_labelled_launch_button_per_person(sandbox: Sandbox) -> None:
    page = sandbox.http.get(sandbox.url + "/").text

    assert "Sandbox Course 101" in page
    for user in sandbox.platform.users.values():
        assert f"Launch as {html.escape(user.name)}" in page
    assert '<label for="resource_link_id">' in page
    assert 'name="tool-frame"' in page and "<iframe" in page
    assert 'href="/gradebook"' in page


def test_launching_starts_a_login_initiation_at_the_tool(sandbox: Sandbox) -> None:
    student = sandbox.platform.students[0]

    page = sandbox.http.post(sandbox.url + "/launch", data={"user_id": student.id, "resource_link_id": "rl-2"}).text

    assert f'action="{sandbox.platform.config.tool_login_url}"' in page
    method = "post" if sandbox.mode == "moodle" else "get"
    assert f'method="{method}"' in page
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page))
    assert fields["login_hint"] == student.id
    assert fields["iss"] == sandbox.platform.issuer


def test_the_gradebook_shows_grades_and_refused_posts(sandbox: Sandbox) -> None:
    student = sandbox.platform.students[0]
    token = sandbox.token()
    sandbox.post_score(1, score(student.id, given=15, maximum=10, comment="Extra!"), token=token)
    sandbox.post_score(1, score(student.id, maximum=None), token=token)

    page = sandbox.http.get(sandbox.url + "/gradebook").text

    assert "Tally: Week 1" in page
    assert "Extra!" in page
    assert ">150<" in page
    assert "refused" in page
    assert ("400" if sandbox.mode == "moodle" else "422") in page
