"""Two teachers, many requests, two workers at once on PostgreSQL: no correction lost, no grade
event twice, no stale desired score, no score accepted twice, no 500.

Real threads against the real app over loopback HTTP and a real PostgreSQL database; skipped
on SQLite, whose BEGIN IMMEDIATE serialises every writer anyway.
"""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import Engine, func, select

from tool import cli
from tool.assessments.models import GradeEvent, Participation
from tool.clock import utcnow
from tool.db import make_engine, make_session_factory
from tool.delivery.queue import claim_due
from tool.delivery.worker import DeliveryWorker, StepResult
from tool.ledger.models import GradeEntryRevision
from tests.e2e.conftest import start_stack, stop_all
from tests.e2e.delivery_kit import Klass, raw

pytestmark = pytest.mark.postgres
D = Decimal


@pytest.fixture
def big_class(clean_db: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator[Klass]:
    """A Moodle class of 30 students; its workers claim 10 scores at a time."""
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, "moodle", delivery_batch_size=10)
    s.platform.add_students(22)
    k = Klass(s)
    yield k
    k.close()
    stop_all(servers)


def together(*jobs: Callable[[], Any]) -> list[Any]:
    """Run the jobs in threads released at the same moment; their results (or exceptions) in order."""
    start = threading.Barrier(len(jobs))
    out: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        start.wait()
        try:
            out[i] = jobs[i]()
        except BaseException as exc:  # reported by the test, not lost in a thread
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


def second_teacher(k: Klass) -> str:
    """The session token of the class's second teacher (Moodle sends a TA as Instructor)."""
    token = k.stack.launch(k.platform.users_of_kind("ta")[0].id, k.link).token
    assert token
    return token


