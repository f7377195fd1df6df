"""AGS results and the NRPS roster."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from tests.sandbox.conftest import Sandbox, iso, now_utc, score
from tests.sandbox.test_line_items import all_pages

RESULT_CONTAINER_TYPE = "application/vnd.ims.lis.v2.resultcontainer+json"
MEMBERSHIP_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"


def with_query(url: str, query: str) -> str:
    """Add query parameters to a URL that may already carry some (Moodle's type_id)."""
    return url + ("&" if "?" in url else "?") + query


def test_results_report_score_maximum_comment_and_timestamp(sandbox: Sandbox) -> None:
    user = sandbox.platform.students[0].id
    timestamp = iso(now_utc())
    sandbox.post_score(1, score(user, given=7, maximum=10, comment="Solid", timestamp=timestamp))

    answer = sandbox.call("GET", sandbox.platform.paths.results_url(1))

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith(RESULT_CONTAINER_TYPE)
    [result] = answer.json()
    assert result["scoreOf"] == sandbox.platform.paths.lineitem_url(1)
    assert result["userId"] == user
    assert result["comment"] == "Solid"
    assert result["id"]
    if sandbox.mode == "moodle":
        assert (result["resultScore"], result["resultMaximum"]) == (70, 100)
        assert result["timestamp"] == timestamp
    else:
        # Canvas reports the score as the tool sent it, without a timestamp (results_serializer.rb).
        assert (result["resultScore"], result["resultMaximum"]) == (7, 10)
        assert "timestamp" not in result


@pytest.mark.parametrize(("mode", "reported"), [("moodle", 100), ("canvas", 15)])
def test_results_report_what_the_gradebook_shows_for_extra_credit(
    start_sandbox: Callable[..., Sandbox], mode: str, reported: int
) -> None:
    sandbox = start_sandbox(mode)
    user = sandbox.platform.students[0].id
    sandbox.post_score(1, score(user, given=15, maximum=10))

    [result] = sandbox.call("GET", sandbox.platform.paths.results_url(1)).json()

    assert result["resultScore"] == reported


def test_results_filter_by_user_id(sandbox: Sandbox) -> None:
    token = sandbox.token()
    students = sandbox.platform.students
    for n, student in enumerate(students):
        sandbox.post_score(1, score(student.id, given=n), token=token)
    url = sandbox.platform.paths.results_url(1)

    mine = sandbox.call("GET", with_query(url, f"user_id={students[2].id}"), token=token).json()
    everything, pages = all_pages(sandbox, url, token)

    assert [r["userId"] for r in mine] == [students[2].id]
    assert sorted(r["userId"] for r in everything) == sorted(s.id for s in students)
    assert pages == 1


def test_canvas_pages_results_with_limit(canvas: Sandbox) -> None:
    token = canvas.token()
    students = canvas.platform.students
    for n, student in enumerate(students):
        canvas.post_score(1, score(student.id, given=n), token=token)

    everything, pages = all_pages(canvas, with_query(canvas.platform.paths.results_url(1), "limit=3"), token)

    assert sorted(r["userId"] for r in everything) == sorted(s.id for s in students)
    assert pages == 3


def test_moodle_answers_results_with_a_limit_by_an_html_error_page(moodle: Sandbox) -> None:
    # Moodle 4.5.6: results.php builds its paging link only without type_id, which Moodle's
    # own URLs always carry.
    moodle.post_score(1, score(moodle.platform.students[0].id))

    answer = moodle.call("GET", with_query(moodle.platform.paths.results_url(1), "limit=100"))

    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "Call to a member function out() on null" in answer.text


def test_results_need_the_result_scope(sandbox: Sandbox) -> None:
    token = sandbox.token("https://purl.imsglobal.org/spec/lti-ags/scope/score")

    answer = sandbox.call("GET", sandbox.platform.paths.results_url(1), token=token)

    assert answer.status_code == (403 if sandbox.mode == "moodle" else 401)  # Canvas: "Insufficient permissions"


def test_a_cleared_grade_has_a_result_without_a_score(sandbox: Sandbox) -> None:
    user = sandbox.platform.students[0].id
    sandbox.post_score(1, score(user, timestamp=iso(now_utc() - dt.timedelta(seconds=3))))
    sandbox.post_score(1, score(user, given=None, maximum=None, grading="Pending", activity="Submitted"))

    [result] = sandbox.call("GET", sandbox.platform.paths.results_url(1)).json()

    assert "resultScore" not in result


def test_the_roster_lists_enrolled_members_with_their_roles(sandbox: Sandbox) -> None:
    answer = sandbox.call("GET", sandbox.platform.paths.memberships_url)

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith(MEMBERSHIP_TYPE)
    body = answer.json()
    assert body["context"] == {"id": "SANDBOX-101", "label": "SBX101", "title": "Sandbox Course 101"}
    members = {m["user_id"]: m for m in body["members"]}
    teacher = sandbox.platform.teacher
    assert members[teacher.id]["roles"] == teacher.roles
    assert members[teacher.id]["email"] == teacher.email
    assert {"status", "name", "given_name", "family_name"} <= set(members[teacher.id])
    assert len([m for m in members.values() if LEARNER in m["roles"]]) == 8
    admin = sandbox.platform.users_of_kind("admin")[0]
    assert admin.id not in members


def test_the_roster_filters_by_role(sandbox: Sandbox) -> None:
    url = sandbox.platform.paths.memberships_url

    learners = sandbox.call("GET", with_query(url, "role=Learner")).json()["members"]

    assert len(learners) == 8
    assert all(LEARNER in m["roles"] for m in learners)


def test_moodle_lists_a_deleted_member_as_deleted_and_an_unenrolled_one_disappears(moodle: Sandbox) -> None:
    # Canvas lists neither (test_canvas_code.py).
    deleted, gone = moodle.platform.students[:2]
    moodle.platform.mark_deleted(deleted.id)
    moodle.platform.unenroll(gone.id)

    members = {m["user_id"]: m for m in moodle.call("GET", moodle.platform.paths.memberships_url).json()["members"]}

    assert members[deleted.id]["status"] == "Deleted"
    assert gone.id not in members


def test_canvas_pages_the_roster_fifty_members_at_a_time(canvas: Sandbox) -> None:
    canvas.platform.add_students(120)
    token = canvas.token()

    first = canvas.call("GET", canvas.platform.paths.memberships_url, token=token)
    members, pages = all_nrps_pages(canvas, canvas.platform.paths.memberships_url, token)

    assert len(first.json()["members"]) == 50
    assert "next" in first.links
    assert pages == 3
    assert len(members) == 130
    assert len({m["user_id"] for m in members}) == 130


def test_moodle_answers_the_whole_roster_unless_a_limit_is_given(moodle: Sandbox) -> None:
    moodle.platform.add_students(120)
    token = moodle.token()

    whole = moodle.call("GET", moodle.platform.paths.memberships_url, token=token)
    members, pages = all_nrps_pages(moodle, with_query(moodle.platform.paths.memberships_url, "limit=40"), token)

    assert len(whole.json()["members"]) == 130
    assert "next" not in whole.links
    assert pages == 4
    assert len({m["user_id"] for m in members}) == 130


def test_the_roster_needs_the_nrps_scope(sandbox: Sandbox) -> None:
    token = sandbox.token("https://purl.imsglobal.org/spec/lti-ags/scope/score")

    answer = sandbox.call("GET", sandbox.platform.paths.memberships_url, token=token)

    assert answer.status_code == (403 if sandbox.mode == "moodle" else 401)


def test_added_students_have_realistic_distinct_names_and_emails(sandbox: Sandbox) -> None:
    added = sandbox.platform.add_students(30)

    assert len({s.email for s in added}) == 30
    assert all(s.kind == "student" and " " in s.name for s in added)


def all_nrps_pages(sandbox: Sandbox, url: str, token: str) -> tuple[list[dict[str, str]], int]:
    """Follow the roster's Link rel="next"; return every member and the number of pages."""
    members: list[dict[str, str]] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        answer = sandbox.call("GET", next_url, token=token)
        assert answer.status_code == 200
        members.extend(answer.json()["members"])
        pages += 1
        next_url = answer.links.get("next", {}).get("url")
    return members, pages
