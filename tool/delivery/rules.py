"""What Tally sends to the LMS, and when: pure rules over values (no database, no HTTP).

The score of a pair (line item, person) follows from Tally's data alone:

* a ledger **total** goes to the offering's total line item: nothing entered → Initialized /
  NotReady without a score; active entries → Completed / FullyGraded with their sum; every
  entry voided → a score without scoreGiven, which clears the grade the LMS holds;
* an **assessment** goes to its own line item with its maximum, the scheme grade in the
  comment ("Grade 1.3", resent every time: Moodle erases feedback that a score omits), a
  manual grade marked as such; work started but not graded → Started or InProgress with
  Pending, only while no grade was ever accepted for the pair (any gradingProgress but
  FullyGraded clears an existing grade, measured on Moodle 4.5; Canvas does the same); while
  the assessment has a scheme that was never applied, points without a grade are such work in
  progress too (Completed / Pending): raw points are not a grade, so nothing reaches the LMS as
  FullyGraded before the teacher applies the scheme;
* a negative total is sent as 0 with the reason in the comment (Moodle clamps, Canvas refuses);
* extra credit (more than the maximum) passes through; Moodle clamps what it shows.

Timestamps are the time of the change in Tally. New changes of a pair strictly increase and
never repeat the whole second of the previous one: Moodle compares whole seconds and answers
409 to an equal one (docs/platforms.md; README, "Delivering grades to the LMS"). A retry keeps
its timestamp, so the LMS's own rule (refuse what is older than what it holds) protects a grade
a teacher set there meanwhile (Moodle 4.5 stores a gradebook edit with timestamp = now). A
409 is read back before it is believed (`conflict_verdict`): the LMS holds Tally's score (an
earlier attempt was stored) → delivered; it holds what Tally last delivered (Moodle stamped a
score that is not FullyGraded with its own, later, clock) → stamped after the LMS's time and
sent again; anything else → superseded.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any, Callable

from tool.ags.score import ActivityProgress, GradingProgress, Score
from tool.db import ID_MAX

ZERO = Decimal("0")
TOTAL_TARGET = "total"
TOTAL_RESOURCE_ID = "tally-total"
TOTAL_TAG = "tally-total"
ASSESSMENT_TAG = "tally-assessment"
# The total's maximum when the offering is not bound to the launch's own line item and the
# teacher set none: a percentage scale.
DEFAULT_TOTAL_MAXIMUM = Decimal("100")

VOIDED_COMMENT = "No points: every entry in Tally was voided."
EXEMPT_COMMENT = "Exempt from this assessment."
REMOVED_COMMENT = "No points entered in Tally any more."


def assessment_target(assessment_id: int) -> str:
    """The binding target of an assessment's line item."""
    return f"assessment:{assessment_id}"


def assessment_resource_id(assessment_id: int) -> str:
    """The AGS resourceId Tally gives an assessment's line item (found again by it)."""
    return f"tally-assessment-{assessment_id}"


class Kind(StrEnum):
    """Why a score is sent, which decides whether it may be sent."""

    GRADE = "grade"  # writes a grade: always sent
    NO_GRADE = "no_grade"  # a score without scoreGiven (nothing entered, voided, exempt): always sent, clears
    PROGRESS = "progress"  # work started, no grade: sent only while no grade was ever accepted


@dataclass(frozen=True)
class Desired:
    """The score a pair should hold, and why; its timestamp is given when it is written."""

    kind: Kind
    score: Score


def points_text(value: Decimal) -> str:
    """Points as people read them: 12.50, -3.00."""
    return f"{value:.2f}"


def _negative_note(points: Decimal) -> str:
    return f"{points_text(points)} points in Tally, sent as 0: the LMS takes no negative scores."


def _join(*parts: str | None) -> str | None:
    text = " ".join(p for p in parts if p)
    return text or None


