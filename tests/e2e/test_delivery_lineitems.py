"""Line items: the launch's own, found by resourceId, created, updated (GET then PUT), rebound
after a course copy — and assessments, each in its own column with its grade in the comment."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterator

import pytest
from sqlalchemy import delete, select, update

from tool.assessments.models import Assessment
from tool.delivery import rules
from tool.delivery.models import LineItemBinding
from tool.lti.models import Offering
from tests.e2e.conftest import Stack
from tests.e2e.delivery_kit import Klass, item_id, klass, raw  # noqa: F401  (fixtures)

D = Decimal
BANDS = {"bands": [{"min_points": 9, "max_points": 10, "grade": "1.0"},
                   {"min_points": 7, "max_points": 8.99, "grade": "1.3"},
                   {"min_points": 5, "max_points": 6.99, "grade": "3.0"},
                   {"min_points": 0, "max_points": 4.99, "grade": "5.0"}],
         "absentGrade": "5.0"}


def expected_link(k: Klass) -> str | None:
    """The resourceLinkId Tally gives the columns it makes: the placement's on Moodle; none on Canvas,
    where a column is an assignment of its own (test_canvas_delivery.py)."""
    return k.link if k.platform.mode == "moodle" else None


def total_columns(k: Klass) -> list[int]:
    """The ids of the LMS's line items that are a Tally total."""
    return sorted(li.id for li in k.platform.store.line_items.values() if li.resource_id == rules.TOTAL_RESOURCE_ID)


@pytest.fixture
def link2(stack: Stack) -> Iterator[Klass]:
    """The second placement: the sandbox has no line item for it, so its launches name none."""
    k = Klass(stack, "rl-2")
    yield k
    k.close()


def test_without_a_launch_line_item_the_total_gets_a_column_tally_creates(link2: Klass) -> None:
    assert link2.platform.store.line_items_of("rl-2") == []
    ann = link2.subs[0]
    link2.entry(ann, "55")
    link2.deliver()
    b = link2.binding()
    assert b.bound_via == "created" and b.container_url == link2.platform.paths.lineitems_url
    item = link2.item()
    assert (item.label, item.score_maximum, item.resource_id, item.tag, item.resource_link_id) == (
        "Tally: Final exam (total)", 100.0, rules.TOTAL_RESOURCE_ID, rules.TOTAL_TAG, expected_link(link2))
    assert raw(link2.result(ann)) == D("55.00")


def test_a_column_that_exists_in_the_lms_is_found_by_its_resource_id_not_created_twice(link2: Klass) -> None:
    ann = link2.subs[0]
    link2.entry(ann, "10")
    link2.deliver()
    first = link2.binding().lineitem_url
    # Tally forgets the binding (a restored database): the column is still in the LMS.
    with link2.stack.session() as db:
        db.execute(delete(LineItemBinding).where(LineItemBinding.offering_id == link2.offering_id))
        db.commit()
    # A later change (two seconds on: the column's score is older than this one).
    link2.later(2)
    link2.entry(ann, "5")
    link2.deliver()
    assert link2.binding().bound_via == "found" and link2.binding().lineitem_url == first
    assert len(total_columns(link2)) == 1
    assert raw(link2.result(ann)) == D("15.00")


def test_the_total_follows_a_course_copy_to_the_copied_column_instead_of_duplicating_it(link2: Klass) -> None:
    ann, ben = link2.subs[:2]
    link2.entry(ann, "20")
    link2.deliver()
    platform = link2.platform
    # The course was copied: the LMS copied the column (same resourceId, for the new placement),
    # and the offering's launches now come from the copy's container. The old binding points
    # into the original course.
    assignment = platform.store.add_assignment(title="Tally: Final exam (total)", points_possible=100.0) \
        if platform.mode == "canvas" else None  # on Canvas the column is an assignment, copied as one
    copied = platform.store.add_line_item(label="Tally: Final exam (total)", score_maximum=100.0,
                                          resource_link_id=expected_link(link2), resource_id=rules.TOTAL_RESOURCE_ID,
                                          tag=rules.TOTAL_TAG, assignment_id=assignment.id if assignment else None)
    with link2.stack.session() as db:
        db.execute(update(LineItemBinding).where(LineItemBinding.offering_id == link2.offering_id).values(
            container_url="http://lms.example/original-course/lineitems",
            lineitem_url="http://lms.example/original-course/lineitems/1"))
        db.commit()
    platform.store.delete_line_item(item_id(platform.paths.lineitem_url(copied.id - 1)))  # the original is gone here
    link2.entry(ben, "8")
    link2.deliver()
    b = link2.binding()
    assert b.bound_via == "found" and item_id(b.lineitem_url or "") == copied.id
    assert b.container_url == platform.paths.lineitems_url
    assert total_columns(link2) == [copied.id]
    # Everything is sent to the copy, Ann's earlier total included.
    assert raw(platform.store.result(copied.id, ann)) == D("20.00")
    assert raw(platform.store.result(copied.id, ben)) == D("8.00")


