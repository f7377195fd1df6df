"""AGS scores: strict AGS 2.0 validation and the Moodle 4.5 / Canvas rules of PLATFORMS.md."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from urllib3.util import SKIP_HEADER

from tests.sandbox.conftest import Sandbox, iso, now_utc, score

WEEK_1 = 1  # the seeded line item of rl-1, maximum 100
# requests drops a None header, but urllib3 then adds its own User-Agent; SKIP_HEADER sends none.
NO_USER_AGENT = {"User-Agent": SKIP_HEADER}


def student_id(sandbox: Sandbox, n: int = 0) -> str:
    """The id of the n-th seeded student."""
    return sandbox.platform.students[n].id


def stored(sandbox: Sandbox, user_id: str) -> Any:
    """The platform's current result for the user in Week 1."""
    return sandbox.platform.store.result(WEEK_1, user_id)


def test_a_fully_graded_score_is_stored_rescaled_to_the_line_item_maximum(sandbox: Sandbox) -> None:
    user = student_id(sandbox)

    answer = sandbox.post_score(WEEK_1, score(user, given=8, maximum=10, comment="Well done"))

    assert answer.status_code == 200
    result = stored(sandbox, user)
    assert (result.raw, result.final) == (80, 80)
    assert result.comment == "Well done"
    assert (result.activity_progress, result.grading_progress) == ("Completed", "FullyGraded")


def test_moodle_refuses_a_second_score_in_the_same_second(moodle: Sandbox) -> None:
    user = student_id(moodle)
    first = now_utc().replace(microsecond=100_000)
    moodle.post_score(WEEK_1, score(user, given=5, timestamp=iso(first)))

    answer = moodle.post_score(WEEK_1, score(user, given=6, timestamp=iso(first.replace(microsecond=900_000))))

    assert answer.status_code == 409
    assert answer.reason.startswith(f"Refusing score with an earlier timestamp for item {WEEK_1}")
    assert answer.json() == []
    assert stored(moodle, user).raw == 50


def test_moodle_refuses_the_same_timestamp_again(moodle: Sandbox) -> None:
    user = student_id(moodle)
    body = score(user)
    moodle.post_score(WEEK_1, body)

    answer = moodle.post_score(WEEK_1, body)

    assert answer.status_code == 409


def test_canvas_accepts_the_same_timestamp_again(canvas: Sandbox) -> None:
    user = student_id(canvas)
    timestamp = iso(now_utc())
    canvas.post_score(WEEK_1, score(user, given=5, timestamp=timestamp))

    answer = canvas.post_score(WEEK_1, score(user, given=6, timestamp=timestamp))

    assert answer.status_code == 200
    assert stored(canvas, user).raw == 60


def test_canvas_accepts_a_later_score_within_the_same_second(canvas: Sandbox) -> None:
    user = student_id(canvas)
    first = now_utc().replace(microsecond=100_000)
    canvas.post_score(WEEK_1, score(user, given=5, timestamp=iso(first)))

    answer = canvas.post_score(WEEK_1, score(user, given=6, timestamp=iso(first.replace(microsecond=900_000))))

    assert answer.status_code == 200


@pytest.mark.parametrize(("mode", "status"), [("moodle", 409), ("canvas", 400)])
def test_an_older_timestamp_is_refused(start_sandbox: Any, mode: str, status: int) -> None:
    sandbox = start_sandbox(mode)
    user = student_id(sandbox)
    sandbox.post_score(WEEK_1, score(user, given=5))

    answer = sandbox.post_score(WEEK_1, score(user, given=6, timestamp=iso(now_utc() - dt.timedelta(minutes=5))))

    assert answer.status_code == status
    assert stored(sandbox, user).raw == 50


def test_moodle_stores_a_future_score_and_refuses_now_scores_until_that_time(moodle: Sandbox) -> None:
    user = student_id(moodle)
    future = now_utc() + dt.timedelta(hours=1)
    accepted = moodle.post_score(WEEK_1, score(user, given=5, timestamp=iso(future)))

    refused = moodle.post_score(WEEK_1, score(user, given=6))
    later = moodle.post_score(WEEK_1, score(user, given=7, timestamp=iso(future + dt.timedelta(seconds=1))))

    assert accepted.status_code == 200
    assert refused.status_code == 409
    assert later.status_code == 200


def test_canvas_accepts_a_timestamp_ahead_of_its_clock(canvas: Sandbox) -> None:
    # scores_controller.rb checks only submitted_at against the clock, never the timestamp.
    user = student_id(canvas)

    far = canvas.post_score(WEEK_1, score(user, timestamp=iso(now_utc() + dt.timedelta(minutes=5))))

    assert far.status_code == 200


