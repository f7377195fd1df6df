"""What Tally sends to the LMS, and when: each rule, delivered to the sandbox in Moodle and Canvas mode."""

from __future__ import annotations

from decimal import Decimal

from tool.ags.score import parse_timestamp
from tool.delivery import rules
from tests.e2e.delivery_kit import Klass, canvas, klass, raw  # noqa: F401  (fixtures)

D = Decimal


def test_a_ledger_total_goes_to_the_placements_own_line_item_as_a_full_grade(klass: Klass) -> None:
    ann, ben = klass.subs[:2]
    klass.entry(ann, "42.5")
    klass.entry(ann, "7")
    klass.entry(ben, "12")
    klass.deliver()
    b = klass.binding()
    # The sandbox's rl-1 has exactly one line item, so the launch named it: the total uses it.
    assert b.bound_via == "launch" and b.lineitem_url == klass.platform.paths.lineitem_url(1)
    assert (b.score_maximum, b.maximum_source) == (D(100), "lms")
    ann_result = klass.result(ann)
    assert ann_result is not None and raw(ann_result) == D("49.50")
    assert (ann_result.activity_progress, ann_result.grading_progress) == ("Completed", "FullyGraded")
    assert raw(klass.result(ben)) == D("12.00")
    rows = klass.rows()
    assert rows[ann].state == "delivered" and rows[ann].accepted["scoreGiven"] == 49.5
    # Two entries for Ann before the worker ran: one score reached the LMS, the latest.
    assert len(klass.accepted_posts(ann)) == 1


def test_every_entry_voided_clears_the_grade_in_the_lms(klass: Klass) -> None:
    ann = klass.subs[0]
    e = klass.entry(ann, "30")
    klass.deliver()
    assert raw(klass.result(ann)) == D("30.00")
    klass.void(e["id"])
    klass.deliver()
    result = klass.result(ann)
    assert result is not None and result.raw is None
    assert result.grading_progress == "NotReady"
    last = klass.accepted_posts(ann)[-1].body
    assert "scoreGiven" not in last and last["comment"] == rules.VOIDED_COMMENT


def test_a_negative_total_arrives_as_zero_with_the_reason(klass: Klass) -> None:
    ann = klass.subs[0]
    klass.entry(ann, "-4")
    klass.deliver()
    result = klass.result(ann)
    assert result is not None and raw(result) == D("0.00")
    body = klass.accepted_posts(ann)[-1].body
    assert body["scoreGiven"] == 0 and "-4.00" in body["comment"]


def test_extra_credit_passes_through_and_the_teacher_learns_where_moodle_clamps_it(klass: Klass) -> None:
    ann = klass.subs[0]
    klass.entry(ann, "120")
    klass.deliver()
    result = klass.result(ann)
    assert result is not None and raw(result) == D("120.00")
    expected_final = 100.0 if klass.platform.mode == "moodle" else 120.0
    assert result.final == expected_final
    row = next(d for d in klass.status()["deliveries"] if d["studentId"] == klass.person[ann])
    assert row["desired"]["scoreGiven"] == "120.00" and "Unlimited grades" in row["note"]


def test_corrections_within_one_second_reach_the_lms_with_strictly_increasing_timestamps(klass: Klass) -> None:
    ann = klass.subs[0]
    e = klass.entry(ann, "10")
    worker = klass.worker()
    worker.drain()
    for points in ("11", "12", "13"):
        klass.correct(e["id"], points)
        worker.drain()  # each correction goes out at once, within the same second or two
    posts = klass.posts(ann)
    assert [p.status for p in posts] == [200, 200, 200, 200]  # Moodle would answer 409 to a repeated second
    seconds = [rules.whole_second(parse_timestamp(p.body["timestamp"])) for p in posts]
    assert seconds == sorted(set(seconds))
    assert raw(klass.result(ann)) == D("13.00")


def test_an_unchanged_total_is_not_sent_again(klass: Klass) -> None:
    ann = klass.subs[0]
    e = klass.entry(ann, "10")
    klass.deliver()
    klass.correct(e["id"], "10.00")  # a correction that changes nothing the LMS sees
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/sync")
    assert r.status_code == 200, r.text
    assert r.json()["sent"] == 0
    assert len(klass.posts(ann)) == 1


def test_canvas_keeps_one_submission_and_gets_each_comment_once(canvas: Klass) -> None:
    ann = canvas.subs[0]
    e = canvas.entry(ann, "-2")  # sent as 0 with a comment
    canvas.deliver()
    canvas.correct(e["id"], "-3")  # another comment
    canvas.deliver()
    canvas.correct(e["id"], "-3.00")  # the same: nothing is sent
    canvas.deliver()
    canvas.correct(e["id"], "5")  # no comment
    canvas.deliver()
    result = canvas.result(ann)
    assert result is not None and raw(result) == D("5.00")
    assert result.attempts == 0  # new_submission: false on every score
    assert result.comments == ["-2.00 points in Tally, sent as 0: the LMS takes no negative scores.",
                               "-3.00 points in Tally, sent as 0: the LMS takes no negative scores."]
    assert len(canvas.posts(ann)) == 3
    assert all(p.body["https://canvas.instructure.com/lti/submission"]["new_submission"] is False
               for p in canvas.posts(ann))