def test_the_teacher_sets_the_totals_maximum_and_the_column_and_scores_follow(link2: Klass) -> None:
    ann = link2.subs[0]
    link2.entry(ann, "30")
    link2.deliver()
    r = link2.api("PUT", f"/api/offerings/{link2.offering_id}/delivery/settings", {"totalMaximum": "40"})
    assert r.status_code == 200, r.text
    assert r.json() == {"totalMaximum": "40.00", "maximumSource": "teacher"}
    link2.deliver()
    item = link2.item()
    assert item.score_maximum == 40.0 and item.label == "Tally: Final exam (total)"  # PUT kept the label
    assert item.resource_link_id == expected_link(link2)  # and what the platform holds beside it
    assert raw(link2.result(ann)) == D("30.00")
    last = link2.accepted_posts(ann)[-1].body
    assert (last["scoreGiven"], last["scoreMaximum"]) == (30, 40)


def test_the_placements_own_column_keeps_the_maximum_the_lms_gives_it(klass: Klass) -> None:
    klass.entry(klass.subs[0], "1")
    klass.deliver()
    r = klass.api("PUT", f"/api/offerings/{klass.offering_id}/delivery/settings", {"totalMaximum": "40"})
    assert r.status_code == 409
    assert r.json()["code"] == "maximum_from_lms" and "100.00" in r.json()["message"]


@pytest.mark.parametrize("body", [{"totalMaximum": "0"}, {"totalMaximum": "-5"}, {"totalMaximum": "abc"},
                                  {"totalMaximum": "1.005"}, {}, {"totalMaximum": 10, "other": 1}])
