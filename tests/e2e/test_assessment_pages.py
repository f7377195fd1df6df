"""The assessment pages: who may open them (real HTTP, cookies refused), and the whole exam
workflow in headless Chromium launched from the sandbox LMS — create an exam, type task points
with the keyboard (half points too), look at the distribution, drag the passing marker and
watch the live preview, move a marker by keyboard, save the draft, apply, override a grade —
and the student seeing the result.

The browser tests are skipped when Chromium is missing, unless TALLY_REQUIRE_BROWSER=1
(CI installs it and sets it).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import BROWSER_MISSING, WAIT_MS, Stack, launch_from_sandbox, needs_browser, no_cookies, open_tally_page
from tests.seed_schemes import SEED_POINTS

CONTEXT = "https://purl.imsglobal.org/spec/lti/claim/context"
RESOURCE_LINK = "https://purl.imsglobal.org/spec/lti/claim/resource_link"


class Course:
    """A teacher's session, the students who launched, and a 60-point exam created through the API."""

    def __init__(self, stack: Stack, *, source: str = "tasks", tasks: list[dict[str, Any]] | None = None) -> None:
        self.stack = stack
        self.teacher = stack.launch(stack.platform.teacher.id).token or ""
        me = stack.api(self.teacher, "/api/me").json()
        self.offering_id = me["offeringId"]
        self.students = stack.platform.students[:4]
        self.student_tokens = [stack.launch(u.id).token or "" for u in self.students]
        body: dict[str, Any] = {"title": "Final exam", "maxPoints": 60, "source": source, "tasks": tasks or []}
        r = stack.api(self.teacher, f"/api/offerings/{self.offering_id}/assessments", "POST", json=body)
        assert r.status_code == 201, r.text
        self.assessment_id = r.json()["id"]

    def page(self, token: str | None, path: str | None = None) -> Any:
        """Open a page as a browser does (no Authorization header, the token POSTed as `st`, cookies refused)."""
        url = self.stack.tool_url + (path or f"/assessments/{self.assessment_id}")
        return no_cookies().post(url, data={"st": token} if token else None, headers={"Accept": "text/html"})


@pytest.fixture
def course(moodle: Stack) -> Iterator[Course]:
    yield Course(moodle)


# -- who may open the page (HTTP) ---------------------------------------------------------------


def test_the_teacher_gets_the_assessment_page_with_the_session_for_its_scripts(course: Course) -> None:
    r = course.page(course.teacher)
    assert r.status_code == 200
    assert f'<meta name="tally-session" content="{course.teacher}">' in r.text
    assert 'id="assessment"' in r.text and f'data-assessment-id="{course.assessment_id}"' in r.text
    assert "<h1 id=\"a-title\">Final exam</h1>" in r.text
    assert "/static/assessment.js" in r.text and "/static/schemes.js" in r.text
    assert "set-cookie" not in {k.lower() for k in r.headers}


def test_a_student_of_the_course_cannot_open_the_teachers_assessment_page(course: Course) -> None:
    r = course.page(course.student_tokens[0])
    assert r.status_code == 403
    assert "Not allowed" in r.text and "Your own grades are on your Tally page" in r.text
    assert 'id="assessment"' not in r.text and 'name="tally-session"' not in r.text
    api = course.stack.api(course.student_tokens[0], f"/api/assessments/{course.assessment_id}/distribution")
    assert api.status_code == 403 and api.json()["code"] == "forbidden"


def test_a_teacher_of_another_course_cannot_open_the_page(course: Course) -> None:
    def other_course(claims: dict[str, Any]) -> None:
        claims[CONTEXT] = {**claims[CONTEXT], "id": "another-course", "title": "Another course"}
        claims[RESOURCE_LINK]["id"] = "rl-another"

    launch = course.stack.crafted_launch(other_course)
    assert launch.status == 200 and launch.token
    r = course.page(launch.token)
    assert r.status_code == 403 and "another course" in r.text
    assert "Final exam" not in r.text
    api = course.stack.api(launch.token, f"/api/assessments/{course.assessment_id}/distribution")
    assert api.status_code == 403 and api.json()["code"] == "forbidden"