def total_desired(*, user_id: str, has_entries: bool, active_total: Decimal | None, maximum: Decimal) -> Desired:
    """The score of a student's ledger total (active_total None: no ACTIVE entry)."""
    if not has_entries:
        return Desired(Kind.NO_GRADE, Score(user_id=user_id, activity_progress=ActivityProgress.INITIALIZED,
                                            grading_progress=GradingProgress.NOT_READY))
    if active_total is None:
        return Desired(Kind.NO_GRADE, Score(user_id=user_id, activity_progress=ActivityProgress.INITIALIZED,
                                            grading_progress=GradingProgress.NOT_READY, comment=VOIDED_COMMENT))
    given, comment = active_total, None
    if given < 0:
        given, comment = ZERO, _negative_note(active_total)
    return Desired(Kind.GRADE, Score(user_id=user_id, activity_progress=ActivityProgress.COMPLETED,
                                     grading_progress=GradingProgress.FULLY_GRADED, score_given=given,
                                     score_maximum=maximum, comment=comment))


@dataclass(frozen=True)
class ParticipationFacts:
    """What decides an assessment score: the participation and how many task points exist."""

    status: str  # pending | graded | absent | exempt
    points: Decimal | None
    grade: str | None
    override: bool = False
    tasks: int = 0  # tasks of the assessment (0: points entered as a total, or from the ledger)
    tasks_entered: int = 0  # of them, how many have points for this student
    # The assessment has a scheme that was never applied: its points are not a grade yet.
    awaiting_scheme: bool = False


def grade_comment(grade: str | None, *, override: bool) -> str | None:
    """The scheme grade as the comment: "Grade 1.3", marked when the teacher set it by hand."""
    if grade is None:
        return None
    return f"Grade {grade} (set by the teacher)" if override else f"Grade {grade}"


def assessment_desired(*, user_id: str, facts: ParticipationFacts, maximum: Decimal,
                       graded_before: bool = False) -> Desired:
    """The score of a student's participation in an assessment (maximum = the assessment's)."""
    grade = grade_comment(facts.grade, override=facts.override)
    if facts.status == "exempt":
        return Desired(Kind.NO_GRADE, Score(user_id=user_id, activity_progress=ActivityProgress.INITIALIZED,
                                            grading_progress=GradingProgress.NOT_READY,
                                            comment=_join(EXEMPT_COMMENT, grade)))
    if facts.status == "absent":
        return Desired(Kind.GRADE, Score(user_id=user_id, activity_progress=ActivityProgress.COMPLETED,
                                         grading_progress=GradingProgress.FULLY_GRADED, score_given=ZERO,
                                         score_maximum=maximum, comment=_join("Absent.", grade)))
    partial = 0 < facts.tasks_entered < facts.tasks
    waiting = facts.awaiting_scheme and facts.grade is None
    if facts.status == "graded" and facts.points is not None and not partial and not waiting:
        given, note = facts.points, None
        if given < 0:
            given, note = ZERO, _negative_note(facts.points)
        return Desired(Kind.GRADE, Score(user_id=user_id, activity_progress=ActivityProgress.COMPLETED,
                                         grading_progress=GradingProgress.FULLY_GRADED, score_given=given,
                                         score_maximum=maximum, comment=_join(grade, note)))
    if partial or facts.points is not None:
        # Work started: some task points, or points on a participation still marked pending, or
        # every point entered while the scheme that grades them waits to be applied.
        if waiting and facts.status == "graded" and not partial:
            progress = ActivityProgress.COMPLETED
        else:
            progress = ActivityProgress.IN_PROGRESS if partial else ActivityProgress.STARTED
        return Desired(Kind.PROGRESS, Score(user_id=user_id, activity_progress=progress,
                                            grading_progress=GradingProgress.PENDING, comment=grade))
    return Desired(Kind.NO_GRADE, Score(user_id=user_id, activity_progress=ActivityProgress.INITIALIZED,
                                        grading_progress=GradingProgress.NOT_READY,
                                        comment=_join(REMOVED_COMMENT if graded_before else None, grade)))


def should_send(kind: Kind | str, *, ever_graded: bool) -> bool:
    """False for a progress-only score once a grade was accepted: it would clear that grade."""
    return not (Kind(kind) is Kind.PROGRESS and ever_graded)


