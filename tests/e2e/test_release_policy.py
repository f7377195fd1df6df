"""Issue 15, items 1-3: a column's release policy (held changes, release), what students see, and
what the LMS column shows (lmsValue), through the sandbox LMS in Moodle and Canvas modes."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from tests.e2e.delivery_kit import Klass, klass, raw  # noqa: F401  (fixtures)
from tests.e2e.test_delivery_end_to_end import gradebook

BANDS = {"bands": [{"min_points": 54, "max_points": 60, "grade": "1.0"},
                   {"min_points": 48, "max_points": 53.99, "grade": "1.3"},
                   {"min_points": 30, "max_points": 47.99, "grade": "4.0"},
                   {"min_points": 0, "max_points": 29.99, "grade": "5.0"}]}


def exam_with_scheme(k: Klass, *, apply: bool = False) -> tuple[int, int]:
    r = k.api("POST", f"/api/offerings/{k.offering_id}/assessments", {"title": "Final exam", "maxPoints": 60})
    assert r.status_code == 201, r.text
    exam = r.json()["id"]
    scheme = k.api("POST", f"/api/assessments/{exam}/schemes", {"config": BANDS})
    assert scheme.status_code == 201, scheme.text
    if apply:
        assert k.api("POST", f"/api/schemes/{scheme.json()['id']}/apply").status_code == 200
    return exam, scheme.json()["id"]


def points(k: Klass, exam: int, sub: str, value: Any) -> None:
    r = k.api("PUT", f"/api/assessments/{exam}/points/{k.person[sub]}", {"points": value})
    assert r.status_code == 200, r.text


def column(k: Klass, key: str) -> dict[str, Any]:
    cols = {c["key"]: c for c in k.status()["columns"]}
    return cols[key]


def test_points_of_an_exam_with_a_scheme_are_held_until_released(klass: Klass) -> None:
    """Reported: raw points went to the LMS as FullyGraded at once; the exam's column is manual."""
    ann, ben = klass.subs[:2]
    exam, scheme = exam_with_scheme(klass)
    points(klass, exam, ann, "50")
    points(klass, exam, ben, "20")
    assert klass.api("POST", f"/api/schemes/{scheme}/apply").status_code == 200
    klass.deliver()
    target = f"assessment:{exam}"
    graded = [p for p in klass.posts(target=target) if p.body.get("scoreGiven") is not None]
    assert graded == []  # nothing with a grade reached the LMS
    col = column(klass, f"assessment-{exam}")
    assert col["release"] == "manual" and col["lmsValue"] == "points"
    held = {s["studentId"]: s for s in col["students"] if s["held"]}
    assert set(held) == {klass.person[ann], klass.person[ben]}
    assert held[klass.person[ann]]["heldScore"]["scoreGiven"] == "50.00"

    # Release Ann only: her grade goes out; Ben stays held.
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/columns/assessment-{exam}/release",
                  {"studentIds": [klass.person[ann]]})
    assert r.status_code == 200 and r.json() == {"released": 1}, r.text
    klass.deliver()
    assert raw(klass.result(ann, target)) == Decimal("50.00")
    assert klass.result(ann, target).comment == "Grade 1.3"  # type: ignore[union-attr]
    assert klass.result(ben, target) is None or klass.result(ben, target).raw is None  # type: ignore[union-attr]

    # A later change is held again; the LMS keeps the released grade.
    points(klass, exam, ann, "58")
    klass.deliver()
    assert raw(klass.result(ann, target)) == Decimal("50.00")
    assert {s["studentId"] for s in column(klass, f"assessment-{exam}")["students"] if s["held"]} == {
        klass.person[ann], klass.person[ben]}

    # Release all: both go out; a second release finds nothing held.
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/columns/assessment-{exam}/release")
    assert r.json() == {"released": 2}, r.text
    again = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/columns/assessment-{exam}/release")
    assert again.json() == {"released": 0}
    klass.deliver()
    assert raw(klass.result(ann, target)) == Decimal("58.00")
    assert raw(klass.result(ben, target)) == Decimal("20.00")


def test_a_student_sees_only_what_was_released(klass: Klass) -> None:
    """Reported: a student saw the grade the moment it was computed."""
    ann = klass.subs[0]
    exam, _ = exam_with_scheme(klass, apply=True)
    points(klass, exam, ann, "50")
    student = klass.stack.launch(ann, "rl-1").token or ""
    mine = klass.api("GET", "/api/me/grades", token=student).json()["grades"]
    part = next(g for g in mine if g["assessmentId"] == exam)["participation"]
    assert part is None or (part.get("grade") is None and part.get("points") is None), part
    klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/columns/assessment-{exam}/release")
    mine = klass.api("GET", "/api/me/grades", token=student).json()["grades"]
    part = next(g for g in mine if g["assessmentId"] == exam)["participation"]
    assert (part["grade"], part["points"]) == ("1.3", "50.00")
    # A later change: the student still sees what was released.
    points(klass, exam, ann, "20")
    mine = klass.api("GET", "/api/me/grades", token=student).json()["grades"]
    part = next(g for g in mine if g["assessmentId"] == exam)["participation"]
    assert (part["grade"], part["points"]) == ("1.3", "50.00")


