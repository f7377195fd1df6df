"""An open page renews its session token before it expires, up to the session's maximum age."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine

from tool import clock
from tests.e2e.conftest import CHROMIUM, Stack, needs_browser, start_stack, stop_all, open_tally_page


@pytest.fixture
def short(clean_db: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator[Stack]:
    """A stack whose tokens live one minute and whose sessions end after ten."""
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, "moodle",
                             session_ttl_seconds=60, session_max_age_seconds=600)
    yield s
    stop_all(servers)
    clock.reset()


def renew(stack: Stack, token: str):  # type: ignore[no-untyped-def]
    return stack.api(token, "/api/session/renew", "POST")


def test_a_renewed_token_is_the_same_session_with_a_later_expiry(short: Stack) -> None:
    token = short.launch(short.platform.teacher.id).token or ""
    before = short.api(token, "/api/me").json()
    clock.shift(30)
    # Tokens are stamped in whole seconds of the (shifted) wall clock: on a busy machine a real
    # second may pass between the launch and the renewal, so the bounds come from the renewal itself.
    renewed_from = int(clock.epoch())
    r = renew(short, token)
    renewed_by = int(clock.epoch())
    assert r.status_code == 200, r.text
    fresh = r.json()["token"]
    after = short.api(fresh, "/api/me").json()
    assert {k: after[k] for k in ("personId", "courseId", "offeringId", "roles")} == {
        k: before[k] for k in ("personId", "courseId", "offeringId", "roles")}
    assert renewed_from + 60 <= after["expiresAt"] <= renewed_by + 60
    assert after["expiresAt"] >= before["expiresAt"] + 30
    clock.shift(40)  # the launch's own token is now expired, the renewed one is not
    assert short.api(token, "/api/me").json()["code"] == "session_expired"
    assert short.api(fresh, "/api/me").status_code == 200


def test_renewals_stop_at_the_maximum_age_and_an_expired_token_is_not_renewed(short: Stack) -> None:
    token = short.launch(short.platform.teacher.id).token or ""
    for _ in range(11):  # 11 × 55 s > 600 s after the launch
        clock.shift(55)
        r = renew(short, token)
        if r.status_code != 200:
            break
        token = r.json()["token"]
        assert short.api(token, "/api/me").json()["expiresAt"] <= clock.epoch() + 60
    assert r.status_code == 401 and r.json()["code"] == "session_expired"
    assert "Open Tally again" in r.json()["message"]
    clock.shift(120)
    assert renew(short, token).json()["code"] == "session_expired"


@pytest.mark.browser
@needs_browser
def test_the_page_renews_its_token_and_its_links_by_itself(short: Stack) -> None:
    from playwright.sync_api import sync_playwright

    token = short.launch(short.platform.teacher.id).token or ""
    me = short.api(token, "/api/me").json()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(accept_downloads=True).new_page()
            open_tally_page(page, f"{short.tool_url}/offerings/{me['offeringId']}", token)
            # 60 s tokens: the page renews after max(5, min(30, exp - now - 60)) = 5 s.
            page.wait_for_function(
                "old => document.querySelector('meta[name=\"tally-session\"]').content !== old", arg=token,
                timeout=20000)
            fresh = page.locator('meta[name="tally-session"]').get_attribute("content") or ""
            assert short.api(fresh, "/api/me").json()["personId"] == me["personId"]
            # Links hold no token; following one POSTs the renewed token, not the launch's.
            href = page.locator("#csv-link").get_attribute("href") or ""
            assert "st=" not in href and token not in href and fresh not in href
            with page.expect_download() as download, \
                    page.expect_request(lambda r: r.url.endswith("summary.csv")) as sent:
                page.locator("#csv-link").click()
            assert download.value.suggested_filename.endswith(".csv")
            assert f"st={fresh}" in (sent.value.post_data or "") and token not in (sent.value.post_data or "")
        finally:
            browser.close()