def test_without_a_session_the_page_says_to_open_tally_from_the_course(course: Course) -> None:
    r = course.page(None)
    assert r.status_code == 401 and "Please open Tally from your course" in r.text
    r = course.page("not-a-token")
    assert r.status_code == 401 and "session_invalid" in r.text


def test_an_unknown_assessment_is_a_readable_404(course: Course) -> None:
    r = course.page(course.teacher, f"/assessments/{course.assessment_id + 1000}")
    assert r.status_code == 404 and "Not found" in r.text and "does not exist" in r.text


def test_the_distribution_is_there_before_any_scheme_and_equals_the_schemes_one(course: Course) -> None:
    stack, teacher = course.stack, course.teacher
    ids = [stack.api(t, "/api/me").json()["personId"] for t in course.student_tokens]
    for sid, points in zip(ids, ("55", "38", "28", "22")):
        r = stack.api(teacher, f"/api/assessments/{course.assessment_id}/points/{sid}", "PUT", json={"points": points})
        assert r.status_code == 200, r.text
    before = stack.api(teacher, f"/api/assessments/{course.assessment_id}/distribution")
    assert before.status_code == 200
    d = before.json()
    assert (d["count"], d["min"], d["max"], d["mean"], d["median"]) == (4, "22.00", "55.00", "35.75", "33.00")
    scheme = stack.api(teacher, f"/api/assessments/{course.assessment_id}/schemes", "POST", json={"config": SEED_POINTS})
    assert scheme.status_code == 201
    assert stack.api(teacher, f"/api/schemes/{scheme.json()['id']}/distribution").json() == d


def test_the_offering_page_has_the_assessments_section_and_the_student_page_the_grades(course: Course) -> None:
    teacher = course.page(course.teacher, f"/offerings/{course.offering_id}")
    assert teacher.status_code == 200
    assert 'id="assessments"' in teacher.text and 'id="assessment-form"' in teacher.text
    assert "/static/assessment.js" in teacher.text
    student = course.page(course.student_tokens[0], f"/offerings/{course.offering_id}")
    assert student.status_code == 200
    assert 'id="my-assessments"' in student.text and 'id="assessment-form"' not in student.text


# -- the whole workflow in a browser -------------------------------------------------------------

if not BROWSER_MISSING:
    from playwright.sync_api import FrameLocator, Page, expect


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 900}}


def center_x(locator: Any) -> float:
    box = locator.bounding_box()
    assert box, "the element is not visible"
    return box["x"] + box["width"] / 2


def grid_row(frame: "FrameLocator", name: str) -> Any:
    return frame.locator("#points-grid tbody tr", has=frame.get_by_role("rowheader", name=name, exact=True))


