"""A real browser (headless Chromium) launches Tally from the sandbox page, cookies refused.

Skipped when Chromium is missing, unless TALLY_REQUIRE_BROWSER=1 (CI installs it and sets it).
"""

from __future__ import annotations

import os
import shutil
from typing import Iterator

import pytest

from tests.e2e.conftest import Stack

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("TALLY_REQUIRE_BROWSER") != "1":
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
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
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    sent_cookies: list[str] = []

    def strip_cookies(route, request) -> None:  # type: ignore[no-untyped-def]
        # Refuse every cookie, as Safari does for a tool inside an LMS iframe.
        headers = {k: v for k, v in request.headers.items() if k.lower() != "cookie"}
        if len(headers) != len(request.headers):
            sent_cookies.append(request.url)
        route.continue_(headers=headers)

    context.route("**/*", strip_cookies)
    pg = context.new_page()
    yield pg
    context.close()


def launch_from_sandbox(page: Page, stack: Stack, name: str):  # type: ignore[no-untyped-def]
    page.goto(stack.sandbox.url + "/")
    page.get_by_role("button", name=f"Launch as {name}").click()
    frame = page.frame_locator("iframe[name=tool-frame]")
    return frame


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
