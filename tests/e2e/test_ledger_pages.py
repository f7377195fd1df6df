"""The ledger pages in a real browser: a teacher records, bulk-enters, corrects and voids
points from the sandbox's iframe; a student then sees their own total. Cookies refused.

Skipped when Chromium is missing, unless TALLY_REQUIRE_BROWSER=1 (CI installs it and sets it).
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BROWSER_MISSING, NO_BROWSER, WAIT_MS, Stack, launch_from_sandbox, open_tally_page

if BROWSER_MISSING:
    pytest.skip(NO_BROWSER, allow_module_level=True)

from playwright.sync_api import FrameLocator, Page, expect  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 720}, "accept_downloads": True}


def grid_cell(frame: FrameLocator, student: str, column: str) -> str:
    """The text in the ledger grid at a student's row and a column's header ("" when absent)."""
    headers = [h.strip() for h in frame.locator("#grid thead th").all_inner_texts()]
    names = [n.strip() for n in frame.locator("#grid tbody th").all_inner_texts()]
    matches = [i for i, n in enumerate(names) if n.startswith(student)]
    if column not in headers or not matches:
        return ""
    return frame.locator("#grid tbody tr").nth(matches[0]).locator("th, td").nth(headers.index(column)).inner_text().strip()


def wait_for_cell(frame: FrameLocator, student: str, column: str, expected: str) -> None:
    """Wait (≤ 15 s) until the grid shows `expected` for the student in that column."""
    deadline = time.monotonic() + WAIT_MS / 1000
    seen = ""
    while time.monotonic() < deadline:
        seen = grid_cell(frame, student, column)
        if seen == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"{student} / {column}: expected {expected!r}, the grid shows {seen!r}")


def open_teacher_page(page: Page, stack: Stack) -> FrameLocator:
    """The teacher's page once the automatic roster sync has finished."""
    frame = launch_from_sandbox(page, stack, stack.platform.teacher.name)
    expect(frame.locator("#ledger-status")).to_contain_text("Roster synchronised", timeout=WAIT_MS)
    return frame


