"""When the LMS fails: down for a while, throttling, a refused student, a newer score in the LMS,
a timeout, a worker that dies holding rows. Nothing is lost and nothing is sent twice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine

from tool.clock import utcnow
from tool.delivery.queue import Attempt, claim_due, record_outcomes
from tests.e2e.conftest import Stack, start_stack, stop_all
from tests.e2e.delivery_kit import Klass, canvas, klass, raw  # noqa: F401  (fixtures)

D = Decimal


def _bound(k: Klass) -> None:
    """One delivered score, so the total column is bound before the fault."""
    k.entry(k.subs[-1], "1")
    k.deliver()
    assert k.binding().lineitem_url


def test_the_lms_down_for_a_while_and_back_loses_nothing_and_sends_nothing_twice(klass: Klass) -> None:
    _bound(klass)
    students = klass.subs[:6]
    klass.bulk({sub: str(10 + i) for i, sub in enumerate(students)})
    klass.platform.faults.down = True
    worker = klass.worker()
    first = worker.drain()
    assert (first.sent, first.accepted, first.retrying) == (6, 0, 6)
    rows = klass.rows()
    assert {rows[s].state for s in students} == {"retrying"}
    assert all(rows[s].last_status == 503 and rows[s].last_error for s in students)
    assert all(rows[s].next_attempt_at > utcnow() for s in students)
    # Still down, and the teacher keeps working: a correction for the first student.
    entries = klass.api("GET", f"/api/grades/students/{klass.person[students[0]]}/offerings/{klass.offering_id}").json()
    klass.correct(entries["entries"][0]["id"], "99")
    assert worker.drain().sent == 0  # nothing is due before its backoff
    klass.platform.faults.down = False
    klass.later(10)  # past the first backoff (at most 2 s)
    second = worker.drain()
    assert (second.sent, second.accepted) == (6, 6)
    for i, sub in enumerate(students):
        assert len(klass.accepted_posts(sub)) == 1, sub
        assert raw(klass.result(sub)) == (D("99.00") if i == 0 else D(10 + i))
        assert klass.rows()[sub].state == "delivered"
    assert worker.drain().sent == 0


def test_a_throttled_post_waits_at_least_what_retry_after_asks(klass: Klass) -> None:
    _bound(klass)
    ann = klass.subs[0]
    klass.entry(ann, "5")
    klass.platform.faults.fail_next(1, 429, retry_after=120)
    before = utcnow()
    result = klass.worker().drain()
    assert result.retrying == 1
    row = klass.rows()[ann]
    assert row.state == "retrying" and row.last_status == 429
    assert row.next_attempt_at >= before + dt.timedelta(seconds=120)
    klass.later(120 * 1.1 + 1)  # Retry-After plus at most 10 % jitter
    assert klass.worker().drain().accepted == 1
    assert raw(klass.result(ann)) == D("5.00")


def test_canvas_403_rate_limit_exceeded_is_retried_not_failed(canvas: Klass) -> None:
    _bound(canvas)
    ann = canvas.subs[0]
    canvas.entry(ann, "5")
    canvas.platform.faults.fail_next(1, 403, body="403 Forbidden (Rate Limit Exceeded)")
    assert canvas.worker().drain().retrying == 1
    row = canvas.rows()[ann]
    assert row.state == "retrying" and row.last_status == 403 and "Rate Limit Exceeded" in (row.last_error or "")
    canvas.later(10)
    assert canvas.worker().drain().accepted == 1


def test_a_student_the_lms_refuses_fails_alone_with_its_reason_and_the_others_arrive(klass: Klass) -> None:
    _bound(klass)
    ann, ben, cem = klass.subs[:3]
    klass.platform.unenroll(ben)  # left the course in the LMS; still on Tally's roster
    klass.bulk({ann: "7", ben: "8", cem: "9"})
    result = klass.worker().drain()
    assert (result.accepted, result.failed) == (2, 1)
    assert raw(klass.result(ann)) == D("7.00") and raw(klass.result(cem)) == D("9.00")
    row = klass.rows()[ben]
    expected = ((400, "Incorrect user") if klass.platform.mode == "moodle"
                else (422, "User not found in course or is not a student"))
    assert row.state == "failed" and row.last_status == expected[0] and expected[1] in (row.last_error or "")
    shown = next(d for d in klass.status()["deliveries"] if d["studentId"] == klass.person[ben])
    assert shown["state"] == "failed" and expected[1] in shown["message"]
    assert klass.worker().drain().sent == 0  # a failure is not retried on its own
    # Back in the course; the teacher presses "retry failed".
    klass.platform.users[ben].enrolled = True
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/retry")
    assert r.status_code == 200 and r.json() == {"requeued": 1}
    assert klass.worker().drain().accepted == 1
    assert raw(klass.result(ben)) == D("8.00")


def test_a_newer_score_in_the_lms_supersedes_tallys_until_the_teacher_resends(klass: Klass) -> None:
    ann = klass.subs[0]
    e = klass.entry(ann, "10")
    klass.deliver()
    klass.correct(e["id"], "20")
    # Before Tally delivers, the LMS gets a newer score for Ann (a teacher's edit).
    stored = klass.result(ann)
    assert stored is not None
    with klass.platform.store.lock:
        stored.raw = stored.final = 77.0
        stored.result_score = 77.0  # what Canvas's result service reports for it
        stored.timestamp = utcnow() + dt.timedelta(seconds=1)
    result = klass.worker().drain()
    assert result.superseded == 1 and result.accepted == 0
    row = klass.rows()[ann]
    assert row.state == "superseded" and row.last_error
    # Moodle refuses the older score (409, read back); Canvas's is held before it is sent
    # (tool/delivery/guard.py), so there is no status.
    assert row.last_status == (409 if klass.platform.mode == "moodle" else None)
    assert raw(klass.result(ann)) == D("77.00")  # the LMS's newer grade stays
    assert klass.worker().drain().sent == 0  # and is not fought over
    klass.later(3)  # the teacher looks at it a little later
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/resend", {"deliveryIds": [row.id]})
    assert r.status_code == 200 and r.json() == {"requeued": 1}
    assert klass.worker().drain().accepted == 1
    assert raw(klass.result(ann)) == D("20.00")


def test_a_timeout_is_retried_and_the_lms_ends_with_the_score(clean_db: Engine, database_url: str, keys_dir: Path,
                                                              sandbox_key_path: Path) -> None:
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, "moodle",
                             http_timeout_seconds=0.5)
    k = Klass(s)
    try:
        _bound(k)
        ann = k.subs[0]
        k.entry(ann, "6")
        k.platform.faults.latency_ms = 1500
        assert k.worker().drain().retrying == 1
        row = k.rows()[ann]
        assert row.state == "retrying" and row.last_status is None and "time" in (row.last_error or "").lower()
        k.platform.faults.latency_ms = 0
        k.later(10)
        assert k.worker().drain().accepted == 1
        assert raw(k.result(ann)) == D("6.00") and k.rows()[ann].state == "delivered"
    finally:
        k.close()
        stop_all(servers)


def test_rows_of_a_worker_that_died_come_free_when_its_claim_expires(klass: Klass) -> None:
    _bound(klass)
    ann = klass.subs[0]
    klass.entry(ann, "4")
    sessions = klass.worker().sessions
    with sessions() as db:
        dead = claim_due(db, worker="dead-worker", now=utcnow(), limit=10, claim_seconds=60)
        db.commit()
    assert len(dead.items) == 1
    other = klass.worker()
    assert other.drain().sent == 0  # claimed by the dead worker
    klass.later(61)
    assert other.drain().accepted == 1
    # The dead worker wakes up and reports an answer: the row is no longer its own.
    with sessions() as db:
        late = record_outcomes(db, worker="dead-worker",
                               results=[Attempt(dead.items[0], "failed", dead.items[0].version, status=400,
                                                message="late")],
                               now=utcnow(), backoff_base=2, backoff_cap=60)
        db.commit()
    assert late.lost_claims == 1
    assert klass.rows()[ann].state == "delivered"
    assert len(klass.accepted_posts(ann)) == 1


def test_a_column_that_cannot_be_bound_while_the_lms_is_down_is_bound_later(stack: Stack) -> None:
    k = Klass(stack, "rl-2")
    try:
        ann = k.subs[0]
        k.entry(ann, "3")
        k.platform.faults.down = True
        result = k.worker().drain()
        assert result.binding_errors == 1 and result.sent == 0
        column = k.status()["lineItems"][0]
        assert column["lineItemUrl"] is None and column["error"]
        k.platform.faults.down = False
        k.later(10)
        result = k.worker().drain()
        assert result.bound == 1 and result.accepted == 1
        assert raw(k.result(ann)) == D("3.00")
    finally:
        k.close()
