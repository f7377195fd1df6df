"""`python -m tool verify --offering N`: ledger totals, grades and desired and accepted scores are
computed again from what they come from; every difference is reported, exit 1 when any."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import delete, update

from tool import cli
from tool.assessments.models import Participation
from tool.delivery.models import ScoreDelivery
from tool.ledger.models import GradeEntryRevision
from tests.e2e.conftest import Stack
from tests.e2e.delivery_kit import Klass

BANDS = {"bands": [{"min_points": 30, "max_points": 60, "grade": "1.0"},
                   {"min_points": 0, "max_points": 29.99, "grade": "5.0"}]}


@pytest.fixture
def graded(moodle: Stack, monkeypatch: pytest.MonkeyPatch, database_url: str, keys_dir: Path) -> Iterator[Klass]:
    """A class with ledger points, a correction, a void, a graded exam and a ledger-fed course
    grade, all delivered; the CLI pointed at the test database."""
    monkeypatch.setenv("TOOL_ENV", "test")
    monkeypatch.setenv("TOOL_DATABASE_URL", database_url)
    monkeypatch.setenv("TOOL_KEYS_DIR", str(keys_dir))
    k = Klass(moodle)
    ann, ben = k.subs[:2]
    first = k.entry(ann, "20")
    k.correct(first["id"], "25")
    k.correct(first["id"], "26")
    k.void(k.entry(ben, "3")["id"])
    k.bulk({sub: "10" for sub in k.subs})
    for source, title in (("tasks", "Exam"), ("ledger", "Course grade")):
        r = k.api("POST", f"/api/offerings/{k.offering_id}/assessments", {"title": title, "maxPoints": 60,
                                                                          "source": source})
        assessment = r.json()["id"]
        if source == "tasks":
            for i, sub in enumerate(k.subs):
                k.api("PUT", f"/api/assessments/{assessment}/points/{k.person[sub]}", {"points": str(20 + 2 * i)})
        scheme = k.api("POST", f"/api/assessments/{assessment}/schemes", {"config": BANDS}).json()["id"]
        assert k.api("POST", f"/api/schemes/{scheme}/apply").status_code == 200
    k.deliver()
    yield k
    k.close()


def test_a_consistent_offering_has_no_difference(graded: Klass, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["verify", "--offering", str(graded.offering_id)])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "no difference" in out
    assert "10 entries" in out and "2 revisions" in out and "3 delivery columns" in out and "24 delivery rows" in out and "16 grades" in out


def test_every_kind_of_difference_is_reported_and_exits_1(graded: Klass, capsys: pytest.CaptureFixture[str]) -> None:
    k = graded
    ann, ben, cem = k.subs[:3]
    total, exam = k.binding(), k.binding(next(t for t in k.bindings() if t != "total"))
    stale = dict(k.rows()[ben].desired, scoreGiven=99)
    with k.stack.session() as db:
        db.execute(delete(GradeEntryRevision).where(GradeEntryRevision.version == 1))  # a lost correction
        db.execute(update(Participation).where(Participation.student_id == k.person[ann],
                                               Participation.assessment_id == exam.assessment_id)
                   .values(grade_value="1.0"))  # a grade no scheme gave (20 points: 5.0)
        db.execute(update(ScoreDelivery).where(ScoreDelivery.binding_id == total.id,
                                               ScoreDelivery.user_id == ben).values(desired=stale))
        db.execute(update(ScoreDelivery).where(ScoreDelivery.binding_id == total.id,
                                               ScoreDelivery.user_id == cem).values(accepted=None))
        db.commit()

    code = cli.main(["verify", "--offering", str(k.offering_id)])

    out = capsys.readouterr().out
    assert code == 1
    kinds = [line.strip().split(":")[0] for line in out.splitlines() if line.startswith("  ") and ":" in line]
    assert sorted(kinds) == ["accepted", "accepted", "desired", "desired", "entry_history", "grade", "grade_event"], out
    assert "7 differences" in out  # the exam desired follows the stored grade, so it differs too


def test_an_unknown_offering_is_an_error(graded: Klass, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "--offering", "999999"]) == 2
    assert "does not exist" in capsys.readouterr().err