@needs_browser
def test_a_teacher_grades_an_exam_from_points_to_applied_grades_and_the_student_sees_theirs(
        moodle: Stack, page: "Page") -> None:
    frame = launch_from_sandbox(page, moodle, moodle.platform.teacher.name)
    expect(frame.locator("#ledger-status")).to_contain_text("Roster synchronised", timeout=WAIT_MS)

    # Create the exam on the offering page: 60 points, two tasks of 30.
    section = frame.locator("#assessments")
    section.get_by_text("New assessment").click()
    section.get_by_label("Title", exact=True).fill("Final exam")
    section.get_by_label("Maximum points").fill("60")
    section.get_by_role("button", name="Add a task").click()
    section.get_by_role("button", name="Add a task").click()
    section.get_by_label("Maximum of task 1").fill("30")
    section.get_by_label("Maximum of task 2").fill("thirty")
    section.get_by_role("button", name="Create assessment").click()
    expect(section.locator("#new-status")).to_contain_text("Nothing was created.")
    expect(section.locator("#new-status")).to_contain_text("Task 2 maximum: must be a number.")
    expect(section.locator("#assessment-empty")).to_be_visible()
    section.get_by_label("Maximum of task 2").fill("30")
    section.get_by_role("button", name="Create assessment").click()
    expect(section.locator("#new-status")).to_contain_text("Created “Final exam”")
    expect(section.locator("#assessment-list")).to_contain_text("2 tasks")
    expect(section.locator("#assessment-list")).to_contain_text("no scheme yet")
    section.get_by_role("link", name="Final exam").click()

    # Phase 1: task points with the keyboard, in the grid's row order (the seed's Alice, Bob, Carol, Dave).
    expect(frame.get_by_role("heading", name="Final exam", exact=True)).to_be_visible()
    expect(frame.locator("#points-grid tbody tr")).to_have_count(8)  # the synchronised roster
    names = [n.strip() for n in frame.locator("#points-grid tbody th").all_inner_texts()]
    alice, bob, carol, dave = names[:4]
    frame.get_by_label(f"Task 1, {alice}").click()
    page.keyboard.type("27,5")            # half a point, written the German way
    page.keyboard.press("Enter")          # down to Bob
    page.keyboard.type("20")
    page.keyboard.press("Enter")
    page.keyboard.type("14")
    page.keyboard.press("Enter")
    page.keyboard.type("11")
    page.keyboard.press("ArrowRight")     # at the end of the value: on to Dave's task 2
    page.keyboard.type("11")
    page.keyboard.press("ArrowUp")
    page.keyboard.type("14")
    page.keyboard.press("ArrowUp")
    page.keyboard.type("18")
    page.keyboard.press("ArrowUp")
    page.keyboard.type("27.5")
    page.keyboard.press("Tab")
    for name, total in ((alice, "55.00"), (bob, "38.00"), (carol, "28.00"), (dave, "22.00")):
        expect(grid_row(frame, name).locator("td.total")).to_have_text(total)
    expect(grid_row(frame, alice).locator("td.cell").first).to_have_class("num cell saved")
    expect(grid_row(frame, alice).locator(".status-select")).to_have_value("graded")

    # A bad value is marked in its cell and saved nowhere.
    fifth = names[4]
    frame.get_by_label(f"Task 1, {fifth}").fill("1.234")
    frame.get_by_label(f"Task 1, {fifth}").press("Enter")
    expect(frame.locator("#grid-status")).to_contain_text(f"Not saved: Task 1 for {fifth}")
    expect(grid_row(frame, fifth).locator("td.cell").first).to_have_class("num cell error")
    expect(grid_row(frame, fifth).locator("td.total")).to_have_text("–")
    frame.get_by_label(f"Task 1, {fifth}").fill("")
    frame.get_by_label(f"Task 1, {fifth}").press("Enter")

    # Phase 2: the distribution of the four totals.
    stats = frame.locator("#stats")
    expect(stats.locator(".stat", has_text="Students with points")).to_contain_text("4")
    expect(stats.locator(".stat", has_text="Mean")).to_contain_text("35.75")
    expect(stats.locator(".stat", has_text="Median")).to_contain_text("33")
    expect(frame.locator("svg.histogram rect.bar")).to_have_count(60)

    # The two-point curve from the defaults (passing 30, excellence 54): Bob 3.0, Carol and Dave fail.
    summary = frame.locator("#preview-summary")
    expect(summary).to_contain_text("Pass rate 50.00 % of 4 graded students")
    passing = frame.get_by_role("slider", name="Passing threshold (4.0)")
    excellence = frame.get_by_role("slider", name="Excellence threshold (1.0)")
    expect(passing).to_have_attribute("aria-valuenow", "30")
    expect(excellence).to_have_attribute("aria-valuenow", "54")

    # Drag the passing marker with the mouse from 30 down to 24: Carol passes with 3.7.
    passing.scroll_into_view_if_needed()
    x30, x54 = center_x(passing), center_x(excellence)
    per_point = (x54 - x30) / 24
    box = passing.bounding_box()
    assert box
    y = box["y"] + box["height"] / 2
    page.mouse.move(x30, y)
    page.mouse.down()
    for k in range(1, 7):
        page.mouse.move(x30 - k * per_point, y, steps=3)
    page.mouse.up()
    expect(passing).to_have_attribute("aria-valuenow", "24")
    expect(frame.get_by_label("Passing: worst passing grade from")).to_have_value("24")
    expect(summary).to_contain_text("Pass rate 75.00 % of 4 graded students")
    bands = frame.locator("#bands-table tbody")
    expect(bands.locator('tr[data-grade="3.7"] td.count')).to_have_text("1")
    expect(bands.locator('tr[data-grade="4.0"] td').first).to_have_text("24")
    expect(bands.locator('tr[data-grade="5.0"] td.count')).to_have_text("1")

    # The excellence marker by keyboard: one step up, to 55 (Alice keeps her 1.0).
    excellence.focus()
    page.keyboard.press("ArrowRight")
    expect(excellence).to_have_attribute("aria-valuenow", "55")
    expect(bands.locator('tr[data-grade="1.0"] td').first).to_have_text("55")
    expect(bands.locator('tr[data-grade="1.0"] td.count')).to_have_text("1")

    # A passing threshold above excellence is refused by the server, with the reason; nothing can be saved.
    frame.get_by_label("Passing: worst passing grade from").fill("56")
    problems = frame.locator("#problems")
    expect(problems).to_contain_text("must be below the excellence threshold 55")
    expect(frame.get_by_role("button", name="Save draft")).to_be_disabled()
    frame.get_by_label("Passing: worst passing grade from").fill("24")
    expect(problems).to_be_hidden()

    # The seed's own bands, typed in its min/max form: Alice 1.0, Bob 2.0, Carol 3.7, Dave 5.0.
    frame.get_by_label("Enter bands (JSON)").check()
    frame.locator("#bands-json").fill(json.dumps(SEED_POINTS))
    for grade in ("1.0", "2.0", "3.7", "5.0"):
        expect(bands.locator(f'tr[data-grade="{grade}"] td.count')).to_have_text("1")
    expect(bands.locator('tr[data-grade="1.3"] td.count')).to_have_text("0")
    expect(summary).to_contain_text("Pass rate 75.00 %")
    expect(summary).to_contain_text("4 grades would change on apply")

    # Phase 3: save the draft.
    frame.get_by_role("button", name="Save draft").click()
    expect(frame.locator("#save-status")).to_have_text("Saved draft version 1.")
    expect(frame.locator("#scheme-state")).to_have_text("Version 1 · draft, not applied yet")
    expect(frame.locator('#versions tr[data-version="1"]')).to_contain_text("draft")

    # Phase 4: apply, after a confirmation that counts the changes.
    frame.get_by_role("button", name="Apply version 1…").click()
    expect(frame.locator("#apply-question")).to_have_text("Apply version 1 to 8 students? 4 grades change.")
    frame.get_by_role("button", name="Apply now").click()
    expect(frame.locator("#apply-status")).to_have_text("Applied version 1: 4 grades changed.")
    for name, grade in ((alice, "1.0"), (bob, "2.0"), (carol, "3.7"), (dave, "5.0")):
        expect(grid_row(frame, name).locator("td.grade-cell")).to_have_text(grade)
    expect(grid_row(frame, fifth).locator("td.grade-cell")).to_have_text("–")
    applied = frame.locator('#versions tr[data-version="1"]')
    expect(applied).to_contain_text("applied")
    expect(applied).to_contain_text(f"{moodle.platform.teacher.name} (you)")

    # Applying the same version again changes nothing, and says so.
    frame.get_by_role("button", name="Apply version 1…").click()
    expect(frame.locator("#apply-question")).to_contain_text("already applied")
    frame.get_by_role("button", name="Apply now").click()
    expect(frame.locator("#apply-status")).to_have_text("Already applied: nothing changed.")

    # After apply, a change of points regrades at once: Carol's task 2 from 14 to 16 makes 30 → 3.0.
    frame.get_by_label(f"Task 2, {carol}").fill("16")
    frame.get_by_label(f"Task 2, {carol}").press("Enter")
    expect(grid_row(frame, carol).locator("td.grade-cell")).to_have_text("3.0")

    # A manual grade can be removed again: the applied scheme grades Bob as before.
    frame.get_by_role("button", name=f"Override the grade of {bob}").click()
    frame.get_by_label("Grade", exact=True).select_option("1.7")
    frame.get_by_role("button", name="Set manual grade").click()
    expect(frame.get_by_text("Give a reason for the manual grade.")).to_be_visible()
    frame.get_by_label("Reason (required)").fill("Wrong student")
    frame.get_by_role("button", name="Set manual grade").click()
    expect(grid_row(frame, bob).locator("td.grade-cell")).to_have_text("1.7manual")
    frame.get_by_role("button", name=f"Remove the override of {bob}").click()
    expect(grid_row(frame, bob).locator("td.grade-cell")).to_have_text("2.0")
    expect(frame.locator("#grid-status")).to_have_text(f"Override of {bob} removed; grade now 2.0.")

    # A manual grade for Dave, with its reason on the marker.
    frame.get_by_role("button", name=f"Override the grade of {dave}").click()
    frame.get_by_label("Grade", exact=True).select_option("4.0")
    frame.get_by_label("Reason (required)").fill("Oral re-examination passed")
    frame.get_by_role("button", name="Set manual grade").click()
    marker = grid_row(frame, dave).locator(".marker-manual")
    expect(marker).to_have_text("manual")
    expect(marker).to_have_attribute("title", "Manual grade: Oral re-examination passed")
    expect(grid_row(frame, dave).locator("strong.grade")).to_have_text("4.0")

    # Dave's grade history: the scheme's version, then the override with its reason.
    frame.get_by_role("button", name=f"Grade history of {dave}").click()
    history = frame.locator("table.history tbody tr")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("scheme version 1")
    expect(history.nth(1)).to_contain_text("manual grade — Oral re-examination passed")

    # The exam has a scheme, so nothing reached the students yet: the teacher releases all (issue 15).
    page.once("dialog", lambda d: d.accept())
    frame.get_by_role("button", name=re.compile(r"^Release all \(\d+\)$")).click()
    expect(frame.locator("#grid-status")).to_contain_text("grades released")

    page.locator("iframe[name=tool-frame]").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/assessment-iframe.png")

    # The student Dave sees his points and the manual decision.
    student = next(u for u in moodle.platform.students if u.name == dave)
    frame = launch_from_sandbox(page, moodle, student.name)
    mine = frame.locator("#my-assessments")
    expect(mine).to_be_visible()
    row = mine.locator("tbody tr", has_text="Final exam")
    expect(row).to_contain_text("22.00 / 60.00")
    expect(row.locator("strong.grade")).to_have_text("4.0")
    expect(row).to_contain_text("manual decision")


