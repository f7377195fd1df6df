"""The sandbox's canvas mode behaves as Canvas's code does (instructure/canvas-lms).

Each test names the Canvas file (and method) whose behaviour it pins, so a reader can check
the fact at its source. Paths are relative to the canvas-lms repository.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import re
from typing import Any

import pytest

from tests.sandbox.conftest import LINEITEM_TYPE, Sandbox, iso, now_utc, score
from tests.sandbox.test_launch import AGS_CLAIM, LTI, NRPS_CLAIM, auth_params, form_fields

AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
WEEK_1 = 1  # the seeded assignment's own line item (rl-1), 100 points


def claims(sandbox: Sandbox, link_id: str, user_id: str | None = None) -> dict[str, Any]:
    """The id_token claims of a launch of `link_id`."""
    return sandbox.platform.id_token_claims(user_id or sandbox.platform.teacher.id, nonce="n",
                                            resource_link_id=link_id)


def item_id(url: str) -> int:
    """The numeric id at the end of a Canvas line item URL."""
    match = re.search(r"/line_items/(\d+)", url)
    assert match, url
    return int(match.group(1))


def student(sandbox: Sandbox, n: int = 0) -> str:
    """The `sub` of the n-th seeded student."""
    return sandbox.platform.students[n].id


def later(seconds: float = 1.0) -> str:
    """A timestamp `seconds` from now."""
    return iso(now_utc() + dt.timedelta(seconds=seconds))


# -- launches: lib/lti/messages/resource_link_request.rb, jwt_message.rb --------------------------


def test_a_course_navigation_launch_names_the_course_by_its_opaque_id_and_no_line_item(canvas: Sandbox) -> None:
    """resource_link_request.rb `launch_resource_link_id` (Lti::Asset.opaque_identifier_for(@context))
    and `add_line_item_url_to_ags_claim!` (only for an assignment's line item)."""
    nav = canvas.platform.course_navigation_link

    body = claims(canvas, nav.id)

    assert re.fullmatch(r"[0-9a-f]{40}", body[LTI + "resource_link"]["id"])
    assert body[LTI + "resource_link"]["title"] == canvas.platform.course.title
    assert body[AGS_CLAIM]["lineitems"] == canvas.platform.paths.lineitems_url
    assert "lineitem" not in body[AGS_CLAIM]


def test_an_assignment_launch_names_the_assignments_own_line_item(canvas: Sandbox) -> None:
    """resource_link_request.rb `line_item_for_assignment` (the assignment's first line item)."""
    body = claims(canvas, "rl-1")

    assert body[AGS_CLAIM]["lineitem"] == canvas.platform.paths.lineitem_url(WEEK_1)


def test_a_module_link_launch_names_no_line_item(canvas: Sandbox) -> None:
    """resource_link_request.rb: no assignment, no `lineitem`."""
    assert "lineitem" not in claims(canvas, "rl-2")[AGS_CLAIM]


def test_the_ags_claim_lists_the_developer_keys_scopes_and_nrps_only_when_on_the_key(canvas: Sandbox) -> None:
    """jwt_message.rb `add_assignment_and_grade_service_claims!` (developer_key.scopes & LTI_AGS_SCOPES)."""
    canvas.platform.tool_scopes = [AGS + "score", AGS + "lineitem"]

    body = claims(canvas, "rl-1")

    assert sorted(body[AGS_CLAIM]["scope"]) == sorted([AGS + "score", AGS + "lineitem"])
    assert NRPS_CLAIM not in body


def test_without_an_ags_scope_on_the_key_there_is_no_ags_claim(canvas: Sandbox) -> None:
    """jwt_message.rb `include_assignment_and_grade_service_claims?`."""
    canvas.platform.tool_scopes = ["https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"]

    assert AGS_CLAIM not in claims(canvas, "rl-1")


# -- line items: app/controllers/lti/ims/line_items_controller.rb, concerns/gradebook_services.rb ---


def test_a_line_item_for_the_course_navigation_link_is_404(canvas: Sandbox) -> None:
    """gradebook_services.rb `prepare_line_item_for_ags!`: Assignment.find_by(lti_context_id:) or RecordNotFound."""
    nav = canvas.platform.course_navigation_link

    answer = canvas.create_line_item({"label": "Total", "scoreMaximum": 100, "resourceLinkId": nav.id})

    assert answer.status_code == 404
    assert answer.json() == {"errors": [{"message": "The specified resource does not exist."}]}
    assert len(canvas.platform.store.line_items) == 1


def test_a_line_item_for_a_module_link_is_404(canvas: Sandbox) -> None:
    """gradebook_services.rb `prepare_line_item_for_ags!`: a link that is not an assignment's."""
    answer = canvas.create_line_item({"label": "Exam", "scoreMaximum": 10, "resourceLinkId": "rl-2"})

    assert answer.status_code == 404


def test_a_line_item_without_a_resource_link_is_a_new_assignment_whose_grades_show(canvas: Sandbox) -> None:
    """app/models/lti/line_item.rb `create_line_item!` (Assignment.create!), line_items_controller.rb `create`."""
    created = canvas.create_line_item({"label": "Tally total", "scoreMaximum": 40, "resourceId": "tally-total",
                                       "tag": "tally-total"})
    assert created.status_code == 201
    assert "resourceLinkId" not in created.json()
    new_id = item_id(created.json()["id"])
    assignment = canvas.platform.assignment(line_item_id=new_id)
    assert (assignment.title, assignment.points_possible, assignment.resource_link_id) == ("Tally total", 40.0, None)

    answer = canvas.post_score(new_id, score(student(canvas), given=8, maximum=10))

    assert answer.status_code == 200
    assert canvas.platform.store.result(new_id, student(canvas)).raw == 32  # rescaled to the 40 points


def test_a_second_line_item_on_an_assignments_link_stores_results_but_writes_no_grade(canvas: Sandbox) -> None:
    """line_items_controller.rb `create` (attached to the link's assignment), app/models/lti/line_item.rb
    `assignment_line_item?`, scores_controller.rb `score_submission` (returns unless assignment_line_item?)."""
    attached = canvas.create_line_item({"label": "Extra", "scoreMaximum": 10, "resourceLinkId": "rl-1"})
    assert attached.status_code == 201
    assert attached.json()["resourceLinkId"] == "rl-1"
    extra = item_id(attached.json()["id"])
    user = student(canvas)

    answer = canvas.post_score(extra, score(user, given=7, maximum=10))

    assert answer.status_code == 200
    stored = canvas.platform.store.result(extra, user)
    assert stored.raw is None and stored.final is None  # no grade in the gradebook
    assert (stored.result_score, stored.result_maximum) == (7, 10)  # but the result is kept
    results = canvas.call("GET", canvas.platform.paths.results_url(extra)).json()
    assert [(r["resultScore"], r["resultMaximum"]) for r in results] == [(7, 10)]
    assert canvas.platform.store.result(WEEK_1, user) is None  # the assignment's grade is untouched
    # The launch still names the assignment's own line item, not the attached one.
    assert claims(canvas, "rl-1")[AGS_CLAIM]["lineitem"] == canvas.platform.paths.lineitem_url(WEEK_1)


def test_listing_by_resource_link_id_lists_every_line_item_of_its_assignment(canvas: Sandbox) -> None:
    """line_items_controller.rb `index_query`: assignments joined through the link."""
    extra = canvas.create_line_item({"label": "Extra", "scoreMaximum": 10, "resourceLinkId": "rl-1"}).json()
    canvas.create_line_item({"label": "Elsewhere", "scoreMaximum": 10})
    url = canvas.platform.paths.lineitems_url + "?resource_link_id=rl-1"

    listed = canvas.call("GET", url).json()

    assert [i["id"] for i in listed] == [canvas.platform.paths.lineitem_url(WEEK_1), extra["id"]]
    nav = canvas.platform.course_navigation_link.id
    assert canvas.call("GET", canvas.platform.paths.lineitems_url + f"?resource_link_id={nav}").json() == []


def test_updating_the_assignments_own_line_item_renames_the_assignment(canvas: Sandbox) -> None:
    """line_items_controller.rb `update` → `update_assignment` if assignment_line_item?."""
    item = canvas.call("GET", canvas.platform.paths.lineitem_url(WEEK_1)).json()

    canvas.call("PUT", item["id"], data=json.dumps({**item, "label": "Week 1 points", "scoreMaximum": 20}),
                headers={"Content-Type": LINEITEM_TYPE})

    assignment = canvas.platform.assignment(line_item_id=WEEK_1)
    assert (assignment.title, assignment.points_possible) == ("Week 1 points", 20.0)


def test_the_line_item_canvas_made_with_the_assignment_cannot_be_deleted_401(canvas: Sandbox) -> None:
    """line_items_controller.rb `destroy`: `head :unauthorized and return if line_item.coupled`."""
    answer = canvas.call("DELETE", canvas.platform.paths.lineitem_url(WEEK_1))

    assert answer.status_code == 401
    assert answer.text == ""
    assert WEEK_1 in canvas.platform.store.line_items


# -- paging: lib/api.rb (PER_PAGE 10, MAX_PER_PAGE 100), gradebook_services.rb `pagination_args` -----


def test_line_items_come_ten_a_page_with_the_query_kept_in_the_links(canvas: Sandbox) -> None:
    for n in range(24):
        canvas.create_line_item({"label": f"Item {n}", "scoreMaximum": 10, "tag": "quiz"})
    url = canvas.platform.paths.lineitems_url + "?tag=quiz"

    first = canvas.call("GET", url)

    assert len(first.json()) == 10
    next_url = first.links["next"]["url"]
    assert "tag=quiz" in next_url and "page=2" in next_url and "per_page=10" in next_url
    assert {"current", "next", "first", "last"} <= set(first.links)
    labels = [i["label"] for i in first.json()]
    while "next" in first.links:
        first = canvas.call("GET", first.links["next"]["url"])
        labels += [i["label"] for i in first.json()]
    assert labels == [f"Item {n}" for n in range(24)]


def test_limit_is_the_page_size_up_to_one_hundred(canvas: Sandbox) -> None:
    for n in range(120):
        canvas.create_line_item({"label": f"Item {n}", "scoreMaximum": 10})

    small = canvas.call("GET", canvas.platform.paths.lineitems_url + "?limit=3")
    huge = canvas.call("GET", canvas.platform.paths.lineitems_url + "?limit=500")

    assert len(small.json()) == 3 and "limit=3" in small.links["next"]["url"]
    assert len(huge.json()) == 100


def test_results_page_ten_at_a_time_too(canvas: Sandbox) -> None:
    canvas.platform.add_students(15)
    for user in canvas.platform.students:
        if user.is_student:
            assert canvas.post_score(WEEK_1, score(user.id)).status_code == 200

    answer = canvas.call("GET", canvas.platform.paths.results_url(WEEK_1))

    assert len(answer.json()) == 10 and "next" in answer.links


# -- NRPS: providers/memberships_provider.rb (MAX_PAGE_SIZE 50), names_and_roles_serializer.rb -------


def test_nrps_pages_fifty_members_at_most_and_drops_limit_from_its_links(canvas: Sandbox) -> None:
    canvas.platform.add_students(120)

    default = canvas.call("GET", canvas.platform.paths.memberships_url)
    asked = canvas.call("GET", canvas.platform.paths.memberships_url + "?limit=80")

    assert len(default.json()["members"]) == 50
    assert len(asked.json()["members"]) == 50
    assert "limit=" not in asked.links["next"]["url"] and "per_page=50" in asked.links["next"]["url"]


def test_nrps_lists_active_members_only_and_every_one_as_active(canvas: Sandbox) -> None:
    """names_and_roles_serializer.rb `member` (status: "Active"); course_memberships_provider.rb active_users."""
    gone, paused = canvas.platform.students[:2]
    canvas.platform.mark_deleted(gone.id)
    canvas.platform.set_member_status(paused.id, "Inactive")

    members = canvas.call("GET", canvas.platform.paths.memberships_url).json()["members"]

    assert {m["status"] for m in members} == {"Active"}
    assert {gone.id, paused.id}.isdisjoint(m["user_id"] for m in members)


# -- scores: app/controllers/lti/ims/scores_controller.rb --------------------------------------------


def test_the_student_view_user_is_accepted(canvas: Sandbox) -> None:
    """gradebook_services.rb `verify_user_in_context`: user_is_student?(user, include_fake_student: true)."""
    test_student = canvas.platform.student_view_user()

    answer = canvas.post_score(WEEK_1, score(test_student.id))

    assert answer.status_code == 200
    assert canvas.platform.store.result(WEEK_1, test_student.id).raw == 80


def test_a_user_who_is_no_student_is_422_in_canvas_words(canvas: Sandbox) -> None:
    """gradebook_services.rb `verify_user_in_context`, lti_services.rb `render_error`."""
    answer = canvas.post_score(WEEK_1, score(canvas.platform.teacher.id))

    assert answer.status_code == 422
    assert answer.json() == {"errors": {"type": "unprocessable_entity",
                                        "message": "User not found in course or is not a student"}}


def test_a_negative_score_is_422(canvas: Sandbox) -> None:
    """scores_controller.rb `verify_valid_score_given`."""
    answer = canvas.post_score(WEEK_1, score(student(canvas), given=-1, maximum=10))

    assert answer.status_code == 422
    assert answer.json()["errors"]["message"] == "ScoreGiven must be greater than or equal to 0"


def test_a_score_maximum_of_zero_is_422(canvas: Sandbox) -> None:
    """scores_controller.rb `verify_valid_score_maximum` (zero only for a zero-point line item)."""
    answer = canvas.post_score(WEEK_1, score(student(canvas), given=0, maximum=0))

    assert answer.status_code == 422
    assert "cannot be zero" in answer.json()["errors"]["message"]


def test_a_clearing_score_needs_no_maximum(canvas: Sandbox) -> None:
    """scores_controller.rb: the maximum and given checks `return if reset_score?`."""
    answer = canvas.post_score(WEEK_1, score(student(canvas), given=None, maximum=None, grading="NotReady",
                                             activity="Initialized"))

    assert answer.status_code == 200


def test_a_future_timestamp_is_accepted(canvas: Sandbox) -> None:
    """scores_controller.rb `verify_valid_timestamp` checks only that it is not older than updated_at."""
    answer = canvas.post_score(WEEK_1, score(student(canvas), timestamp=later(3600)))

    assert answer.status_code == 200


def test_a_future_submitted_at_is_400(canvas: Sandbox) -> None:
    """scores_controller.rb `verify_valid_submitted_at` (one minute of tolerance)."""
    body = score(student(canvas), submission={"submittedAt": later(600)})

    answer = canvas.post_score(WEEK_1, body)

    assert answer.status_code == 400
    assert "in the future" in answer.json()["errors"]["message"]


def test_an_older_timestamp_is_400_in_canvas_words(canvas: Sandbox) -> None:
    """scores_controller.rb `verify_valid_timestamp`."""
    user = student(canvas)
    canvas.post_score(WEEK_1, score(user, timestamp=later(0)))

    answer = canvas.post_score(WEEK_1, score(user, timestamp=later(-60)))

    assert answer.status_code == 400
    assert "before last updated timestamp" in answer.json()["errors"]["message"]


def test_pending_manual_with_a_score_writes_the_grade(canvas: Sandbox) -> None:
    """app/models/lti/result.rb ACCEPT_GIVEN_SCORE_TYPES = FullyGraded, PendingManual."""
    user = student(canvas)

    canvas.post_score(WEEK_1, score(user, given=6, maximum=10, grading="PendingManual", activity="Submitted"))

    stored = canvas.platform.store.result(WEEK_1, user)
    assert stored.raw == 60 and stored.needs_grading


def test_results_report_the_score_as_the_tool_sent_it_and_no_timestamp(canvas: Sandbox) -> None:
    """app/serializers/lti/ims/results_serializer.rb (resultScore, resultMaximum, comment; no timestamp)."""
    user = student(canvas)
    canvas.post_score(WEEK_1, score(user, given=15, maximum=10, comment="Bonus"))

    [result] = canvas.call("GET", canvas.platform.paths.results_url(WEEK_1)).json()

    assert (result["resultScore"], result["resultMaximum"], result["comment"]) == (15, 10, "Bonus")
    assert "timestamp" not in result
    assert canvas.platform.store.result(WEEK_1, user).raw == 150  # the grade itself is rescaled


# -- unpublished, closed grading period, concluded course ---------------------------------------------


def test_an_unpublished_assignment_refuses_every_grade_until_it_is_published(canvas: Sandbox) -> None:
    """app/models/submission.rb `ensure_grader_can_grade` (GRADE_STATUS_MESSAGES_MAP[:unpublished])."""
    user = student(canvas)
    assignment = canvas.platform.assignment(line_item_id=WEEK_1)
    canvas.platform.publish(assignment.id, False)

    refused = canvas.post_score(WEEK_1, score(user, timestamp=later(0)))
    canvas.platform.publish(assignment.id)
    accepted = canvas.post_score(WEEK_1, score(user, timestamp=later(1)))

    assert refused.status_code == 422
    assert "This assignment is still unpublished" in refused.json()["errors"][0]["message"]
    assert refused.json()["errors"][0]["field"] == "grade"
    assert accepted.status_code == 200
    assert canvas.platform.store.result(WEEK_1, user).raw == 80


def test_a_closed_grading_period_refuses_grades(canvas: Sandbox) -> None:
    """app/models/submission.rb GRADE_STATUS_MESSAGES_MAP[:assignment_in_closed_grading_period]."""
    canvas.platform.set_grading_period_closed(canvas.platform.assignment(line_item_id=WEEK_1).id)

    answer = canvas.post_score(WEEK_1, score(student(canvas)))

    assert answer.status_code == 422
    assert "closed grading period" in answer.json()["errors"][0]["message"]


def test_an_unpublished_assignment_takes_a_score_that_changes_no_grade(canvas: Sandbox) -> None:
    """app/models/submission.rb `grader_can_grade?`: `return true unless grade_changed?`."""
    canvas.platform.publish(canvas.platform.assignment(line_item_id=WEEK_1).id, False)

    answer = canvas.post_score(WEEK_1, score(student(canvas), given=None, maximum=None, grading="NotReady",
                                             activity="Initialized"))

    assert answer.status_code == 200


@pytest.mark.parametrize("status", [422, 404])
def test_a_concluded_course_refuses_every_grade_service_call(canvas: Sandbox, status: int) -> None:
    """gradebook_services.rb `verify_course_not_concluded` (422) or, without that feature flag,
    `Course.not_completed.find` (404)."""
    canvas.platform.conclude_course(status)

    answers = [canvas.post_score(WEEK_1, score(student(canvas))),
               canvas.call("GET", canvas.platform.paths.lineitems_url),
               canvas.call("GET", canvas.platform.paths.results_url(WEEK_1))]

    assert [a.status_code for a in answers] == [status] * 3
    if status == 422:
        assert "This course has concluded" in answers[0].json()["errors"]["message"]


# -- a teacher's edit: app/models/submission.rb `update_line_item_result`, lti/result.rb --------------


def test_a_teachers_edit_does_not_move_the_results_timestamp_so_a_later_score_overwrites_it(
        canvas: Sandbox) -> None:
    """app/models/lti/result.rb `update_score_for_submission` writes result_score with raw SQL:
    `updated_at` stays, and `verify_valid_timestamp` lets any newer tool score through."""
    user = student(canvas)
    sent_at = later(0)
    canvas.post_score(WEEK_1, score(user, given=8, maximum=10, timestamp=sent_at))

    edited = canvas.platform.teacher_edits_grade(WEEK_1, user, 95.0)

    assert edited.raw == 95 and edited.timestamp_text == sent_at
    [result] = canvas.call("GET", canvas.platform.paths.results_url(WEEK_1)).json()
    assert (result["resultScore"], result["resultMaximum"]) == (9.5, 10)  # scaled to what the tool sent
    overwrite = canvas.post_score(WEEK_1, score(user, given=8, maximum=10, timestamp=later(1)))
    assert overwrite.status_code == 200
    assert canvas.platform.store.result(WEEK_1, user).raw == 80  # the teacher's 95 is gone


def test_a_teachers_edit_in_moodle_is_stamped_now_and_protects_it_from_older_scores(moodle: Sandbox) -> None:
    """Moodle 4.5 (measured): the grader report stores the edit with the time of the edit."""
    user = student(moodle)
    old = iso(now_utc() - dt.timedelta(minutes=5))
    moodle.post_score(WEEK_1, score(user, given=8, maximum=10, timestamp=old))

    moodle.platform.teacher_edits_grade(WEEK_1, user, 95.0, comment="Re-marked")
    stale = moodle.post_score(WEEK_1, score(user, given=8, maximum=10,
                                            timestamp=iso(now_utc() - dt.timedelta(minutes=1))))

    assert stale.status_code == 409
    stored = moodle.platform.store.result(WEEK_1, user)
    assert (stored.raw, stored.comment) == (95, "Re-marked")


def test_the_gradebook_page_edits_a_grade(canvas: Sandbox) -> None:
    user = student(canvas)

    answer = canvas.http.post(canvas.url + "/gradebook/grades",
                              data={"line_item_id": WEEK_1, "user_id": user, "score": "42", "comment": ""})

    assert answer.status_code == 200 and "Gradebook" in answer.text  # back on the gradebook
    assert canvas.platform.store.result(WEEK_1, user).raw == 42


def test_the_gradebook_page_publishes_an_assignment(canvas: Sandbox) -> None:
    assignment = canvas.platform.assignment(line_item_id=WEEK_1)
    canvas.platform.publish(assignment.id, False)
    page = canvas.http.get(canvas.url + "/gradebook").text
    assert "unpublished" in page

    canvas.http.post(canvas.url + f"/gradebook/assignments/{assignment.id}/publish", data={"published": "1"})

    assert canvas.platform.assignment(assignment_id=assignment.id).published


# -- scopes: lib/canvas/oauth/provider.rb `valid_scopes?`, concerns/lti_services.rb -------------------


def test_a_token_request_with_a_scope_not_on_the_developer_key_is_refused_whole(canvas: Sandbox) -> None:
    """lib/canvas/oauth/provider.rb `valid_scopes?`, lib/canvas/oauth/invalid_scope_error.rb."""
    canvas.platform.tool_scopes = [AGS + "score", AGS + "lineitem"]

    answer = canvas.request_token([AGS + "score", AGS + "result.readonly"])

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_scope"
    assert AGS + "result.readonly" in answer.json()["error_description"]


def test_a_token_for_scopes_all_on_the_key_is_granted_with_them(canvas: Sandbox) -> None:
    canvas.platform.tool_scopes = [AGS + "score", AGS + "lineitem"]

    answer = canvas.request_token([AGS + "score", AGS + "lineitem"])

    assert answer.status_code == 200
    assert sorted(answer.json()["scope"].split()) == sorted([AGS + "score", AGS + "lineitem"])


def test_moodle_grants_the_scopes_it_allows_of_those_asked(moodle: Sandbox) -> None:
    moodle.platform.tool_scopes = [AGS + "score", AGS + "lineitem"]

    answer = moodle.request_token([AGS + "score", AGS + "result.readonly"])

    assert answer.status_code == 200 and answer.json()["scope"] == AGS + "score"


def test_a_call_the_token_does_not_cover_is_401_insufficient_permissions(canvas: Sandbox) -> None:
    """concerns/lti_services.rb `verify_access_scope` → render_error("Insufficient permissions", :unauthorized)."""
    token = canvas.token(AGS + "score")

    answer = canvas.call("GET", canvas.platform.paths.lineitems_url, token=token)

    assert answer.status_code == 401
    assert answer.json()["errors"]["message"] == "Insufficient permissions"


# -- throttling: app/middleware/request_throttle.rb ------------------------------------------------


def test_every_answer_reports_the_allowance_left_and_the_requests_cost(canvas: Sandbox) -> None:
    answer = canvas.call("GET", canvas.platform.paths.lineitems_url)

    assert float(answer.headers["X-Rate-Limit-Remaining"]) > 0
    assert float(answer.headers["X-Request-Cost"]) > 0


def test_a_full_bucket_answers_403_rate_limit_exceeded_without_retry_after(canvas: Sandbox) -> None:
    """request_throttle.rb `rate_limit_exceeded`, `LeakyBucket#full?` (count >= hwm)."""
    token = canvas.token()
    canvas.platform.throttle.configure(request_cost=150.0)  # four requests fill the 600 units

    answers = [canvas.call("GET", canvas.platform.paths.lineitems_url, token=token) for _ in range(6)]

    statuses = [a.status_code for a in answers]
    assert statuses[:3] == [200, 200, 200] and 403 in statuses
    throttled = answers[statuses.index(403)]
    assert throttled.text == "403 Forbidden (Rate Limit Exceeded)\n"
    assert "Retry-After" not in throttled.headers
    # What is left once the refused request's own reservation is given back: less than one request.
    assert float(throttled.headers["X-Rate-Limit-Remaining"]) <= canvas.platform.throttle.settings.up_front_cost
    assert "X-Request-Cost" not in throttled.headers


def test_the_bucket_leaks_ten_units_a_second_on_the_platforms_clock(canvas: Sandbox) -> None:
    """request_throttle.rb `outflow` (10) in the bucket's increment."""
    token = canvas.token()
    canvas.platform.throttle.configure(request_cost=600.0)
    canvas.call("GET", canvas.platform.paths.lineitems_url, token=token)
    assert canvas.call("GET", canvas.platform.paths.lineitems_url, token=token).status_code == 403

    canvas.platform.shift_clock(61)

    assert canvas.call("GET", canvas.platform.paths.lineitems_url, token=token).status_code == 200


def test_parallel_requests_reserve_their_up_front_cost(canvas: Sandbox) -> None:
    """request_throttle.rb `reserve_capacity`: 50 units held while each request runs."""
    token = canvas.token()
    canvas.platform.faults.latency_ms = 300  # keep requests in flight together
    canvas.platform.throttle.configure(hwm=200.0)  # four at once fill it

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: canvas.call("GET", canvas.platform.paths.lineitems_url,
                                                       token=token).status_code, range(8)))

    assert statuses.count(403) >= 1 and statuses.count(200) >= 1
    canvas.platform.faults.latency_ms = 0
    assert canvas.call("GET", canvas.platform.paths.lineitems_url, token=token).status_code == 200  # one at a time


