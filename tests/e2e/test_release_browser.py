"""Issue 15 in a browser launched from the sandbox LMS: the teacher types points into the grid of an
exam whose scheme is applied — a typo first, which the bonus dialog catches — sees the grade
"held" (nothing in the LMS), releases all after a confirmation that counts the grades, and the
sandbox gradebook shows the grade's number and the grade in the comment."""

from __future__ import annotations

import re
from typing import Any

from tests.e2e.conftest import BROWSER_MISSING, WAIT_MS, Stack, launch_from_sandbox, needs_browser
from tests.e2e.delivery_kit import Klass
from tests.e2e.test_delivery_end_to_end import gradebook
from tests.e2e.test_release_policy import BANDS

if not BROWSER_MISSING:
    from playwright.sync_api import Page, expect


ON_ITS_WAY = re.compile(r"^(released|delivered)$")  # released; delivered once a worker took it


def grid_row(frame: Any, name: str) -> Any:
    return frame.locator("#points-grid tbody tr", has=frame.get_by_role("rowheader", name=name, exact=True))


@needs_browser
def test_points_are_held_until_the_teacher_releases_them_then_the_lms_shows_the_grade(moodle: Stack, page: "Page") -> None:
    k = Klass(moodle)
    try:
        r = k.api("POST", f"/api/offerings/{k.offering_id}/assessments",
                  {"title": "Final exam", "maxPoints": 60, "tasks": [{"title": "Task 1", "maxPoints": 60}]})
        exam = r.json()["id"]
        scheme = k.api("POST", f"/api/assessments/{exam}/schemes", {"config": BANDS}).json()
        assert k.api("POST", f"/api/schemes/{scheme['id']}/apply").status_code == 200
        r = k.api("PUT", f"/api/offerings/{k.offering_id}/delivery/columns/assessment-{exam}", {"lmsValue": "grade"})
        assert r.status_code == 200, r.text

        frame = launch_from_sandbox(page, moodle, moodle.platform.teacher.name)
        frame.locator("#assessments").get_by_role("link", name="Final exam").click()
        expect(frame.get_by_role("heading", name="Final exam", exact=True)).to_be_visible(timeout=WAIT_MS)
        expect(frame.locator("#points-grid tbody th").first).to_be_visible(timeout=WAIT_MS)  # the grid loaded
        name = frame.locator("#points-grid tbody th").first.inner_text().strip()
        cell = frame.get_by_label(f"Task 1, {name}")
        # A typo first (500 for 50 in a task out of 60): the page asks, offers no save; Esc fixes.
        cell.fill("500")
        cell.press("Enter")
        dialog = frame.locator("#bonus-dialog")
        expect(dialog.get_by_role("heading")).to_have_text("These points look like a typo", timeout=WAIT_MS)
        expect(dialog.get_by_role("button", name="Save as bonus points")).to_be_hidden()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden(timeout=WAIT_MS)
        cell.fill("50")
        cell.press("Enter")
        row = grid_row(frame, name)
        expect(row.locator("td.grade-cell")).to_have_text("1.3", timeout=WAIT_MS)
        expect(row.locator("td.lms-cell")).to_have_text("held", timeout=WAIT_MS)
        expect(frame.locator("#grid-lms-counts")).to_contain_text("held 1", timeout=WAIT_MS)
        k.deliver()
        sub = next(s for s in k.subs if moodle.platform.users[s].name == name)
        assert gradebook(moodle)["Final exam"][name]["raw"] in ("no score", "–")  # nothing reached the LMS

        questions: list[str] = []
        page.once("dialog", lambda d: (questions.append(d.message), d.accept()))
        frame.get_by_role("button", name="Release all (1)").click()
        expect(row.locator("td.lms-cell")).to_have_text(ON_ITS_WAY, timeout=WAIT_MS)
        assert questions == ["Release 1 held grade? 1 grade goes to the LMS and to the students."]
        k.deliver()
        cell_in_lms = gradebook(moodle)["Final exam"][name]
        assert (cell_in_lms["raw"], cell_in_lms["comment"]) == ("95", "Grade 1.3"), cell_in_lms
        assert k.result(sub, f"assessment:{exam}") is not None

        # The teacher makes 1.3 count 90 on the scheme page: held again, released, and the LMS follows.
        frame.get_by_label("1.3", exact=True).fill("90")
        frame.get_by_role("button", name="Save the numbers").click()
        expect(frame.locator("#grade-numbers-status")).to_contain_text("Saved.", timeout=WAIT_MS)
        expect(row.locator("td.lms-cell")).to_have_text("held", timeout=WAIT_MS)
        frame.get_by_label("1.0", exact=True).fill("80")  # below 1.3's 90: refused, with the reason
        frame.get_by_role("button", name="Save the numbers").click()
        expect(frame.locator("#grade-numbers-status")).to_contain_text("a better grade needs a number at least as high", timeout=WAIT_MS)
        page.once("dialog", lambda d: d.accept())
        frame.get_by_role("button", name="Release all (1)").click()
        expect(row.locator("td.lms-cell")).to_have_text(ON_ITS_WAY, timeout=WAIT_MS)
        k.deliver()
        assert gradebook(moodle)["Final exam"][name]["raw"] == "90"
    finally:
        k.close()
