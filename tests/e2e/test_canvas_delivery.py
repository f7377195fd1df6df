"""Tally on Canvas as Canvas's code behaves (the sandbox in canvas mode, tests/sandbox/test_canvas_code.py):
visible grades from a Course Navigation launch and from an assignment launch, columns that are
assignments of their own, throttling (token requests included), one token per registration,
unpublished / closed / concluded as a waiting state, a teacher's edit in Canvas held for the
teacher, and the platform's login errors shown with its words."""

from __future__ import annotations

import html
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine, delete

from tool.ags.client import NOT_SENT_THROTTLED
from tool.ags.models import ServiceToken
from tool.delivery import rules
from tool.delivery.models import LineItemBinding
from tool.sandbox.throttle import THROTTLED_BODY
from tool.verify import verify_offering
from tests.e2e.conftest import Stack, form_of, no_cookies, start_stack, stop_all
from tests.e2e.delivery_kit import Klass, raw
from tests.e2e.test_delivery_lineitems import ExamOf

D = Decimal
FAST = {"delivery_backoff_base_seconds": 0.5, "delivery_backoff_max_seconds": 4.0, "delivery_waiting_seconds": 60.0}


@pytest.fixture
def canvas_stack(clean_db: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator[Stack]:
    """Tool + sandbox in canvas mode, with short backoffs (time still moves only by `Klass.later`)."""
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, "canvas", **FAST)
    yield s
    stop_all(servers)


@pytest.fixture
def classes(canvas_stack: Stack) -> Iterator[list[Klass]]:
    """Classes made by a test (closed after it)."""
    made: list[Klass] = []
    yield made
    for k in made:
        k.close()


def class_at(stack: Stack, classes: list[Klass], link: str) -> Klass:
    """A teacher launched `link`, and the roster is synchronised."""
    k = Klass(stack, link)
    classes.append(k)
    return k


def nav_class(stack: Stack, classes: list[Klass]) -> Klass:
    """A class launched from Canvas's Course Navigation (the course's opaque id, no `lineitem`)."""
    return class_at(stack, classes, stack.platform.course_navigation_link.id)


def visible(k: Klass, sub: str, target: str = "total") -> Decimal | None:
    """The grade Canvas's gradebook shows for the student in the column the target is bound to."""
    item = k.item(target)
    store = k.platform.store
    assert store.is_assignment_line_item(item), "bound to an attached line item: Canvas shows no grade for it"
    return raw(store.result(item.id, sub))


def deliver_all(k: Klass, *, rounds: int = 400, step: float = 5.0) -> int:
    """Drain, letting time pass between drains, until nothing waits; the rounds it took."""
    worker = k.worker()
    for n in range(rounds):
        worker.drain()
        if not any(r.state in ("pending", "retrying") for t in k.bindings() for r in k.rows(t).values()):
            return n + 1
        k.later(step)
    raise AssertionError("deliveries still pending after every round")


# -- visible grades from both launch kinds -----------------------------------------------------------


def test_a_course_navigation_launch_delivers_a_visible_grade(canvas_stack: Stack, classes: list[Klass]) -> None:
    k = nav_class(canvas_stack, classes)
    ann = k.subs[0]

    k.entry(ann, "42")
    k.deliver()

    binding = k.binding()
    assert binding.bound_via == "created"
    item = k.item()
    # A column of its own, not attached to any link (Canvas answers 404 for the course's id).
    assert item.resource_link_id is None and item.resource_id == rules.TOTAL_RESOURCE_ID
    assert item.tag == rules.TOTAL_TAG
    assert visible(k, ann) == D("42.00")