def test_a_bad_maximum_is_refused_field_by_field(link2: Klass, body: dict[str, Any]) -> None:
    link2.entry(link2.subs[0], "1")
    r = link2.api("PUT", f"/api/offerings/{link2.offering_id}/delivery/settings", body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error" and r.json()["details"]
    assert link2.binding().score_maximum == D(100)


# -- assessments ---------------------------------------------------------------------------------


class ExamOf:
    """A 10-point exam with two tasks in the class's offering."""

    def __init__(self, k: Klass, title: str = "Midterm") -> None:
        self.k = k
        r = k.api("POST", f"/api/offerings/{k.offering_id}/assessments",
                  {"title": title, "maxPoints": 10, "tasks": [{"title": "A", "maxPoints": 5},
                                                             {"title": "B", "maxPoints": 5}]})
        assert r.status_code == 201, r.text
        self.id = r.json()["id"]
        self.tasks = [t["id"] for t in r.json()["tasks"]]
        self.target = rules.assessment_target(self.id)

    def tasks_points(self, sub: str, *points: Any) -> None:
        r = self.k.api("PUT", f"/api/assessments/{self.id}/points/{self.k.person[sub]}",
                       {"tasks": {str(t): p for t, p in zip(self.tasks, points)}})
        assert r.status_code == 200, r.text

    def apply(self) -> None:
        r = self.k.api("POST", f"/api/assessments/{self.id}/schemes", {"config": BANDS})
        assert r.status_code == 201, r.text
        # These tests are about what each change sends: the teacher has this exam's column send every
        # change at once (`automatic`; an exam with a scheme is `manual` by default, issue 15).
        policy = self.k.api("PUT", f"/api/offerings/{self.k.offering_id}/delivery/columns/assessment-{self.id}",
                            {"release": "automatic"})
        assert policy.status_code == 200, policy.text
        r = self.k.api("POST", f"/api/schemes/{r.json()['id']}/apply")
        assert r.status_code == 200, r.text

    def body(self, sub: str) -> dict[str, Any]:
        return self.k.accepted_posts(sub, self.target)[-1].body


def test_a_new_assessment_gets_its_column_at_once_with_nothing_entered_for_everyone(klass: Klass) -> None:
    exam = ExamOf(klass, title="Quiz 1")
    klass.deliver()
    item = klass.item(exam.target)
    assert (item.label, item.score_maximum) == ("Quiz 1", 10.0)
    for sub in klass.subs:
        body = exam.body(sub)
        assert (body["activityProgress"], body["gradingProgress"]) == ("Initialized", "NotReady")
        assert "scoreGiven" not in body


def test_each_assessment_gets_its_own_column_with_its_maximum_and_the_grade_in_the_comment(klass: Klass) -> None:
    exam = ExamOf(klass)
    ann, ben, cem = klass.subs[:3]
    exam.tasks_points(ann, "4.5", "4")
    exam.tasks_points(ben, "3", "3")
    exam.apply()
    klass.deliver()
    b = klass.binding(exam.target)
    assert b.bound_via == "created"
    item = klass.item(exam.target)
    assert (item.label, item.score_maximum, item.resource_id, item.tag, item.resource_link_id) == (
        "Midterm", 10.0, rules.assessment_resource_id(exam.id), rules.ASSESSMENT_TAG, expected_link(klass))
    assert item.id != item_id(klass.platform.paths.lineitem_url(1))  # not the placement's own column
    assert (exam.body(ann)["scoreGiven"], exam.body(ann)["scoreMaximum"], exam.body(ann)["comment"]) == (
        8.5, 10, "Grade 1.3")
    assert (exam.body(ben)["scoreGiven"], exam.body(ben)["comment"]) == (6, "Grade 3.0")
    # Nothing entered for Cem: Initialized / NotReady without a score.
    cem_body = exam.body(cem)
    assert (cem_body["activityProgress"], cem_body["gradingProgress"]) == ("Initialized", "NotReady")
    assert "scoreGiven" not in cem_body
    result = klass.result(ann, exam.target)
    assert result is not None and raw(result) == D("8.50") and result.comment == "Grade 1.3"


def test_started_work_is_reported_only_until_a_grade_was_delivered(klass: Klass) -> None:
    exam = ExamOf(klass)
    ann = klass.subs[0]
    exam.tasks_points(ann, "4", None)  # one task of two: work in progress
    klass.deliver()
    body = exam.body(ann)
    assert (body["activityProgress"], body["gradingProgress"]) == ("InProgress", "Pending")
    assert "scoreGiven" not in body
    exam.tasks_points(ann, "4", "5")
    exam.apply()
    klass.deliver()
    assert raw(klass.result(ann, exam.target)) == D("9.00")
    posts = len(klass.posts(ann, exam.target))
    exam.tasks_points(ann, "4", None)  # a task's points removed again: progress only
    klass.deliver()
    assert len(klass.posts(ann, exam.target)) == posts  # held: it would clear the grade
    assert raw(klass.result(ann, exam.target)) == D("9.00")
    row = klass.rows(exam.target)[ann]
    assert row.state == "delivered" and row.note and "clear" in row.note


def test_a_manual_grade_is_marked_in_the_comment(klass: Klass) -> None:
    exam = ExamOf(klass)
    ann = klass.subs[0]
    exam.tasks_points(ann, "3", "3")
    exam.apply()
    r = klass.api("PUT", f"/api/assessments/{exam.id}/participations/{klass.person[ann]}/override",
                  {"grade": "2.0", "reason": "oral exam"})
    assert r.status_code == 200, r.text
    klass.deliver()
    assert exam.body(ann)["comment"] == "Grade 2.0 (set by the teacher)"
    assert exam.body(ann)["scoreGiven"] == 6


def test_absent_and_exempt_students(klass: Klass) -> None:
    exam = ExamOf(klass)
    ann, ben = klass.subs[:2]
    exam.tasks_points(ann, "5", "5")
    exam.tasks_points(ben, "5", "5")
    exam.apply()
    klass.deliver()
    for sub, status in ((ann, "absent"), (ben, "exempt")):
        r = klass.api("PUT", f"/api/assessments/{exam.id}/participations/{klass.person[sub]}/status",
                      {"status": status})
        assert r.status_code == 200, r.text
    klass.deliver()
    assert (exam.body(ann)["scoreGiven"], exam.body(ann)["comment"]) == (0, "Absent. Grade 5.0")
    ben_result = klass.result(ben, exam.target)
    assert ben_result is not None and ben_result.raw is None  # exempt: the grade is cleared
    assert exam.body(ben)["comment"] == rules.EXEMPT_COMMENT


def test_a_regrade_after_apply_sends_the_new_grade_and_canvas_hears_an_unchanged_comment_once(
        klass: Klass) -> None:
    exam = ExamOf(klass)
    ann = klass.subs[0]
    exam.tasks_points(ann, "4", "3.5")
    exam.apply()
    klass.deliver()
    exam.tasks_points(ann, "4", "4")  # 8 points: still 1.3
    klass.deliver()
    result = klass.result(ann, exam.target)
    assert result is not None and raw(result) == D("8.00") and result.comment == "Grade 1.3"
    last = exam.body(ann)
    if klass.platform.mode == "canvas":
        assert "comment" not in last and result.comments == ["Grade 1.3"]
    else:
        assert last["comment"] == "Grade 1.3"  # Moodle: resent, or the feedback would be erased


def test_a_ledger_fed_course_grade_follows_the_ledger(klass: Klass) -> None:
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/assessments",
                  {"title": "Course grade", "maxPoints": 10, "source": "ledger", "kind": "course_grade"})
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    scheme = klass.api("POST", f"/api/assessments/{aid}/schemes", {"config": BANDS}).json()
    assert klass.api("POST", f"/api/schemes/{scheme['id']}/apply").status_code == 200
    ann = klass.subs[0]
    klass.entry(ann, "9.5")
    klass.deliver()
    target = rules.assessment_target(aid)
    # The course grade has a scheme, so its column holds the grade until the teacher releases it
    # (issue 15); the ledger total is automatic and went at once.
    assert not [p for p in klass.posts(ann, target) if p.body.get("comment")]
    assert raw(klass.result(ann)) == D("9.50")
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/columns/assessment-{aid}/release")
    assert r.status_code == 200 and r.json()["released"] == 1, r.text
    klass.deliver()
    assert klass.accepted_posts(ann, target)[-1].body["comment"] == "Grade 1.0"
    assert raw(klass.result(ann)) == D("9.50")  # and the total, in its own column
    with klass.stack.session() as db:
        offering = db.scalar(select(Offering).where(Offering.id == klass.offering_id))
        assert offering is not None
    assert len(klass.bindings()) == 2