def test_manual_to_automatic_sends_what_is_held_and_automatic_to_manual_holds_new_changes(klass: Klass) -> None:
    ann, ben = klass.subs[:2]
    exam, _ = exam_with_scheme(klass, apply=True)
    key, target = f"assessment-{exam}", f"assessment:{exam}"
    points(klass, exam, ann, "50")
    klass.deliver()
    assert raw(klass.result(ann, target)) is None
    r = klass.api("PUT", f"/api/offerings/{klass.offering_id}/delivery/columns/{key}", {"release": "automatic"})
    assert r.status_code == 200 and r.json()["release"] == "automatic", r.text
    klass.deliver()
    assert raw(klass.result(ann, target)) == Decimal("50.00")  # what was held went out
    r = klass.api("PUT", f"/api/offerings/{klass.offering_id}/delivery/columns/{key}", {"release": "manual"})
    assert r.status_code == 200, r.text
    points(klass, exam, ben, "55")
    points(klass, exam, ann, "20")
    klass.deliver()
    assert raw(klass.result(ann, target)) == Decimal("50.00") and raw(klass.result(ben, target)) is None
    # Ann saw 50 / 1.3 when the column turned manual: she still does.
    student = klass.stack.launch(ann, "rl-1").token or ""
    mine = klass.api("GET", "/api/me/grades", token=student).json()["grades"]
    assert next(g for g in mine if g["assessmentId"] == exam)["participation"]["points"] == "50.00"
    # The ledger total: automatic by default, manual on request; the student's ledger answer follows.
    entry = klass.entry(ann, "7")
    klass.api("PUT", f"/api/offerings/{klass.offering_id}/delivery/columns/total", {"release": "manual"})
    klass.correct(entry["id"], "9")
    own = klass.api("GET", f"/api/grades/students/{klass.person[ann]}/offerings/{klass.offering_id}", token=student).json()
    assert own["total"] == "7.00" and [e["points"] for e in own["entries"]] == ["7.00"]
    klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/columns/total/release")
    own = klass.api("GET", f"/api/grades/students/{klass.person[ann]}/offerings/{klass.offering_id}", token=student).json()
    assert own["total"] == "9.00"


def test_column_settings_refuse_what_cannot_be(klass: Klass) -> None:
    exam, _ = exam_with_scheme(klass)
    bare = klass.api("POST", f"/api/offerings/{klass.offering_id}/assessments", {"title": "Quiz", "maxPoints": 10}).json()
    base = f"/api/offerings/{klass.offering_id}/delivery/columns"
    cases = [(f"{base}/total", {"lmsValue": "grade"}, 422, "lms_value_not_for_total"),
             (f"{base}/assessment-{bare['id']}", {"lmsValue": "grade"}, 422, "no_scheme"),
             (f"{base}/assessment-{exam}", {"release": "sometimes"}, 422, None),
             (f"{base}/assessment-{exam}", {"gradeNumbers": {"1.0": "10", "5.0": "20"}}, 422, "invalid_grade_numbers"),
             (f"{base}/assessment-{exam}", {"gradeNumbers": {"9.9": "10"}}, 422, "invalid_grade_numbers"),
             (f"{base}/assessment-999999", {"release": "manual"}, 404, "unknown_column"),
             (f"{base}/nonsense", {"release": "manual"}, 404, "unknown_column"),
             (f"{base}/assessment-99999999999", {"release": "manual"}, 404, "unknown_column")]
    for path, body, code, name in cases:
        r = klass.api("PUT", path, body)
        assert r.status_code == code, (path, body, r.text)
        if name:
            assert r.json()["code"] == name
    r = klass.api("POST", f"{base}/assessment-{exam}/release", {"studentIds": [999999]})
    assert r.status_code == 422 and r.json()["code"] == "unknown_student"
    assert column(klass, "total")["release"] == "automatic" and column(klass, f"assessment-{bare['id']}")["release"] == "automatic"