@needs_browser
def test_manual_boundaries_move_one_by_one_and_a_collision_names_the_band(course: Course, page: "Page") -> None:
    stack = course.stack
    ids = [stack.api(t, "/api/me").json()["personId"] for t in course.student_tokens]
    for sid, points in zip(ids, ("55", "38", "28", "22")):
        stack.api(course.teacher, f"/api/assessments/{course.assessment_id}/points/{sid}", "PUT", json={"points": points})
    open_tally_page(page, f"{stack.tool_url}/assessments/{course.assessment_id}", course.teacher)
    summary = page.locator("#preview-summary")
    expect(summary).to_contain_text("Pass rate 50.00 %")

    # Manual mode starts from the two-point curve: one marker per boundary, the worst grade at 0.
    page.get_by_label("One boundary per grade").check()
    markers = page.locator(".cmarker")
    expect(markers).to_have_count(10)
    bound_30 = page.get_by_role("slider", name="Lower bound of 3.0")
    expect(bound_30).to_have_attribute("aria-valuenow", "38")
    expect(page.get_by_label("3.0 from")).to_have_value("38")

    # One step down by keyboard: Bob's 38 stays in 3.0; a second marker is left where it was.
    bound_30.focus()
    page.keyboard.press("ArrowLeft")
    expect(bound_30).to_have_attribute("aria-valuenow", "37")
    expect(page.get_by_label("3.0 from")).to_have_value("37")
    expect(page.get_by_role("slider", name="Lower bound of 2.7")).to_have_attribute("aria-valuenow", "41")
    expect(page.locator('#bands-table tr[data-grade="3.0"] td.count')).to_have_text("1")

    # Typing the same bound as the grade above: the server names the band and the reason
    # (bands counted from 1: 2.7 is the sixth band, 3.0 the seventh).
    field = page.get_by_label("3.0 from")
    field.fill("41")
    problems = page.locator("#problems")
    expect(problems).to_contain_text("Band 7 (3.0): min 41 equals the min of band 6 (2.7)")
    expect(page.get_by_role("button", name="Save draft")).to_be_disabled()

    # A half point typed key by key stays as typed, and is refused until the step allows it.
    field.fill("")
    field.press_sequentially("37.5")
    expect(field).to_have_value("37.5")
    expect(problems).to_contain_text("Band 7 (3.0): min 37.5 is not a multiple of the step 1")
    page.get_by_label("Step", exact=True).fill("0.5")
    expect(problems).to_be_hidden()
    expect(bound_30).to_have_attribute("aria-valuenow", "37.5")
    expect(page.locator('#bands-table tr[data-grade="3.0"] td').first).to_have_text("37.5")

    # Saved and reloaded: the draft comes back in manual mode with its boundaries and step.
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#save-status")).to_have_text("Saved draft version 1.")
    page.reload()
    expect(page.get_by_label("One boundary per grade")).to_be_checked()
    expect(page.get_by_role("slider", name="Lower bound of 3.0")).to_have_attribute("aria-valuenow", "37.5")
    expect(page.get_by_label("Step", exact=True)).to_have_value("0.5")
    expect(page.locator("#scheme-state")).to_have_text("Version 1 · draft, not applied yet")