def test_a_teacher_records_corrects_and_voids_points_and_a_student_sees_their_total(moodle: Stack, page: Page) -> None:
    amara, ben, chen = moodle.platform.students[:3]
    for student in (amara, ben, chen):
        assert moodle.launch(student.id).status == 200

    frame = open_teacher_page(page, moodle)
    # The automatic sync brought in the students who never launched.
    expect(frame.get_by_role("heading", name="Students (8)")).to_be_visible()
    wait_for_cell(frame, amara.name, "Total", "0.00")

    # One entry through the form; "7,5" is how half the world writes 7.5.
    frame.get_by_label("Student", exact=True).select_option(label=amara.name)
    frame.locator("#add-type").select_option("SEMINAR")
    frame.get_by_label("Points", exact=True).fill("7,5")
    frame.locator("#add-description").fill("Seminar 1")
    frame.get_by_role("button", name="Add entry").click()
    expect(frame.locator("#add-status")).to_contain_text(f"Saved 7.50 points (Seminar) for {amara.name}")
    wait_for_cell(frame, amara.name, "Seminar", "7.50")
    wait_for_cell(frame, amara.name, "Total", "7.50")

    # Bulk, typed with the keyboard: Enter and ↓ go down, ↑ goes back up and the value is replaced.
    frame.locator("#bulk-type").select_option("HOMEWORK")
    frame.locator("#bulk-description").fill("Homework 1")
    order = [n.strip() for n in frame.locator("#bulk-table tbody th").all_inner_texts()]
    assert len(order) == 8 and amara.name in order
    frame.get_by_label(order[0], exact=True).click()
    page.keyboard.type("5")
    page.keyboard.press("Enter")
    page.keyboard.type("6,5")
    page.keyboard.press("ArrowDown")
    page.keyboard.type("4")
    page.keyboard.press("ArrowUp")
    page.keyboard.type("6")  # replaces 6,5
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.type("3")
    frame.get_by_role("button", name="Save all").click()
    expect(frame.locator("#bulk-status")).to_contain_text("Saved 4 entries (Homework)")
    homework = {order[0]: "5.00", order[1]: "6.00", order[2]: "4.00", order[3]: "3.00"}
    for name, points in homework.items():
        wait_for_cell(frame, name, "Homework", points)
    expect(frame.get_by_label(order[0], exact=True)).to_have_value("")  # cleared after saving

    # Bulk from a pasted column, with one bad line: nothing is saved, the bad row is marked.
    frame.locator("#bulk-type").select_option("EXAM")
    frame.locator("#bulk-description").fill("Midterm")
    frame.get_by_label("Paste a column").fill("10\n\nabc\n8\n")
    frame.get_by_role("button", name="Fill points from the column").click()
    expect(frame.get_by_label(order[2], exact=True)).to_have_value("abc")
    frame.get_by_role("button", name="Save all").click()
    expect(frame.locator("#bulk-status")).to_contain_text("Nothing was saved")
    expect(frame.locator("#bulk-status")).to_contain_text("1 of 3 rows need fixing")
    expect(frame.locator(f"#bulk-table tbody tr:nth-child(3) .field-error")).to_have_text("Must be a number")
    assert "Exam" not in frame.locator("#grid thead").inner_text()
    frame.get_by_label(order[2], exact=True).fill("9")
    frame.get_by_role("button", name="Save all").click()
    expect(frame.locator("#bulk-status")).to_contain_text("Saved 3 entries (Exam)")
    wait_for_cell(frame, order[0], "Exam", "10.00")
    wait_for_cell(frame, order[1], "Exam", "0.00")
    wait_for_cell(frame, order[0], "Total", "15.00")
    wait_for_cell(frame, order[2], "Total", "13.00")
    expected_amara = 7.5 + float(homework.get(amara.name, "0")) + {order[0]: 10, order[2]: 9, order[3]: 8}.get(amara.name, 0)
    wait_for_cell(frame, amara.name, "Total", f"{expected_amara:.2f}")

    # Drill down into the first student: correct the homework, void the exam.
    target = order[0]
    frame.locator("#grid").get_by_role("button", name=target).click()
    expect(frame.get_by_role("heading", name=f"Entries of {target}")).to_be_focused()
    drill = frame.locator("#drill")
    expect(drill.locator("#drill-summary")).to_contain_text("Total 15.00 points from 2 active entries")
    drill.get_by_role("button", name="Correct Homework 5.00").click()
    drill.get_by_label("Points").fill("5,25")
    drill.get_by_role("button", name="Save correction").click()
    expect(drill.locator("#drill-status")).to_contain_text("Homework is now 5.25 points (version 2)")
    wait_for_cell(frame, target, "Total", "15.25")

    drill.get_by_role("button", name="Void Exam 10.00").click()
    drill.get_by_role("button", name="Void entry").click()
    expect(drill.get_by_text("Give a reason for voiding")).to_be_visible()
    drill.get_by_label("Reason for voiding (required)").fill("Counted twice")
    drill.get_by_role("button", name="Void entry").click()
    expect(drill.locator("#drill-status")).to_contain_text("Voided Exam 10.00 points")
    wait_for_cell(frame, target, "Total", "5.25")
    voided_row = drill.locator("tbody tr.voided")
    expect(voided_row).to_contain_text("Reason: Counted twice")
    assert voided_row.locator("td.strike").first.evaluate("e => getComputedStyle(e).textDecorationLine") == "line-through"
    expect(drill.locator("#drill-summary")).to_contain_text("1 voided, not counted")

    # The corrected entry's history: who recorded each version.
    drill.get_by_role("button", name="History of Homework 5.25").click()
    history = drill.locator("table.history")
    expect(history).to_contain_text("2 versions")
    expect(history.locator("tbody tr").nth(0)).to_contain_text("5.00")
    expect(history.locator("tbody tr").nth(1)).to_contain_text("5.25")
    expect(history).to_contain_text(f"{moodle.platform.teacher.name} (you)")

    # For a look at the layout: the iframe as the teacher sees it, and the whole page at its width.
    page.locator("iframe[name=tool-frame]").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/teacher-iframe.png")
    token = frame.locator('meta[name="tally-session"]').get_attribute("content")
    whole = page.context.new_page()
    whole.set_viewport_size({"width": 1230, "height": 720})
    open_tally_page(whole, f"{moodle.tool_url}/offerings/{frame.locator('#ledger').get_attribute('data-offering-id')}",
                    token or "")
    whole.locator("#grid tbody tr").first.wait_for(timeout=WAIT_MS)
    whole.screenshot(path="/tmp/teacher.png", full_page=True)
    whole.close()

    # The CSV link downloads the same totals.
    with page.expect_download(timeout=WAIT_MS) as download:
        frame.get_by_role("link", name="Download CSV").click()
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8")))}
    assert rows[target]["total"] == "5.25" and rows[target]["exam"] == "0.00"
    assert rows[amara.name]["total"] == f"{expected_amara:.2f}"

    # A student who leaves the LMS roster stays in the grid with their points, marked.
    leaver = next(u for u in moodle.platform.students if u.name == order[1])
    moodle.platform.set_member_status(leaver.id, "Inactive")
    frame.get_by_role("button", name="Sync roster").click()
    expect(frame.locator("#ledger-status")).to_contain_text("1 left the course")
    expect(frame.get_by_role("heading", name="Students (7)")).to_be_visible()
    expect(frame.locator("#grid tbody tr", has_text=leaver.name)).to_contain_text("left the course")
    wait_for_cell(frame, leaver.name, "Total", "6.00")

    # The student sees their own total, breakdown and entries, the voided one gone.
    student = next(u for u in moodle.platform.students if u.name == target)
    frame = launch_from_sandbox(page, moodle, student.name)
    expect(frame.get_by_role("heading", name="My grades in")).to_be_visible()
    expect(frame.locator("#my-total")).to_have_text("5.25")
    entries = frame.locator("#my-entries tbody tr")
    expect(entries).to_have_count(1)
    expect(entries.first).to_contain_text("Homework 1")
    expect(frame.locator("#my-breakdown")).to_contain_text("Homework")
    assert "Exam" not in frame.locator("#my-breakdown").inner_text()


