"""No grade stale or overwritten, through the sandbox LMS: a teacher who also edits grades in
Moodle, an LMS that refuses connections or stores an attempt whose answer is lost, Moodle's own
clock on scores that are not FullyGraded, a student who joins after the apply, the deep-linked
column, Moodle 4.5.6's results bug."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import Engine, func, select

from tool.assessments.models import Participation
from tool.delivery.models import ScoreDelivery
from tool.delivery.worker import DeliveryWorker
from tool.lti.models import Person
from tests.e2e.conftest import Stack, no_cookies, start_stack, stop_all
from tests.e2e.delivery_kit import Klass, item_id, raw
from tests.e2e.registration_support import deep_link_launch, deeplink_of, hidden

D = Decimal
BANDS = {"bands": [{"min_points": 30, "max_points": 60, "grade": "1.0"},
                   {"min_points": 0, "max_points": 29.99, "grade": "5.0"}]}


@pytest.fixture
def moodle_class(clean_db: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator[Klass]:
    """A class on the sandbox in Moodle mode; its AGS client posts one score at a time and gives
    up waiting for an answer after 0.5 s."""
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, "moodle", ags_concurrency=1,
                             http_timeout_seconds=0.5)
    k = Klass(s)
    yield k
    k.close()
    stop_all(servers)


def _wait_for(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _assessment(k: Klass, title: str = "Exam", maximum: int = 60, source: str = "tasks") -> int:
    r = k.api("POST", f"/api/offerings/{k.offering_id}/assessments", {"title": title, "maxPoints": maximum,
                                                                       "source": source})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _points(k: Klass, assessment: int, sub: str, points: str) -> None:
    r = k.api("PUT", f"/api/assessments/{assessment}/points/{k.person[sub]}", {"points": points})
    assert r.status_code == 200, r.text


def _apply(k: Klass, assessment: int) -> None:
    r = k.api("POST", f"/api/assessments/{assessment}/schemes", {"config": BANDS})
    assert r.status_code == 201, r.text
    r = k.api("POST", f"/api/schemes/{r.json()['id']}/apply")
    assert r.status_code == 200, r.text


# -- 4: a retry keeps the timestamp of the change -------------------------------------------------


def test_a_retry_after_an_outage_does_not_overwrite_the_grade_the_teacher_set_in_moodle(moodle_class: Klass) -> None:
    k = moodle_class
    ann = k.subs[0]
    entry = k.entry(ann, "40")
    k.deliver()
    assert raw(k.result(ann)) == D("40.00")
    k.platform.faults.refuse_connections = True  # Moodle's host is down
    k.correct(entry["id"], "51")  # Tally's points change (21:50:13)
    assert k.worker().drain().retrying == 1
    k.later(3)
    k.platform.teacher_edits_grade(k.item().id, ann, 45.0)  # the teacher types 45 into Moodle (21:50:16)
    k.platform.faults.refuse_connections = False  # Moodle is back
    k.later(10)  # past the backoff (21:50:19…)

    k.worker().drain()

    assert raw(k.result(ann)) == D("45.00")  # the teacher's grade stays
    assert [p.status for p in k.posts(ann)][-1] == 409
    assert all(p.body.get("scoreGiven") != 51 for p in k.accepted_posts(ann))
    row = k.rows()[ann]
    assert row.state == "superseded" and "earlier timestamp" in (row.last_error or "")
    assert k.status()["counts"]["superseded"] == 1


def test_a_retry_after_a_timeout_that_the_lms_stored_is_read_back_and_counts_as_delivered(moodle_class: Klass) -> None:
    k = moodle_class
    ann = k.subs[0]
    k.entry(ann, "7")
    k.deliver()
    k.entry(ann, "5")
    k.platform.faults.latency_ms = 1500  # Moodle stores the score, but only after Tally stopped waiting
    assert k.worker().drain().retrying == 1
    assert _wait_for(lambda: len(k.accepted_posts(ann)) == 2)
    k.platform.faults.latency_ms = 0
    k.later(10)

    k.worker().drain()

    assert raw(k.result(ann)) == D("12.00")
    assert len(k.accepted_posts(ann)) == 2  # the score went in once, not twice
    assert [p.status for p in k.posts(ann)] == [200, 200, 409]  # the retry kept the change's timestamp
    row = k.rows()[ann]
    assert row.state == "delivered" and row.accepted["scoreGiven"] == 12


# -- 10: the score as it is when sent; a 409 is read back before it is believed -------------------


class TeacherTypesWhileSending:
    """The real AGS client, but the teacher saves points just before the worker's first post."""

    def __init__(self, k: Klass, worker: DeliveryWorker, action: Any) -> None:
        self.k, self.inner, self.action, self.done = k, worker.client, action, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def post_score(self, reg: Any, lineitem_url: str, score: Any) -> Any:
        if not self.done:
            self.done = True
            self.action()
        return self.inner.post_score(reg, lineitem_url, score)

    def post_scores(self, reg: Any, items: Any) -> Any:
        if not self.done:
            self.done = True
            self.action()
        return self.inner.post_scores(reg, items)


