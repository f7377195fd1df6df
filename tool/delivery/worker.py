"""The delivery worker: bind line items, claim due scores, post them, record the answers.

One step (`run_once`) is: bindings that need the LMS (unbound, course copy, label or maximum
changed) are claimed, resolved over HTTP and recorded; then up to `delivery_batch_size` due
scores are claimed and sent concurrently (`ags_concurrency` lanes; the AgsClient caps what is
in flight per platform), and their outcomes recorded. The database transactions are short, the
LMS is never called inside one, and a transaction the database rolled back for a deadlock is
run again. Any number of workers may run against one database.

Each score is sent as its row holds it *when it is sent*, read just before the post: a batch
takes a while, and a claimed copy may be stale by then (a teacher's points replaced the
NotReady score a new assessment queued). It carries the timestamp of its change, on a retry
too. Where the answer alone does not decide, the student's result is read back first:

* a claim that expired (its worker died mid-batch): if the LMS holds the score already, it is
  delivered without a second post;
* a 409 or "older timestamp": the LMS holds Tally's score (an earlier attempt was stored) →
  delivered; it holds what Tally last delivered (Moodle stamps a score that is not FullyGraded
  with its own clock, which may be later than the next change's time) → stamped after the LMS's
  time and sent again; anything else (a teacher changed the grade in the LMS) → superseded;
* a changed score for Canvas, which does not protect a teacher's edit with timestamps: the
  batch is screened first (tool/delivery/guard.py), and where Canvas holds something else than
  Tally delivered, the score is held for the teacher instead of sent.

Once a platform throttles (429, Canvas's 403 "Rate Limit Exceeded"), the rest of the batch for
it is not sent: each such row is a retry with the next try (its bucket only drains with time).
A 422 the LMS gives until a teacher acts there (Canvas: unpublished, closed grading period,
concluded) makes the row *waiting*, tried again after `delivery_waiting_seconds`.

`python -m tool worker` runs `run` until Ctrl-C/SIGTERM; `python -m tool run` starts a
`WorkerThread` beside the web server; "sync now" and `python -m tool sync` call `drain`
for one offering.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from tool.ags.client import NOT_SENT_THROTTLED, Outcome, send_in_lanes, throttles
from tool.ags.score import Score
from tool.clock import utcnow
from tool.config import Settings
from tool.db import in_transaction
from tool.delivery import bindings, guard, rules
from tool.delivery.queue import Attempt, Claimed, Fresh, claim_due, fresh_row, platform_score, record_outcomes
from tool.delivery.readback import ResultReader, read_result
from tool.delivery.reporting import report_binding_error, report_outcomes, report_step
from tool.errors import ToolError
from tool.logs import event

log = logging.getLogger(__name__)


class ScoreSender(bindings.LineItemService, ResultReader, Protocol):
    """The AgsClient calls a worker makes."""

    def post_score(self, reg: Any, lineitem_url: str, score: Score) -> Outcome:
        """POST one score; never raises for what the platform does."""


@dataclass
class StepResult:
    """What one or more worker steps did."""

    bound: int = 0  # bindings resolved (bound, rebound or updated)
    binding_errors: int = 0
    sent: int = 0
    accepted: int = 0
    superseded: int = 0
    retrying: int = 0
    failed: int = 0
    rebinding: int = 0
    held: int = 0  # progress scores not sent: a grade was accepted before
    restamped: int = 0  # sent again after the LMS's own timestamp
    lost_claims: int = 0
    waiting: int = 0  # refused until a teacher acts in the LMS (publishes, reopens)

    @property
    def busy(self) -> bool:
        """True when the step found work (another step may find more)."""
        return bool(self.bound or self.binding_errors or self.sent or self.held)

    def add(self, other: "StepResult") -> "StepResult":
        """Sum of two results."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


