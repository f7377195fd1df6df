"""What happens beside the tool: a teacher types a grade into the gradebook, Moodle stamps
scores with its own clock, the LMS host refuses every connection."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from tests.sandbox.conftest import Sandbox, iso, now_utc, score

WEEK_1 = 1


def test_a_teacher_edit_in_moodle_moves_the_timestamp_so_an_older_score_gets_409(moodle: Sandbox) -> None:
    user = moodle.platform.students[0].id
    changed_in_tool = now_utc() - dt.timedelta(seconds=5)
    moodle.post_score(WEEK_1, score(user, given=4, timestamp=iso(changed_in_tool - dt.timedelta(seconds=5))))

    edited = moodle.platform.teacher_edits_grade(WEEK_1, user, 45.0)
    late_retry = moodle.post_score(WEEK_1, score(user, given=5, timestamp=iso(changed_in_tool)))

    assert late_retry.status_code == 409
    assert (edited.raw, edited.final) == (45.0, 45.0)
    assert moodle.platform.store.result(WEEK_1, user).final == 45.0
    assert moodle.platform.store.result(WEEK_1, user).timestamp > changed_in_tool


def test_a_teacher_edit_in_canvas_leaves_the_timestamp_so_a_resend_overwrites_it(canvas: Sandbox) -> None:
    user = canvas.platform.students[0].id
    sent = now_utc() - dt.timedelta(seconds=5)
    canvas.post_score(WEEK_1, score(user, given=4, timestamp=iso(sent)))

    canvas.platform.teacher_edits_grade(WEEK_1, user, 45.0, comment="Checked again")
    resend = canvas.post_score(WEEK_1, score(user, given=5, timestamp=iso(sent + dt.timedelta(seconds=1))))

    assert resend.status_code == 200
    result = canvas.platform.store.result(WEEK_1, user)
    assert result.raw == 50.0 and "Checked again" in result.comments


def test_the_gradebook_page_lets_the_teacher_set_and_remove_a_grade(sandbox: Sandbox) -> None:
    user = sandbox.platform.students[1].id
    page = sandbox.http.get(sandbox.url + "/gradebook")
    assert 'action="/gradebook/grades"' in page.text

    set_it = sandbox.http.post(sandbox.url + "/gradebook/grades",
                               data={"line_item_id": str(WEEK_1), "user_id": user, "score": "45"},
                               allow_redirects=False)
    assert set_it.status_code == 303
    assert sandbox.platform.store.result(WEEK_1, user).raw == 45.0
    assert '<span class="badge">edited</span>' in sandbox.http.get(sandbox.url + "/gradebook").text

    sandbox.http.post(sandbox.url + "/gradebook/grades",
                      data={"line_item_id": str(WEEK_1), "user_id": user, "score": ""})
    assert sandbox.platform.store.result(WEEK_1, user).raw is None


def test_tests_set_a_grade_through_the_json_api(moodle: Sandbox) -> None:
    user = moodle.platform.students[2].id

    answer = moodle.http.post(moodle.url + "/gradebook/grades",
                              json={"lineItemId": WEEK_1, "userId": user, "score": 120, "comment": "By hand"})
    bad = moodle.http.post(moodle.url + "/gradebook/grades", json={"lineItemId": 999, "userId": user, "score": 1})

    assert answer.status_code == 200
    assert answer.json()["score"] == 100  # Moodle shows at most the maximum
    assert answer.json()["comment"] == "By hand" and answer.json()["timestamp"]
    assert bad.status_code == 400


@pytest.mark.parametrize("grading", ["NotReady", "Pending", "PendingManual", "Failed"])
def test_moodle_stamps_a_score_that_is_not_fully_graded_with_its_own_clock(moodle: Sandbox, grading: str) -> None:
    user = moodle.platform.students[0].id
    moodle.platform.shift_clock(30)  # the LMS's clock runs ahead of the tool's
    sent = now_utc()

    first = moodle.post_score(WEEK_1, score(user, given=None, maximum=None, grading=grading,
                                            activity="Initialized", timestamp=iso(sent)))
    second = moodle.post_score(WEEK_1, score(user, given=7, timestamp=iso(sent + dt.timedelta(seconds=2))))

    assert first.status_code == 200
    stored = moodle.platform.store.result(WEEK_1, user)
    assert stored.timestamp >= sent + dt.timedelta(seconds=29)
    assert second.status_code == 409  # its change time is before the LMS's own stamp


def test_canvas_keeps_the_timestamp_of_a_score_that_is_not_fully_graded(canvas: Sandbox) -> None:
    user = canvas.platform.students[0].id
    sent = now_utc() - dt.timedelta(seconds=10)

    canvas.post_score(WEEK_1, score(user, given=None, maximum=None, grading="NotReady", activity="Initialized",
                                    timestamp=iso(sent)))

    assert canvas.platform.store.result(WEEK_1, user).timestamp == sent.replace(microsecond=sent.microsecond // 1000 * 1000)


def test_a_host_that_refuses_connections_answers_nothing_until_it_is_back(sandbox: Sandbox) -> None:
    user = sandbox.platform.students[0].id
    token = sandbox.token()
    sandbox.platform.faults.refuse_connections = True

    with pytest.raises(requests.ConnectionError):
        requests.post(sandbox.platform.paths.scores_url(WEEK_1), data="{}", timeout=5,
                      headers={"Authorization": f"Bearer {token}"})
    posts_during_outage = len(sandbox.platform.store.score_posts)
    sandbox.platform.faults.refuse_connections = False
    answer = sandbox.post_score(WEEK_1, score(user), token=token)

    assert posts_during_outage == 0
    assert answer.status_code == 200