def content(score_json: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored score without its timestamp: what decides whether two scores say the same."""
    if score_json is None:
        return None
    return {k: v for k, v in score_json.items() if k != "timestamp"}


def same_content(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """True when two stored scores differ at most in their timestamps."""
    return content(a) == content(b)


def for_platform(score: Score, *, accepted: Score | None, canvas: bool) -> Score:
    """The score as sent: Canvas appends every comment it receives, so an unchanged one is left out."""
    if canvas and accepted is not None and score.comment is not None and score.comment == accepted.comment:
        return replace(score, comment=None)
    return score


# -- timestamps -------------------------------------------------------------------------------


def whole_second(moment: dt.datetime) -> int:
    """The whole second a moment falls in (what Moodle compares)."""
    return math.floor(moment.timestamp())


def next_timestamp(now: dt.datetime, after: dt.datetime | None) -> dt.datetime:
    """`now`, unless that is in the whole second of `after` or before it: then the next free second."""
    if after is None or whole_second(now) > whole_second(after):
        return now
    return dt.datetime.fromtimestamp(whole_second(after) + 1, dt.timezone.utc)


def stamp_after(lms_time: dt.datetime | None, *, sent: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """A timestamp after the LMS's stored one and the one Tally sent (whole seconds, as Moodle
    compares): for a score to send again when the LMS's own clock made it look older."""
    return next_timestamp(now, latest(lms_time, sent))


def latest(*moments: dt.datetime | None) -> dt.datetime | None:
    """The latest of the moments given (None when none is)."""
    known = [m for m in moments if m is not None]
    return max(known) if known else None


# -- retries ---------------------------------------------------------------------------------


def retry_delay(attempts: int, *, base: float, cap: float, retry_after: float | None,
                rand: Callable[[], float]) -> float:
    """Seconds until the next attempt: exponential in `attempts` with jitter, never before Retry-After.

    Half of the exponential step is fixed and half random ("equal jitter"), so workers that
    failed together do not come back together, and none comes back at once.
    """
    step = min(cap, base * 2 ** max(0, attempts - 1))
    delay = step / 2 + rand() * step / 2
    if retry_after is not None and retry_after > 0:
        delay = max(delay, retry_after * (1 + 0.1 * rand()))
    return delay


# -- what the teacher is told -----------------------------------------------------------------


def clamp_note(score: Score) -> str | None:
    """Where Moodle will show less than Tally sent (extra credit), in words for the teacher."""
    if score.score_given is None or score.score_maximum is None or score.score_given <= score.score_maximum:
        return None
    return (f"Extra credit: {points_text(score.score_given)} of {points_text(score.score_maximum)} sent. Moodle shows "
            f"at most the maximum unless the site allows it (Site administration → Grades → General settings → "
            f"Unlimited grades); Canvas keeps it.")


@dataclass(frozen=True)
class LmsResult:
    """A result the LMS holds (AGS result service), on the line item's scale."""

    user_id: str
    score: Decimal | None
    maximum: Decimal | None
    comment: str | None = None
    timestamp: dt.datetime | None = None  # when the LMS stored it, where it says (Moodle does)


DIFFERENCE_TEXT = {
    "changed": "The LMS holds another grade than Tally delivered (edited in the LMS?).",
    "cleared": "The LMS holds no grade, but Tally delivered one (removed in the LMS?).",
    "clamped": "The LMS shows the maximum: it clamps extra credit (Moodle without unlimited grades).",
    "lms_only": "The LMS holds a grade that Tally never sent (entered in the LMS).",
}


def expected_result(accepted: Score, maximum: Decimal) -> Decimal | None:
    """What the LMS should report for an accepted score on a line item of `maximum` (it rescales)."""
    if not accepted.writes_grade or accepted.score_given is None or not accepted.score_maximum:
        return None
    return accepted.score_given * maximum / accepted.score_maximum


