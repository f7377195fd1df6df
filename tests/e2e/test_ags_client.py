"""The AGS client against the sandbox LMS in Moodle and Canvas modes, over real HTTP.

Scores, the Canvas submission extension, pooling, every outcome the worker must tell apart
(accepted, superseded, retry, failed) with faults injected in the sandbox, line items
(find with filters and paging, create, update by GET then PUT) and the results read-back.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from decimal import Decimal

import pytest

from tool.ags.client import is_canvas
from tool.ags.http import AgsRefused, AgsUnavailable
from tool.ags.lineitems import LineItem
from tool.ags.score import CANVAS_SUBMISSION, ActivityProgress, GradingProgress, Score
from tool.clock import utcnow
from tests.e2e.ags_support import WEEK_1, Ags, graded, open_ags
from tests.e2e.conftest import NewStack, Stack


@pytest.fixture(params=["moodle", "canvas"])
def stack(request: pytest.FixtureRequest, new_stack: NewStack) -> Stack:
    """Tool + sandbox in each mode; the sandbox keeps connections alive (the `ags` fixture uses it)."""
    return new_stack(request.param, keepalive=True)


@pytest.fixture
def moodle(new_stack: NewStack) -> Stack:
    """Tool + sandbox in moodle mode only; the sandbox keeps connections alive."""
    return new_stack("moodle", keepalive=True)


def last_post(ags: Ags, user_id: str):  # type: ignore[no-untyped-def]
    return ags.platform.store.posts_for(WEEK_1, user_id)[-1]


# -- scores ----------------------------------------------------------------------------------


def test_a_graded_score_with_its_comment_reaches_the_gradebook(ags: Ags) -> None:
    user = ags.student()

    outcome = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(user, "8.5", 10, comment="Grade 1.3"))

    assert (outcome.kind, outcome.status) == ("accepted", 200)
    result = ags.platform.store.result(WEEK_1, user)
    assert result.final == pytest.approx(85.0)  # rescaled to the line item's maximum of 100
    assert result.comment == "Grade 1.3"
    assert (result.activity_progress, result.grading_progress) == ("Completed", "FullyGraded")


def test_the_registration_is_recognised_as_canvas_only_in_canvas_mode(ags: Ags) -> None:
    assert is_canvas(ags.reg) == (ags.platform.mode == "canvas")


def test_canvas_gets_the_submission_extension_so_no_score_opens_a_new_attempt(ags: Ags) -> None:
    user = ags.student()

    start = utcnow() - dt.timedelta(seconds=10)
    for n, points in enumerate((5, 6, 7)):  # a second apart: Moodle refuses two scores within one second
        score = graded(user, points, timestamp=start + dt.timedelta(seconds=n))
        assert ags.client.post_score(ags.reg, ags.lineitem_url(), score).kind == "accepted"

    body = last_post(ags, user).body
    if ags.platform.mode == "canvas":
        assert body[CANVAS_SUBMISSION] == {"new_submission": False}
        assert ags.platform.store.result(WEEK_1, user).attempts == 0
    else:
        assert CANVAS_SUBMISSION not in body


def test_extra_credit_passes_through_and_moodle_clamps_only_the_final_grade(ags: Ags) -> None:
    user = ags.student()

    outcome = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(user, 15, 10))

    assert outcome.kind == "accepted"
    assert last_post(ags, user).body["scoreGiven"] == 15
    result = ags.platform.store.result(WEEK_1, user)
    assert result.raw == pytest.approx(150.0)
    assert result.final == pytest.approx(100.0 if ags.platform.mode == "moodle" else 150.0)


def test_a_score_without_score_given_clears_the_grade(ags: Ags) -> None:
    user = ags.student()
    ags.client.post_score(ags.reg, ags.lineitem_url(), graded(user, 8, timestamp=utcnow() - dt.timedelta(seconds=5)))
    clearing = Score(user_id=user, activity_progress=ActivityProgress.COMPLETED,
                     grading_progress=GradingProgress.FULLY_GRADED, score_maximum=Decimal(10), comment="voided")

    assert ags.client.post_score(ags.reg, ags.lineitem_url(), clearing).kind == "accepted"

    assert "scoreGiven" not in last_post(ags, user).body
    assert ags.platform.store.result(WEEK_1, user).final is None


def test_many_scores_go_concurrently_in_order_on_one_token_and_pooled_connections(ags: Ags) -> None:
    students = [u.id for u in ags.platform.add_students(40)]
    items = [(ags.lineitem_url(), graded(user, n % 11)) for n, user in enumerate(students)]

    outcomes = ags.client.post_scores(ags.reg, items)

    assert [o.kind for o in outcomes] == ["accepted"] * 40
    assert [ags.platform.store.result(WEEK_1, u).raw for u in students] == [(n % 11) * 10.0 for n in range(40)]
    assert ags.platform.token_requests == 1
    # Keep-alive: at most one connection per slot of the cap (plus the token request's).
    assert ags.platform.tcp_connections <= ags.client.settings.ags_concurrency + 1


def test_one_student_the_platform_refuses_fails_alone_with_the_platforms_words(ags: Ags) -> None:
    students = [ags.student(n) for n in range(4)]
    ags.platform.unenroll(students[2])

    outcomes = ags.client.post_scores(ags.reg, [(ags.lineitem_url(), graded(u, 7)) for u in students])

    assert [o.kind for o in outcomes] == ["accepted", "accepted", "failed", "accepted"]
    refused = outcomes[2]
    if ags.platform.mode == "moodle":
        assert (refused.status, refused.message) == (400, "Incorrect user: not an enrolled student of the course")
    else:
        assert (refused.status, refused.message) == (422, "User not found in course or is not a student")


# -- outcomes of faults ------------------------------------------------------------------------


def test_a_server_error_is_retried_later_and_the_next_try_is_accepted(ags: Ags) -> None:
    user = ags.student()
    ags.platform.faults.fail_next(1, 503)
    score = graded(user, 4, timestamp=utcnow())

    first = ags.client.post_score(ags.reg, ags.lineitem_url(), score)
    second = ags.client.post_score(ags.reg, ags.lineitem_url(), score)  # the same score, sent again later

    assert (first.kind, first.status) == ("retry", 503)
    assert first.message == "Service Unavailable"
    assert second.kind == "accepted"


def test_the_platform_being_down_is_a_retry(ags: Ags) -> None:
    ags.platform.faults.down = True

    outcome = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(), 4))

    assert (outcome.kind, outcome.status) == ("retry", 503)


def test_429_is_a_retry_after_the_seconds_the_platform_asks_for(ags: Ags) -> None:
    ags.platform.faults.fail_next(1, 429, retry_after=7)

    outcome = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(), 4))

    assert (outcome.kind, outcome.status, outcome.retry_after) == ("retry", 429, 7.0)


def test_retry_after_as_an_http_date_becomes_seconds(ags: Ags) -> None:
    when = email.utils.format_datetime(utcnow() + dt.timedelta(seconds=120), usegmt=True)
    ags.platform.faults.fail_next(1, 503, headers={"Retry-After": when})

    outcome = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(), 4))

    assert outcome.kind == "retry"
    assert outcome.retry_after is not None and 115 <= outcome.retry_after <= 120


def test_canvas_403_rate_limit_exceeded_is_a_retry_not_a_refusal(ags: Ags) -> None:
    ags.platform.faults.fail_next(1, 403, body="403 Forbidden (Rate Limit Exceeded)")
    ags.platform.faults.fail_next(1, 403)  # the JSON form: {"errors": [{"message": "Rate Limit Exceeded"}]}

    plain = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(), 4))
    as_json = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(), 4))

    assert (plain.kind, plain.status, plain.message) == ("retry", 403, "403 Forbidden (Rate Limit Exceeded)")
    assert (as_json.kind, as_json.status, as_json.message) == ("retry", 403, "Rate Limit Exceeded")


def test_another_403_is_a_failure(ags: Ags) -> None:
    ags.platform.faults.fail_next(1, 403, reason="Access token does not cover this call")

    outcome = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(), 4))

    assert (outcome.kind, outcome.status) == ("failed", 403)
    assert outcome.message == "Access token does not cover this call"


def test_an_older_timestamp_is_superseded(ags: Ags) -> None:
    user = ags.student()
    now = utcnow()
    ags.client.post_score(ags.reg, ags.lineitem_url(), graded(user, 9, timestamp=now))

    outcome = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(user, 3, timestamp=now - dt.timedelta(minutes=5)))

    assert outcome.kind == "superseded"
    if ags.platform.mode == "moodle":
        assert outcome.status == 409 and outcome.message.startswith("Refusing score with an earlier timestamp")
    else:  # Canvas's words (app/controllers/lti/ims/scores_controller.rb, verify_valid_timestamp)
        assert outcome.status == 400 and "before last updated timestamp" in outcome.message
    assert ags.platform.store.result(WEEK_1, user).raw == pytest.approx(90.0)


def test_moodle_answers_409_to_a_second_score_within_the_same_second(moodle: Stack) -> None:
    ags = open_ags(moodle)
    try:
        user = ags.student()
        first = utcnow().replace(microsecond=100_000)
        ags.client.post_score(ags.reg, ags.lineitem_url(), graded(user, 5, timestamp=first))

        outcome = ags.client.post_score(ags.reg, ags.lineitem_url(),
                                        graded(user, 6, timestamp=first.replace(microsecond=900_000)))

        assert (outcome.kind, outcome.status) == ("superseded", 409)
    finally:
        ags.close()


def test_a_timeout_is_a_retry_without_a_status(stack: Stack) -> None:
    ags = open_ags(stack, http_timeout_seconds=1.0)
    try:
        # The token first, before any latency: on a busy machine the token request itself could
        # outlast a short timeout, and this test is about the score post's.
        ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(), 1))
        ags.platform.faults.latency_ms = 3000  # services only

        outcome = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(), 4))

        assert (outcome.kind, outcome.status) == ("retry", None)
        assert "in time" in outcome.message
    finally:
        ags.platform.faults.latency_ms = 0
        ags.close()


def test_an_unreachable_platform_is_a_retry_without_a_status(ags: Ags) -> None:
    dead = ags.lineitem_url().replace(f":{ags.stack.sandbox.port}", ":9")  # discard port: nobody listens

    ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(), 1))  # token first
    outcome = ags.client.post_score(ags.reg, dead, graded(ags.student(), 4))

    assert (outcome.kind, outcome.status) == ("retry", None)
    assert "could not be reached" in outcome.message


def test_a_broken_line_item_url_fails_instead_of_retrying_forever(ags: Ags) -> None:
    outcome = ags.client.post_score(ags.reg, "lineitems/1/lineitem", graded(ags.student(), 4))

    assert (outcome.kind, outcome.status) == ("failed", None)
    assert "Not a usable AGS URL" in outcome.message


def test_a_refused_token_request_fails_with_the_token_endpoints_words(ags: Ags) -> None:
    ags.platform.faults.fail_next(1, 400, reason="invalid_client", where="token")

    outcome = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(), 4))

    assert (outcome.kind, outcome.status) == ("failed", 400)
    assert "refused Tally an access token" in outcome.message and "invalid_client" in outcome.message


def test_a_token_endpoint_that_is_down_is_a_retry(ags: Ags) -> None:
    ags.platform.faults.fail_next(1, 503, where="token")

    outcome = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(), 4))

    assert (outcome.kind, outcome.status) == ("retry", 503)


# -- line items --------------------------------------------------------------------------------


def test_a_created_line_item_is_found_again_by_resource_id_tag_and_link(ags: Ags) -> None:
    url = ags.platform.paths.lineitems_url
    # Canvas takes a resourceLinkId only of an assignment's link (rl-1; see test_canvas_code.py).
    link = "rl-2" if ags.platform.mode == "moodle" else "rl-1"
    wanted = LineItem(id=None, label="Exam 1", score_maximum=Decimal("60.5"), resource_id="assessment-7",
                      tag="tally-exam", resource_link_id=link)

    created = ags.client.create_lineitem(ags.reg, url, wanted)

    assert created.id is not None and created.id.startswith(ags.platform.config.base_url)
    assert (created.label, created.score_maximum, created.resource_id, created.tag, created.resource_link_id) == (
        "Exam 1", Decimal("60.5"), "assessment-7", "tally-exam", link)
    assert ags.client.list_lineitems(ags.reg, url, resource_id="assessment-7") == [created]
    assert ags.client.list_lineitems(ags.reg, url, tag="tally-exam", resource_link_id=link) == [created]
    assert ags.client.list_lineitems(ags.reg, url, resource_id="assessment-8") == []
    assert ags.client.get_lineitem(ags.reg, created.id) == created


def test_listing_line_items_follows_every_next_page(ags: Ags) -> None:
    url = ags.platform.paths.lineitems_url
    made = [ags.client.create_lineitem(ags.reg, url, LineItem(None, f"Quiz {n}", Decimal(10), tag="quiz"))
            for n in range(5)]

    found = ags.client.list_lineitems(ags.reg, url, tag="quiz", limit=2)

    assert found == made
    assert len(ags.client.list_lineitems(ags.reg, url, limit=2)) == 6  # with the seeded Week 1


def test_updating_a_line_item_keeps_what_the_platform_added(ags: Ags) -> None:
    item = ags.platform.store.line_items[WEEK_1]
    item.start_date_time = "2026-11-01T08:00:00+00:00"  # set in the LMS, unknown to Tally
    item.tag = "teacher-tag"

    updated = ags.client.update_lineitem(ags.reg, LineItem(ags.lineitem_url(), "Week 1 (final)", Decimal(40)))

    assert (updated.id, updated.label, updated.score_maximum) == (ags.lineitem_url(), "Week 1 (final)", Decimal(40))
    assert (item.label, item.score_maximum) == ("Week 1 (final)", 40.0)
    assert (item.start_date_time, item.tag) == ("2026-11-01T08:00:00+00:00", "teacher-tag")


def test_a_missing_line_item_is_refused_with_the_platforms_words(ags: Ags) -> None:
    with pytest.raises(AgsRefused) as err:
        ags.client.get_lineitem(ags.reg, ags.lineitem_url(999))

    assert err.value.status == 404
    assert err.value.words == ("Line item not found" if ags.platform.mode == "moodle"
                               else "The specified resource does not exist.")


def test_a_line_item_call_during_an_outage_is_unavailable_not_refused(ags: Ags) -> None:
    ags.platform.faults.fail_next(1, 502)

    with pytest.raises(AgsUnavailable) as err:
        ags.client.list_lineitems(ags.reg, ags.platform.paths.lineitems_url)

    assert err.value.status == 502


# -- results -----------------------------------------------------------------------------------


def test_results_are_read_back_page_by_page(ags: Ags) -> None:
    students = [ags.student(n) for n in range(5)]
    ags.client.post_scores(ags.reg, [(ags.lineitem_url(), graded(u, 2 * n + 1, comment=f"c{n}"))
                                     for n, u in enumerate(students)])

    results = list(ags.client.results(ags.reg, ags.lineitem_url(), limit=2))

    by_user = {r["userId"]: r for r in results}
    assert len(results) == 5 and set(by_user) == set(students)
    mine = by_user[students[2]]
    assert mine["comment"] == "c2"
    if ags.platform.mode == "moodle":
        assert (mine["resultScore"], mine["resultMaximum"]) == (Decimal(50), Decimal(100))  # 5/10 on 100
        assert "timestamp" in mine
    else:  # as the tool sent it, no timestamp (app/serializers/lti/ims/results_serializer.rb)
        assert (mine["resultScore"], mine["resultMaximum"]) == (Decimal(5), Decimal(10))
        assert "timestamp" not in mine


def test_results_show_a_grade_edited_in_the_lms(ags: Ags) -> None:
    user = ags.student()
    ags.client.post_score(ags.reg, ags.lineitem_url(), graded(user, 8))
    ags.platform.teacher_edits_grade(WEEK_1, user, 95.0)  # a teacher changed it in the gradebook

    [result] = list(ags.client.results(ags.reg, ags.lineitem_url(), user_id=user))

    # Canvas scales the teacher's grade to the maximum Tally sent (app/models/lti/result.rb).
    expected = (Decimal(95), Decimal(100)) if ags.platform.mode == "moodle" else (Decimal("9.5"), Decimal(10))
    assert (result["resultScore"], result["resultMaximum"]) == expected