def worker_name() -> str:
    """host:pid:random — unique per worker, readable in the claim columns."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(3)}"


class DeliveryWorker:
    """One worker: its name (the claim owner), the database, the AGS client."""

    def __init__(self, *, settings: Settings, sessions: sessionmaker[Session], client: ScoreSender,
                 name: str | None = None, rand: Callable[[], float] = random.random) -> None:
        self.settings = settings
        self.sessions = sessions
        self.client = client
        self.name = name or worker_name()
        self.rand = rand

    # -- one step ------------------------------------------------------------------------------

    def bind_step(self, *, offering_id: int | None = None) -> StepResult:
        """Resolve the bindings that need the LMS."""
        s = self.settings
        jobs = in_transaction(self.sessions, lambda db: bindings.claim_bindings(
            db, worker=self.name, now=utcnow(), claim_seconds=s.delivery_claim_seconds, offering_id=offering_id))
        result = StepResult()
        for job in jobs:
            outcome = bindings.resolve(self.client, job)
            ok = in_transaction(self.sessions, lambda db, job=job, outcome=outcome: bindings.record_binding(
                db, worker=self.name, job=job, result=outcome, now=utcnow(),
                backoff_base=s.delivery_backoff_base_seconds, backoff_cap=s.delivery_backoff_max_seconds,
                rand=self.rand))
            if ok:
                result.bound += 1
            else:
                result.binding_errors += 1
                report_binding_error(job, outcome.error)
        return result

    def send_step(self, *, offering_id: int | None = None) -> StepResult:
        """Claim due scores, send each as its row holds it then, record the outcomes."""
        s = self.settings
        claim = in_transaction(self.sessions, lambda db: claim_due(
            db, worker=self.name, now=utcnow(), limit=s.delivery_batch_size, claim_seconds=s.delivery_claim_seconds,
            offering_id=offering_id))
        result = StepResult(held=claim.held, sent=len(claim.items))
        if not claim.items:
            return result
        # Canvas does not protect a teacher's edit: check what it holds before overwriting (guard.py).
        send, screened = guard.screen(self.sessions, self.client, claim.items, claim.registrations)
        attempts = screened + self._send_all(send, claim.registrations,
                                             throttled={a.claimed.registration_id for a in screened if throttles(a)})
        report_outcomes(attempts, claim.registrations)
        done = in_transaction(self.sessions, lambda db: record_outcomes(
            db, worker=self.name, results=attempts, now=utcnow(), backoff_base=s.delivery_backoff_base_seconds,
            backoff_cap=s.delivery_backoff_max_seconds, rand=self.rand))
        result.held += done.held
        result.sent -= sum(1 for a in attempts if a.kind in ("held", "lost"))
        for name in ("accepted", "superseded", "retrying", "failed", "rebinding", "restamped", "lost_claims",
                     "waiting"):
            setattr(result, name, getattr(done, name))
        return result

    def _send_all(self, items: list[Claimed], registrations: dict[int, Any], *,
                  throttled: set[int]) -> list[Attempt]:
        """Send in `ags_concurrency` lanes; once a platform throttles, the rest of its rows wait
        for the next try (`throttled`: registrations that throttled the pre-send check already)."""
        lanes = min(self.settings.ags_concurrency, len(items))
        with ThreadPoolExecutor(max_workers=max(1, lanes - 1), thread_name_prefix="tally-send") as pool:
            return send_in_lanes(
                items, lambda item: self._send(item, registrations[item.registration_id]), lanes=lanes, pool=pool,
                not_sent=lambda item: Attempt(item, "retry", item.version, message=NOT_SENT_THROTTLED),
                platform=lambda item: item.registration_id, throttled=throttled)

    def _send(self, item: Claimed, reg: Any) -> Attempt:
        """One claimed row: read it, (read back,) post, (read back): never raises for the LMS's doing."""
        try:
            return self._attempt(item, reg)
        except ToolError as exc:  # a score Tally cannot build, a platform answer it cannot read
            return Attempt(item, "retry", item.version, message=exc.message)

    def _attempt(self, item: Claimed, reg: Any) -> Attempt:
        with self.sessions() as db:
            fresh = fresh_row(db, worker=self.name, delivery_id=item.delivery_id)
            db.rollback()
        if fresh is None:
            return Attempt(item, "lost", item.version)
        if not rules.should_send(fresh.desired_kind, ever_graded=fresh.ever_graded):
            return Attempt(item, "held", fresh.version)
        score = Score.from_json(fresh.desired)
        if item.recovering:
            # Its last claim expired: the worker that held it may have posted it before it died.
            try:
                if rules.lms_holds(score, read_result(self.client, reg, item.lineitem_url, item.user_id)):
                    return Attempt(item, "accepted", fresh.version, sent=fresh.desired,
                                   message="The LMS already held this score (sent by a worker that stopped).")
            except ToolError:
                pass  # not readable: the post decides (a repeat is refused as not newer)
        outcome = self.client.post_score(reg, item.lineitem_url, platform_score(fresh, reg=reg))
        if outcome.kind != "superseded":
            return Attempt(item, outcome.kind, fresh.version, sent=fresh.desired, status=outcome.status,
                           message=outcome.message, retry_after=outcome.retry_after)
        return self._after_conflict(item, reg, fresh, score, outcome)

    def _after_conflict(self, item: Claimed, reg: Any, fresh: Fresh, score: Score, outcome: Outcome) -> Attempt:
        """A 409 or "older timestamp", read back before it is believed."""
        try:
            held = read_result(self.client, reg, item.lineitem_url, item.user_id)
        except ToolError as exc:
            return Attempt(item, "retry", fresh.version, sent=fresh.desired, status=outcome.status,
                           message=f"{outcome.message} (Tally could not read the LMS's grade back to check: "
                                   f"{exc.message})")
        last = Score.from_json(fresh.accepted) if fresh.accepted else None
        verdict = rules.conflict_verdict(score, last, held, restamps=item.attempts - 1)
        if verdict is rules.Verdict.DELIVERED:
            return Attempt(item, "accepted", fresh.version, sent=fresh.desired, status=outcome.status,
                           message="The LMS held this score already (an earlier attempt was stored).")
        if verdict is rules.Verdict.RESTAMP:
            stamp = rules.stamp_after(held.timestamp if held else None, sent=score.timestamp, now=utcnow())
            return Attempt(item, "restamp", fresh.version, sent=fresh.desired, status=outcome.status,
                           message=outcome.message, stamp=stamp)
        return Attempt(item, "superseded", fresh.version, sent=fresh.desired, status=outcome.status,
                       message=outcome.message)

    def run_once(self, *, offering_id: int | None = None) -> StepResult:
        """Bind, then send one batch."""
        result = self.bind_step(offering_id=offering_id)
        result.add(self.send_step(offering_id=offering_id))
        report_step(self.name, result)
        return result

    # -- loops ---------------------------------------------------------------------------------

    def drain(self, *, offering_id: int | None = None, seconds: float | None = None,
              on_step: Callable[[StepResult], None] | None = None) -> StepResult:
        """Steps until nothing is due now (retries scheduled later stay) or `seconds` ran out."""
        total = StepResult()
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            step = self.run_once(offering_id=offering_id)
            total.add(step)
            if on_step is not None:
                on_step(step)
            if not step.busy:
                break
        return total

    def run(self, stop: threading.Event, *, heartbeat: Callable[[], Any] | None = None) -> None:
        """Work until `stop` is set; sleep `delivery_poll_seconds` whenever a step finds nothing.

        `heartbeat` is called after every step (it writes `worker_heartbeat` when due, for /readyz).
        """
        event(log, "worker.started", worker=self.name)
        while not stop.is_set():
            try:
                step = self.run_once()
                if heartbeat is not None:
                    heartbeat()
            except Exception:  # a database or programming error must not end the loop silently
                event(log, "worker.step_failed", level=logging.ERROR, worker=self.name, exc_info=True)
                stop.wait(max(5.0, self.settings.delivery_poll_seconds))
                continue
            if not step.busy:
                stop.wait(self.settings.delivery_poll_seconds)
        event(log, "worker.stopped", worker=self.name)


class WorkerThread:
    """A DeliveryWorker in a daemon thread (the embedded default: `python -m tool run`)."""

    def __init__(self, worker: DeliveryWorker, *, heartbeat: Callable[[], Any] | None = None) -> None:
        self.worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=worker.run, args=(self._stop,), kwargs={"heartbeat": heartbeat},
                                        name="tally-delivery", daemon=True)

    def start(self) -> "WorkerThread":
        """Start working in the background."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the current step and stop."""
        self._stop.set()
        self._thread.join(timeout=timeout)


@dataclass
class WorkerResources:
    """A worker with the engine and client it owns (closed together)."""

    worker: DeliveryWorker
    close: Callable[[], None]


def make_worker(settings: Settings, *, name: str | None = None) -> WorkerResources:
    """A worker with its own engine, session factory, keys and AGS client (CLI and `run`)."""
    from tool.ags.client import AgsClient
    from tool.db import make_engine, make_session_factory
    from tool.lti.keys import open_key_store

    engine = make_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    client = AgsClient(settings=settings, session_factory=sessions, keys=open_key_store(settings, sessions))

    def close() -> None:
        client.close()
        engine.dispose()

    return WorkerResources(DeliveryWorker(settings=settings, sessions=sessions, client=client, name=name), close)
