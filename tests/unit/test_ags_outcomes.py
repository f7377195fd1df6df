"""What the AGS client makes of a platform's answers (pure: responses built in memory)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import requests

from tool.ags.client import _token_outcome, classify, covers
from tool.ags.score import ActivityProgress, GradingProgress, Score
from tool.delivery.guard import held_message
from tool.delivery.rules import LmsResult
from tool.lti.assertion import TokenRequestError
from tool.lti.claims import SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_NRPS, SCOPE_RESULT_READONLY, SCOPE_SCORE


def answer(status: int, body: Any = None, *, text: str | None = None, reason: str = "") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.reason = reason
    resp._content = (text if text is not None else json.dumps(body)).encode()  # noqa: SLF001
    return resp


UNPUBLISHED = {"errors": [{"field": "grade", "error_code": None,
                           "message": "cannot be changed at this time: This assignment is still unpublished"}]}
CLOSED = {"errors": [{"field": "grade", "error_code": None, "message": "cannot be changed at this time: This "
                      "assignment is in a closed grading period for this student"}]}
CONCLUDED = {"errors": {"type": "unprocessable_entity",
                        "message": "This course has concluded. AGS requests will no longer be accepted for this course."}}
NOT_STUDENT = {"errors": {"type": "unprocessable_entity", "message": "User not found in course or is not a student"}}


@pytest.mark.parametrize(("resp", "kind", "words"), [
    (answer(200, {"resultUrl": "x"}), "accepted", ""),
    (answer(422, UNPUBLISHED), "waiting", "cannot be changed at this time: This assignment is still unpublished"),
    (answer(422, CLOSED), "waiting", "cannot be changed at this time: This assignment is in a closed grading period "
                                     "for this student"),
    (answer(422, CONCLUDED), "waiting", CONCLUDED["errors"]["message"]),
    (answer(422, NOT_STUDENT), "failed", "User not found in course or is not a student"),
    (answer(422, {"errors": {"type": "unprocessable_entity", "message": "ScoreGiven must be greater than or equal "
                                                                        "to 0"}}), "failed",
     "ScoreGiven must be greater than or equal to 0"),
    (answer(403, text="403 Forbidden (Rate Limit Exceeded)\n"), "retry", "403 Forbidden (Rate Limit Exceeded)"),
    (answer(401, {"errors": {"type": "unauthorized", "message": "Insufficient permissions"}}), "failed",
     "Insufficient permissions"),
    (answer(400, {"errors": {"type": "bad_request", "message": "Provided timestamp of a before last updated "
                                                               "timestamp of b"}}), "superseded",
     "Provided timestamp of a before last updated timestamp of b"),
    (answer(409, [], reason="Refusing score with an earlier timestamp"), "superseded",
     "Refusing score with an earlier timestamp"),
])
def test_each_answer_is_classified_with_the_platforms_words(resp: requests.Response, kind: str, words: str) -> None:
    outcome = classify(resp, waiting_seconds=900.0)

    assert (outcome.kind, outcome.message) == (kind, words)
    assert outcome.retry_after == (900.0 if kind == "waiting" else None)


@pytest.mark.parametrize(("status", "body", "kind"), [
    (403, "403 Forbidden (Rate Limit Exceeded)\n", "retry"),
    (429, "", "retry"),
    (503, "", "retry"),
    (None, "", "retry"),
    (400, '{"error": "invalid_scope", "error_description": "… not granted: x"}', "failed"),
    (401, '{"error": "invalid_client"}', "failed"),
])
def test_a_refused_token_request_is_a_retry_only_when_the_platform_throttles_or_fails(
        status: int | None, body: str, kind: str) -> None:
    exc = TokenRequestError("token endpoint answered", details={"status": status, "reason": "", "body": body})

    assert _token_outcome(exc).kind == kind


ALL = frozenset({SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY, SCOPE_SCORE, SCOPE_NRPS})


@pytest.mark.parametrize(("granted", "needed", "covered"), [
    (ALL, (SCOPE_SCORE,), True),
    (ALL, (SCOPE_NRPS,), True),
    (frozenset({SCOPE_LINEITEM, SCOPE_SCORE}), (SCOPE_LINEITEM_READONLY,), True),  # the full scope reads too
    (frozenset({SCOPE_LINEITEM_READONLY, SCOPE_SCORE}), (SCOPE_LINEITEM,), False),
    (frozenset({SCOPE_SCORE}), (SCOPE_RESULT_READONLY,), False),
    (frozenset({SCOPE_SCORE}), (SCOPE_SCORE, SCOPE_NRPS), False),
])
def test_a_token_for_the_granted_set_covers_a_call_only_when_every_scope_it_needs_is_in_it(
        granted: frozenset[str], needed: tuple[str, ...], covered: bool) -> None:
    assert covers(granted, needed) is covered


def graded(points: str) -> Score:
    return Score(user_id="u", activity_progress=ActivityProgress.COMPLETED,
                 grading_progress=GradingProgress.FULLY_GRADED, score_given=Decimal(points),
                 score_maximum=Decimal(10))


@pytest.mark.parametrize(("kind", "lms", "says"), [
    ("changed", LmsResult("u", Decimal("9.5"), Decimal(10)), "Canvas holds 9.50 / 10.00 for this student, not the "
                                                             "8.00 / 10.00 Tally delivered"),
    ("cleared", None, "Canvas holds no grade for this student, though Tally delivered 8.00 / 10.00"),
])
def test_a_held_score_says_what_canvas_holds_and_what_to_do(kind: str, lms: LmsResult | None, says: str) -> None:
    text = held_message(kind, graded("8"), lms)

    assert text.startswith(says)
    assert "Send Tally's grade again" in text
