"""The AGS score rules, strict, in Moodle's or Canvas's flavour.

`apply_score` validates one score body against AGS 2.0 and the mode's rules and updates the
stored result, or raises ServiceError with the status the real platform answers.

Moodle's rules were measured on Moodle 4.5. Canvas's follow its code (instructure/canvas-lms,
app/controllers/lti/ims/scores_controller.rb), checked in the controller's order: the user
(`verify_user_in_context`), the required fields, the timestamp (`verify_valid_timestamp`),
scoreMaximum and scoreGiven (`verify_valid_score_maximum`, `verify_valid_score_given`),
submitted_at (`verify_valid_submitted_at`), then the grade itself, which the submission may
refuse (app/models/submission.rb, `ensure_grader_can_grade`: unpublished assignment, closed
grading period). Only the assignment's own line item writes a grade (`score_submission`
returns unless `line_item.assignment_line_item?`); any other stores the result alone.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

from tool.sandbox.errors import ServiceError, canvas_invalid
from tool.sandbox.store import Assignment, LineItem, Result, SandboxUser

ACTIVITY_PROGRESS = ("Initialized", "Started", "InProgress", "Submitted", "Completed")
GRADING_PROGRESS = ("FullyGraded", "Pending", "PendingManual", "Failed", "NotReady")
# app/models/lti/result.rb ACCEPT_GIVEN_SCORE_TYPES: the progresses whose scoreGiven is a grade.
CANVAS_GRADING = ("FullyGraded", "PendingManual")
CANVAS_SUBMISSION = "https://canvas.instructure.com/lti/submission"
CANVAS_FUTURE_TOLERANCE = dt.timedelta(minutes=1)
# app/models/submission.rb GRADE_STATUS_MESSAGES_MAP, through ensure_grader_can_grade.
UNPUBLISHED = "cannot be changed at this time: This assignment is still unpublished"
CLOSED_PERIOD = "cannot be changed at this time: This assignment is in a closed grading period for this student"

_ISO_8601 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(text: Any) -> dt.datetime | None:
    """An ISO 8601 timestamp with a zone as an aware datetime; None when malformed."""
    if not isinstance(text, str):
        return None
    match = _ISO_8601.match(text)
    if match is None:
        return None
    fraction = (match.group(2) or "")[:7]  # datetime keeps microseconds only
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    try:
        return dt.datetime.fromisoformat(match.group(1) + fraction + zone)
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Target:
    """Where a score lands: the line item, its Canvas assignment, and whether it writes the grade."""

    item: LineItem
    assignment: Assignment | None = None
    writes_grade: bool = True  # Canvas: only the assignment's first line item grades


# -- Moodle ----------------------------------------------------------------------------------


def _moodle_validate(body: Any) -> dt.datetime:
    # Moodle refuses every malformed score with one phrase (gradebookservices scores.php).
    bad = ServiceError(400, "Incorrect score received")
    if not isinstance(body, dict) or not isinstance(body.get("userId"), str) or not body["userId"]:
        raise bad
    timestamp = parse_timestamp(body.get("timestamp"))
    if timestamp is None:
        raise bad
    if body.get("activityProgress") not in ACTIVITY_PROGRESS or body.get("gradingProgress") not in GRADING_PROGRESS:
        raise bad
    given, maximum = body.get("scoreGiven"), body.get("scoreMaximum")
    if given is not None and not _is_number(given):
        raise bad
    if given is not None and maximum is None:
        raise bad
    if maximum is not None and (not _is_number(maximum) or maximum <= 0):
        raise bad
    if "comment" in body and body["comment"] is not None and not isinstance(body["comment"], str):
        raise bad
    return timestamp


def _moodle_apply(item: LineItem, user: SandboxUser | None, body: Any, stored: Result | None,
                  now: dt.datetime) -> Result:
    timestamp = _moodle_validate(body)
    if user is None or not user.is_student:
        raise ServiceError(400, "Incorrect user: not an enrolled student of the course")
    # Moodle compares whole seconds and refuses equal ones too: a second score within the same
    # second is a 409. A future-dated score is stored and blocks "now" ones until then.
    if stored is not None and stored.timestamp is not None:
        if math.floor(timestamp.timestamp()) <= math.floor(stored.timestamp.timestamp()):
            raise ServiceError(409, f"Refusing score with an earlier timestamp for item {item.id} and user {user.id}")
    result = stored if stored is not None else Result(line_item_id=item.id, user_id=user.id)
    comment = body.get("comment")
    graded = body["gradingProgress"] == "FullyGraded" and body.get("scoreGiven") is not None
    if graded:
        raw = float(body["scoreGiven"]) * item.score_maximum / float(body["scoreMaximum"])
        # Moodle keeps the raw grade (150 for 15/10) but bounds the final grade to [0, max]
        # unless the site allows unlimited grades.
        result.raw, result.final = raw, min(max(raw, 0.0), item.score_maximum)
    else:
        # Any other gradingProgress clears the stored grade (measured on Moodle 4.5).
        result.raw = result.final = None
    if graded or comment is not None:
        # A graded score without a comment erases the feedback; a clearing one keeps it.
        result.comment = comment
    _stamp(result, body, timestamp)
    if body["gradingProgress"] != "FullyGraded":
        # Moodle stores any score that is not FullyGraded with its own clock, not the score's
        # timestamp (measured on 4.5.6): a tool's next score, stamped when its change happened,
        # can then be older than the stored one and get 409.
        result.timestamp, result.timestamp_text = now, now.isoformat()
    return result


# -- Canvas ----------------------------------------------------------------------------------


def _canvas_validate(body: Any, stored: Result | None, now: dt.datetime, *, line_item_maximum: float) -> dt.datetime:
    if not isinstance(body, dict):
        raise ServiceError(400, "The score must be a JSON object")
    for field in ("userId", "activityProgress", "gradingProgress", "timestamp"):
        if body.get(field) in (None, ""):  # REQUIRED_PARAMS, params.require
            raise ServiceError(400, f"param is missing or the value is empty: {field}")
    if body["activityProgress"] not in ACTIVITY_PROGRESS:
        raise ServiceError(422, f"activityProgress must be one of {', '.join(ACTIVITY_PROGRESS)}")
    if body["gradingProgress"] not in GRADING_PROGRESS:
        raise ServiceError(422, f"gradingProgress must be one of {', '.join(GRADING_PROGRESS)}")
    timestamp = parse_timestamp(body["timestamp"])
    if timestamp is None:
        raise ServiceError(400, f"Provided timestamp of {body['timestamp']} not a valid timestamp")
    # Strictly older than the result's updated_at is refused; equal is accepted. A timestamp
    # in the future is not checked at all (only submitted_at is).
    if stored is not None and stored.timestamp is not None and timestamp < stored.timestamp:
        raise ServiceError(400, f"Provided timestamp of {body['timestamp']} before last updated timestamp "
                                f"of {stored.timestamp.isoformat(timespec='milliseconds')}")
    given, maximum = body.get("scoreGiven"), body.get("scoreMaximum")
    if given is not None and not _is_number(given):
        raise ServiceError(422, "scoreGiven must be a number")
    if maximum is not None and not _is_number(maximum):
        raise ServiceError(422, "scoreMaximum must be a number")
    if not canvas_resets(body):
        if maximum is None:
            raise ServiceError(422, "ScoreMaximum not supplied when ScoreGiven present.")
        if maximum < 0:
            raise ServiceError(422, "ScoreMaximum must be greater than or equal to 0")
        if maximum == 0 and line_item_maximum != 0:
            raise ServiceError(422, "cannot be zero if line item's maximum is not zero")
        if given < 0:
            raise ServiceError(422, "ScoreGiven must be greater than or equal to 0")
    extension = body.get(CANVAS_SUBMISSION) if isinstance(body.get(CANVAS_SUBMISSION), dict) else {}
    submission = body.get("submission") if isinstance(body.get("submission"), dict) else {}
    submitted_text = submission.get("submittedAt") or body.get("submittedAt") or extension.get("submitted_at")
    if submitted_text:
        submitted_at = parse_timestamp(submitted_text)
        if submitted_at is None:
            raise ServiceError(400, f"Provided submitted_at timestamp of {submitted_text} not a valid timestamp")
        if submitted_at > now + CANVAS_FUTURE_TOLERANCE:
            raise ServiceError(400, f"Provided submitted_at timestamp of {submitted_text} in the future")
    if "comment" in body and body["comment"] is not None and not isinstance(body["comment"], str):
        raise ServiceError(422, "comment must be a string")
    return timestamp


def canvas_resets(body: dict[str, Any]) -> bool:
    """True when Canvas ignores the score: a progress other than FullyGraded/PendingManual, or no scoreGiven."""
    return body.get("gradingProgress") not in CANVAS_GRADING or body.get("scoreGiven") is None


def _canvas_grade_change(target: Target, result: Result, new_score: float | None) -> None:
    """Refuse a change of grade the submission may not take (unpublished, closed grading period)."""
    if new_score == result.raw or target.assignment is None:
        return  # `grader_can_grade?` returns true unless the grade changes
    if not target.assignment.published:
        raise canvas_invalid("grade", UNPUBLISHED)
    if target.assignment.grading_period_closed:
        raise canvas_invalid("grade", CLOSED_PERIOD)


def _canvas_apply(target: Target, user: SandboxUser | None, body: Any, stored: Result | None,
                  now: dt.datetime) -> Result:
    item = target.item
    # verify_user_in_context: a student of the course, the Student View user included.
    if user is None or not user.is_student:
        raise ServiceError(422, "User not found in course or is not a student")
    timestamp = _canvas_validate(body, stored, now, line_item_maximum=item.score_maximum)
    result = stored if stored is not None else Result(line_item_id=item.id, user_id=user.id)
    extension = body.get(CANVAS_SUBMISSION) if isinstance(body.get(CANVAS_SUBMISSION), dict) else {}
    if target.writes_grade:
        if canvas_resets(body):
            new_score = result.raw if extension.get("preserve_score") else None
        else:
            sent_maximum = float(body["scoreMaximum"])
            scale = 1.0 if abs(sent_maximum) < 1e-12 else item.score_maximum / sent_maximum
            new_score = float(body["scoreGiven"]) * scale
        _canvas_grade_change(target, result, new_score)
        result.raw = result.final = new_score
        if extension.get("new_submission") is not False:
            result.attempts += 1
        result.needs_grading = body["gradingProgress"] == "PendingManual"
    comment = body.get("comment")
    if comment:
        # A submission comment per score that has one (appended, never replaced); the result
        # keeps the last.
        if target.writes_grade:
            result.comments.append(comment)
        result.comment = comment
    result.result_score = float(body["scoreGiven"]) if body.get("scoreGiven") is not None else None
    result.result_maximum = float(body["scoreMaximum"]) if body.get("scoreMaximum") is not None else None
    _stamp(result, body, timestamp)
    return result


def canvas_result_score(result: Result, assignment: Assignment | None) -> float | None:
    """What Canvas's result service reports as resultScore (app/models/lti/result.rb, scaled_result_score).

    The score as the tool sent it; after a teacher's edit in the gradebook, the submission's
    score scaled from the assignment's points to the result's maximum.
    """
    score = result.result_score
    if score is None or not result.edited_by_teacher or assignment is None:
        return score
    if not assignment.points_possible or not result.result_maximum:
        return score
    return score * result.result_maximum / assignment.points_possible


def _stamp(result: Result, body: dict[str, Any], timestamp: dt.datetime) -> None:
    result.edited_by_teacher = False  # the tool's score is the grade now
    result.activity_progress = body["activityProgress"]
    result.grading_progress = body["gradingProgress"]
    result.timestamp = timestamp
    result.timestamp_text = body["timestamp"]


def apply_score(mode: str, target: Target, user: SandboxUser | None, body: Any,
                stored: Result | None, now: dt.datetime) -> Result:
    """Validate a score and return the new result of (line item, user) (the caller stores it)."""
    if mode == "moodle":
        return _moodle_apply(target.item, user, body, stored, now)
    return _canvas_apply(target, user, body, stored, now)
