"""The Score a tool posts to a line item (AGS 2.0 §3.4, https://www.imsglobal.org/spec/lti-ags/v2p0/#score-publish-service).

A `Score` is validated when it is built, so an invalid one never reaches the LMS:

* `score_given` needs `score_maximum` (Moodle answers 400 "Incorrect score received",
  Canvas 422 without it);
* `score_given` ≥ 0 (Moodle clamps a negative one to 0, Canvas refuses it);
* `score_maximum` > 0;
* `score_given` > `score_maximum` is extra credit and allowed (Canvas keeps it; Moodle keeps
  the raw grade and clamps the final one unless the site allows unlimited grades);
* the progress values are exactly the spec's words;
* timestamps carry a time zone.

Points are Decimal here, as everywhere in Tally; they become JSON numbers only in
`to_json`. The timestamp, when not given, is "now" at serialisation: UTC, with
microseconds and a zone (AGS asks for sub-second precision; Moodle compares whole seconds).

    ToolError
    └── ValidationError
        └── ScoreError    a score field is missing or out of range; `details` names each field
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from tool.clock import utcnow
from tool.errors import ValidationError

CANVAS_SUBMISSION = "https://canvas.instructure.com/lti/submission"


class ActivityProgress(StrEnum):
    """Where the student is with the activity (AGS §3.4.5)."""

    INITIALIZED = "Initialized"
    STARTED = "Started"
    IN_PROGRESS = "InProgress"
    SUBMITTED = "Submitted"
    COMPLETED = "Completed"


class GradingProgress(StrEnum):
    """Where the grading of the activity is (AGS §3.4.6). Only FullyGraded writes a grade."""

    FULLY_GRADED = "FullyGraded"
    PENDING = "Pending"
    PENDING_MANUAL = "PendingManual"
    FAILED = "Failed"
    NOT_READY = "NotReady"


class ScoreError(ValidationError):
    """A score field is missing or out of range; `details` maps each field to its problem."""

    code = "invalid_score"


def _decimal(value: Any) -> Decimal:
    """A finite Decimal from a Decimal, int, float or numeric string; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        value = repr(value)  # 8.1 stays 8.1, not 8.0999999999999996447…
    if not isinstance(value, (Decimal, int, str)):
        raise ValueError(f"must be a number, not {type(value).__name__}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"must be a number, not {value!r}") from None
    if not number.is_finite():
        raise ValueError("must be a finite number")
    return number


def _enum(kind: type[StrEnum], value: Any) -> StrEnum:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"must be one of {allowed}, not {value!r}") from None


def _aware(value: Any) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValueError("must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a time zone")
    return value


def format_timestamp(value: dt.datetime) -> str:
    """ISO 8601 in UTC with microseconds and a zone: 2026-11-23T09:15:02.123456+00:00."""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def parse_timestamp(text: Any) -> dt.datetime:
    """An ISO 8601 timestamp with a zone (`Z` or an offset) as an aware datetime."""
    if not isinstance(text, str):
        raise ValueError("must be an ISO 8601 string")
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"is not ISO 8601: {text!r}") from None
    return _aware(value)