def test_each_lms_value_reaches_the_sandbox_gradebook(klass: Klass) -> None:
    """points (today), percent (of 100) and grade (the grade's number); the grade in the comment each time."""
    ann, ben = klass.subs[:2]
    names = {sub: klass.platform.users[sub].name for sub in (ann, ben)}
    exam, _ = exam_with_scheme(klass, apply=True)
    key, target = f"assessment-{exam}", f"assessment:{exam}"
    points(klass, exam, ann, "50")  # 1.3
    points(klass, exam, ben, "40")  # 4.0
    expected = {"points": ({ann: "50", ben: "40"}, 60),
                "percent": ({ann: "83.33", ben: "66.67"}, 100),
                "grade": ({ann: "95", ben: "50"}, 100)}
    for mode, (values, maximum) in expected.items():
        r = klass.api("PUT", f"/api/offerings/{klass.offering_id}/delivery/columns/{key}", {"lmsValue": mode})
        assert r.status_code == 200 and r.json()["lmsValue"] == mode, r.text
        assert klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/columns/{key}/release").status_code == 200
        klass.deliver()
        assert klass.item(target).score_maximum == maximum, mode
        book = gradebook(klass.stack)["Final exam"]
        for sub, value in values.items():
            assert book[names[sub]]["raw"] == value, (mode, sub, book[names[sub]])
        assert (book[names[ann]]["comment"], book[names[ben]]["comment"]) == ("Grade 1.3", "Grade 4.0"), mode
    # The grade numbers are editable: 1.3 counts 90 from now on (held, then released).
    r = klass.api("PUT", f"/api/offerings/{klass.offering_id}/delivery/columns/{key}", {"gradeNumbers": {"1.3": "90"}})
    assert r.status_code == 200 and r.json()["gradeNumbers"]["1.3"] == "90.00", r.text
    assert column(klass, key)["counts"]["held"] == 1
    klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/columns/{key}/release")
    klass.deliver()
    assert gradebook(klass.stack)["Final exam"][names[ann]]["raw"] == "90"


def test_the_scheme_page_prints_the_canvas_scheme_and_the_moodle_hint(klass: Klass) -> None:
    from tests.e2e.conftest import no_cookies

    exam, _ = exam_with_scheme(klass, apply=True)
    page = no_cookies().post(f"{klass.stack.tool_url}/assessments/{exam}", data={"st": klass.teacher}).text
    assert 'id="canvas-scheme"' in page
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th><td class="num">([^<]+) %</td>\s*<td class="num">([^<]+)</td>', page)
    assert rows[0] == ("1.0", "100.00", "100.00") and ("4.0", "50.00", "50.00") in rows and rows[-1] == ("5.0", "0.00", "0.00")
    assert [r[0] for r in rows] == ["1.0", "1.3", "1.7", "2.0", "2.3", "2.7", "3.0", "3.3", "3.7", "4.0", "5.0"]
    assert "5.0,4.0,3.7,3.3,3.0,2.7,2.3,2.0,1.7,1.3,1.0" in page
    assert 'data-release="manual"' in page


def test_the_sync_page_shows_held_grades_and_release_all_asks_with_the_count(klass: Klass) -> None:
    from tests.e2e.conftest import no_cookies

    ann, ben = klass.subs[:2]
    exam, _ = exam_with_scheme(klass, apply=True)
    points(klass, exam, ann, "50")
    points(klass, exam, ben, "40")
    klass.deliver()  # the others' empty scores go; the two grades stay held
    url = f"{klass.stack.tool_url}/offerings/{klass.offering_id}/sync"
    page = no_cookies().post(url, data={"st": klass.teacher}).text
    assert 'data-confirm="Release 2 held grades? 2 grades go to the LMS and to the students."' in page
    assert "Release all (2)" in page and "held: 2" in page and "pending: 0" in page
    row = re.search(rf'<tr data-key="assessment-{exam}" data-release="manual">.*?</tr>', page, re.S)
    assert row and re.search(r'data-count="held">2<', row.group(0)), page
    assert klass.status()["counts"]["held"] == 2
    # One student first (her own button), then all that is left.
    assert f'aria-label="Release {klass.platform.users[ann].name}"' in page
    r = no_cookies().post(url + "/release", data={"st": klass.teacher, "key": f"assessment-{exam}",
                                                  "student_id": str(klass.person[ann])}, allow_redirects=False)
    assert r.status_code == 307 and "n=1" in r.headers["Location"]
    assert [s["studentId"] for s in column(klass, f"assessment-{exam}")["students"] if s["held"]] == [klass.person[ben]]
    bad = no_cookies().post(url + "/release", data={"st": klass.teacher, "student_id": "x"}, allow_redirects=False)
    assert bad.status_code == 422
    r = no_cookies().post(url + "/release", data={"st": klass.teacher}, allow_redirects=False)
    assert r.status_code == 307 and "n=1" in r.headers["Location"]
    klass.deliver()
    page = no_cookies().post(url, data={"st": klass.teacher}).text
    row = re.search(rf'<tr data-key="assessment-{exam}" data-release="manual">.*?</tr>', page, re.S)
    assert row and re.search(r'data-count="delivered">2<', row.group(0)) and "Release all (0)" in page
    # The policy from the page's form: automatic.
    r = no_cookies().post(url + "/column", data={"st": klass.teacher, "key": f"assessment-{exam}",
                                                 "release": "automatic", "lms_value": "percent"},
                          allow_redirects=False)
    assert r.status_code == 307
    col = column(klass, f"assessment-{exam}")
    assert (col["release"], col["lmsValue"]) == ("automatic", "percent")
