"""The AGS score rules, strict, in Moodle's or Canvas's flavour (see PLATFORMS.md).

`apply_score` validates one score body against AGS 2.0 and the mode's rules and updates the
stored result, or raises ServiceError with the status the real platform answers.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from tool.sandbox.errors import ServiceError
from tool.sandbox.store import LineItem, Result, SandboxUser

ACTIVITY_PROGRESS = ("Initialized", "Started", "InProgress", "Submitted", "Completed")
GRADING_PROGRESS = ("FullyGraded", "Pending", "PendingManual", "Failed", "NotReady")
CANVAS_SUBMISSION = "https://canvas.instructure.com/lti/submission"
CANVAS_FUTURE_TOLERANCE = dt.timedelta(minutes=1)

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


def _refuse(mode: str, moodle_status: int, canvas_status: int, moodle_message: str, canvas_message: str) -> ServiceError:
    if mode == "moodle":
        return ServiceError(moodle_status, moodle_message)
    return ServiceError(canvas_status, canvas_message)


def validate_score(mode: str, body: Any) -> tuple[dt.datetime, dict[str, Any]]:
    """Check a score body's shape; return its timestamp and the body."""
    # Moodle refuses every malformed score with one phrase (gradebookservices scores.php).
    bad = "Incorrect score received"
    if not isinstance(body, dict):
        raise _refuse(mode, 400, 400, bad, "The score must be a JSON object")
    if not isinstance(body.get("userId"), str) or not body["userId"]:
        raise _refuse(mode, 400, 400, bad, "userId is required")
    timestamp = parse_timestamp(body.get("timestamp"))
    if timestamp is None:
        raise _refuse(mode, 400, 400, bad, "timestamp must be ISO 8601 with a time zone")
    if body.get("activityProgress") not in ACTIVITY_PROGRESS:
        raise _refuse(mode, 400, 400, bad, f"activityProgress must be one of {', '.join(ACTIVITY_PROGRESS)}")
    if body.get("gradingProgress") not in GRADING_PROGRESS:
        raise _refuse(mode, 400, 400, bad, f"gradingProgress must be one of {', '.join(GRADING_PROGRESS)}")
    given = body.get("scoreGiven")
    maximum = body.get("scoreMaximum")
    if given is not None and not _is_number(given):
        raise _refuse(mode, 400, 400, bad, "scoreGiven must be a number")
    if given is not None and maximum is None:
        raise _refuse(mode, 400, 422, bad, "ScoreMaximum must be present when ScoreGiven is")
    if maximum is not None and (not _is_number(maximum) or maximum <= 0):
        raise _refuse(mode, 400, 400, bad, "scoreMaximum must be a number greater than 0")
    if given is not None and given < 0 and mode == "canvas":
        raise ServiceError(400, "scoreGiven must be greater than or equal to 0")
    if "comment" in body and body["comment"] is not None and not isinstance(body["comment"], str):
        raise _refuse(mode, 400, 400, bad, "comment must be a string")
    return timestamp, body


def check_student(mode: str, user: SandboxUser | None) -> SandboxUser:
    """The user may receive scores only as an enrolled, active student."""
    if user is None or not user.is_student:
        # Canvas answers 422 here, also for the Student View test user.
        raise _refuse(mode, 400, 422, "Incorrect user: not an enrolled student of the course",
                      "User not found in course or is not a student")
    return user


def check_timestamp(mode: str, item: LineItem, user_id: str, timestamp: dt.datetime,
                    stored: Result | None, now: dt.datetime, body: dict[str, Any]) -> None:
    """Refuse a timestamp the platform would refuse."""
    if mode == "moodle":
        # Moodle compares whole seconds and refuses equal ones too: a second score within the
        # same second is a 409. A future-dated score is stored and blocks "now" ones until then.
        if stored is not None and stored.timestamp is not None:
            if math.floor(timestamp.timestamp()) <= math.floor(stored.timestamp.timestamp()):
                raise ServiceError(409, f"Refusing score with an earlier timestamp for item {item.id} "
                                        f"and user {user_id}")
        return
    submitted_at = parse_timestamp((body.get(CANVAS_SUBMISSION) or {}).get("submitted_at"))
    for moment in (timestamp, submitted_at):
        if moment is not None and moment > now + CANVAS_FUTURE_TOLERANCE:
            raise ServiceError(400, "Score timestamp cannot be in the future")
    # Canvas refuses strictly older timestamps only; an equal one is accepted.
    if stored is not None and stored.timestamp is not None and timestamp < stored.timestamp:
        raise ServiceError(400, "Score timestamp cannot be older than the previous score")


def apply_score(mode: str, item: LineItem, user: SandboxUser | None, body: Any,
                stored: Result | None, now: dt.datetime) -> Result:
    """Validate a score and return the new result of (line item, user) (the caller stores it)."""
    timestamp, body = validate_score(mode, body)
    user = check_student(mode, user)
    check_timestamp(mode, item, user.id, timestamp, stored, now, body)

    result = stored if stored is not None else Result(line_item_id=item.id, user_id=user.id)
    comment = body.get("comment")
    graded = body["gradingProgress"] == "FullyGraded" and body.get("scoreGiven") is not None
    extension = body.get(CANVAS_SUBMISSION) or {}
    if graded:
        raw = float(body["scoreGiven"]) * item.score_maximum / float(body["scoreMaximum"])
        result.raw = raw
        # Moodle keeps the raw grade (150 for 15/10) but bounds the final grade to [0, max]
        # unless the site allows unlimited grades; Canvas keeps extra credit.
        result.final = min(max(raw, 0.0), item.score_maximum) if mode == "moodle" else raw
    elif not (mode == "canvas" and extension.get("preserve_score")):
        # Any other gradingProgress clears the stored grade (measured on Moodle 4.5; Canvas too).
        result.raw = None
        result.final = None
    if mode == "moodle":
        if graded or comment is not None:
            # A graded score without a comment erases the feedback; a clearing one keeps it.
            result.comment = comment
    else:
        if comment:
            result.comments.append(comment)  # Canvas appends every comment it is sent
            result.comment = comment
        if extension.get("new_submission") is not False:
            result.attempts += 1
        result.needs_grading = body["gradingProgress"] == "PendingManual"
    result.activity_progress = body["activityProgress"]
    result.grading_progress = body["gradingProgress"]
    result.edited_by_teacher = False
    if mode == "moodle" and body["gradingProgress"] != "FullyGraded":
        # Moodle stores any score that is not FullyGraded with its own clock, not the score's
        # timestamp (measured on 4.5.6): a tool's next score, stamped when its change happened,
        # can then be older than the stored one and get 409.
        result.timestamp, result.timestamp_text = now, now.isoformat()
    else:
        result.timestamp = timestamp
        result.timestamp_text = body["timestamp"]
    return result