def json_number(value: Decimal) -> int | float:
    """A Decimal as a JSON number: an int when whole (10, not 10.0), else a float."""
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True)
class Score:
    """One score of one user for one line item, valid by construction."""

    user_id: str
    activity_progress: ActivityProgress
    grading_progress: GradingProgress
    score_given: Decimal | None = None
    score_maximum: Decimal | None = None
    comment: str | None = None
    timestamp: dt.datetime | None = None  # None: now (UTC, microseconds) at serialisation
    submission_started_at: dt.datetime | None = None
    submission_submitted_at: dt.datetime | None = None
    scoring_user_id: str | None = None

    def __post_init__(self) -> None:
        problems: dict[str, str] = {}

        def convert_field(name: str, convert: Any) -> None:
            value = getattr(self, name)
            if value is None:
                return
            try:
                object.__setattr__(self, name, convert(value))
            except ValueError as exc:
                problems[name] = str(exc)

        if not isinstance(self.user_id, str) or not self.user_id.strip():
            problems["user_id"] = "is required (the platform's user id, the launch's `sub`)"
        for name, kind in (("activity_progress", ActivityProgress), ("grading_progress", GradingProgress)):
            if getattr(self, name) is None:
                problems[name] = "is required"
            else:
                convert_field(name, lambda v, kind=kind: _enum(kind, v))
        convert_field("score_given", _decimal)
        convert_field("score_maximum", _decimal)
        for name in ("timestamp", "submission_started_at", "submission_submitted_at"):
            convert_field(name, _aware)
        for name in ("comment", "scoring_user_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                problems[name] = "must be a string"
        given, maximum = self.score_given, self.score_maximum
        if "score_given" not in problems and given is not None:
            if maximum is None and "score_maximum" not in problems:
                problems["score_given"] = "needs score_maximum (AGS: scoreMaximum must be present with scoreGiven)"
            elif given < 0:
                problems["score_given"] = "must be 0 or more"
        if "score_maximum" not in problems and maximum is not None and maximum <= 0:
            problems["score_maximum"] = "must be greater than 0"
        if problems:
            raise ScoreError("The score is not valid: " + "; ".join(f"{k} {v}" for k, v in problems.items()),
                             details=problems)

    @property
    def writes_grade(self) -> bool:
        """True when the platform stores a grade; any other score clears it (Moodle 4.5, Canvas)."""
        return self.grading_progress is GradingProgress.FULLY_GRADED and self.score_given is not None

    def with_timestamp(self, timestamp: dt.datetime) -> "Score":
        """The same score at another time."""
        return replace(self, timestamp=timestamp)

    def to_json(self, *, canvas: bool = False) -> dict[str, Any]:
        """The AGS score JSON; `canvas` adds Canvas's submission extension (no new attempt per score)."""
        data: dict[str, Any] = {
            "userId": self.user_id,
            "activityProgress": self.activity_progress.value,
            "gradingProgress": self.grading_progress.value,
            "timestamp": format_timestamp(self.timestamp or utcnow()),
        }
        if self.score_given is not None:
            data["scoreGiven"] = json_number(self.score_given)
        if self.score_maximum is not None:
            data["scoreMaximum"] = json_number(self.score_maximum)
        if self.comment is not None:
            data["comment"] = self.comment
        submission = {}
        if self.submission_started_at is not None:
            submission["startedAt"] = format_timestamp(self.submission_started_at)
        if self.submission_submitted_at is not None:
            submission["submittedAt"] = format_timestamp(self.submission_submitted_at)
        if submission:
            data["submission"] = submission
        if self.scoring_user_id is not None:
            data["scoringUserId"] = self.scoring_user_id
        if canvas:
            # Without new_submission: false every score is a new attempt in Canvas's
            # submission history (Canvas LTI Advantage docs, "Score" extensions).
            extension: dict[str, Any] = {"new_submission": False}
            if self.submission_submitted_at is not None:
                extension["submitted_at"] = format_timestamp(self.submission_submitted_at)
            data[CANVAS_SUBMISSION] = extension
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Score":
        """A Score from its AGS JSON (extensions ignored); ScoreError when a field is wrong."""
        if not isinstance(data, dict):
            raise ScoreError("The score is not valid: it must be a JSON object", details={"score": "must be an object"})
        problems: dict[str, str] = {}

        def number(key: str) -> Decimal | None:
            value = data.get(key)
            if value is None:
                return None
            try:
                return _decimal(value)
            except ValueError as exc:
                problems[key] = str(exc)
                return None

        def moment(value: Any, key: str) -> dt.datetime | None:
            if value is None:
                return None
            try:
                return parse_timestamp(value)
            except ValueError as exc:
                problems[key] = str(exc)
                return None

        submission = data.get("submission") if isinstance(data.get("submission"), dict) else {}
        values = {
            "user_id": data.get("userId"),
            "activity_progress": data.get("activityProgress"),
            "grading_progress": data.get("gradingProgress"),
            "score_given": number("scoreGiven"),
            "score_maximum": number("scoreMaximum"),
            "comment": data.get("comment"),
            "timestamp": moment(data.get("timestamp"), "timestamp"),
            "submission_started_at": moment(submission.get("startedAt"), "submission.startedAt"),
            "submission_submitted_at": moment(submission.get("submittedAt"), "submission.submittedAt"),
            "scoring_user_id": data.get("scoringUserId"),
        }
        if problems:
            raise ScoreError("The score is not valid: " + "; ".join(f"{k} {v}" for k, v in problems.items()),
                             details=problems)
        return cls(**values)