def test_canvas_refuses_a_submitted_at_more_than_a_minute_ahead(canvas: Sandbox) -> None:
    ahead = iso(now_utc() + dt.timedelta(minutes=5))
    body = score(student_id(canvas), **{"https://canvas.instructure.com/lti/submission": {"submitted_at": ahead}})

    answer = canvas.post_score(WEEK_1, body)

    assert answer.status_code == 400


def test_moodle_keeps_raw_extra_credit_but_clamps_the_final_grade(moodle: Sandbox) -> None:
    user = student_id(moodle)

    moodle.post_score(WEEK_1, score(user, given=15, maximum=10))

    result = stored(moodle, user)
    assert (result.raw, result.final) == (150, 100)


def test_canvas_keeps_extra_credit(canvas: Sandbox) -> None:
    user = student_id(canvas)

    canvas.post_score(WEEK_1, score(user, given=15, maximum=10))

    result = stored(canvas, user)
    assert (result.raw, result.final) == (150, 150)


@pytest.mark.parametrize("grading", ["Pending", "PendingManual", "Failed", "NotReady"])
def test_any_grading_progress_but_fully_graded_clears_the_grade(sandbox: Sandbox, grading: str) -> None:
    if sandbox.mode == "canvas" and grading == "PendingManual":
        pytest.skip("Canvas grades a PendingManual score that has one (test_canvas_code.py)")
    user = student_id(sandbox)
    sandbox.post_score(WEEK_1, score(user, given=8, comment="Good", timestamp=iso(now_utc() - dt.timedelta(seconds=5))))

    answer = sandbox.post_score(WEEK_1, score(user, given=9, activity="Submitted", grading=grading))

    assert answer.status_code == 200
    result = stored(sandbox, user)
    assert (result.raw, result.final) == (None, None)
    assert result.grading_progress == grading
    assert result.comment == "Good"


def test_canvas_flags_pending_manual_as_needing_grading(canvas: Sandbox) -> None:
    user = student_id(canvas)

    canvas.post_score(WEEK_1, score(user, given=None, maximum=None, activity="Submitted", grading="PendingManual"))

    assert stored(canvas, user).needs_grading


def test_canvas_preserve_score_keeps_the_grade_on_a_pending_score(canvas: Sandbox) -> None:
    user = student_id(canvas)
    canvas.post_score(WEEK_1, score(user, given=8, timestamp=iso(now_utc() - dt.timedelta(seconds=5))))

    canvas.post_score(WEEK_1, score(user, given=None, maximum=None, grading="Pending",
                                    **{"https://canvas.instructure.com/lti/submission": {"preserve_score": True}}))

    assert stored(canvas, user).raw == 80


@pytest.mark.parametrize(("mode", "status"), [("moodle", 400), ("canvas", 422)])
def test_score_given_without_score_maximum_is_refused(start_sandbox: Any, mode: str, status: int) -> None:
    sandbox = start_sandbox(mode)

    answer = sandbox.post_score(WEEK_1, score(student_id(sandbox), given=8, maximum=None))

    assert answer.status_code == status
    if mode == "moodle":
        assert answer.reason.startswith("Incorrect score received")


def test_moodle_clamps_a_negative_score_to_zero(moodle: Sandbox) -> None:
    user = student_id(moodle)

    answer = moodle.post_score(WEEK_1, score(user, given=-2, maximum=10))

    assert answer.status_code == 200
    assert stored(moodle, user).final == 0


def test_canvas_rejects_a_negative_score(canvas: Sandbox) -> None:
    answer = canvas.post_score(WEEK_1, score(student_id(canvas), given=-2, maximum=10))

    assert answer.status_code == 422
    assert "ScoreGiven" in answer.json()["errors"]["message"]


def test_moodle_erases_the_feedback_when_a_score_has_no_comment(moodle: Sandbox) -> None:
    user = student_id(moodle)
    moodle.post_score(WEEK_1, score(user, comment="Nice", timestamp=iso(now_utc() - dt.timedelta(seconds=5))))

    moodle.post_score(WEEK_1, score(user, given=9))

    assert stored(moodle, user).comment is None


def test_canvas_keeps_earlier_comments_and_appends_every_comment_sent(canvas: Sandbox) -> None:
    user = student_id(canvas)
    start = now_utc() - dt.timedelta(seconds=10)
    canvas.post_score(WEEK_1, score(user, comment="Nice", timestamp=iso(start)))
    canvas.post_score(WEEK_1, score(user, given=9, timestamp=iso(start + dt.timedelta(seconds=1))))

    canvas.post_score(WEEK_1, score(user, given=9, comment="Nice", timestamp=iso(start + dt.timedelta(seconds=2))))

    assert stored(canvas, user).comments == ["Nice", "Nice"]


