"""What Tally sends to the LMS and when: the pure rules of tool/delivery/rules.py."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tool.ags.score import ActivityProgress as AP
from tool.ags.score import GradingProgress as GP
from tool.ags.score import Score
from tool.delivery import rules
from tool.delivery.rules import Kind, ParticipationFacts

D = Decimal
UTC = dt.timezone.utc


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- the ledger total -------------------------------------------------------------------------


def test_nothing_entered_is_initialized_not_ready_without_a_score() -> None:
    d = rules.total_desired(user_id="7", has_entries=False, active_total=None, maximum=D(100))
    assert d.kind is Kind.NO_GRADE
    assert (d.score.activity_progress, d.score.grading_progress) == (AP.INITIALIZED, GP.NOT_READY)
    assert d.score.score_given is None and d.score.comment is None
    assert "scoreGiven" not in d.score.to_json()


def test_every_entry_voided_sends_a_score_without_score_given_that_says_why() -> None:
    d = rules.total_desired(user_id="7", has_entries=True, active_total=None, maximum=D(100))
    assert d.kind is Kind.NO_GRADE
    assert d.score.score_given is None and not d.score.writes_grade
    assert d.score.comment == rules.VOIDED_COMMENT


def test_a_total_is_a_full_grade_on_the_columns_maximum() -> None:
    d = rules.total_desired(user_id="7", has_entries=True, active_total=D("42.50"), maximum=D(50))
    assert d.kind is Kind.GRADE
    assert (d.score.activity_progress, d.score.grading_progress) == (AP.COMPLETED, GP.FULLY_GRADED)
    assert (d.score.score_given, d.score.score_maximum) == (D("42.50"), D(50))
    assert d.score.to_json()["scoreGiven"] == 42.5


def test_a_negative_total_is_sent_as_zero_with_the_reason_in_the_comment() -> None:
    d = rules.total_desired(user_id="7", has_entries=True, active_total=D("-3.50"), maximum=D(100))
    assert d.kind is Kind.GRADE
    assert d.score.score_given == 0
    assert d.score.comment is not None and "-3.50" in d.score.comment and "sent as 0" in d.score.comment


def test_extra_credit_passes_through() -> None:
    d = rules.total_desired(user_id="7", has_entries=True, active_total=D("115"), maximum=D(100))
    assert (d.score.score_given, d.score.score_maximum) == (D(115), D(100))
    note = rules.clamp_note(d.score)
    assert note is not None and "Moodle" in note and "115.00" in note


def test_no_clamp_note_within_the_maximum() -> None:
    d = rules.total_desired(user_id="7", has_entries=True, active_total=D("100"), maximum=D(100))
    assert rules.clamp_note(d.score) is None


# -- assessments ------------------------------------------------------------------------------

CASES = [
    # facts, kind, activity, grading, given, comment
    (ParticipationFacts("graded", D("8.5"), "1.3"), Kind.GRADE, AP.COMPLETED, GP.FULLY_GRADED, D("8.5"), "Grade 1.3"),
    (ParticipationFacts("graded", D("8.5"), "1.0", override=True), Kind.GRADE, AP.COMPLETED, GP.FULLY_GRADED,
     D("8.5"), "Grade 1.0 (set by the teacher)"),
    (ParticipationFacts("graded", D("8.5"), None), Kind.GRADE, AP.COMPLETED, GP.FULLY_GRADED, D("8.5"), None),
    (ParticipationFacts("absent", None, "5.0"), Kind.GRADE, AP.COMPLETED, GP.FULLY_GRADED, D(0), "Absent. Grade 5.0"),
    (ParticipationFacts("exempt", None, None), Kind.NO_GRADE, AP.INITIALIZED, GP.NOT_READY, None,
     rules.EXEMPT_COMMENT),
    (ParticipationFacts("pending", None, None), Kind.NO_GRADE, AP.INITIALIZED, GP.NOT_READY, None, None),
    (ParticipationFacts("graded", D("4"), None, tasks=3, tasks_entered=1), Kind.PROGRESS, AP.IN_PROGRESS,
     GP.PENDING, None, None),
    (ParticipationFacts("pending", D("4"), None), Kind.PROGRESS, AP.STARTED, GP.PENDING, None, None),
    (ParticipationFacts("graded", D("9"), "1.7", tasks=3, tasks_entered=3), Kind.GRADE, AP.COMPLETED,
     GP.FULLY_GRADED, D(9), "Grade 1.7"),
    # A scheme exists but was never applied: points are work awaiting its grade (issue 15, item 5).
    (ParticipationFacts("graded", D("9"), None, tasks=3, tasks_entered=3, awaiting_scheme=True), Kind.PROGRESS,
     AP.COMPLETED, GP.PENDING, None, None),
    (ParticipationFacts("graded", D("9"), None, awaiting_scheme=True), Kind.PROGRESS, AP.COMPLETED, GP.PENDING,
     None, None),
    (ParticipationFacts("graded", D("4"), None, tasks=3, tasks_entered=1, awaiting_scheme=True), Kind.PROGRESS,
     AP.IN_PROGRESS, GP.PENDING, None, None),
    # … unless the teacher set a grade by hand meanwhile: that grade goes out.
    (ParticipationFacts("graded", D("9"), "1.0", override=True, awaiting_scheme=True), Kind.GRADE, AP.COMPLETED,
     GP.FULLY_GRADED, D(9), "Grade 1.0 (set by the teacher)"),
]


@pytest.mark.parametrize("facts, kind, activity, grading, given, comment", CASES)
def test_an_assessment_participation_becomes_this_score(facts: ParticipationFacts, kind: Kind, activity: AP,
                                                        grading: GP, given: Decimal | None,
                                                        comment: str | None) -> None:
    d = rules.assessment_desired(user_id="9", facts=facts, maximum=D(10))
    assert d.kind is kind
    assert (d.score.activity_progress, d.score.grading_progress) == (activity, grading)
    assert d.score.score_given == given
    assert d.score.comment == comment
    assert d.score.score_maximum == (D(10) if given is not None else None)


def test_points_removed_after_a_delivered_grade_clear_it_and_say_so() -> None:
    d = rules.assessment_desired(user_id="9", facts=ParticipationFacts("pending", None, None), maximum=D(10),
                                 graded_before=True)
    assert d.kind is Kind.NO_GRADE and not d.score.writes_grade
    assert d.score.comment == rules.REMOVED_COMMENT


def test_negative_assessment_points_go_as_zero_with_the_grade_and_the_reason() -> None:
    d = rules.assessment_desired(user_id="9", facts=ParticipationFacts("graded", D("-1"), "5.0"), maximum=D(10))
    assert d.score.score_given == 0
    assert d.score.comment is not None and d.score.comment.startswith("Grade 5.0 ") and "-1.00" in d.score.comment


@pytest.mark.parametrize("kind, ever_graded, sent", [
    (Kind.GRADE, False, True), (Kind.GRADE, True, True),
    (Kind.NO_GRADE, False, True), (Kind.NO_GRADE, True, True),
    (Kind.PROGRESS, False, True), (Kind.PROGRESS, True, False),
])
def test_progress_only_scores_go_out_only_while_no_grade_was_accepted(kind: Kind, ever_graded: bool,
                                                                    sent: bool) -> None:
    assert rules.should_send(kind, ever_graded=ever_graded) is sent
    assert rules.should_send(kind.value, ever_graded=ever_graded) is sent


# -- what goes on the wire --------------------------------------------------------------------


def _graded(comment: str | None, given: str = "8") -> Score:
    return Score(user_id="7", activity_progress=AP.COMPLETED, grading_progress=GP.FULLY_GRADED,
                 score_given=D(given), score_maximum=D(10), comment=comment)


def test_canvas_gets_an_unchanged_comment_only_once_because_it_appends_every_comment() -> None:
    sent = rules.for_platform(_graded("Grade 1.3", "9"), accepted=_graded("Grade 1.3", "8"), canvas=True)
    assert sent.comment is None and sent.score_given == D(9)


def test_canvas_gets_a_changed_comment() -> None:
    assert rules.for_platform(_graded("Grade 1.0"), accepted=_graded("Grade 1.3"), canvas=True).comment == "Grade 1.0"


def test_moodle_gets_the_comment_every_time_because_a_score_without_one_erases_feedback() -> None:
    assert rules.for_platform(_graded("Grade 1.3"), accepted=_graded("Grade 1.3"), canvas=False).comment == "Grade 1.3"


def test_scores_that_differ_only_in_their_timestamp_say_the_same() -> None:
    a = _graded("x").with_timestamp(at("2026-11-23T10:00:00")).to_json()
    b = _graded("x").with_timestamp(at("2026-11-23T11:00:00")).to_json()
    assert rules.same_content(a, b)
    assert not rules.same_content(a, _graded("y").with_timestamp(at("2026-11-23T10:00:00")).to_json())


# -- timestamps -------------------------------------------------------------------------------


def test_a_new_timestamp_is_now_when_the_previous_one_is_in_an_earlier_second() -> None:
    now = at("2026-11-23T10:00:05.250000")
    assert rules.next_timestamp(now, at("2026-11-23T10:00:04.999999")) == now
    assert rules.next_timestamp(now, None) == now


def test_a_new_timestamp_never_repeats_the_previous_whole_second() -> None:
    now = at("2026-11-23T10:00:05.250000")
    assert rules.next_timestamp(now, at("2026-11-23T10:00:05.100000")) == at("2026-11-23T10:00:06")
    assert rules.next_timestamp(now, at("2026-11-23T10:00:05.900000")) == at("2026-11-23T10:00:06")


def test_a_new_timestamp_comes_after_a_previous_one_in_the_future() -> None:
    now = at("2026-11-23T10:00:05.250000")
    assert rules.next_timestamp(now, at("2026-11-23T10:00:07.5")) == at("2026-11-23T10:00:08")


def test_many_changes_within_one_second_get_strictly_increasing_distinct_seconds() -> None:
    now = at("2026-11-23T10:00:05.000001")
    previous: dt.datetime | None = None
    seconds = []
    for i in range(5):
        previous = rules.next_timestamp(now + dt.timedelta(microseconds=i), previous)
        seconds.append(rules.whole_second(previous))
    assert seconds == sorted(set(seconds)) and len(seconds) == 5


def test_a_score_stamped_again_comes_after_the_lms_own_time_and_what_tally_sent() -> None:
    sent = at("2026-11-23T10:00:05.5")
    now = at("2026-11-23T10:00:06.2")
    assert rules.stamp_after(at("2026-11-23T10:00:25.1"), sent=sent, now=now) == at("2026-11-23T10:00:26")
    assert rules.stamp_after(None, sent=sent, now=now) == now  # the LMS did not say: now, past what was sent
    assert rules.stamp_after(at("2026-11-23T10:00:06.0"), sent=sent, now=now) == at("2026-11-23T10:00:07")


def test_latest_skips_what_is_unknown() -> None:
    assert rules.latest(None, at("2026-11-23T10:00:05"), None, at("2026-11-23T10:00:04")) == at("2026-11-23T10:00:05")
    assert rules.latest(None) is None


# -- backoff -------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts, low, high", [(1, 1.0, 2.0), (2, 2.0, 4.0), (3, 4.0, 8.0), (12, 30.0, 60.0)])
def test_retries_wait_exponentially_longer_with_jitter_up_to_the_cap(attempts: int, low: float, high: float) -> None:
    lowest = rules.retry_delay(attempts, base=2.0, cap=60.0, retry_after=None, rand=lambda: 0.0)
    highest = rules.retry_delay(attempts, base=2.0, cap=60.0, retry_after=None, rand=lambda: 0.999999)
    assert lowest == pytest.approx(low)
    assert highest == pytest.approx(high, rel=1e-5)


def test_retry_after_is_honoured_even_when_the_backoff_is_shorter() -> None:
    assert rules.retry_delay(1, base=2.0, cap=60.0, retry_after=30.0, rand=lambda: 0.0) == pytest.approx(30.0)
    assert rules.retry_delay(1, base=2.0, cap=60.0, retry_after=30.0, rand=lambda: 0.5) >= 30.0


def test_a_longer_backoff_wins_over_a_short_retry_after() -> None:
    assert rules.retry_delay(6, base=2.0, cap=600.0, retry_after=1.0, rand=lambda: 0.0) == pytest.approx(32.0)


# -- read-back -------------------------------------------------------------------------------------


def _result(score: str | None, maximum: str = "100", comment: str | None = None) -> rules.LmsResult:
    return rules.LmsResult("7", D(score) if score is not None else None, D(maximum), comment)


@pytest.mark.parametrize("accepted, result, kind", [
    (_graded(None, "8"), _result("80"), None),  # rescaled to the column's maximum: the same grade
    (_graded(None, "8"), _result("80.004"), None),
    (_graded(None, "8"), _result("70"), "changed"),
    (_graded(None, "8"), _result(None), "cleared"),
    (_graded(None, "8"), None, "cleared"),
    (_graded(None, "15"), _result("100"), "clamped"),  # Moodle shows at most the maximum
    (_graded(None, "15"), _result("150"), None),  # Canvas keeps extra credit
    (None, _result("55"), "lms_only"),
    (None, _result(None), None),
    (Score(user_id="7", activity_progress=AP.INITIALIZED, grading_progress=GP.NOT_READY), _result("55"), "lms_only"),
])
def test_the_read_back_says_how_the_lms_differs_from_what_it_accepted(accepted: Score | None,
                                                                     result: rules.LmsResult | None,
                                                                     kind: str | None) -> None:
    assert rules.compare_result(accepted, result) == kind
    if kind is not None:
        assert rules.DIFFERENCE_TEXT[kind]


# -- what the LMS holds after a conflict --------------------------------------------------------------

NOT_READY = Score(user_id="7", activity_progress=AP.INITIALIZED, grading_progress=GP.NOT_READY)


@pytest.mark.parametrize("score, result, holds", [
    (_graded(None, "8"), _result("80"), True),  # rescaled to a column of 100
    (_graded(None, "8"), _result("80", comment="Grade 1.3"), True),  # its comment unknown to the score: fine
    (_graded(None, "8"), _result("45"), False),
    (_graded(None, "8"), _result(None), False),
    (_graded(None, "8"), None, False),
    (NOT_READY, None, True),
    (NOT_READY, _result(None), True),
    (NOT_READY, _result("45"), False),
    (Score(user_id="7", activity_progress=AP.INITIALIZED, grading_progress=GP.NOT_READY, comment="Exempt."),
     None, False),  # its comment would be there
])
def test_what_the_lms_holds_is_compared_on_the_columns_scale(score: Score, result: rules.LmsResult | None,
                                                            holds: bool) -> None:
    assert rules.lms_holds(score, result) is holds


def test_a_different_comment_is_not_tallys_score() -> None:
    graded = Score(user_id="7", activity_progress=AP.COMPLETED, grading_progress=GP.FULLY_GRADED,
                   score_given=D("8"), score_maximum=D("10"), comment="Grade 1.3")
    assert rules.lms_holds(graded, _result("80", comment="Grade 1.3"))
    assert not rules.lms_holds(graded, _result("80", comment="Checked by hand"))


@pytest.mark.parametrize("sent, last, result, restamps, verdict", [
    # The LMS holds the refused score itself: an earlier attempt (a timeout) was stored.
    (_graded(None, "8"), _graded(None, "4"), _result("80"), 0, rules.Verdict.DELIVERED),
    # It holds what Tally last delivered: its own clock stamped that later (Moodle, not FullyGraded).
    (_graded(None, "8"), NOT_READY, _result(None), 0, rules.Verdict.RESTAMP),
    (_graded(None, "8"), _graded(None, "4"), _result("40"), 0, rules.Verdict.RESTAMP),
    (_graded(None, "8"), None, None, 0, rules.Verdict.RESTAMP),  # nothing delivered, nothing held
    # Something else: a teacher changed the grade in the LMS.
    (_graded(None, "8"), _graded(None, "4"), _result("45"), 0, rules.Verdict.SUPERSEDED),
    (_graded(None, "8"), None, _result("45"), 0, rules.Verdict.SUPERSEDED),
    (_graded(None, "8"), NOT_READY, _result("45"), 0, rules.Verdict.SUPERSEDED),
    # Stamped again too often: the conflict is believed.
    (_graded(None, "8"), NOT_READY, _result(None), rules.MAX_RESTAMPS, rules.Verdict.SUPERSEDED),
])
def test_a_conflict_is_read_back_before_it_is_believed(sent: Score, last: Score | None, result: rules.LmsResult | None,
                                                       restamps: int, verdict: rules.Verdict) -> None:
    assert rules.conflict_verdict(sent, last, result, restamps=restamps) is verdict


# -- issue 15: release and what the LMS column shows ------------------------------------------------

from tool.schemes.scale import GERMAN, LETTERS, PASS_FAIL  # noqa: E402


def test_german_grades_map_on_a_line_from_100_to_50_and_failing_to_0() -> None:
    numbers = rules.default_grade_numbers(GERMAN.grades, GERMAN.failing, {})
    assert numbers["1.0"] == Decimal("100.00") and numbers["4.0"] == Decimal("50.00") and numbers["5.0"] == 0
    assert numbers["2.3"] == Decimal("78.33")
    assert list(numbers.values()) == sorted(numbers.values(), reverse=True)


def test_pass_fail_is_1_and_0_and_letters_take_their_band_floor() -> None:
    assert rules.default_grade_numbers(PASS_FAIL.grades, PASS_FAIL.failing, {}) == {"pass": 1, "fail": 0}
    floors = {"A": Decimal(90), "B": Decimal(80), "C": Decimal(70), "D": Decimal(60), "F": Decimal(0)}
    assert rules.default_grade_numbers(LETTERS.grades, LETTERS.failing, floors) == floors


def test_lms_values_of_a_graded_score() -> None:
    facts = rules.ParticipationFacts(status="graded", points=Decimal("45"), grade="2.0")
    want = rules.assessment_desired(user_id="u", facts=facts, maximum=Decimal("60"))
    numbers = rules.default_grade_numbers(GERMAN.grades, GERMAN.failing, {})
    pct = rules.as_lms_value(want, mode="percent", grade="2.0", numbers=numbers, points_maximum=Decimal(60))
    assert (pct.score.score_given, pct.score.score_maximum, pct.score.comment) == (Decimal("75.00"), 100, "Grade 2.0")
    grade = rules.as_lms_value(want, mode="grade", grade="2.0", numbers=numbers, points_maximum=Decimal(60))
    assert (grade.score.score_given, grade.score.score_maximum, grade.score.comment) == (
        Decimal("83.33"), Decimal("100.00"), "Grade 2.0")
    assert rules.as_lms_value(want, mode="points", grade="2.0", numbers=numbers, points_maximum=Decimal(60)) == want
    # Points without a grade never show up as a grade number.
    bare = rules.as_lms_value(rules.assessment_desired(user_id="u", facts=rules.ParticipationFacts(
        status="graded", points=Decimal("45"), grade=None), maximum=Decimal(60)),
        mode="grade", grade=None, numbers=numbers, points_maximum=Decimal(60))
    assert bare.kind is rules.Kind.PROGRESS and bare.score.score_given is None


def test_what_needs_a_release() -> None:
    empty = rules.total_desired(user_id="u", has_entries=False, active_total=None, maximum=Decimal(100)).score
    graded = rules.total_desired(user_id="u", has_entries=True, active_total=Decimal(5), maximum=Decimal(100)).score
    assert not rules.needs_release(empty, None)  # an empty score tells nothing
    assert rules.needs_release(graded, None)
    assert rules.needs_release(empty, graded)  # it would clear a grade the LMS holds


def test_column_keys() -> None:
    assert rules.target_of_key("total") == "total" and rules.target_of_key("assessment-12") == "assessment:12"
    assert [rules.target_of_key(k) for k in ("assessment-", "assessment-01", "assessment-x", "totals", "",
                                             "assessment-2147483648", "assessment-١٢")] == [None] * 7
    assert rules.column_key("assessment:12") == "assessment-12"
    assert rules.moodle_scale(("A", "B", "F")) == "F,B,A"