@needs_browser
def test_a_ledger_fed_assessment_shows_read_only_totals(moodle: Stack, page: "Page") -> None:
    course = Course(moodle, source="ledger")
    sid = moodle.api(course.student_tokens[0], "/api/me").json()["personId"]
    r = moodle.api(course.teacher, "/api/grades/entries", "POST",
                   json={"offeringId": course.offering_id, "studentId": sid, "points": "41.5", "typeCode": "EXAM"})
    assert r.status_code == 201, r.text
    open_tally_page(page, f"{moodle.tool_url}/assessments/{course.assessment_id}", course.teacher)
    expect(page.locator("#ledger-note")).to_contain_text("The totals come from the grade ledger")
    expect(page.locator("#ledger-types")).to_have_text(", of every type")
    row = grid_row(page, course.students[0].name)
    expect(row.locator("td.total")).to_have_text("41.50")
    expect(page.locator("#points-grid input.cell-input")).to_have_count(0)
    expect(page.locator("#stats .stat", has_text="Students with points")).to_contain_text("1")


@needs_browser
def test_thresholds_in_percent_keep_their_place_on_the_axis_and_grade_by_percentage(course: Course, page: "Page") -> None:
    stack = course.stack
    ids = [stack.api(t, "/api/me").json()["personId"] for t in course.student_tokens]
    for sid, points in zip(ids, ("55", "38", "28")):
        stack.api(course.teacher, f"/api/assessments/{course.assessment_id}/points/{sid}", "PUT", json={"points": points})
    open_tally_page(page, f"{stack.tool_url}/assessments/{course.assessment_id}", course.teacher)
    expect(page.locator("#preview-summary")).to_contain_text("Pass rate 66.67 % of 3 graded students")
    # Without tasks the grid has one "Points" column: the fourth total typed there joins the preview.
    total = page.get_by_label(f"Points, {course.students[3].name}")
    total.fill("22")
    total.press("Enter")
    expect(grid_row(page, course.students[3].name).locator(".status-select")).to_have_value("graded")
    expect(page.locator("#preview-summary")).to_contain_text("Pass rate 50.00 % of 4 graded students")
    passing = page.get_by_role("slider", name="Passing threshold (4.0)")
    at_30_points = center_x(passing)

    page.get_by_label("Thresholds in").select_option("percent")
    expect(passing).to_have_attribute("aria-valuenow", "50")
    expect(page.get_by_role("slider", name="Excellence threshold (1.0)")).to_have_attribute("aria-valuenow", "90")
    assert abs(center_x(passing) - at_30_points) < 1  # 50 % of 60 is where 30 points was
    bands = page.locator("#bands-table tbody")
    expect(bands.locator('tr[data-grade="4.0"] td').first).to_have_text("50 %")
    expect(page.locator("#preview-summary")).to_contain_text("Pass rate 50.00 %")

    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#save-status")).to_have_text("Saved draft version 1.")
    expect(page.locator('#versions tr[data-version="1"]')).to_contain_text("4.0 ≥ 50%")
    page.get_by_role("button", name="Apply version 1…").click()
    page.get_by_role("button", name="Apply now").click()
    expect(page.locator("#apply-status")).to_have_text("Applied version 1: 4 grades changed.")
    # Bob's 38 of 60 is 63.33 %, at least the 3.0 band's 63 %.
    expect(grid_row(page, course.students[1].name).locator("td.grade-cell")).to_have_text("3.0")