def test_the_worker_sends_the_desired_score_as_it_is_when_sending_not_the_claimed_copy(moodle_class: Klass) -> None:
    k = moodle_class
    exam = _assessment(k)  # every student: Initialized / NotReady, queued
    worker = k.worker()
    worker.bind_step()
    last = max(k.rows(f"assessment:{exam}").values(), key=lambda r: r.id).user_id  # sent last in the batch
    worker.client = TeacherTypesWhileSending(k, worker, lambda: _points(k, exam, last, "42"))  # type: ignore[assignment]

    worker.drain()
    k.deliver()

    assert raw(k.result(last, f"assessment:{exam}")) == D("42.00")
    assert all(p.body["gradingProgress"] == "FullyGraded" for p in k.posts(last, f"assessment:{exam}"))
    assert k.rows(f"assessment:{exam}")[last].state == "delivered"


def test_a_409_caused_by_moodles_own_clock_is_read_back_and_sent_again_after_its_stamp(moodle_class: Klass) -> None:
    k = moodle_class
    ann = k.subs[0]
    k.platform.shift_clock(20)  # Moodle's clock runs 20 s ahead of Tally's
    exam = _assessment(k)
    k.deliver()  # NotReady for everyone: Moodle stores it with its own clock (+20 s)
    _points(k, exam, ann, "42")  # the change's time is before Moodle's stamp

    k.deliver()

    statuses = [p.status for p in k.posts(ann, f"assessment:{exam}")]
    assert statuses == [200, 409, 200]
    assert raw(k.result(ann, f"assessment:{exam}")) == D("42.00")
    assert k.rows(f"assessment:{exam}")[ann].state == "delivered"
    assert k.status()["counts"]["superseded"] == 0


# -- 6: every change of participations goes through the gradebook seam; a GET never writes ------


def _participations(k: Klass) -> list[tuple[Any, ...]]:
    with k.stack.session() as db:
        return [tuple(r) for r in db.execute(select(Participation.id, Participation.student_id,
                                                    Participation.points_total, Participation.grade_value,
                                                    Participation.updated_at).order_by(Participation.id))]


def test_a_student_who_joins_after_the_apply_gets_a_grade_in_tally_and_in_the_lms(moodle_class: Klass) -> None:
    k = moodle_class
    k.bulk({sub: "35" for sub in k.subs})
    course = _assessment(k, title="Course grade", source="ledger")
    _apply(k, course)
    k.deliver()
    newcomer = k.platform.add_students(1)[0].id  # enrols in the LMS after the apply
    r = k.api("POST", f"/api/groups/{k.course_id}/roster/sync")  # the teacher opens Tally
    assert r.status_code == 200, r.text
    with k.stack.session() as db:
        k.person[newcomer] = db.scalar(select(Person.id).where(Person.sub == newcomer))
    before = _participations(k)
    assert k.api("GET", f"/api/assessments/{course}").status_code == 200
    assert _participations(k) == before  # a GET never writes

    k.bulk({newcomer: "31"})
    # The course grade has a scheme: its column is released by hand (issue 15).
    assert k.api("POST", f"/api/offerings/{k.offering_id}/delivery/columns/assessment-{course}/release").status_code == 200
    k.deliver()

    mine = [p for p in k.api("GET", f"/api/assessments/{course}").json()["participations"]
            if p["studentId"] == k.person[newcomer]]
    assert mine and mine[0]["grade"] == "1.0" and mine[0]["points"] == "31.00"
    result = k.result(newcomer, f"assessment:{course}")
    assert raw(result) == D("31.00") and result is not None and result.comment == "Grade 1.0"


def test_a_student_who_launches_before_any_roster_sync_gets_a_participation_at_once(moodle_class: Klass) -> None:
    k = moodle_class
    exam = _assessment(k)
    newcomer = k.platform.add_students(1)[0].id

    assert k.stack.launch(newcomer).status == 200

    with k.stack.session() as db:
        person = db.scalar(select(ScoreDelivery.person_id).where(ScoreDelivery.user_id == newcomer))
        parts = db.scalar(select(func.count()).select_from(Participation).where(
            Participation.assessment_id == exam, Participation.student_id == person))
    assert person is not None and parts == 1  # and its column has the newcomer's row
    k.deliver()
    assert k.result(newcomer, f"assessment:{exam}") is not None


# -- 7: the deep-linked column is the column of what the teacher chose ----------------------------


def _deep_link(stack: Stack, *, title: str, maximum: str, source: str) -> str:
    form = deep_link_launch(stack)
    answer = no_cookies().post(stack.tool_url + "/lti/deep-link/respond", allow_redirects=False, data={
        "dl": hidden(form.response.text, "dl"), "action": "add", "title": title, "score_maximum": maximum,
        "source": source})
    assert answer.status_code == 200, answer.text[:500]
    from tests.e2e.conftest import form_of

    action, fields = form_of(answer.text)
    assert no_cookies().post(action, data={"JWT": fields["JWT"]}).status_code == 200
    (link,) = deeplink_of(stack).results[-1].links
    return link.id


