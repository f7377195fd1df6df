"""Issue 11, finding 10: what a student may see. Every GET route of the running tool is called with a
student's session (ids filled in from a class with entries, a voided entry, an assessment with a
manual grade and an applied scheme); no answer a student can read may carry a teacher-only field
(tool/web/privacy.py), and every object in it carries only fields of the student list."""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest

from tool.web import privacy
from tests.e2e.conftest import Stack
from tests.seed_schemes import SEED_POINTS

SECRET_REASON = "private note: parents called about a medical certificate"
SECRET_VOID = "private note: typed for the wrong student"


class Scene:
    """A teacher, two students; entries (one corrected, one voided); an exam with a manual grade."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.teacher = stack.launch(stack.platform.teacher.id).token or ""
        me = stack.api(self.teacher, "/api/me").json()
        self.course_id, self.offering_id = me["courseId"], me["offeringId"]
        self.student_token = stack.launch(stack.platform.students[0].id).token or ""
        self.student_id = stack.api(self.student_token, "/api/me").json()["personId"]
        other = stack.launch(stack.platform.students[1].id).token or ""
        self.other_id = stack.api(other, "/api/me").json()["personId"]
        entry = self.call("POST", "/api/grades/entries", {"offeringId": self.offering_id, "studentId": self.student_id,
                                                         "points": "7", "typeCode": "EXAM", "description": "oral"})
        self.entry_id = entry["id"]
        self.call("PUT", f"/api/grades/entries/{self.entry_id}", {"points": "8"})
        voided = self.call("POST", "/api/grades/entries", {"offeringId": self.offering_id, "studentId": self.student_id,
                                                          "points": "3", "typeCode": "HOMEWORK"})
        self.call("DELETE", f"/api/grades/entries/{voided['id']}", {"reason": SECRET_VOID})
        exam = self.call("POST", f"/api/offerings/{self.offering_id}/assessments",
                         {"title": "Final exam", "maxPoints": 60, "tasks": [{"title": "Q1", "maxPoints": 60}]})
        self.assessment_id, self.task_id = exam["id"], exam["tasks"][0]["id"]
        self.call("PUT", f"/api/assessments/{self.assessment_id}/points/{self.student_id}",
                  {"tasks": {str(self.task_id): "40"}})
        self.scheme_id = self.call("POST", f"/api/assessments/{self.assessment_id}/schemes", {"config": SEED_POINTS})["id"]
        self.call("POST", f"/api/schemes/{self.scheme_id}/apply")
        self.call("PUT", f"/api/assessments/{self.assessment_id}/participations/{self.student_id}/override",
                  {"grade": "1.0", "reason": SECRET_REASON})
        # The exam has a scheme, so its column is released by hand (issue 15): the student's views
        # show what was released — cut to the same fields.
        self.call("POST", f"/api/offerings/{self.offering_id}/delivery/columns/assessment-{self.assessment_id}/release")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        r = self.stack.api(self.teacher, path, method, json=body)
        assert r.status_code < 300, (path, r.text)
        return r.json()

    def ids(self) -> dict[str, int]:
        """A value for every path parameter a GET route of Tally has (a new one must be added here)."""
        return {"offering_id": self.offering_id, "group_id": self.course_id, "student_id": self.student_id,
                "entry_id": self.entry_id, "assessment_id": self.assessment_id, "scheme_id": self.scheme_id}


@pytest.fixture
def scene(moodle: Stack) -> Iterator[Scene]:
    yield Scene(moodle)


def _get_routes(stack: Stack) -> list[str]:
    app = stack.tool.server.app
    return sorted({rule.rule for rule in app.url_map.iter_rules()
                   if "GET" in (rule.methods or ()) and rule.endpoint != "static"})


def _fill(rule: str, ids: dict[str, int]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1).split(":")[-1]
        assert name in ids, f"no value for <{name}> of {rule}: add it to Scene.ids so the route is checked"
        return str(ids[name])
    return re.sub(r"<([^>]+)>", one, rule)


def _walk(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield path, str(key)
            yield from _walk(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _walk(inner, f"{path}[{i}]")


def test_no_student_readable_answer_carries_a_teacher_only_field(scene: Scene) -> None:
    readable: list[str] = []
    for rule in _get_routes(scene.stack):
        path = _fill(rule, scene.ids())
        r = scene.stack.api(scene.student_token, path, headers={"Authorization": f"Bearer {scene.student_token}",
                                                                "Accept": "application/json"})
        assert r.status_code != 500, (path, r.text[:300])
        if r.status_code != 200:
            continue
        readable.append(rule)
        assert SECRET_REASON not in r.text and SECRET_VOID not in r.text, (path, r.text[:1000])
        if r.headers.get("Content-Type", "").startswith("application/json") and rule not in privacy.DOCUMENTS:
            body = r.json()
            for where, key in _walk(body):
                assert key not in privacy.TEACHER_ONLY, f"{path}: {where}.{key} is teacher-only"
    # The walk reached the answers a student reads (a route that stopped answering would hide a leak).
    for expected in ("/api/assessments/<int:assessment_id>", "/api/me/grades", "/api/me",
                     "/api/grades/entries/<int:entry_id>",
                     "/api/grades/students/<int:student_id>/offerings/<int:offering_id>",
                     "/api/assessments/<int:assessment_id>/participations/<int:student_id>/history",
                     "/offerings/<int:offering_id>", "/api/offerings/<int:offering_id>/assessments"):
        assert expected in readable, (expected, readable)


def test_the_student_sees_their_grade_and_points_but_not_the_note(scene: Scene) -> None:
    me = scene.stack.api(scene.student_token, f"/api/assessments/{scene.assessment_id}").json()
    [part] = me["participations"]
    assert part["grade"] == "1.0" and part["points"] == "40.00" and part["override"] is True
    assert "overrideReason" not in part and "overrideBy" not in part
    grades = scene.stack.api(scene.student_token, "/api/me/grades").json()["grades"]
    assert grades[0]["participation"]["grade"] == "1.0" and "overrideReason" not in grades[0]["participation"]
    mine = scene.stack.api(scene.student_token,
                           f"/api/grades/students/{scene.student_id}/offerings/{scene.offering_id}?includeVoided=true")
    assert mine.status_code == 200
    assert mine.json()["total"] == "8.00"
    for e in mine.json()["entries"]:
        assert set(e) <= privacy.STUDENT_FIELDS["entry"], set(e) - privacy.STUDENT_FIELDS["entry"]


def test_teachers_still_see_the_notes(scene: Scene) -> None:
    body = scene.stack.api(scene.teacher, f"/api/assessments/{scene.assessment_id}").json()
    part = next(p for p in body["participations"] if p["studentId"] == scene.student_id)
    assert part["overrideReason"] == SECRET_REASON
    history = scene.stack.api(scene.teacher, f"/api/grades/students/{scene.student_id}/offerings/"
                                             f"{scene.offering_id}?includeVoided=true").json()
    assert SECRET_VOID in [e["voidReason"] for e in history["entries"]]


def test_the_lists_do_not_overlap() -> None:
    for kind, fields in privacy.STUDENT_FIELDS.items():
        assert not fields & privacy.TEACHER_ONLY, (kind, fields & privacy.TEACHER_ONLY)