def compare_result(accepted: Score | None, result: LmsResult | None, *,
                   tolerance: Decimal = Decimal("0.01")) -> str | None:
    """How the LMS's result differs from the score it accepted from Tally (None: it does not)."""
    delivered = accepted is not None and accepted.writes_grade
    lms_score = result.score if result is not None else None
    if not delivered:
        return "lms_only" if lms_score is not None else None
    assert accepted is not None
    if lms_score is None or result is None:
        return "cleared"
    maximum = result.maximum if result.maximum else accepted.score_maximum or Decimal(1)
    expected = expected_result(accepted, maximum)
    if expected is None or abs(lms_score - expected) <= tolerance:
        return None
    if expected > maximum and abs(lms_score - maximum) <= tolerance:
        return "clamped"
    return "changed"


# -- what the LMS holds, and what a conflict means ------------------------------------------------

TOLERANCE = Decimal("0.01")
MAX_RESTAMPS = 5  # attempts of a pair since its last acceptance, after which a conflict is believed


def lms_holds(score: Score, result: LmsResult | None, *, tolerance: Decimal = TOLERANCE) -> bool:
    """True when the LMS's result is this score: its grade (rescaled to the column), or no grade
    for a score that writes none; and its comment, where the LMS reports one."""
    if result is not None and result.comment not in (None, "") and score.comment is not None \
            and result.comment != score.comment:
        return False
    if not score.writes_grade:
        # No result at all holds a score without a grade only when it had nothing to say either.
        return (result is None and score.comment is None) or (result is not None and result.score is None)
    if result is None or result.score is None:
        return False
    maximum = result.maximum if result.maximum else score.score_maximum or Decimal(1)
    expected = expected_result(score, maximum)
    return expected is not None and abs(result.score - expected) <= tolerance


def holds_nothing(result: LmsResult | None) -> bool:
    """True when the LMS has no grade and no comment for the pair."""
    return result is None or (result.score is None and result.comment in (None, ""))


class Verdict(StrEnum):
    """What a refused score (409, "older timestamp") turned out to mean after reading the result back."""

    DELIVERED = "delivered"  # the LMS holds Tally's score: an earlier attempt of it was stored
    RESTAMP = "restamp"  # the LMS holds what Tally last delivered: its own clock is ahead; send again
    SUPERSEDED = "superseded"  # the LMS holds something else: a teacher changed it there


def conflict_verdict(sent: Score, last_delivered: Score | None, result: LmsResult | None, *,
                     restamps: int = 0) -> Verdict:
    """Decide a 409 from the result the LMS holds now (sent: the refused score; last_delivered:
    what the LMS last accepted from Tally; restamps: how often this pair was stamped again)."""
    if lms_holds(sent, result):
        return Verdict.DELIVERED
    ours = holds_nothing(result) if last_delivered is None else lms_holds(last_delivered, result)
    if ours and restamps < MAX_RESTAMPS:
        return Verdict.RESTAMP
    return Verdict.SUPERSEDED


# -- release policy and what the LMS column shows (issue 15) ----------------------------------------

TOTAL_KEY = "total"
PERCENT_MAXIMUM = Decimal("100")


def column_key(target: str) -> str:
    """The API's key of a binding target: `total`, `assessment-{id}`."""
    return target.replace(":", "-")


def target_of_key(key: str) -> str | None:
    """The binding target of an API key (None when the key names no column)."""
    if key == TOTAL_KEY:
        return TOTAL_TARGET
    prefix, _, rest = key.partition("-")
    if prefix == "assessment" and rest.isascii() and rest.isdigit() and len(rest) <= 10 and not rest.startswith("0") \
            and int(rest) <= ID_MAX:
        return assessment_target(int(rest))
    return None


def needs_release(score: Score, accepted: Score | None) -> bool:
    """True when sending `score` would show students or the LMS something: a grade, a comment
    (the grade is in it), or the removal of a grade the LMS holds. An empty Initialized/NotReady
    score over nothing tells nothing, so it is never held."""
    if score.score_given is not None or score.comment:
        return True
    return accepted is not None and (accepted.score_given is not None or bool(accepted.comment))