def test_a_deep_linked_ledger_total_goes_to_the_column_moodle_created_for_it(moodle: Stack) -> None:
    link = _deep_link(moodle, title="Homework points", maximum="40", source="ledger_total")
    k = Klass(moodle, link)
    try:
        ann = k.subs[0]
        k.entry(ann, "30")
        k.deliver()

        (column,) = moodle.platform.store.line_items_of(link)  # no second "(total)" column
        binding = k.binding()
        assert (binding.bound_via, binding.maximum_source, binding.score_maximum) == ("launch", "lms", D("40"))
        assert item_id(binding.lineitem_url or "") == column.id
        assert moodle.platform.store.result(column.id, ann).raw == 30.0
        again = moodle.launch(moodle.platform.teacher.id, link)  # Moodle still names the column
        assert again.status == 200
        assert moodle.platform.ags_claim(link).get("lineitem") == moodle.platform.paths.lineitem_url(column.id)
    finally:
        k.close()


def test_a_deep_linked_total_is_found_again_when_moodle_no_longer_names_it(moodle: Stack) -> None:
    link = _deep_link(moodle, title="Homework points", maximum="40", source="ledger_total")
    k = Klass(moodle, link)
    try:
        exam = _assessment(k, title="Quiz")  # its own column on the link: Moodle stops naming the link's column
        k.deliver()
        assert "lineitem" not in moodle.platform.ags_claim(link)
        k.teacher = moodle.launch(moodle.platform.teacher.id, link).token or ""
        ann = k.subs[0]
        k.entry(ann, "30")
        k.deliver()

        deep_linked = [li for li in moodle.platform.store.line_items_of(link) if li.resource_id == "tally:ledger_total"]
        binding = k.binding()
        assert len(deep_linked) == 1 and item_id(binding.lineitem_url or "") == deep_linked[0].id
        assert (binding.maximum_source, binding.score_maximum) == ("lms", D("40"))
        assert (deep_linked[0].label, deep_linked[0].score_maximum) == ("Homework points", 40.0)  # left as it was
        assert moodle.platform.store.result(deep_linked[0].id, ann).raw == 30.0
        assert len(moodle.platform.store.line_items_of(link)) == 2  # the deep-linked column and the quiz's
        assert k.binding(f"assessment:{exam}").lineitem_url != binding.lineitem_url
    finally:
        k.close()


def test_a_deep_linked_assessment_item_is_the_column_of_the_placements_assessment(moodle: Stack) -> None:
    link = _deep_link(moodle, title="Final exam", maximum="40", source="assessment")
    k = Klass(moodle, link)
    try:
        ann = k.subs[0]
        k.entry(ann, "3")  # ledger points too: the total gets a column of its own
        exam = _assessment(k, title="Final exam", maximum=40)
        _points(k, exam, ann, "36")
        k.deliver()

        binding = k.binding(f"assessment:{exam}")
        deep_linked = [li for li in moodle.platform.store.line_items_of(link) if li.resource_id == "tally:assessment"]
        assert len(deep_linked) == 1 and item_id(binding.lineitem_url or "") == deep_linked[0].id
        assert moodle.platform.store.result(deep_linked[0].id, ann).raw == 36.0
        assert k.binding().lineitem_url != binding.lineitem_url
    finally:
        k.close()


# -- 8: Moodle's read-back without `limit`, and never the LMS's HTML in a page -------------------


def test_the_read_back_works_on_moodle_456_and_finds_the_grade_a_teacher_changed(moodle_class: Klass) -> None:
    k = moodle_class
    ann = k.subs[0]
    k.entry(ann, "8")
    k.deliver()
    k.platform.teacher_edits_grade(k.item().id, ann, 95.0)

    r = k.api("GET", f"/api/offerings/{k.offering_id}/delivery/readback")

    assert r.status_code == 200
    assert r.json()["errors"] == []
    (difference,) = r.json()["differences"]
    assert (difference["kind"], difference["userId"]) == ("changed", ann)


def test_an_lms_error_page_reaches_the_teacher_as_its_status_and_one_line(moodle_class: Klass) -> None:
    k = moodle_class
    k.entry(k.subs[0], "8")
    k.deliver()
    page = ("<!DOCTYPE html><html><head><title>Error | Moodle</title></head><body><div class=\"errorbox\">"
            "<p class=\"errormessage\">Exception - Call to a member function out() on null</p></div></body></html>")
    k.platform.faults.fail_next(1, 500, body=page)

    answer = no_cookies().post(f"{k.stack.tool_url}/offerings/{k.offering_id}/sync?readback=1", data={"st": k.teacher})

    assert answer.status_code == 200
    assert "errormessage" not in answer.text and "&lt;p" not in answer.text and "<!DOCTYPE html><html><head>" not in answer.text[100:]
    assert "500" in answer.text