def verify(monkeypatch: pytest.MonkeyPatch, k: Klass, database_url: str, keys_dir: Path,
           capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`python -m tool verify --offering N`: its exit code and what it printed."""
    monkeypatch.setenv("TOOL_ENV", "test")
    monkeypatch.setenv("TOOL_DATABASE_URL", database_url)
    monkeypatch.setenv("TOOL_KEYS_DIR", str(keys_dir))
    capsys.readouterr()
    code = cli.main(["verify", "--offering", str(k.offering_id)])
    return code, capsys.readouterr().out


# -- 1: optimistic concurrency on entries; without a version the writes are serialised ----------


def test_twenty_concurrent_corrections_by_two_teachers_make_twenty_consecutive_revisions(big_class: Klass) -> None:
    k = big_class
    other = second_teacher(k)
    entry = k.entry(k.subs[0], "1")

    def correct(n: int) -> Any:
        token = k.teacher if n % 2 else other
        return k.api("PUT", f"/api/grades/entries/{entry['id']}", {"points": str(10 + n)}, token=token)

    answers = together(*[lambda n=n: correct(n) for n in range(20)])

    assert [a.status_code for a in answers] == [200] * 20
    assert sorted(a.json()["version"] for a in answers) == list(range(2, 22))
    final = k.api("GET", f"/api/grades/entries/{entry['id']}").json()
    assert final["version"] == 21
    with k.stack.session() as db:
        versions = list(db.scalars(select(GradeEntryRevision.version).where(GradeEntryRevision.entry_id == entry["id"])
                                   .order_by(GradeEntryRevision.version)))
    assert versions == list(range(1, 21))


def test_two_simultaneous_voids_one_wins_and_the_other_is_told(big_class: Klass) -> None:
    k = big_class
    other = second_teacher(k)
    entry = k.entry(k.subs[0], "3")

    answers = together(
        lambda: k.api("DELETE", f"/api/grades/entries/{entry['id']}", {"reason": "first reason"}),
        lambda: k.api("DELETE", f"/api/grades/entries/{entry['id']}", {"reason": "second reason"}, token=other))

    assert sorted(a.status_code for a in answers) == [200, 409]
    winner = next(a for a in answers if a.status_code == 200).json()
    loser = next(a for a in answers if a.status_code == 409).json()
    assert loser["code"] == "entry_voided"
    assert k.api("GET", f"/api/grades/entries/{entry['id']}").json()["voidReason"] == winner["voidReason"]


# -- 2: concurrent applies change grades once -----------------------------------------------------


def test_eight_concurrent_applies_grade_everyone_once(big_class: Klass) -> None:
    k = big_class
    r = k.api("POST", f"/api/offerings/{k.offering_id}/assessments", {"title": "Exam", "maxPoints": 60})
    exam = r.json()["id"]
    for i, sub in enumerate(k.subs):
        assert k.api("PUT", f"/api/assessments/{exam}/points/{k.person[sub]}", {"points": str(20 + i)}).status_code == 200
    bands = {"bands": [{"min_points": 30, "max_points": 60, "grade": "1.0"},
                       {"min_points": 0, "max_points": 29.99, "grade": "5.0"}]}
    scheme = k.api("POST", f"/api/assessments/{exam}/schemes", {"config": bands}).json()["id"]

    answers = together(*[lambda: k.api("POST", f"/api/schemes/{scheme}/apply") for _ in range(8)])

    assert [a.status_code for a in answers] == [200] * 8
    bodies = [a.json() for a in answers]
    assert sorted(b["alreadyApplied"] for b in bodies) == [False] + [True] * 7
    assert sum(b["changed"] for b in bodies) == 30
    with k.stack.session() as db:
        events = db.scalar(select(func.count()).select_from(GradeEvent).join(
            Participation, Participation.id == GradeEvent.participation_id).where(Participation.assessment_id == exam))
    assert events == 30


# -- 3: one writer per column; race-free upserts; no deadlock answers 500 -------------------------


def test_a_bulk_racing_voids_leaves_every_desired_score_equal_to_the_ledger_total(
        big_class: Klass, monkeypatch: pytest.MonkeyPatch, database_url: str, keys_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    k = big_class
    k.bulk({sub: "2" for sub in k.subs})
    k.deliver()
    writes = 0
    for round_ in range(3):
        firsts = {}
        for sub in k.subs:
            entries = k.api("GET", f"/api/grades/students/{k.person[sub]}/offerings/{k.offering_id}").json()["entries"]
            firsts[sub] = entries[-1]["id"]
        chunks = [k.subs[i::3] for i in range(3)]

        def voids(subs: list[str]) -> list[int]:
            return [k.api("DELETE", f"/api/grades/entries/{firsts[s]}", {"reason": "race"}).status_code for s in subs]

        def bulk() -> int:
            return k.api("POST", "/api/grades/entries/bulk", {
                "offeringId": k.offering_id, "typeCode": "HOMEWORK",
                "items": [{"studentId": k.person[s], "points": "1"} for s in k.subs]}).status_code

        answers = together(bulk, *[lambda c=c: voids(c) for c in chunks])
        assert answers[0] == 201 and all(codes == [200] * len(c) for codes, c in zip(answers[1:], chunks)), answers
        writes += 1 + len(k.subs)

    k.deliver()
    summary = k.api("GET", f"/api/grades/groups/{k.course_id}/offerings/{k.offering_id}/summary").json()
    totals = {s["studentId"]: D(s["total"]) for s in summary["students"]}
    rows = k.rows()
    for sub in k.subs:
        assert D(str(rows[sub].desired["scoreGiven"])) == totals[k.person[sub]], sub
        assert raw(k.result(sub)) == totals[k.person[sub]], sub
        assert rows[sub].state == "delivered"
    code, out = verify(monkeypatch, k, database_url, keys_dir, capsys)
    assert code == 0, out
    assert "no difference" in out
    assert writes == 93


def test_first_scores_of_one_student_written_at_once_are_one_row_not_a_500(big_class: Klass) -> None:
    k = big_class
    k.entry(k.subs[-1], "1")  # the column exists; nobody else has a score yet
    statuses: Counter[int] = Counter()
    for sub in k.subs[:-1]:
        answers = together(*[lambda n=n: k.api("POST", "/api/grades/entries", {
            "offeringId": k.offering_id, "studentId": k.person[sub], "points": str(n), "typeCode": "EXAM"})
            for n in range(1, 5)])
        statuses.update(a.status_code for a in answers)

    assert statuses == Counter({201: 4 * 29})
    k.deliver()
    assert all(raw(k.result(sub)) == D("10.00") and k.rows()[sub].desired["scoreGiven"] == 10
               for sub in k.subs[:-1])


def test_workers_recording_while_teachers_write_never_deadlock_into_a_500(big_class: Klass) -> None:
    k = big_class
    k.bulk({sub: "1" for sub in k.subs})
    k.deliver()
    stop = threading.Event()
    failures: list[BaseException] = []
    engines: list[Engine] = []

    def deliver_until_stopped() -> None:
        engine = make_engine(k.stack.settings.resolved_database_url)
        engines.append(engine)
        worker = k.worker()
        worker.sessions = make_session_factory(engine)
        while not stop.is_set():
            try:
                worker.run_once()
            except BaseException as exc:
                failures.append(exc)

    workers = [threading.Thread(target=deliver_until_stopped) for _ in range(2)]
    for w in workers:
        w.start()
    statuses: Counter[int] = Counter()
    try:
        for n in range(30):
            # Some posts fail: a batch's answers are then recorded in two groups (accepted, other).
            k.platform.faults.fail_next(3, 503)
            order = k.subs if n % 2 else list(reversed(k.subs))
            r = k.api("POST", "/api/grades/entries/bulk", {
                "offeringId": k.offering_id, "typeCode": "SEMINAR",
                "items": [{"studentId": k.person[s], "points": "1"} for s in order]})
            statuses[r.status_code] += 1
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
        for e in engines:
            e.dispose()
    assert statuses == Counter({201: 30}) and failures == []
    k.platform.faults.reset()
    k.later(3600)  # past every backoff
    k.deliver()
    assert all(raw(k.result(sub)) == D("31.00") for sub in k.subs)


# -- 5: a worker that died mid-batch: its claims expire, nothing is accepted twice ---------------


def test_two_workers_after_one_died_mid_batch_accept_no_score_twice(big_class: Klass) -> None:
    k = big_class
    k.entry(k.subs[0], "1")
    k.deliver()  # the column is bound
    k.bulk({sub: str(i) for i, sub in enumerate(k.subs, start=10)})
    # A worker claims a batch, posts half of it, and is killed (kill -9): nothing is recorded.
    dead = k.worker("dead-worker")
    with dead.sessions() as db:
        claim = claim_due(db, worker=dead.name, now=utcnow(), limit=10, claim_seconds=30)
        db.commit()
    reg = claim.registrations[claim.items[0].registration_id]
    for item in claim.items[:5]:
        assert dead.client.post_score(reg, item.lineitem_url, item.score).kind == "accepted"
    k.later(31)  # its claims expire
    engines: list[Engine] = []

    def separate() -> DeliveryWorker:
        engine = make_engine(k.stack.settings.resolved_database_url)
        engines.append(engine)
        w = k.worker()
        w.sessions = make_session_factory(engine)
        return w

    survivors = [separate(), separate()]
    try:
        results = together(*[w.drain for w in survivors])
    finally:
        for e in engines:
            e.dispose()

    assert all(isinstance(r, StepResult) for r in results), results
    for i, sub in enumerate(k.subs, start=10):
        expected = D(i + 1) if sub == k.subs[0] else D(i)
        assert raw(k.result(sub)) == expected, sub
        posts = [p for p in k.accepted_posts(sub) if D(str(p.body["scoreGiven"])) == expected]
        assert len(posts) == 1, (sub, [p.body for p in k.accepted_posts(sub)])
    assert k.status()["counts"]["delivered"] == 30


# -- everything at once, then `python -m tool verify` ----------------------------------------------


def test_a_mixed_concurrent_run_leaves_nothing_for_verify_to_find(big_class: Klass, database_url: str,
                                                                   keys_dir: Path) -> None:
    import os
    import random
    import subprocess
    import sys

    k = big_class
    teachers = [k.teacher, second_teacher(k)]
    bands = {"bands": [{"min_points": 30, "max_points": 60, "grade": "1.0"},
                       {"min_points": 0, "max_points": 29.99, "grade": "5.0"}]}
    exams = []
    for source in ("tasks", "ledger"):
        exams.append(k.api("POST", f"/api/offerings/{k.offering_id}/assessments",
                           {"title": f"Exam ({source})", "maxPoints": 60, "source": source}).json()["id"])
    k.bulk({sub: "5" for sub in k.subs})
    stop = threading.Event()
    engines: list[Engine] = []

    def deliver_until_stopped() -> None:
        engine = make_engine(k.stack.settings.resolved_database_url)
        engines.append(engine)
        worker = k.worker()
        worker.sessions = make_session_factory(engine)
        while not stop.is_set():
            worker.run_once()

    def teacher(n: int) -> Counter[str]:
        rng = random.Random(n)
        token = teachers[n % 2]
        seen: Counter[str] = Counter()
        for _ in range(40):
            sub = rng.choice(k.subs)
            action = rng.choice(["entry", "bulk", "correct", "void", "points", "apply"])
            if action == "entry":
                r = k.api("POST", "/api/grades/entries", {"offeringId": k.offering_id, "studentId": k.person[sub],
                                                          "points": str(rng.randint(-3, 9)), "typeCode": "EXAM"},
                          token=token)
            elif action == "bulk":
                r = k.api("POST", "/api/grades/entries/bulk", {
                    "offeringId": k.offering_id, "typeCode": "SEMINAR",
                    "items": [{"studentId": k.person[s], "points": "1"} for s in rng.sample(k.subs, 10)]}, token=token)
            elif action in ("correct", "void"):
                entries = k.api("GET", f"/api/grades/students/{k.person[sub]}/offerings/{k.offering_id}",
                                token=token).json()["entries"]
                if not entries:
                    continue
                e = rng.choice(entries)
                version = e["version"] if rng.random() < 0.5 else None  # half of them as the page sends it
                if action == "correct":
                    r = k.api("PUT", f"/api/grades/entries/{e['id']}",
                              {"points": str(rng.randint(0, 9)), **({"version": version} if version else {})},
                              token=token)
                else:
                    r = k.api("DELETE", f"/api/grades/entries/{e['id']}",
                              {"reason": "race", **({"version": version} if version else {})}, token=token)
            elif action == "points":
                r = k.api("PUT", f"/api/assessments/{exams[0]}/points/{k.person[sub]}",
                          {"points": str(rng.randint(0, 60))}, token=token)
            else:
                exam = rng.choice(exams)
                scheme = k.api("POST", f"/api/assessments/{exam}/schemes", {"config": bands}, token=token)
                r = k.api("POST", f"/api/schemes/{scheme.json()['id']}/apply", token=token)
            seen[f"{action} {r.status_code}"] += 1
        return seen

    workers = [threading.Thread(target=deliver_until_stopped) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        results = together(*[lambda n=n: teacher(n) for n in range(4)])
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
        for e in engines:
            e.dispose()
    assert all(isinstance(r, Counter) for r in results), results
    answers: Counter[str] = sum(results, Counter())
    assert not [a for a in answers if a.split()[1].startswith("5")], answers
    writes = sum(n for a, n in answers.items() if a.split()[1] in ("200", "201"))
    k.later(3600)
    k.deliver()

    env = {**os.environ, "TOOL_ENV": "test", "TOOL_DATABASE_URL": database_url, "TOOL_KEYS_DIR": str(keys_dir)}
    run = subprocess.run([sys.executable, "-m", "tool", "verify", "--offering", str(k.offering_id)], env=env,
                         capture_output=True, text=True, timeout=120)

    print(f"\n{writes} writes accepted ({dict(sorted(answers.items()))}); verify: {run.stdout.strip()}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no difference" in run.stdout and writes > 100