def _grade_value(grade: str) -> Decimal | None:
    try:
        value = Decimal(grade)
    except ArithmeticError:
        return None
    return value if value.is_finite() else None


def default_grade_numbers(grades: tuple[str, ...], failing: frozenset[str],
                          floors: dict[str, Decimal]) -> dict[str, Decimal]:
    """The number each grade of a scale stands for in the LMS column (best first), so that the column
    orders and averages like the grades:

    * two grades, one failing (pass/fail) → 1 and 0;
    * numeric grades where the smaller is better (German 1.0 … 5.0): the passing grades on a line from
      100 (the best) to 50 (the worst passing grade), the failing ones 0;
    * anything else (letters): the floor of the grade's band in percent of the maximum.
    """
    passing = [g for g in grades if g not in failing]
    if len(grades) == 2 and len(failing) == 1:
        return {grades[0]: Decimal(1), grades[1]: Decimal(0)}
    values = [_grade_value(g) for g in passing]
    if len(passing) >= 2 and all(v is not None for v in values) and values == sorted(values) \
            and values[0] != values[-1]:  # type: ignore[type-var]
        best, worst = values[0], values[-1]
        out = {}
        for g, v in zip(passing, values):
            assert v is not None and best is not None and worst is not None
            out[g] = (Decimal(100) - (v - best) * Decimal(50) / (worst - best)).quantize(Decimal("0.01"))
        out.update({g: ZERO for g in grades if g in failing})
        return out
    return {g: floors.get(g, ZERO).quantize(Decimal("0.01")) for g in grades}


def numbers_top(numbers: dict[str, Decimal]) -> Decimal:
    """The maximum of a `grade` column: the largest number of the map (1 for pass/fail, else 100 or so)."""
    top = max(numbers.values(), default=ZERO)
    return top if top > 0 else Decimal(1)


def column_maximum(mode: str, *, points_maximum: Decimal, numbers: dict[str, Decimal] | None) -> Decimal:
    """The line item's maximum for what the column shows."""
    if mode == "percent":
        return PERCENT_MAXIMUM
    if mode == "grade" and numbers:
        return numbers_top(numbers)
    return points_maximum


def as_lms_value(desired: Desired, *, mode: str, grade: str | None, numbers: dict[str, Decimal] | None,
                 points_maximum: Decimal) -> Desired:
    """The desired score of a points column turned into what the column shows (`points` unchanged):
    `percent` is the score of 100; `grade` the grade's number. The grade stays in the comment.
    A score that writes a grade but has no grade yet (points, no scheme applied) is sent as work in
    progress in `grade` mode: the column shows grades, never points."""
    score = desired.score
    if mode == "points" or score.score_given is None:
        return desired
    if mode == "percent":
        given = (score.score_given * PERCENT_MAXIMUM / points_maximum).quantize(Decimal("0.01")) \
            if points_maximum else ZERO
        return replace(desired, score=replace(score, score_given=given, score_maximum=PERCENT_MAXIMUM))
    assert numbers is not None
    if grade is None or grade not in numbers:
        return Desired(Kind.PROGRESS, replace(score, score_given=None, score_maximum=None,
                                              activity_progress=ActivityProgress.COMPLETED,
                                              grading_progress=GradingProgress.PENDING))
    return replace(desired, score=replace(score, score_given=numbers[grade], score_maximum=numbers_top(numbers)))


def canvas_scheme(numbers: dict[str, Decimal]) -> list[tuple[str, Decimal]]:
    """The Canvas grading scheme that shows each grade again: (grade, lower bound in %), best first.
    Each grade's number is its own lower bound, so the number Tally sends falls on its grade."""
    top = numbers_top(numbers)
    rows = [(g, (n * 100 / top).quantize(Decimal("0.01"))) for g, n in numbers.items()]
    return sorted(rows, key=lambda r: r[1], reverse=True)


def moodle_scale(grades: tuple[str, ...]) -> str:
    """A Moodle scale's items: comma-separated, worst first (Moodle's order)."""
    return ",".join(reversed(grades))
