"""Roster sync over NRPS, tool and sandbox LMS on loopback, in Moodle and Canvas modes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import Engine, func, select

from tool.lti.models import Course, Membership, Person
from tool.lti.nrps import Member
from tool.lti.roster import apply_roster
from tests.e2e.conftest import Stack, start_stack, stop_all

NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"


@pytest.fixture
def canvas(clean_db: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator[Stack]:
    """Tool + sandbox in canvas mode only (50 members a roster page)."""
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, "canvas")
    yield s
    stop_all(servers)


def teacher_session(stack: Stack) -> tuple[str, int]:
    """Launch as the teacher; return the session token and the course (group) id."""
    token = stack.launch(stack.platform.teacher.id).token or ""
    return token, stack.api(token, "/api/me").json()["courseId"]


def sync(stack: Stack, token: str, group_id: int) -> Any:
    return stack.api(token, f"/api/groups/{group_id}/roster/sync", "POST")


def roster(stack: Stack, token: str, group_id: int, status: str | None = None) -> Any:
    return stack.api(token, f"/api/groups/{group_id}/roster", params={"status": status} if status else None)


def membership_of(stack: Stack, sub: str) -> tuple[Person, Membership]:
    with stack.session() as db:
        person = db.scalar(select(Person).where(Person.sub == sub))
        assert person is not None
        membership = db.scalar(select(Membership).where(Membership.person_id == person.id))
        assert membership is not None
        return person, membership


def test_a_sync_brings_students_who_never_launched_into_the_roster(stack: Stack) -> None:
    token, group_id = teacher_session(stack)

    answer = sync(stack, token, group_id)
    members = roster(stack, token, group_id).json()["members"]

    assert answer.status_code == 200, answer.text
    # The teacher, the TA and 8 students; the site admin is not enrolled, so not listed.
    assert answer.json() | {"syncedAt": None} == {"total": 10, "added": 9, "updated": 0, "left": 0, "syncedAt": None}
    assert answer.json()["syncedAt"]
    students = stack.platform.students
    assert [m["name"] for m in members[:8]] == [s.name for s in sorted(students, key=lambda s: s.family_name)]
    by_name = {m["name"]: m for m in members}
    for student in students:
        assert by_name[student.name]["email"] == student.email
        assert by_name[student.name]["roles"] == ["STUDENT"]
        assert by_name[student.name]["status"] == "active"
        assert by_name[student.name]["lastLaunchAt"] is None
    assert by_name[stack.platform.teacher.name]["lastLaunchAt"] is not None
    assert [m["roles"] for m in members[8:]] != [] and all(m["roles"] != ["STUDENT"] for m in members[8:])
    with stack.session() as db:
        assert db.get(Course, group_id).roster_synced_at is not None  # type: ignore[union-attr]


def test_a_second_sync_without_changes_changes_nothing(moodle: Stack) -> None:
    token, group_id = teacher_session(moodle)
    sync(moodle, token, group_id)

    again = sync(moodle, token, group_id).json()

    assert (again["total"], again["added"], again["updated"], again["left"]) == (10, 0, 0, 0)


def test_canvas_roster_sync_reads_every_page(canvas: Stack) -> None:
    canvas.platform.add_students(120)
    token, group_id = teacher_session(canvas)

    answer = sync(canvas, token, group_id).json()
    members = roster(canvas, token, group_id, "all").json()["members"]

    assert (answer["total"], answer["added"]) == (130, 129)
    assert len(members) == 130
    assert len({m["personId"] for m in members}) == 130
    assert sum(m["roles"] == ["STUDENT"] for m in members) == 128


def test_deleted_inactive_and_unenrolled_members_leave_the_roster_but_keep_their_person(stack: Stack) -> None:
    deleted, inactive, gone = stack.platform.students[:3]
    stack.launch(gone.id)  # a student who has used Tally, so has a history to keep
    token, group_id = teacher_session(stack)
    sync(stack, token, group_id)
    stack.platform.mark_deleted(deleted.id)
    stack.platform.set_member_status(inactive.id, "Inactive")
    stack.platform.unenroll(gone.id)

    answer = sync(stack, token, group_id).json()
    active = roster(stack, token, group_id).json()["members"]
    everyone = {m["name"]: m for m in roster(stack, token, group_id, "all").json()["members"]}

    assert answer["left"] == 3
    assert {deleted.name, inactive.name, gone.name}.isdisjoint(m["name"] for m in active)
    # Moodle lists a deleted member as Deleted; Canvas lists active members only, so all three are
    # simply gone from its roster (app/serializers/lti/ims/names_and_roles_serializer.rb).
    assert everyone[deleted.name]["status"] == ("deleted" if stack.platform.mode == "moodle" else "inactive")
    assert everyone[inactive.name]["status"] == "inactive"
    assert everyone[gone.name]["status"] == "inactive"
    person, membership = membership_of(stack, gone.id)
    assert person.name == gone.name and person.email == gone.email
    assert membership.last_launch_at is not None


def test_a_student_listed_again_comes_back_into_the_roster(moodle: Stack) -> None:
    student = moodle.platform.students[0]
    token, group_id = teacher_session(moodle)
    sync(moodle, token, group_id)
    moodle.platform.unenroll(student.id)
    assert sync(moodle, token, group_id).json()["left"] == 1
    moodle.platform.users[student.id].enrolled = True

    answer = sync(moodle, token, group_id).json()

    assert answer["updated"] == 1
    assert membership_of(moodle, student.id)[1].status == "active"


def test_a_member_without_a_name_does_not_erase_the_known_name(stack: Stack) -> None:
    student = stack.platform.students[0]
    name, email = student.name, student.email
    token, group_id = teacher_session(stack)
    sync(stack, token, group_id)
    # The platform stops sharing names and emails (privacy level changed).
    student.name = student.given_name = student.family_name = student.email = ""

    sync(stack, token, group_id)

    person, _ = membership_of(stack, student.id)
    assert (person.name, person.given_name, person.email) == (name, name.split()[0], email)


def test_staff_the_roster_does_not_list_keep_their_access(stack: Stack) -> None:
    admin = stack.platform.users_of_kind("admin")[0]
    token = stack.launch(admin.id).token or ""
    group_id = stack.api(token, "/api/me").json()["courseId"]

    answer = sync(stack, token, group_id)

    assert answer.status_code == 200 and answer.json()["left"] == 0
    assert membership_of(stack, admin.id)[1].status == "active"


def test_a_student_session_may_neither_read_nor_sync_the_roster(stack: Stack) -> None:
    token = stack.launch(stack.platform.students[0].id).token or ""
    group_id = stack.api(token, "/api/me").json()["courseId"]

    reading, syncing = roster(stack, token, group_id), sync(stack, token, group_id)

    assert (reading.status_code, syncing.status_code) == (403, 403)
    assert reading.json()["code"] == syncing.json()["code"] == "forbidden"


def test_nobody_reaches_another_course(moodle: Stack) -> None:
    token, group_id = teacher_session(moodle)

    reading, syncing = roster(moodle, token, group_id + 1), sync(moodle, token, group_id + 1)

    assert (reading.status_code, syncing.status_code) == (403, 403)
    with moodle.session() as db:
        assert db.scalar(select(func.count()).select_from(Membership)) == 1


def test_an_unknown_status_filter_is_refused(moodle: Stack) -> None:
    token, group_id = teacher_session(moodle)

    answer = roster(moodle, token, group_id, "everyone")

    assert answer.status_code == 422 and answer.json()["code"] == "validation_error"


def test_the_lms_down_gives_a_clear_error_and_changes_nothing(stack: Stack) -> None:
    token, group_id = teacher_session(stack)
    stack.platform.faults.down = True

    answer = sync(stack, token, group_id)

    assert answer.status_code == 502
    body = answer.json()
    assert body["code"] == "roster_unavailable"
    assert "503" in body["message"] and body["details"]["status"] == 503
    with stack.session() as db:
        assert db.scalar(select(func.count()).select_from(Membership)) == 1
        assert db.get(Course, group_id).roster_synced_at is None  # type: ignore[union-attr]


def test_a_failing_roster_call_reports_the_platforms_words(stack: Stack) -> None:
    token, group_id = teacher_session(stack)
    # Moodle puts these words in the reason phrase, Canvas in a JSON body: both must reach the teacher.
    stack.platform.faults.fail_next(1, status=500, reason="Database connection lost")

    answer = sync(stack, token, group_id)

    assert answer.status_code == 502
    assert answer.json()["code"] == "roster_unavailable"
    assert "500" in answer.json()["message"] and "Database connection lost" in answer.json()["message"]
    with stack.session() as db:
        assert db.scalar(select(func.count()).select_from(Membership)) == 1


def test_a_course_without_nrps_answers_roster_not_offered(moodle: Stack) -> None:
    token = moodle.crafted_launch(lambda claims: claims.pop(NRPS_CLAIM)).token or ""
    group_id = moodle.api(token, "/api/me").json()["courseId"]

    answer = sync(moodle, token, group_id)

    assert answer.status_code == 409
    assert answer.json()["code"] == "roster_not_offered"
    assert "did not offer the roster service" in answer.json()["message"]


def test_launches_go_on_while_a_sync_waits_for_a_slow_lms(moodle: Stack) -> None:
    token, group_id = teacher_session(moodle)
    moodle.platform.faults.latency_ms = 2000
    answers: list[Any] = []
    syncing = threading.Thread(target=lambda: answers.append(sync(moodle, token, group_id)))
    syncing.start()

    launched = moodle.launch(moodle.platform.students[0].id)
    still_syncing = syncing.is_alive()
    syncing.join(timeout=30)

    # The sync holds no transaction while it waits on the LMS, so the launch did not queue behind it.
    assert launched.status == 200 and still_syncing
    assert answers[0].status_code == 200 and answers[0].json()["total"] == 10


def test_a_student_who_launched_after_the_roster_was_read_stays_active(moodle: Stack) -> None:
    token, group_id = teacher_session(moodle)
    teacher = moodle.platform.teacher
    student = moodle.platform.students[0]
    with moodle.session() as db:
        read_at = db.get(Course, group_id).updated_at  # type: ignore[union-attr]
        registration_id = db.get(Course, group_id).registration_id  # type: ignore[union-attr]
    moodle.launch(student.id)

    with moodle.session() as db:
        change = apply_roster(db, course_id=group_id, registration_id=registration_id, complete=True, as_of=read_at,
                              members=[Member(user_id=teacher.id, name=teacher.name, roles=tuple(teacher.roles))])
        db.commit()

    assert change.left == 0
    assert membership_of(moodle, student.id)[1].status == "active"


def test_an_empty_roster_from_the_lms_makes_nobody_leave(moodle: Stack) -> None:
    token, group_id = teacher_session(moodle)
    student = moodle.platform.students[0]
    moodle.launch(student.id)
    with moodle.session() as db:
        registration_id = db.get(Course, group_id).registration_id  # type: ignore[union-attr]
        change = apply_roster(db, course_id=group_id, registration_id=registration_id, complete=True, members=[])
        db.commit()
    assert (change.left, change.total) == (0, 0)
    assert membership_of(moodle, student.id)[1].status == "active"


def test_names_longer_than_tally_keeps_are_cut_and_the_roster_still_syncs(stack: Stack) -> None:
    # A platform (or a student editing their own profile) may send names longer than Tally's
    # columns, or a NUL: on PostgreSQL that was a database error that stopped the whole sync.
    student = stack.platform.students[0]
    student.name = "N" * 400
    student.given_name, student.family_name = "G" * 250, "F" * 250
    student.email = "nul\x00" + "e" * 400 + "@example.edu"
    token, group_id = teacher_session(stack)

    answer = sync(stack, token, group_id)

    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 10
    person, membership = membership_of(stack, student.id)
    assert (person.name, person.given_name, person.family_name) == ("N" * 300, "G" * 200, "F" * 200)
    assert "\x00" not in person.email and len(person.email) == 320
    assert membership.status == "active"