def test_bad_points_in_the_form_show_the_field_error_and_save_nothing(moodle: Stack, page: Page) -> None:
    student = moodle.platform.students[0]
    assert moodle.launch(student.id).status == 200
    frame = open_teacher_page(page, moodle)

    frame.get_by_label("Student", exact=True).select_option(label=student.name)
    frame.get_by_label("Points", exact=True).fill("1.234")
    frame.get_by_role("button", name="Add entry").click()

    expect(frame.locator("#add-points-error")).to_have_text("Has more than two decimal places")
    expect(frame.get_by_label("Points", exact=True)).to_be_focused()
    expect(frame.locator("#add-status")).to_contain_text("Nothing was saved")
    wait_for_cell(frame, student.name, "Total", "0.00")
    token = frame.locator('meta[name="tally-session"]').get_attribute("content") or ""
    me = moodle.api(token, "/api/me").json()
    summary = moodle.api(token, f"/api/grades/groups/{me['courseId']}/offerings/{me['offeringId']}/summary").json()
    assert sum(s["entryCount"] for s in summary["students"]) == 0

    # A custom type needs its label: the field appears and is required.
    frame.locator("#add-type").select_option("CUSTOM")
    frame.get_by_label("Points", exact=True).fill("2")
    frame.get_by_role("button", name="Add entry").click()
    expect(frame.locator("#add-label-error")).to_have_text("A custom entry needs a label")
    frame.locator("#add-label").fill("Quiz <b>1</b>")
    frame.get_by_role("button", name="Add entry").click()
    expect(frame.locator("#add-status")).to_contain_text("Saved 2.00 points (Quiz <b>1</b>)")
    # The label is a column of its own, shown as text, not markup.
    wait_for_cell(frame, student.name, "Quiz <b>1</b> custom", "2.00")


def test_a_failing_lms_shows_the_sync_error_and_the_grid_stays(moodle: Stack, page: Page) -> None:
    student = moodle.platform.students[0]
    assert moodle.launch(student.id).status == 200
    frame = open_teacher_page(page, moodle)
    moodle.platform.faults.down = True

    frame.get_by_role("button", name="Sync roster").click()

    expect(frame.locator("#ledger-status")).to_contain_text("Roster sync failed:")
    wait_for_cell(frame, student.name, "Total", "0.00")


def test_a_student_without_points_sees_the_empty_state(moodle: Stack, page: Page) -> None:
    student = moodle.platform.students[0]

    frame = launch_from_sandbox(page, moodle, student.name)

    expect(frame.get_by_role("heading", name="My grades in")).to_be_visible()
    expect(frame.get_by_text("No points have been recorded for you")).to_be_visible()
    expect(frame.locator("#my-entries")).to_be_hidden()


def test_a_correction_saved_meanwhile_by_another_teacher_is_shown_not_overwritten(moodle: Stack, page: Page) -> None:
    ta = moodle.platform.users_of_kind("ta")[0]
    other = moodle.launch(ta.id).token or ""
    me = moodle.api(other, "/api/me").json()
    assert moodle.api(other, f"/api/groups/{me['courseId']}/roster/sync", "POST").status_code == 200
    student = moodle.platform.students[0]
    roster = moodle.api(other, f"/api/groups/{me['courseId']}/roster").json()["members"]
    student_id = next(m["personId"] for m in roster if m["name"] == student.name)
    entry = moodle.api(other, "/api/grades/entries", "POST", json={
        "offeringId": me["offeringId"], "studentId": student_id, "points": "5", "typeCode": "EXAM"}).json()
    frame = open_teacher_page(page, moodle)
    frame.locator("#grid").get_by_role("button", name=student.name).click()
    drill = frame.locator("#drill")
    drill.get_by_role("button", name="Correct Exam 5.00").click()
    drill.get_by_label("Points").fill("7")

    # The other teacher saves first.
    assert moodle.api(other, f"/api/grades/entries/{entry['id']}", "PUT", json={"points": "6"}).status_code == 200
    drill.get_by_role("button", name="Save correction").click()

    panel = drill.locator("tr.panel")
    expect(panel).to_contain_text("Someone else changed this entry while you were editing: it is now 6.00 points")
    expect(panel).to_contain_text(f"by {ta.name}")
    expect(drill.get_by_label("Points")).to_have_value("7")  # the teacher's value is kept
    expect(drill.locator(f'tr[data-entry="{entry["id"]}"]')).to_contain_text("6.00")
    wait_for_cell(frame, student.name, "Total", "6.00")

    drill.get_by_role("button", name="Save correction").click()  # put mine over theirs, knowingly
    expect(drill.locator("#drill-status")).to_contain_text("Exam is now 7.00 points (version 3)")
    wait_for_cell(frame, student.name, "Total", "7.00")
