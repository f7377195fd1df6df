"""The ledger REST API through real launches from the sandbox LMS."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from tool.ledger.models import GradeEntry
from tool.lti.models import Course, Offering
from tests.e2e.conftest import Stack


class Class:
    """A teacher and three students who launched, with their ids and tokens."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.teacher = stack.launch(stack.platform.teacher.id).token or ""
        me = stack.api(self.teacher, "/api/me").json()
        self.course_id, self.offering_id, self.teacher_id = me["courseId"], me["offeringId"], me["personId"]
        self.student_tokens: list[str] = []
        self.students: list[int] = []
        for user in stack.platform.students[:3]:
            token = stack.launch(user.id).token or ""
            self.student_tokens.append(token)
            self.students.append(stack.api(token, "/api/me").json()["personId"])

    def post(self, path: str, body: Any, token: str | None = None) -> Any:
        return self.stack.api(token or self.teacher, path, "POST", json=body)

    def entry(self, student: int, points: Any = "10", **extra: Any) -> dict[str, Any]:
        body = {"offeringId": self.offering_id, "studentId": student, "points": points, "typeCode": "EXAM", **extra}
        r = self.post("/api/grades/entries", body)
        assert r.status_code == 201, r.text
        return r.json()

    def summary(self, query: str = "") -> dict[str, Any]:
        r = self.stack.api(self.teacher, f"/api/grades/groups/{self.course_id}/offerings/{self.offering_id}/summary{query}")
        assert r.status_code == 200, r.text
        return r.json()

    def count_entries(self) -> int:
        with self.stack.session() as db:
            return db.scalar(select(func.count()).select_from(GradeEntry)) or 0


@pytest.fixture
def klass(moodle: Stack) -> Iterator[Class]:
    yield Class(moodle)


def test_a_teacher_records_points_and_the_student_sees_them(klass: Class) -> None:
    e = klass.entry(klass.students[0], "12.5", description="Problem set 1")
    assert (e["points"], e["status"], e["typeCode"], e["createdBy"]) == ("12.50", "ACTIVE", "EXAM", klass.teacher_id)
    own = klass.stack.api(klass.student_tokens[0], f"/api/grades/students/{klass.students[0]}/offerings/{klass.offering_id}")
    assert own.status_code == 200
    body = own.json()
    assert body["total"] == "12.50" and body["breakdownByType"]["EXAM"] == "12.50" and len(body["entries"]) == 1


def test_points_are_exact_decimals(klass: Class) -> None:
    for p in ("0.1", "0.2", 0.3):
        klass.entry(klass.students[0], p, typeCode="HOMEWORK")
    row = next(s for s in klass.summary()["students"] if s["studentId"] == klass.students[0])
    assert row["total"] == "0.60"  # not 0.6000000000000001