def test_every_access_token_costs_two_hundred_units(canvas: Sandbox) -> None:
    """app/controllers/oauth2_provider_controller.rb `increment_request_cost(... "200")`."""
    answers = [canvas.request_token() for _ in range(4)]

    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[3].status_code == 403
    assert answers[3].text == "403 Forbidden (Rate Limit Exceeded)\n"


# -- login errors: app/controllers/lti/ims/authentication_controller.rb `set_oidc_error!` -------------


@pytest.mark.parametrize(("field", "value", "error"), [
    ("scope", "openid profile", "invalid_request_object"),
    ("nonce", None, "invalid_request_object"),
    ("client_id", "someone-else", "unauthorized_client"),
    ("login_hint", "999", "login_required"),
])
def test_a_refused_login_is_posted_back_to_the_tool_with_error_and_description(
        canvas: Sandbox, field: str, value: str | None, error: str) -> None:
    params = auth_params(canvas, canvas.platform.teacher.id)
    if value is None:
        del params[field]
    else:
        params[field] = value

    answer = canvas.http.post(canvas.platform.paths.auth_url, data=params)

    assert answer.status_code == 200
    assert re.search(r'<form[^>]*action="([^"]+)"', answer.text).group(1) == params["redirect_uri"]
    fields = form_fields(answer.text)
    assert fields["error"] == error and fields["error_description"]
    assert fields["state"] == "state-123"
    assert "id_token" not in fields


def test_a_replayed_login_is_posted_back_as_launch_no_longer_valid(canvas: Sandbox) -> None:
    params = auth_params(canvas, canvas.platform.teacher.id)
    canvas.http.post(canvas.platform.paths.auth_url, data=params)

    again = canvas.http.post(canvas.platform.paths.auth_url, data=params)

    assert form_fields(again.text)["error"] == "launch_no_longer_valid"


def test_an_unknown_redirect_uri_is_never_posted_to(canvas: Sandbox) -> None:
    """authentication_controller.rb `redirect_uri` → reject! "Invalid redirect_uri"."""
    params = {**auth_params(canvas, canvas.platform.teacher.id), "redirect_uri": "http://evil.example/launch"}

    answer = canvas.http.post(canvas.platform.paths.auth_url, data=params)

    assert answer.status_code == 400
    assert 'action="http://evil.example' not in answer.text
    assert "Invalid redirect_uri" in answer.text
