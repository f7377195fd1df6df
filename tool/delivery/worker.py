"""The delivery worker: bind line items, claim due scores, post them, record the answers.

One step (`run_once`) is: bindings that need the LMS (unbound, course copy, label or maximum
changed) are claimed, resolved over HTTP and recorded; then up to `delivery_batch_size` due
scores are claimed, posted concurrently per platform with `AgsClient.post_scores` (its cap
per platform), and their outcomes recorded. The database transactions are short and the
LMS is never called inside one. Any number of workers may run against one database.

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
from dataclasses import dataclass, fields
from typing import Any, Protocol, Sequence

from sqlalchemy.orm import Session, sessionmaker

from tool.ags.client import Outcome
from tool.ags.score import Score
from tool.clock import utcnow
from tool.config import Settings
from tool.delivery import bindings
from tool.delivery.queue import Claimed, claim_due, record_outcomes
from tool.delivery.reporting import report_binding_error, report_outcomes, report_step
from tool.errors import ToolError
from tool.logs import event

log = logging.getLogger(__name__)


class ScoreSender(bindings.LineItemService, Protocol):
    """The AgsClient calls a worker makes."""

    def post_scores(self, reg: Any, items: Sequence[tuple[str, Score]]) -> list[Outcome]:
        """Post concurrently; outcomes in the order of items."""


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
    lost_claims: int = 0

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
        with self.sessions() as db:
            jobs = bindings.claim_bindings(db, worker=self.name, now=utcnow(), claim_seconds=s.delivery_claim_seconds,
                                           offering_id=offering_id)
            db.commit()
        result = StepResult()
        for job in jobs:
            outcome = bindings.resolve(self.client, job)
            with self.sessions() as db:
                ok = bindings.record_binding(db, worker=self.name, job=job, result=outcome, now=utcnow(),
                                             backoff_base=s.delivery_backoff_base_seconds,
                                             backoff_cap=s.delivery_backoff_max_seconds, rand=self.rand)
                db.commit()
            if ok:
                result.bound += 1
            else:
                result.binding_errors += 1
                report_binding_error(job, outcome.error)
        return result

    def send_step(self, *, offering_id: int | None = None) -> StepResult:
        """Claim due scores, post them, record the answers."""
        s = self.settings
        with self.sessions() as db:
            claim = claim_due(db, worker=self.name, now=utcnow(), limit=s.delivery_batch_size,
                              claim_seconds=s.delivery_claim_seconds, offering_id=offering_id)
            db.commit()
        result = StepResult(held=claim.held, sent=len(claim.items))
        if not claim.items:
            return result
        answers = self._post(claim.items, claim.registrations)
        report_outcomes(answers, claim.registrations)
        with self.sessions() as db:
            done = record_outcomes(db, worker=self.name, results=answers, now=utcnow(),
                                   backoff_base=s.delivery_backoff_base_seconds,
                                   backoff_cap=s.delivery_backoff_max_seconds, rand=self.rand)
            db.commit()
        for name in ("accepted", "superseded", "retrying", "failed", "rebinding", "lost_claims"):
            setattr(result, name, getattr(done, name))
        return result

    def _post(self, items: list[Claimed], registrations: dict[int, Any]) -> list[tuple[Claimed, Outcome]]:
        answers: list[tuple[Claimed, Outcome]] = []
        by_registration: dict[int, list[Claimed]] = {}
        for item in items:
            by_registration.setdefault(item.registration_id, []).append(item)
        for reg_id, group in by_registration.items():
            try:
                outcomes = self.client.post_scores(registrations[reg_id], [(c.lineitem_url, c.score) for c in group])
            except ToolError as exc:  # post_scores answers outcomes; this is a safety net
                outcomes = [Outcome("retry", None, exc.message)] * len(group)
            answers.extend(zip(group, outcomes, strict=True))
        return answers

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
