"""Workers: two in parallel deliver every score exactly once; claims skip locked rows on
PostgreSQL; the in-process thread of `python -m tool run`; `python -m tool sync` and `worker --once`."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import Engine

from tool import cli
from tool.clock import utcnow
from tool.db import make_engine, make_session_factory
from tool.delivery.queue import Attempt, claim_due, record_outcomes
from tool.delivery.worker import DeliveryWorker, StepResult, WorkerThread
from tests.e2e.conftest import Stack, start_stack, stop_all
from tests.e2e.delivery_kit import Klass, raw

D = Decimal


@pytest.fixture(params=["moodle", "canvas"])
def small_batches(request: pytest.FixtureRequest, clean_db: Engine, database_url: str, keys_dir: Path,
                  sandbox_key_path: Path) -> Iterator[Klass]:
    """A class of 30 students on a stack whose workers claim 4 scores at a time."""
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, request.param,
                             delivery_batch_size=4)
    s.platform.add_students(22)
    k = Klass(s)
    yield k
    k.close()
    stop_all(servers)


def _separate_worker(k: Klass, engines: list[Engine]) -> DeliveryWorker:
    """A worker with its own engine and connection pool, like one on another machine."""
    engine = make_engine(k.stack.settings.resolved_database_url)
    engines.append(engine)
    worker = k.worker()
    worker.sessions = make_session_factory(engine)
    return worker


def test_two_workers_in_parallel_deliver_every_score_exactly_once(small_batches: Klass) -> None:
    k = small_batches
    assert len(k.subs) == 30
    k.entry(k.subs[0], "1")
    k.deliver()  # the column is bound
    k.bulk({sub: str(i) for i, sub in enumerate(k.subs, start=10)})
    k.platform.faults.latency_ms = 20  # each post takes a while, so the two workers interleave
    engines: list[Engine] = []
    workers = [_separate_worker(k, engines), _separate_worker(k, engines)]
    results: list[StepResult] = [StepResult(), StepResult()]
    start = threading.Barrier(2)

    def run(i: int) -> None:
        start.wait()
        results[i] = workers[i].drain()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        for e in engines:
            e.dispose()
    assert results[0].accepted + results[1].accepted == 30
    assert results[0].sent > 0 and results[1].sent > 0  # both took part
    for i, sub in enumerate(k.subs, start=10):
        expected = D(i + 1) if sub == k.subs[0] else D(i)
        assert len(k.accepted_posts(sub)) == (2 if sub == k.subs[0] else 1), sub
        assert raw(k.result(sub)) == expected
    assert all(p.accepted for p in k.posts())
    assert set(k.status()["counts"].items()) >= {("delivered", 30), ("pending", 0), ("retrying", 0)}


def test_a_claim_skips_rows_another_worker_is_claiming(small_batches: Klass) -> None:
    k = small_batches
    if k.stack.engine.dialect.name != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite serialises claims with BEGIN IMMEDIATE")
    k.entry(k.subs[0], "1")
    k.deliver()
    k.bulk({sub: "5" for sub in k.subs[:8]})
    sessions = make_session_factory(k.stack.engine)
    with sessions() as first, sessions() as second:
        a = claim_due(first, worker="a", now=utcnow(), limit=4, claim_seconds=60)  # locked, not yet committed
        b = claim_due(second, worker="b", now=utcnow(), limit=4, claim_seconds=60)  # does not wait for it
        assert len(a.items) == 4 and len(b.items) == 4
        assert not {c.delivery_id for c in a.items} & {c.delivery_id for c in b.items}
        first.rollback()
        second.rollback()


@pytest.fixture
def polling(clean_db: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator[Klass]:
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, "moodle", delivery_poll_seconds=0.1)
    k = Klass(s)
    yield k
    k.close()
    stop_all(servers)


def _wait_for(condition: Any, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_the_in_process_worker_thread_delivers_what_the_teacher_saves(polling: Klass) -> None:
    k = polling
    thread = WorkerThread(k.worker()).start()
    try:
        ann, ben = k.subs[:2]
        k.entry(ann, "17")
        k.entry(ben, "3")
        assert _wait_for(lambda: k.rows().get(ben) is not None and k.rows()[ben].state == "delivered")
        assert _wait_for(lambda: k.rows()[ann].state == "delivered")
    finally:
        thread.stop()
    assert raw(k.result(ann)) == D("17.00") and raw(k.result(ben)) == D("3.00")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, moodle: Stack, database_url: str, keys_dir: Path) -> Stack:
    """`python -m tool …` in this process, on the test database and keys."""
    monkeypatch.setenv("TOOL_ENV", "test")
    monkeypatch.setenv("TOOL_DATABASE_URL", database_url)
    monkeypatch.setenv("TOOL_KEYS_DIR", str(keys_dir))
    return moodle


def test_tool_sync_delivers_an_offering_with_a_progress_bar(cli_env: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    k = Klass(cli_env)
    try:
        k.bulk({sub: str(i) for i, sub in enumerate(k.subs, start=1)})
        assert cli.main(["sync", "--offering", str(k.offering_id)]) == 0
        out = capsys.readouterr()
        assert f"offering {k.offering_id}:" in out.out and f"accepted {len(k.subs)}" in out.out
        assert "delivering" in out.err and f"{len(k.subs)}/{len(k.subs)}" in out.err  # the tqdm bar
        for i, sub in enumerate(k.subs, start=1):
            assert raw(k.result(sub)) == D(i)
    finally:
        k.close()


def test_tool_sync_says_what_failed_and_exits_1(cli_env: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    k = Klass(cli_env)
    try:
        ann, ben = k.subs[:2]
        k.platform.unenroll(ben)
        k.bulk({ann: "1", ben: "2"})
        assert cli.main(["sync", "--offering", str(k.offering_id), "--quiet"]) == 1
        out = capsys.readouterr().out
        assert "failed 1" in out and "delivered 1" in out
    finally:
        k.close()


def test_tool_sync_of_an_unknown_offering_is_a_clear_error(cli_env: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sync", "--offering", "999999"]) == 2
    assert "Offering 999999 does not exist" in capsys.readouterr().err


def test_tool_worker_once_delivers_what_is_due(cli_env: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    k = Klass(cli_env)
    try:
        k.entry(k.subs[0], "8")
        assert cli.main(["worker", "--once"]) == 0
        out = capsys.readouterr().out
        assert "delivered: 1 sent: 1 accepted" in out and "StepResult(" not in out  # words, not a repr
        assert raw(k.result(k.subs[0])) == D("8.00")
    finally:
        k.close()


def test_a_change_saved_while_its_score_is_on_the_wire_goes_out_right_after(klass_moodle: Klass) -> None:
    k = klass_moodle
    ann = k.subs[0]
    e = k.entry(ann, "10")
    k.deliver()
    k.correct(e["id"], "11")
    worker = k.worker("w")
    with worker.sessions() as db:
        claim = claim_due(db, worker="w", now=utcnow(), limit=10, claim_seconds=60)
        db.commit()
    k.correct(e["id"], "12")  # saved while 11 is being sent
    outcomes = worker.client.post_scores(claim.registrations[claim.items[0].registration_id],
                                         [(c.lineitem_url, c.score) for c in claim.items])
    with worker.sessions() as db:
        sent = [Attempt(c, o.kind, c.version, sent=c.score.to_json(), status=o.status, message=o.message)
                for c, o in zip(claim.items, outcomes)]
        done = record_outcomes(db, worker="w", results=sent, now=utcnow(), backoff_base=2, backoff_cap=60)
        db.commit()
    assert done.accepted == 1 and raw(k.result(ann)) == D("11.00")
    row = k.rows()[ann]
    assert row.state == "pending" and row.accepted["scoreGiven"] == 11
    assert k.deliver().accepted == 1
    assert raw(k.result(ann)) == D("12.00") and k.rows()[ann].state == "delivered"


@pytest.fixture
def klass_moodle(moodle: Stack) -> Iterator[Klass]:
    k = Klass(moodle)
    yield k
    k.close()