@pytest.mark.parametrize(
    ("change", "field"),
    [({"points": "1.005"}, "points"), ({"points": 1.005}, "points"), ({"points": "10000"}, "points"),
     ({"points": "ten"}, "points"), ({"typeCode": "CUSTOM"}, "typeLabel"), ({"typeLabel": "x"}, "typeLabel"),
     ({"typeCode": "QUIZ"}, "typeCode"), ({"description": "x" * 2001}, "description"),
     ({"gradedAt": "2026-01-01T10:00:00"}, "gradedAt"), ({"unknown": 1}, "unknown")],
)
def test_bad_input_is_refused_per_field_and_nothing_is_written(klass: Class, change: dict[str, Any], field: str) -> None:
    body = {"offeringId": klass.offering_id, "studentId": klass.students[0], "points": "5", "typeCode": "EXAM", **change}
    r = klass.post("/api/grades/entries", body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["code"] == "validation_error" and err["message"]
    assert any(field in d["field"] or field in d["message"] for d in err["details"]), err
    assert klass.count_entries() == 0


def test_a_body_that_is_not_json_is_a_clear_4xx(klass: Class) -> None:
    r = klass.stack.api(klass.teacher, "/api/grades/entries", "POST", data="{oops",
                        headers={"Authorization": f"Bearer {klass.teacher}", "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_json"


def test_someone_not_on_the_roster_cannot_get_points(klass: Class) -> None:
    r = klass.post("/api/grades/entries", {"offeringId": klass.offering_id, "studentId": klass.teacher_id, "points": 1,
                                           "typeCode": "EXAM"})
    assert r.status_code == 422 and r.json()["code"] == "student_not_in_offering"


def test_a_correction_keeps_the_old_values_as_a_revision(klass: Class) -> None:
    e = klass.entry(klass.students[0], "8")
    r = klass.stack.api(klass.teacher, f"/api/grades/entries/{e['id']}", "PUT", json={"points": "9.5", "description": "regraded"})
    assert r.status_code == 200 and r.json()["points"] == "9.50" and r.json()["version"] == 2
    h = klass.stack.api(klass.teacher, f"/api/grades/entries/{e['id']}/history").json()
    assert [(v["version"], v["points"], v["changedBy"]) for v in h["revisions"]] == [(1, "8.00", klass.teacher_id)]
    assert h["entry"]["description"] == "regraded"


def test_changing_the_type_away_from_custom_drops_the_label(klass: Class) -> None:
    e = klass.entry(klass.students[0], "2", typeCode="CUSTOM", typeLabel="Bonus quiz")
    r = klass.stack.api(klass.teacher, f"/api/grades/entries/{e['id']}", "PUT", json={"typeCode": "OTHER"})
    assert r.status_code == 200 and (r.json()["typeCode"], r.json()["typeLabel"]) == ("OTHER", None)


def test_a_void_keeps_the_entry_out_of_totals_but_listable(klass: Class) -> None:
    keep = klass.entry(klass.students[0], "5")
    gone = klass.entry(klass.students[0], "7")
    r = klass.stack.api(klass.teacher, f"/api/grades/entries/{gone['id']}", "DELETE", json={"reason": "entered twice"})
    assert r.status_code == 200 and r.json()["status"] == "VOIDED" and r.json()["voidReason"] == "entered twice"
    path = f"/api/grades/students/{klass.students[0]}/offerings/{klass.offering_id}"
    active = klass.stack.api(klass.teacher, path).json()
    assert active["total"] == "5.00" and [e["id"] for e in active["entries"]] == [keep["id"]]
    audit = klass.stack.api(klass.teacher, path + "?includeVoided=true").json()
    assert audit["total"] == "5.00" and {e["id"] for e in audit["entries"]} == {keep["id"], gone["id"]}


def test_a_voided_entry_cannot_be_changed_or_voided_again(klass: Class) -> None:
    e = klass.entry(klass.students[0], "5")
    klass.stack.api(klass.teacher, f"/api/grades/entries/{e['id']}", "DELETE", json={"reason": "mistake"})
    put = klass.stack.api(klass.teacher, f"/api/grades/entries/{e['id']}", "PUT", json={"points": 1})
    again = klass.stack.api(klass.teacher, f"/api/grades/entries/{e['id']}?reason=again", "DELETE")
    assert put.status_code == again.status_code == 409
    assert put.json()["code"] == "entry_voided"


def test_a_void_needs_a_reason(klass: Class) -> None:
    e = klass.entry(klass.students[0], "5")
    r = klass.stack.api(klass.teacher, f"/api/grades/entries/{e['id']}", "DELETE")
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "reason"


def test_bulk_creates_all_entries_at_once(klass: Class) -> None:
    items = [{"studentId": s, "points": str(10 + i)} for i, s in enumerate(klass.students)]
    r = klass.post("/api/grades/entries/bulk", {"offeringId": klass.offering_id, "typeCode": "COURSEWORK",
                                                "description": "Lab 2", "items": items})
    assert r.status_code == 201 and r.json()["created"] == 3
    totals = {s["studentId"]: s["breakdownByType"]["COURSEWORK"] for s in klass.summary()["students"]}
    assert [totals[s] for s in klass.students] == ["10.00", "11.00", "12.00"]


def test_bulk_is_all_or_nothing_and_reports_every_bad_item(klass: Class) -> None:
    s0, s1, _ = klass.students
    items = [{"studentId": s0, "points": "1"}, {"studentId": s1, "points": "1.234"}, {"studentId": s0, "points": "2"},
             {"studentId": klass.teacher_id, "points": "3"}, {"studentId": s1}]
    r = klass.post("/api/grades/entries/bulk", {"offeringId": klass.offering_id, "typeCode": "EXAM", "items": items})
    assert r.status_code == 422
    err = r.json()
    assert sorted({d["index"] for d in err["details"]}) == [1, 2, 3, 4]
    assert "nothing was saved" in err["message"]
    assert klass.count_entries() == 0


def test_the_summary_lists_every_roster_student_with_zero_where_none(klass: Class) -> None:
    klass.entry(klass.students[1], "4", typeCode="CUSTOM", typeLabel="Talk")
    klass.entry(klass.students[1], "1", typeCode="CUSTOM", typeLabel="Poster")
    rows = {s["studentId"]: s for s in klass.summary()["students"]}
    assert set(rows) == set(klass.students)
    assert rows[klass.students[0]]["total"] == "0.00" and rows[klass.students[0]]["entryCount"] == 0
    assert rows[klass.students[1]]["breakdownByType"]["CUSTOM"] == "5.00"
    assert rows[klass.students[1]]["breakdownByLabel"] == {"Poster": "1.00", "Talk": "4.00"}


def test_the_summary_window_filters_by_graded_at(klass: Class) -> None:
    klass.entry(klass.students[0], "1", gradedAt="2026-01-10T12:00:00Z")
    klass.entry(klass.students[0], "2", gradedAt="2026-02-10T12:00:00Z")
    rows = {s["studentId"]: s for s in klass.summary("?from=2026-02-01&to=2026-02-28")["students"]}
    assert rows[klass.students[0]]["total"] == "2.00"
    bad = klass.stack.api(klass.teacher, f"/api/grades/groups/{klass.course_id}/offerings/{klass.offering_id}/summary?from=soon")
    assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "from"


def test_the_summary_exports_as_csv(klass: Class) -> None:
    klass.entry(klass.students[0], "3")
    r = klass.stack.api(klass.teacher, f"/api/grades/groups/{klass.course_id}/offerings/{klass.offering_id}/summary.csv")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    lines = r.content.decode("utf-8-sig").strip().splitlines()  # UTF-8 with BOM (issue 11)
    assert lines[0].startswith("student_id,name,email,in_roster,total,seminar,exam")
    assert len(lines) == 1 + len(klass.students)


def test_a_student_reads_only_their_own_grades(klass: Class) -> None:
    e = klass.entry(klass.students[1], "3")
    me, other = klass.student_tokens[0], klass.students[1]
    api = klass.stack.api
    assert api(me, f"/api/grades/students/{other}/offerings/{klass.offering_id}").status_code == 403
    assert api(me, f"/api/grades/entries/{e['id']}").status_code == 403
    assert api(klass.student_tokens[1], f"/api/grades/entries/{e['id']}").status_code == 200
    assert api(me, f"/api/grades/groups/{klass.course_id}/offerings/{klass.offering_id}/summary").status_code == 403
    r = klass.post("/api/grades/entries", {"offeringId": klass.offering_id, "studentId": klass.students[0], "points": 5,
                                           "typeCode": "EXAM"}, token=me)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


def test_nobody_reaches_another_course(klass: Class) -> None:
    with klass.stack.session() as db:
        course = db.get(Course, klass.course_id)
        other = Course(registration_id=course.registration_id, context_id="OTHER-1", title="Other")
        db.add(other)
        db.flush()
        offering = Offering(course_id=other.id, deployment_id=db.get(Offering, klass.offering_id).deployment_id,
                            resource_link_id="x", title="Elsewhere")
        db.add(offering)
        db.commit()
        other_course, other_offering = other.id, offering.id
    r = klass.post("/api/grades/entries", {"offeringId": other_offering, "studentId": klass.students[0], "points": 1,
                                           "typeCode": "EXAM"})
    assert r.status_code == 403
    assert klass.stack.api(klass.teacher, f"/api/grades/groups/{other_course}/offerings/{other_offering}/summary").status_code == 403
    assert klass.stack.api(klass.teacher, f"/api/grades/groups/{klass.course_id}/offerings/{other_offering}/summary").status_code == 403


def test_the_openapi_document_is_valid_and_names_the_seed_paths(moodle: Stack) -> None:
    from openapi_spec_validator import validate

    doc = moodle.api("", "/api/openapi.json").json()
    validate(doc)
    assert {"/api/grades/entries", "/api/grades/entries/bulk", "/api/grades/entries/{entryId}",
            "/api/grades/students/{studentId}/offerings/{offeringId}",
            "/api/grades/groups/{groupId}/offerings/{offeringId}/summary"} <= set(doc["paths"])
    assert doc["components"]["schemas"]["EntryCreate"]["properties"]["typeCode"]["enum"][0] == "SEMINAR"


def test_totals_are_decimal_sums(klass: Class) -> None:
    for p in ("-2.5", "3.25", "9999.99"):
        klass.entry(klass.students[2], p, confirmBonus=True)  # 9999.99: beyond the usual ±1000, confirmed
    row = next(s for s in klass.summary()["students"] if s["studentId"] == klass.students[2])
    assert Decimal(row["total"]) == Decimal("-2.5") + Decimal("3.25") + Decimal("9999.99")
