"""The Score value: AGS 2.0 validation, the exact JSON names and values, timestamps, Canvas's extension."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest

from tool import clock
from tool.ags.score import (
    CANVAS_SUBMISSION,
    ActivityProgress,
    GradingProgress,
    Score,
    ScoreError,
    format_timestamp,
)

UTC = dt.timezone.utc
AT = dt.datetime(2026, 11, 23, 9, 15, 2, 123456, tzinfo=UTC)
ISO_MICROSECONDS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


def make(**fields: Any) -> Score:
    values: dict[str, Any] = {"user_id": "42", "activity_progress": ActivityProgress.COMPLETED,
                              "grading_progress": GradingProgress.FULLY_GRADED}
    values.update(fields)
    return Score(**values)


def test_the_progress_values_are_exactly_the_specs_words() -> None:
    assert [a.value for a in ActivityProgress] == ["Initialized", "Started", "InProgress", "Submitted", "Completed"]
    assert [g.value for g in GradingProgress] == ["FullyGraded", "Pending", "PendingManual", "Failed", "NotReady"]


def test_a_final_grade_serialises_to_the_ags_names() -> None:
    score = make(score_given=Decimal("8.5"), score_maximum=Decimal("10"), comment="Grade 1.3", timestamp=AT)

    assert score.to_json() == {
        "userId": "42",
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": "2026-11-23T09:15:02.123456+00:00",
        "scoreGiven": 8.5,
        "scoreMaximum": 10,
        "comment": "Grade 1.3",
    }


def test_whole_points_are_json_integers_and_two_places_survive() -> None:
    body = make(score_given=Decimal("12.00"), score_maximum=Decimal("60.50"), timestamp=AT).to_json()

    assert body["scoreGiven"] == 12 and isinstance(body["scoreGiven"], int)
    assert body["scoreMaximum"] == 60.5


def test_progress_only_scores_carry_no_points() -> None:
    body = make(activity_progress=ActivityProgress.STARTED, grading_progress=GradingProgress.NOT_READY,
                timestamp=AT).to_json()

    assert body == {"userId": "42", "activityProgress": "Started", "gradingProgress": "NotReady",
                    "timestamp": "2026-11-23T09:15:02.123456+00:00"}


def test_submission_times_and_scoring_user_use_the_ags_names() -> None:
    started = AT - dt.timedelta(hours=1)
    body = make(score_given=1, score_maximum=2, timestamp=AT, submission_started_at=started,
                submission_submitted_at=AT, scoring_user_id="7").to_json()

    assert body["submission"] == {"startedAt": "2026-11-23T08:15:02.123456+00:00",
                                  "submittedAt": "2026-11-23T09:15:02.123456+00:00"}
    assert body["scoringUserId"] == "7"


def test_canvas_gets_new_submission_false_and_submitted_at() -> None:
    plain = make(score_given=1, score_maximum=2, timestamp=AT).to_json(canvas=True)
    submitted = make(score_given=1, score_maximum=2, timestamp=AT, submission_submitted_at=AT).to_json(canvas=True)

    assert plain[CANVAS_SUBMISSION] == {"new_submission": False}
    assert submitted[CANVAS_SUBMISSION] == {"new_submission": False, "submitted_at": "2026-11-23T09:15:02.123456+00:00"}
    assert CANVAS_SUBMISSION not in make(timestamp=AT).to_json()


def test_without_a_timestamp_it_is_now_in_utc_with_microseconds_at_serialisation() -> None:
    score = make(score_given=1, score_maximum=2)
    clock.shift(86400)  # "now" is read when the JSON is made, not when the Score was built

    stamp = score.to_json()["timestamp"]

    assert ISO_MICROSECONDS_UTC.match(stamp), stamp
    sent = dt.datetime.fromisoformat(stamp)
    assert abs((sent - clock.utcnow()).total_seconds()) < 5


def test_a_given_timestamp_is_kept_for_a_replay_and_written_in_utc() -> None:
    berlin = dt.datetime(2026, 11, 23, 10, 15, 2, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))

    assert make(timestamp=berlin).to_json()["timestamp"] == "2026-11-23T09:15:02.000005+00:00"
    assert format_timestamp(AT) == "2026-11-23T09:15:02.123456+00:00"


def test_extra_credit_is_allowed() -> None:
    score = make(score_given=Decimal(15), score_maximum=Decimal(10))

    assert score.to_json()["scoreGiven"] == 15
    assert score.writes_grade


def test_zero_points_are_a_grade() -> None:
    assert make(score_given=0, score_maximum=10).to_json()["scoreGiven"] == 0


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"score_given": Decimal(5)}, "score_given", "needs score_maximum"),
        ({"score_given": Decimal(-1), "score_maximum": Decimal(10)}, "score_given", "0 or more"),
        ({"score_given": Decimal(1), "score_maximum": Decimal(0)}, "score_maximum", "greater than 0"),
        ({"score_maximum": Decimal(-10)}, "score_maximum", "greater than 0"),
        ({"score_given": float("nan"), "score_maximum": 10}, "score_given", "finite"),
        ({"score_given": True, "score_maximum": 10}, "score_given", "not a boolean"),
        ({"score_given": "eight", "score_maximum": 10}, "score_given", "must be a number"),
        ({"user_id": ""}, "user_id", "is required"),
        ({"activity_progress": "completed"}, "activity_progress", "must be one of Initialized"),
        ({"activity_progress": "Done"}, "activity_progress", "not 'Done'"),
        ({"grading_progress": "Graded"}, "grading_progress", "must be one of FullyGraded"),
        ({"grading_progress": None}, "grading_progress", "is required"),
        ({"timestamp": dt.datetime(2026, 11, 23, 9, 0)}, "timestamp", "time zone"),
        ({"submission_submitted_at": "2026-11-23"}, "submission_submitted_at", "must be a datetime"),
        ({"comment": 12}, "comment", "must be a string"),
    ],
)
def test_an_invalid_score_is_refused_naming_the_field(fields: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(ScoreError) as err:
        make(**fields)

    assert problem in err.value.details[field]
    assert err.value.code == "invalid_score"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ScoreError) as err:
        Score(user_id="", activity_progress="x", grading_progress="y", score_given=Decimal(-1))  # type: ignore[arg-type]

    assert set(err.value.details) == {"user_id", "activity_progress", "grading_progress", "score_given"}


def test_progress_given_as_the_specs_words_becomes_the_enum() -> None:
    score = Score(user_id="42", activity_progress="InProgress", grading_progress="Pending")  # type: ignore[arg-type]

    assert score.activity_progress is ActivityProgress.IN_PROGRESS
    assert score.grading_progress is GradingProgress.PENDING


def test_only_fully_graded_with_points_writes_a_grade() -> None:
    assert make(score_given=1, score_maximum=2).writes_grade
    assert not make(score_maximum=2).writes_grade
    assert not make(score_given=1, score_maximum=2, grading_progress=GradingProgress.PENDING_MANUAL).writes_grade


def test_json_round_trip_keeps_every_field() -> None:
    score = make(score_given=Decimal("8.25"), score_maximum=Decimal("10"), comment="Grade 2.0", timestamp=AT,
                 submission_started_at=AT - dt.timedelta(minutes=3), submission_submitted_at=AT, scoring_user_id="7")

    assert Score.from_json(score.to_json(canvas=True)) == score
    assert Score.from_json(score.to_json()).score_given == Decimal("8.25")


def test_from_json_refuses_what_to_json_never_writes() -> None:
    with pytest.raises(ScoreError) as err:
        Score.from_json({"userId": "1", "activityProgress": "Completed", "gradingProgress": "FullyGraded",
                         "scoreGiven": 3, "timestamp": "yesterday"})

    assert "timestamp" in err.value.details
    with pytest.raises(ScoreError):
        Score.from_json(["not", "a", "score"])  # type: ignore[arg-type]


def test_with_timestamp_returns_a_new_score() -> None:
    score = make(score_given=1, score_maximum=2)

    later = score.with_timestamp(AT)

    assert later.timestamp == AT and score.timestamp is None