@pytest.mark.parametrize(("mode", "status"), [("moodle", 400), ("canvas", 422)])
@pytest.mark.parametrize("who", ["unenrolled student", "teacher", "unknown", "deleted student"])
def test_a_score_for_someone_who_is_not_an_enrolled_student_is_refused(
    start_sandbox: Any, mode: str, status: int, who: str
) -> None:
    sandbox = start_sandbox(mode)
    platform = sandbox.platform
    user = {"unenrolled student": platform.students[0].id, "teacher": platform.teacher.id,
            "unknown": "424242", "deleted student": platform.students[1].id}[who]
    if who == "unenrolled student":
        platform.unenroll(user)
    if who == "deleted student":
        platform.mark_deleted(user)

    answer = sandbox.post_score(WEEK_1, score(user))

    assert answer.status_code == status
    assert platform.store.result(WEEK_1, user) is None


def test_canvas_counts_an_attempt_per_score_unless_new_submission_is_false(canvas: Sandbox) -> None:
    user = student_id(canvas)
    start = now_utc() - dt.timedelta(seconds=10)
    canvas.post_score(WEEK_1, score(user, timestamp=iso(start)))
    canvas.post_score(WEEK_1, score(user, timestamp=iso(start + dt.timedelta(seconds=1))))

    canvas.post_score(WEEK_1, score(user, timestamp=iso(start + dt.timedelta(seconds=2)),
                                    **{"https://canvas.instructure.com/lti/submission": {"new_submission": False}}))

    assert stored(canvas, user).attempts == 2


def test_canvas_requires_a_user_agent_on_api_calls(canvas: Sandbox) -> None:
    answer = canvas.post_score(WEEK_1, score(student_id(canvas)), headers=NO_USER_AGENT)

    assert answer.status_code == 400
    assert "User-Agent" in answer.json()["errors"]["message"]


def test_moodle_does_not_mind_a_missing_user_agent(moodle: Sandbox) -> None:
    answer = moodle.post_score(WEEK_1, score(student_id(moodle)), headers=NO_USER_AGENT)

    assert answer.status_code == 200


def test_a_score_sent_as_plain_json_answers_415(sandbox: Sandbox) -> None:
    answer = sandbox.post_score(WEEK_1, score(student_id(sandbox)), headers={"Content-Type": "application/json"})

    assert answer.status_code == 415


@pytest.mark.parametrize(
    ("change", "canvas_status"),
    [
        ({"userId": None}, 422),  # Canvas looks the user up first
        ({"timestamp": None}, 400),
        ({"timestamp": "2026-11-22T10:00:00"}, 400),  # no zone
        ({"timestamp": "22.11.2026 10:00"}, 400),
        ({"activityProgress": "Done"}, 422),
        ({"activityProgress": None}, 400),
        ({"gradingProgress": "fully_graded"}, 422),
        ({"gradingProgress": None}, 400),
        ({"scoreGiven": "8"}, 422),
        ({"scoreMaximum": 0}, 422),
        ({"scoreMaximum": -10}, 422),
        ({"comment": 42}, 422),
    ],
)
def test_a_malformed_score_is_refused(sandbox: Sandbox, change: dict[str, Any], canvas_status: int) -> None:
    body = score(student_id(sandbox))
    for key, value in change.items():
        if value is None:
            del body[key]
        else:
            body[key] = value

    answer = sandbox.post_score(WEEK_1, body)

    assert answer.status_code == (400 if sandbox.mode == "moodle" else canvas_status)
    assert stored(sandbox, student_id(sandbox)) is None


def test_a_progress_only_score_without_a_grade_is_accepted(sandbox: Sandbox) -> None:
    user = student_id(sandbox)

    answer = sandbox.post_score(WEEK_1, score(user, given=None, maximum=None, activity="Started",
                                              grading="NotReady"))

    assert answer.status_code == 200
    assert stored(sandbox, user).activity_progress == "Started"


def test_the_history_keeps_accepted_and_refused_posts_with_the_status(sandbox: Sandbox) -> None:
    user = student_id(sandbox)
    body = score(user, timestamp=iso(now_utc() - dt.timedelta(seconds=5)))
    sandbox.post_score(WEEK_1, body)
    sandbox.post_score(WEEK_1, {**body, "timestamp": iso(now_utc() - dt.timedelta(minutes=5))})
    sandbox.post_score(WEEK_1, {**body, "scoreMaximum": None})

    posts = sandbox.platform.store.posts_for(WEEK_1, user)

    refused_old = 409 if sandbox.mode == "moodle" else 400
    refused_max = 400 if sandbox.mode == "moodle" else 422
    assert [p.status for p in posts] == [200, refused_old, refused_max]
    assert [p.accepted for p in posts] == [True, False, False]
    assert posts[1].message
    assert posts[0].body == json.loads(json.dumps(body))


def test_a_score_for_an_unknown_line_item_answers_404(sandbox: Sandbox) -> None:
    answer = sandbox.post_score(99, score(student_id(sandbox)))

    assert answer.status_code == 404