def test_an_assessments_new_title_and_maximum_reach_its_column_with_the_next_sync(klass: Klass) -> None:
    exam = ExamOf(klass)
    ann = klass.subs[0]
    exam.tasks_points(ann, "4", "4")
    klass.deliver()
    assert klass.item(exam.target).label == "Midterm"
    with klass.stack.session() as db:  # the assessment is renamed and its maximum raised
        db.execute(update(Assessment).where(Assessment.id == exam.id).values(title="Midterm (resit)",
                                                                                max_points=D(20)))
        db.commit()
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/sync")
    assert r.status_code == 200, r.text
    # The column is updated and Ann's score follows the new maximum; her classmates got their
    # "nothing entered" rows when the assessment was created, and those carry no maximum.
    assert r.json()["lineItemsBound"] == 1 and r.json()["accepted"] == 1
    item = klass.item(exam.target)
    assert (item.label, item.score_maximum, item.resource_id) == (
        "Midterm (resit)", 20.0, rules.assessment_resource_id(exam.id))
    assert (exam.body(ann)["scoreGiven"], exam.body(ann)["scoreMaximum"]) == (8, 20)


def test_a_column_deleted_in_the_lms_is_made_again_and_refilled(link2: Klass) -> None:
    ann, ben = link2.subs[:2]
    link2.entry(ann, "7")
    link2.deliver()
    gone = link2.item().id
    link2.platform.store.delete_line_item(gone)  # a teacher deletes the column in the LMS
    link2.entry(ben, "9")
    result = link2.deliver()
    assert result.rebinding == 1 and result.bound == 1
    item = link2.item()
    assert item.id != gone and item.resource_id == rules.TOTAL_RESOURCE_ID
    assert total_columns(link2) == [item.id]
    assert raw(link2.result(ann)) == D("7.00") and raw(link2.result(ben)) == D("9.00")
    assert {r.state for r in link2.rows().values()} == {"delivered"}