PASTE = """(input, text) => {
    const data = new DataTransfer();
    data.setData("text/plain", text);
    input.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
}"""


@needs_browser
def test_a_block_pasted_from_a_spreadsheet_fills_tasks_and_students_and_saves_each_cell(
        moodle: Stack, page: "Page") -> None:
    course = Course(moodle, tasks=[{"title": "Task 1", "maxPoints": 30}, {"title": "Task 2", "maxPoints": 30}])
    open_tally_page(page, f"{moodle.tool_url}/assessments/{course.assessment_id}", course.teacher)
    expect(page.locator("#points-grid tbody tr")).to_have_count(4)
    names = [n.strip() for n in page.locator("#points-grid tbody th").all_inner_texts()]

    # Two rows of two cells; the second row's empty cell stays empty, a comma is a decimal point.
    page.get_by_label(f"Task 1, {names[0]}").evaluate(PASTE, "10\t12,5\r\n7\t\r\n")

    expect(grid_row(page, names[0]).locator("td.total")).to_have_text("22.50")
    expect(grid_row(page, names[1]).locator("td.total")).to_have_text("7.00")
    expect(page.get_by_label(f"Task 2, {names[0]}")).to_have_value("12.5")
    expect(page.get_by_label(f"Task 2, {names[1]}")).to_have_value("")
    expect(grid_row(page, names[2]).locator("td.total")).to_have_text("–")
    detail = moodle.api(course.teacher, f"/api/assessments/{course.assessment_id}").json()
    stored = {p["name"]: p["points"] for p in detail["participations"]}
    assert (stored[names[0]], stored[names[1]], stored[names[2]]) == ("22.50", "7.00", None)