def test_an_assignment_launch_delivers_into_the_assignment_the_teacher_placed(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    k = class_at(canvas_stack, classes, "rl-1")
    ann = k.subs[0]

    k.entry(ann, "17.5")
    k.deliver()

    assert k.binding().bound_via == "launch"
    assert k.item().id == 1  # the assignment's own line item, named by the launch
    assert visible(k, ann) == D("17.50")


def test_an_assessment_on_an_assignment_launch_gets_an_assignment_of_its_own_never_an_attached_one(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    k = class_at(canvas_stack, classes, "rl-1")
    exam = ExamOf(k)
    ann = k.subs[0]
    exam.tasks_points(ann, "4.5", "4")
    exam.apply()

    k.deliver()

    item = k.item(exam.target)
    assert item.resource_link_id is None  # never attached to rl-1's assignment
    assert k.platform.assignment(line_item_id=item.id).resource_link_id is None
    assert visible(k, ann, exam.target) == D("8.50")
    assert [li.id for li in k.platform.store.line_items_of("rl-1")] == [1]


def test_a_module_link_launch_delivers_into_a_column_tally_creates(canvas_stack: Stack, classes: list[Klass]) -> None:
    k = class_at(canvas_stack, classes, "rl-2")
    k.entry(k.subs[0], "3")

    k.deliver()

    assert k.binding().bound_via == "created" and k.item().resource_link_id is None
    assert visible(k, k.subs[0]) == D("3.00")


def test_a_column_tally_made_is_found_again_by_resource_id_and_tag(canvas_stack: Stack, classes: list[Klass]) -> None:
    k = nav_class(canvas_stack, classes)
    ann = k.subs[0]
    k.entry(ann, "10")
    k.deliver()
    first = k.binding().lineitem_url
    with k.stack.session() as db:  # Tally forgets the binding (a restored database)
        db.execute(delete(LineItemBinding).where(LineItemBinding.offering_id == k.offering_id))
        db.commit()
    k.later(2)
    k.entry(ann, "5")

    k.deliver()

    assert k.binding().bound_via == "found" and k.binding().lineitem_url == first
    assert visible(k, ann) == D("15.00")


def test_two_placements_in_one_course_never_share_a_column(canvas_stack: Stack, classes: list[Klass]) -> None:
    nav = nav_class(canvas_stack, classes)
    module = class_at(canvas_stack, classes, "rl-2")
    ann = nav.subs[0]
    nav.entry(ann, "1")
    module.entry(ann, "2")

    nav.deliver()

    assert nav.binding().lineitem_url != module.binding().lineitem_url
    assert (visible(nav, ann), visible(module, ann)) == (D("1.00"), D("2.00"))


# -- throttling and tokens ------------------------------------------------------------------------


def forget_tokens(k: Klass) -> None:
    """Tally has no usable token any more (none stored, the platform's expired): the next call asks for one."""
    k.platform.tokens.expire_all()
    with k.stack.session() as db:
        db.execute(delete(ServiceToken))
        db.commit()


def test_a_throttled_token_request_is_a_retry_and_the_score_arrives_later(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    k = nav_class(canvas_stack, classes)
    ann = k.subs[0]
    k.entry(ann, "7")
    worker = k.worker()
    forget_tokens(k)
    k.platform.faults.fail_next(1, 403, THROTTLED_BODY, where="token", headers={"X-Rate-Limit-Remaining": "0.0"})

    first = worker.drain()

    assert first.binding_errors == 1 and first.accepted == 0
    assert "Rate Limit Exceeded" in (k.binding().last_error or "")
    k.later(5)
    worker.drain()
    assert visible(k, ann) == D("7.00")


def test_a_throttled_token_request_for_scores_leaves_them_retrying_not_failed(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    k = class_at(canvas_stack, classes, "rl-1")
    ann = k.subs[0]
    k.entry(ann, "7")
    k.deliver()
    k.later(2)
    k.entry(ann, "1")
    worker = k.worker()  # a new process: no token in memory, and none stored
    forget_tokens(k)
    k.platform.faults.fail_next(1, 403, THROTTLED_BODY, where="token")

    step = worker.drain()

    assert step.retrying == 1 and step.failed == 0
    assert k.rows()[ann].state == "retrying"
    k.later(5)
    worker.drain()
    assert visible(k, ann) == D("8.00")


def test_one_token_serves_roster_columns_scores_and_read_back(canvas_stack: Stack, classes: list[Klass]) -> None:
    k = class_at(canvas_stack, classes, "rl-1")
    exam = ExamOf(k)
    exam.tasks_points(k.subs[0], "1", "1")
    k.entry(k.subs[1], "3")
    k.deliver()
    r = k.api("GET", f"/api/offerings/{k.offering_id}/delivery/readback")
    assert r.status_code == 200, r.text

    assert k.platform.token_requests == 1
    [token] = list(k.platform.tokens._tokens.values())  # noqa: SLF001  (the sandbox's own record)
    assert token.scopes == k.platform.tool_scopes  # every scope the developer key grants


def test_without_a_scope_on_the_key_tally_asks_only_for_what_canvas_grants(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    nrps = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
    k = class_at(canvas_stack, classes, "rl-1")
    k.platform.tool_scopes = [s for s in k.platform.tool_scopes if not s.endswith("result.readonly")]
    k.stack.launch(k.platform.teacher.id, "rl-1")  # the launch now lists the key's scopes
    forget_tokens(k)
    before = set(k.platform.tokens._tokens)  # noqa: SLF001  (the sandbox's own record)
    k.entry(k.subs[0], "4")

    k.deliver()

    assert visible(k, k.subs[0]) == D("4.00")
    issued = [t for v, t in k.platform.tokens._tokens.items() if v not in before]  # noqa: SLF001
    assert [t.scopes for t in issued] == [k.platform.tool_scopes]  # one token, for what the key grants
    assert nrps in k.platform.tool_scopes


def test_a_throttled_burst_of_a_thousand_scores_is_delivered_completely(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    canvas_stack.platform.add_students(992)
    k = nav_class(canvas_stack, classes)
    assert len(k.subs) == 1000
    points = {sub: str(n % 97) for n, sub in enumerate(k.subs)}
    k.bulk(points)
    # A tight bucket: a few requests in parallel fill it, and it drains slowly.
    k.platform.throttle.configure(hwm=300.0, request_cost=2.0)

    rounds = deliver_all(k)

    assert k.platform.throttle.throttled > 0 and rounds > 1
    rows = k.rows()
    assert {r.state for r in rows.values()} == {"delivered"}
    item = k.item()
    for sub, p in points.items():
        assert raw(k.platform.store.result(item.id, sub)) == D(p), sub
    assert all(len(k.accepted_posts(sub)) == 1 for sub in k.subs[:50])  # nothing sent twice


def test_once_canvas_throttles_a_batch_the_rest_of_it_is_not_sent_but_retried(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    canvas_stack.platform.add_students(92)
    k = nav_class(canvas_stack, classes)
    k.entry(k.subs[0], "1")
    k.deliver()  # the column exists, and Tally holds a token
    k.bulk({sub: "5" for sub in k.subs[1:]})
    k.platform.faults.fail_next(1, 403, THROTTLED_BODY, headers={"X-Rate-Limit-Remaining": "0.0"})
    posts_before = len(k.platform.store.score_posts)
    worker = k.worker()
    lanes = worker.settings.ags_concurrency

    step = worker.run_once()

    rows = k.rows()
    not_sent = [sub for sub in k.subs[1:] if rows[sub].last_error == NOT_SENT_THROTTLED]
    reached = len(k.platform.store.score_posts) - posts_before
    # Only the scores already on the wire when Canvas said "Rate Limit Exceeded" reached it.
    assert reached < 2 * lanes and len(not_sent) >= len(k.subs) - 1 - 2 * lanes
    assert step.retrying == len(k.subs) - 1 - step.accepted and step.failed == 0
    assert {rows[sub].state for sub in not_sent} == {"retrying"}
    deliver_all(k)
    assert all(raw(k.platform.store.result(k.item().id, sub)) == D("5") for sub in k.subs[1:])


# -- unpublished, closed grading period, concluded: waiting -----------------------------------------


def sync_page(k: Klass) -> str:
    r = no_cookies().post(f"{k.stack.tool_url}/offerings/{k.offering_id}/sync", data={"st": k.teacher})
    assert r.status_code == 200
    return html.unescape(r.text)


def test_an_unpublished_assignment_waits_and_delivers_after_publish(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    link = canvas_stack.platform.add_assignment("Tally: Quiz", 20, published=False)
    k = class_at(canvas_stack, classes, link.id)
    ann, ben = k.subs[:2]
    k.bulk({ann: "12", ben: "20"})

    k.deliver()

    rows = k.rows()
    assert {rows[ann].state, rows[ben].state} == {"waiting"}
    assert rows[ann].last_status == 422 and "unpublished" in (rows[ann].last_error or "")
    assert rows[ann].next_attempt_at is not None
    with k.stack.session() as db:
        assert verify_offering(db, offering_id=k.offering_id).differences == []  # waiting is due later
    text = sync_page(k)
    assert "waiting: 2" in text and "This assignment is still unpublished" in text and "Publish" in text
    assert "failed: 0" in text
    # The teacher publishes in Canvas (the sandbox's gradebook button), then presses "Sync now".
    assignment = k.platform.assignment(line_item_id=k.item().id)
    r = no_cookies().post(k.stack.sandbox.url + f"/gradebook/assignments/{assignment.id}/publish",
                          data={"published": "1"})
    assert r.status_code == 200
    r = k.api("POST", f"/api/offerings/{k.offering_id}/delivery/sync")
    assert r.status_code == 200, r.text

    assert {r.state for r in k.rows().values()} == {"delivered"}
    assert (visible(k, ann), visible(k, ben)) == (D("12.00"), D("20.00"))


def test_a_waiting_score_is_tried_again_by_itself_after_its_long_pause(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    link = canvas_stack.platform.add_assignment("Tally: Quiz", 20, published=False)
    k = class_at(canvas_stack, classes, link.id)
    ann = k.subs[0]
    k.entry(ann, "9")
    worker = k.worker()
    worker.drain()
    k.platform.publish(k.platform.assignment(line_item_id=k.item().id).id)
    k.later(10)
    assert worker.drain().sent == 0  # the pause is long (60 s here, 15 minutes by default)

    k.later(120)
    worker.drain()

    assert visible(k, ann) == D("9.00")


def test_a_closed_grading_period_waits_with_canvas_words(canvas_stack: Stack, classes: list[Klass]) -> None:
    k = class_at(canvas_stack, classes, "rl-1")
    k.platform.set_grading_period_closed(k.platform.assignment(line_item_id=1).id)
    k.entry(k.subs[0], "5")

    k.deliver()

    row = k.rows()[k.subs[0]]
    assert row.state == "waiting" and "closed grading period" in (row.last_error or "")


def test_a_concluded_course_waits(canvas_stack: Stack, classes: list[Klass]) -> None:
    k = class_at(canvas_stack, classes, "rl-1")
    k.entry(k.subs[0], "5")
    k.deliver()
    k.platform.conclude_course(422)
    k.later(2)
    k.entry(k.subs[0], "1")

    k.deliver()

    row = k.rows()[k.subs[0]]
    assert row.state == "waiting" and "This course has concluded" in (row.last_error or "")


# -- a teacher's edit in Canvas -----------------------------------------------------------------------


def test_a_grade_a_teacher_changed_in_canvas_is_not_overwritten_but_held_for_the_teacher(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    k = class_at(canvas_stack, classes, "rl-1")
    ann, ben = k.subs[:2]
    k.bulk({ann: "8", ben: "6"})
    k.deliver()
    k.platform.teacher_edits_grade(1, ann, 95.0)  # Canvas does not move the result's timestamp
    k.later(2)
    k.bulk({ann: "1", ben: "1"})  # Tally's totals change: 9 and 7

    k.deliver()

    assert visible(k, ann) == D("95.00")  # the teacher's grade stands
    assert visible(k, ben) == D("7.00")  # the untouched one is updated
    row = k.rows()[ann]
    assert row.state == "superseded" and "95" in (row.last_error or "")
    text = sync_page(k)
    assert "Send Tally's grade again" in text
    # The teacher decides that Tally's grade wins.
    r = k.api("POST", f"/api/offerings/{k.offering_id}/delivery/resend", {"deliveryIds": [row.id]})
    assert r.status_code == 200, r.text
    k.deliver()
    assert visible(k, ann) == D("9.00")
    assert k.rows()[ann].state == "delivered"


def test_after_a_resend_a_later_edit_in_canvas_is_protected_again(canvas_stack: Stack, classes: list[Klass]) -> None:
    k = class_at(canvas_stack, classes, "rl-1")
    ann = k.subs[0]
    k.entry(ann, "8")
    k.deliver()
    k.platform.teacher_edits_grade(1, ann, 50.0)
    k.later(2)
    k.entry(ann, "1")
    k.deliver()
    k.api("POST", f"/api/offerings/{k.offering_id}/delivery/resend", {"deliveryIds": [k.rows()[ann].id]})
    k.deliver()
    assert visible(k, ann) == D("9.00")
    k.platform.teacher_edits_grade(1, ann, 70.0)
    k.later(2)
    k.entry(ann, "1")

    k.deliver()

    assert visible(k, ann) == D("70.00") and k.rows()[ann].state == "superseded"


# -- login errors ----------------------------------------------------------------------------------


def test_a_login_canvas_refuses_is_shown_with_canvas_words(canvas_stack: Stack) -> None:
    client = no_cookies()
    r = canvas_stack.login(canvas_stack.platform.teacher.id, client=client)
    auth_url = r.headers["Location"]
    client.get(auth_url)  # the launch goes through once…

    again = client.get(auth_url)  # …and a replay is refused by Canvas, posted back to Tally
    action, fields = form_of(again.text)
    assert fields["error"] == "launch_no_longer_valid"
    answer = client.post(action, data=fields, allow_redirects=False)

    assert answer.status_code == 400
    text = html.unescape(answer.text)
    assert "The launch has either expired or already been consumed" in text
    assert "launch_no_longer_valid" in text
    assert "Open Tally again from your course" in text


def test_a_login_error_without_state_is_refused_just_the_same(canvas_stack: Stack) -> None:
    answer = no_cookies().post(canvas_stack.tool_url + "/lti/launch",
                               data={"error": "login_required", "error_description": "Must have an active user session"},
                               allow_redirects=False)

    assert answer.status_code == 400
    assert "Must have an active user session" in html.unescape(answer.text)


def test_a_huge_error_description_is_cut_and_escaped(canvas_stack: Stack) -> None:
    answer = no_cookies().post(canvas_stack.tool_url + "/lti/launch",
                               data={"error": "<b>x</b>", "error_description": "<script>" + "y" * 50_000},
                               allow_redirects=False)

    assert answer.status_code == 400
    assert "<script>" not in answer.text and "<b>x</b>" not in answer.text
    assert len(answer.text) < 20_000


def test_a_platform_refusing_the_whole_scope_set_gets_a_token_per_call_instead(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    k = class_at(canvas_stack, classes, "rl-1")  # the launch listed every scope, the roster's too
    # An admin takes the roster scope off the developer key: Canvas now refuses the whole set.
    k.platform.tool_scopes = [s for s in k.platform.tool_scopes if "lti-nrps" not in s]
    forget_tokens(k)
    before = set(k.platform.tokens._tokens)  # noqa: SLF001  (the sandbox's own record)
    requests_before = k.platform.token_requests
    k.entry(k.subs[0], "6")

    k.deliver()

    assert visible(k, k.subs[0]) == D("6.00")
    issued = [t for v, t in k.platform.tokens._tokens.items() if v not in before]  # noqa: SLF001
    assert issued and all(t.scopes <= k.platform.tool_scopes for t in issued)
    assert k.platform.token_requests - requests_before == len(issued) + 1  # the one refused request


def test_a_course_concluded_the_older_way_404_loses_nothing_and_delivers_once_reopened(
        canvas_stack: Stack, classes: list[Klass]) -> None:
    # Without Canvas's ags_improved_course_concluded_response_codes flag every call is 404: Tally
    # cannot tell that from a deleted column, looks for the column again, and says what the LMS said.
    k = class_at(canvas_stack, classes, "rl-1")
    ann = k.subs[0]
    k.entry(ann, "5")
    k.deliver()
    k.platform.conclude_course(404)
    k.later(2)
    k.entry(ann, "1")

    k.deliver()

    assert raw(k.platform.store.result(1, ann)) == D("5.00")  # the assignment's column, as before
    assert "does not exist" in (k.binding().last_error or "")
    assert k.rows()[ann].state in ("pending", "retrying")  # kept, not failed
    k.platform.conclude_course(None)
    r = k.api("POST", f"/api/offerings/{k.offering_id}/delivery/sync")
    assert r.status_code == 200, r.text
    assert visible(k, ann) == D("6.00")
