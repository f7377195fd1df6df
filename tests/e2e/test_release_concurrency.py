"""Two teachers press "Release" on one column at the same moment, while a third enters points and
two workers deliver, on PostgreSQL: each held score is released once, none is sent before its
release, and the LMS ends with every released grade exactly once."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine, select

from tool.delivery.models import ScoreDelivery
from tests.e2e.conftest import start_stack, stop_all
from tests.e2e.delivery_kit import Klass, raw
from tests.e2e.test_concurrency import together
from tests.e2e.test_release_policy import exam_with_scheme, points

pytestmark = pytest.mark.postgres


@pytest.fixture
def big_class(clean_db: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator[Klass]:
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, "moodle", delivery_batch_size=5)
    s.platform.add_students(22)
    k = Klass(s)
    yield k
    k.close()
    stop_all(servers)


def test_two_teachers_release_at_once_and_each_score_is_released_once(big_class: Klass) -> None:
    k = big_class
    exam, _ = exam_with_scheme(k, apply=True)
    key, target = f"assessment-{exam}", f"assessment:{exam}"
    for i, sub in enumerate(k.subs):
        points(k, exam, sub, str(30 + i % 30))
    held = sum(1 for s in next(c for c in k.status()["columns"] if c["key"] == key)["students"] if s["held"])
    assert held == len(k.subs)
    # Workers running while nothing is released claim nothing.
    assert k.deliver().accepted == 0
    assert not [p for p in k.posts(target=target) if p.body.get("scoreGiven") is not None]

    url = f"/api/offerings/{k.offering_id}/delivery/columns/{key}/release"
    w1, w2 = k.worker("w1"), k.worker("w2")
    results = together(lambda: k.api("POST", url), lambda: k.api("POST", url), w1.drain, w2.drain)
    answers = results[:2]
    assert all(not isinstance(r, BaseException) for r in results), results
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert sum(r.json()["released"] for r in answers) == held  # each once, between the two teachers
    k.deliver()
    graded = Counter(p.user_id for p in k.accepted_posts(target=target) if p.body.get("scoreGiven") is not None)
    assert set(graded) == set(k.subs) and set(graded.values()) == {1}  # each grade reached the LMS once
    for i, sub in enumerate(k.subs):
        assert raw(k.result(sub, target)) == Decimal(30 + i % 30)
    with k.stack.session() as db:
        rows = db.scalars(select(ScoreDelivery).where(ScoreDelivery.binding_id == k.binding(target).id)).all()
    assert {(r.state, r.held) for r in rows} == {("delivered", False)}
