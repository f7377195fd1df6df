"""A real browser (headless Chromium) launches Tally from the sandbox page, cookies refused.

Skipped when Chromium is missing, unless TALLY_REQUIRE_BROWSER=1 (CI installs it and sets it).
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import BROWSER_MISSING, NO_BROWSER, Stack, launch_from_sandbox

if BROWSER_MISSING:
    pytest.skip(NO_BROWSER, allow_module_level=True)

from playwright.sync_api import Page  # noqa: E402

pytestmark = pytest.mark.browser


def test_a_teacher_and_a_student_launch_from_the_sandbox_page(moodle: Stack, page: Page) -> None:
    teacher = moodle.platform.teacher
    frame = launch_from_sandbox(page, moodle, teacher.name)
    frame.get_by_role("heading", name="Teaching staff (1)").wait_for(timeout=15000)
    assert frame.get_by_text("Gradebook (AGS)").is_visible()
    token = frame.locator('meta[name="tally-session"]').get_attribute("content")
    assert token

    student = moodle.platform.students[0]
    frame = launch_from_sandbox(page, moodle, student.name)
    frame.get_by_role("heading", name=f"My grades in").wait_for(timeout=15000)

    # The page's own script path: the session token from <meta> works as a Bearer token.
    tool_frame = next(f for f in page.frames if f.url.startswith(moodle.tool_url))
    me = tool_frame.evaluate(
        """async () => {
            const token = document.querySelector('meta[name="tally-session"]').content;
            const r = await fetch('/api/me', {headers: {Authorization: 'Bearer ' + token}, credentials: 'omit'});
            return [r.status, await r.json()];
        }"""
    )
    assert me[0] == 200 and me[1]["roles"] == ["STUDENT"]


def test_the_pages_scripts_send_the_token_that_is_in_meta_at_each_call(moodle: Stack, page: Page) -> None:
    # session.js puts a renewed token into <meta name="tally-session">; api.js reads it there per call.
    frame = launch_from_sandbox(page, moodle, moodle.platform.teacher.name)
    frame.get_by_role("heading", name="Teaching staff (1)").wait_for()
    tool_frame = next(f for f in page.frames if f.url.startswith(moodle.tool_url))
    tool_frame.wait_for_function("() => window.Tally && window.Tally.api")  # deferred scripts have run
    calls = tool_frame.evaluate(
        """async () => {
            const meta = document.querySelector('meta[name="tally-session"]');
            const token = meta.content;
            const before = await window.Tally.api('GET', '/api/me');
            meta.setAttribute('content', 'not-a-token');
            const replaced = await window.Tally.api('GET', '/api/me');
            meta.setAttribute('content', token);
            const back = await window.Tally.api('GET', '/api/me');
            return [before.status, before.data.roles, replaced.status, replaced.data.code, back.status];
        }"""
    )
    assert calls == [200, ["TEACHER"], 401, "session_invalid", 200]
