"""Maintenance on a schedule: purge, key pruning, the nightly roster refresh — one runner at a time.

Every delivery worker runs a `Housekeeping` thread: it writes the worker's heartbeat and,
when a job is due, tries to take that job's lease (a conditional UPDATE of its
`maintenance_lease` row, atomic on SQLite and PostgreSQL). Exactly one worker of the
installation wins and runs the job; the others see it leased, or not yet due. A crashed
runner's lease runs out, so the job is not stuck. Each next run is pushed back by a random
part of `maintenance_jitter_seconds`, so machines started together do not all wake at once.

| job             | what                                                                   | when |
|-----------------|------------------------------------------------------------------------|------|
| purge           | expired login states, launch records older than the retention, heartbeats of workers gone a day, limiter counts of clients quiet for two days | every maintenance_interval_seconds |
| prune_keys      | signing keys whose grace period is over                                | every maintenance_interval_seconds |
| refresh_rosters | NRPS roster of every course with an offering launched within roster_refresh_active_days | daily at roster_refresh_hour (UTC) |

Each job is also a command: `python -m tool purge`, `keys prune`, `rosters refresh`.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from tool import limits
from tool.clock import utcnow
from tool.config import Settings
from tool.db import upsert
from tool.errors import ToolError
from tool.lti.keys import KeyStore
from tool.lti.models import Course, LaunchRecord, LoginState, Offering
from tool.logs import event
from tool.metrics import MAINTENANCE_RUNS
from tool.ops.health import Heartbeat, purge_heartbeats
from tool.ops.models import MaintenanceLease

log = logging.getLogger("tool.maintenance")

JOBS = ("purge", "prune_keys", "refresh_rosters")
# How long a runner holds a job before another may take it over (a crashed runner's job is not stuck).
LEASE_SECONDS = {"purge": 900.0, "prune_keys": 300.0, "refresh_rosters": 4 * 3600.0}
PURGE_BATCH = 5000  # rows per DELETE: short transactions, no long lock on a big table
HEARTBEAT_KEEP = dt.timedelta(days=1)


# -- the jobs ---------------------------------------------------------------------------------


def _delete_in_batches(sessions: sessionmaker[Session], table: Any, key: Any, condition: Any) -> int:
    total = 0
    while True:
        with sessions() as db, db.begin():
            ids = select(key).where(condition).limit(PURGE_BATCH).scalar_subquery()
            n = int(db.execute(delete(table).where(key.in_(ids))).rowcount or 0)
        total += n
        if n < PURGE_BATCH:
            return total


def purge(sessions: sessionmaker[Session], *, now: dt.datetime, launch_record_days: int) -> dict[str, int]:
    """Delete expired login states, old launch records and long-gone heartbeats; counts per kind."""
    states = _delete_in_batches(sessions, LoginState.__table__, LoginState.__table__.c.state,
                                LoginState.__table__.c.expires_at <= now)
    cutoff = now - dt.timedelta(days=launch_record_days)
    records = _delete_in_batches(sessions, LaunchRecord.__table__, LaunchRecord.__table__.c.id,
                                 LaunchRecord.__table__.c.at < cutoff)
    with sessions() as db, db.begin():
        beats = purge_heartbeats(db, older_than=now - HEARTBEAT_KEEP)
    with sessions() as db, db.begin():
        counters = limits.purge(db, now=now)  # limiter counts of clients quiet for two days
    return {"login_states": states, "launch_records": records, "heartbeats": beats, "rate_limits": counters}


def active_courses(db: Session, *, since: dt.datetime) -> list[int]:
    """Courses with a roster service and an offering launched since `since` (the refresh's work list)."""
    rows = db.execute(
        select(Course.id).join(Offering, Offering.course_id == Course.id)
        .where(Offering.updated_at >= since, or_(Course.nrps_url.is_not(None), Offering.nrps_url.is_not(None)))
        .group_by(Course.id).order_by(Course.id)
    )
    return [r[0] for r in rows]


class ServiceClient(Protocol):
    """What maintenance needs of the process's AGS client (tool.ags.client.AgsClient)."""

    keys: KeyStore
    http: requests.Session

    def access_token(self, reg: Any, scopes: Sequence[str]) -> str:
        """A bearer token of the registration covering `scopes`, shared with every other call."""


@dataclass(frozen=True)
class RosterServices:
    """What `sync_roster` needs (tool.lti.roster.RosterServices): settings, sessions, and the worker's
    AGS client, whose tokens the roster shares (Canvas charges every token request)."""

    settings: Settings
    sessions: sessionmaker[Session]
    client: ServiceClient

    @property
    def http(self) -> requests.Session:
        """The client's HTTP session."""
        return self.client.http

    def service_token(self, reg: Any, scopes: Sequence[str]) -> str:
        """The registration's token (one for every scope it was granted, where the LMS allows)."""
        return self.client.access_token(reg, scopes)


def refresh_rosters(services: RosterServices, *, now: dt.datetime, course_ids: list[int] | None = None,
                    stop: threading.Event | None = None) -> dict[str, int]:
    """Sync the roster of every active course from its LMS; one course's failure does not stop the rest."""
    from tool.lti.roster import sync_roster

    if course_ids is None:
        with services.sessions() as db:
            course_ids = active_courses(db, since=now - dt.timedelta(days=services.settings.roster_refresh_active_days))
    done = failed = 0
    for course_id in course_ids:
        if stop is not None and stop.is_set():
            break
        try:
            change = sync_roster(services, course_id=course_id)
        except ToolError as exc:
            failed += 1
            event(log, "roster.refresh_failed", level=logging.WARNING, course=course_id, code=exc.code,
                  lms_words=exc.message)
            continue
        done += 1
        event(log, "roster.refreshed", course=course_id, added=change.added, updated=change.updated,
              left=change.left, total=change.total)
    return {"courses": done, "failed": failed}


# -- the schedule -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRun:
    """What one run of a job did."""

    job: str
    outcome: str  # ok | failed
    detail: dict[str, Any] = field(default_factory=dict)


def next_run(job: str, settings: Settings, now: dt.datetime, rand: Callable[[], float]) -> dt.datetime:
    """When `job` runs next after a run at `now`: the interval, or the next roster hour, plus jitter."""
    jitter = dt.timedelta(seconds=settings.maintenance_jitter_seconds * rand())
    if job == "refresh_rosters":
        at = now.replace(hour=settings.roster_refresh_hour, minute=0, second=0, microsecond=0)
        if at <= now:
            at += dt.timedelta(days=1)
        return at + jitter
    return now + dt.timedelta(seconds=settings.maintenance_interval_seconds) + jitter


def first_run(job: str, settings: Settings, now: dt.datetime, rand: Callable[[], float]) -> dt.datetime:
    """When a job first runs on a new installation: soon (purge, keys) or at the next roster hour."""
    if job == "refresh_rosters":
        return next_run(job, settings, now, rand)
    return now + dt.timedelta(seconds=settings.maintenance_jitter_seconds * rand())


class Maintenance:
    """The jobs of one installation, run by whichever process holds a job's lease."""

    def __init__(self, *, settings: Settings, sessions: sessionmaker[Session], client: ServiceClient, owner: str,
                 clock: Callable[[], dt.datetime] = utcnow, rand: Callable[[], float] = random.random) -> None:
        self.settings = settings
        self.sessions = sessions
        self.client = client
        self.keys = client.keys
        self.owner = owner[:64]
        self.clock = clock
        self.rand = rand

    def enabled_jobs(self) -> tuple[str, ...]:
        """The jobs the settings switch on."""
        return tuple(j for j in JOBS if j != "refresh_rosters" or self.settings.roster_refresh_enabled)

    def run(self, job: str, *, stop: threading.Event | None = None) -> JobRun:
        """Run one job now, without a lease (the CLI commands); never raises for the job's own failure."""
        now = self.clock()
        try:
            if job == "purge":
                detail: dict[str, Any] = purge(self.sessions, now=now,
                                               launch_record_days=self.settings.launch_record_retention_days)
            elif job == "prune_keys":
                detail = {"pruned": self.keys.prune()}
            elif job == "refresh_rosters":
                services = RosterServices(self.settings, self.sessions, self.client)
                detail = refresh_rosters(services, now=now, stop=stop)
            else:
                raise ValueError(f"unknown maintenance job {job!r}")
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001  (a job's failure is reported, and the next run tries again)
            MAINTENANCE_RUNS.labels(job, "failed").inc()
            event(log, "maintenance.failed", level=logging.ERROR, job=job, error=f"{type(exc).__name__}: {exc}",
                  exc_info=True)
            return JobRun(job, "failed", {"error": f"{type(exc).__name__}: {exc}"})
        MAINTENANCE_RUNS.labels(job, "ok").inc()
        event(log, "maintenance.ran", job=job, **detail)
        return JobRun(job, "ok", detail)

    # -- leases -------------------------------------------------------------------------------

    def _claim(self, job: str, now: dt.datetime) -> bool:
        t = MaintenanceLease
        with self.sessions() as db, db.begin():
            upsert(db, t.__table__, {"job": job, "next_run_at": first_run(job, self.settings, now, self.rand),
                                     "last_outcome": ""}, conflict=("job",), update=())
            taken = db.execute(
                update(t).where(t.job == job, or_(t.lease_until.is_(None), t.lease_until < now),
                                or_(t.next_run_at.is_(None), t.next_run_at <= now))
                .values(owner=self.owner, lease_until=now + dt.timedelta(seconds=LEASE_SECONDS[job]))
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        return taken == 1

    def _release(self, job: str, run: JobRun) -> None:
        now = self.clock()
        t = MaintenanceLease
        summary = f"{run.outcome}: {run.detail}"[:2000]
        with self.sessions() as db, db.begin():
            db.execute(update(t).where(t.job == job, t.owner == self.owner).values(
                owner=None, lease_until=None, last_run_at=now, last_outcome=summary,
                next_run_at=next_run(job, self.settings, now, self.rand)).execution_options(synchronize_session=False))

    def tick(self, *, stop: threading.Event | None = None) -> list[JobRun]:
        """Run every job that is due and whose lease this process takes; what ran."""
        ran = []
        for job in self.enabled_jobs():
            if stop is not None and stop.is_set():
                break
            if self._claim(job, self.clock()):
                run = self.run(job, stop=stop)
                self._release(job, run)
                ran.append(run)
        return ran


class Housekeeping:
    """The worker's second thread: heartbeat and maintenance, every `every` seconds until stopped.

    The heartbeat is written by the delivery loop itself (it proves *that* loop is alive);
    this thread runs the scheduled jobs, so a long roster refresh never holds up scores.
    """

    def __init__(self, maintenance: Maintenance, *, every: float = 30.0) -> None:
        self.maintenance = maintenance
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tally-maintenance", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.maintenance.tick(stop=self._stop)
            except Exception:  # noqa: BLE001  (the database may be down: try again next time)
                event(log, "maintenance.tick_failed", level=logging.ERROR, exc_info=True)
            self._stop.wait(self.every)

    def start(self) -> "Housekeeping":
        """Start the thread."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current job (a roster refresh stops between courses)."""
        self._stop.set()
        self._thread.join(timeout=timeout)


def worker_heartbeat(settings: Settings, sessions: sessionmaker[Session], name: str) -> Heartbeat:
    """The heartbeat a delivery worker writes (every `worker_heartbeat_seconds`)."""
    return Heartbeat(sessions, name=name, every=settings.worker_heartbeat_seconds)
