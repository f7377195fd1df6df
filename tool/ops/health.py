"""Readiness: is this installation able to serve? And the workers' heartbeats it looks at.

`/healthz` only says the process answers. `/readyz` (and `python -m tool doctor`) asks:
the database answers, its schema is at the migrations' head, a signing key exists, and —
when workers are expected — a delivery worker wrote a heartbeat recently.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from tool.clock import utcnow
from tool.config import PROJECT_ROOT, Settings
from tool.db import upsert
from tool.delivery.models import ScoreDelivery
from tool.errors import ToolError
from tool.ops.models import WorkerHeartbeat


class NotReady(ToolError):
    """A readiness check failed (503: the load balancer sends traffic elsewhere)."""

    code = "not_ready"


@dataclass(frozen=True)
class Check:
    """One readiness check: its name, whether it passed, and what it found or what to fix."""

    name: str
    ok: bool
    detail: str


@lru_cache(maxsize=1)
def migration_head() -> str | None:
    """The newest revision in migrations/ (read once per process)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return ScriptDirectory.from_config(cfg).get_current_head()


def _database(db: Session) -> tuple[Check, bool]:
    try:
        db.execute(text("SELECT 1"))
        return Check("database", True, "answers"), True
    except SQLAlchemyError as exc:
        db.rollback()
        # The class only: /readyz answers anyone, and the driver's message names hosts and users.
        return Check("database", False, f"does not answer ({type(exc).__name__})"), False


def _migrations(db: Session) -> Check:
    head = migration_head()
    try:
        current = db.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        db.rollback()
        current = None
    if current == head:
        return Check("migrations", True, f"at head {head}")
    return Check("migrations", False, f"database at {current or 'no revision'}, code at {head}: "
                                      "run `python -m tool db upgrade`")


def _signing_key(keys: Any) -> Check:
    try:
        return Check("signing_key", True, f"signing with {keys.signing_key().kid}")
    except ToolError as exc:
        return Check("signing_key", False, exc.message)
    except SQLAlchemyError as exc:
        return Check("signing_key", False, f"unreadable: {type(exc).__name__}")


def newest_heartbeat(db: Session) -> dt.datetime | None:
    """When the most recent worker heartbeat was written (None: never)."""
    return db.execute(select(func.max(WorkerHeartbeat.seen_at))).scalar()


def _workers(db: Session, settings: Settings, now: dt.datetime) -> Check:
    try:
        seen = newest_heartbeat(db)
    except SQLAlchemyError:
        db.rollback()
        seen = None
    limit = settings.worker_heartbeat_max_age_seconds
    if seen is None:
        return Check("workers", False, "no delivery worker has ever reported: start `python -m tool worker`")
    age = (now - seen).total_seconds()
    if age > limit:
        return Check("workers", False, f"the newest worker heartbeat is {age:.0f} s old (limit {limit:.0f} s): "
                                       "is `python -m tool worker` running?")
    return Check("workers", True, f"a worker reported {age:.0f} s ago")


def readiness(sessions: sessionmaker[Session], settings: Settings, keys: Any, *,
              now: dt.datetime | None = None) -> list[Check]:
    """Every readiness check, in order; later ones are skipped when the database does not answer."""
    now = now or utcnow()
    with sessions() as db:
        check, up = _database(db)
        checks = [check]
        if not up:
            return checks
        checks.append(_migrations(db))
        if settings.expect_workers:
            checks.append(_workers(db, settings, now))
        db.rollback()  # before the key store opens its own session (SQLite: one writer's lock at a time)
    checks.insert(2, _signing_key(keys))
    return checks


def delivery_facts(sessions: sessionmaker[Session], *, now: dt.datetime | None = None) -> dict[str, Any]:
    """What /metrics reads from the database: pairs per state, the oldest due score, the newest heartbeat."""
    now = now or utcnow()
    t = ScoreDelivery
    with sessions() as db:
        pairs = {state: int(n) for state, n in db.execute(select(t.state, func.count()).group_by(t.state))}
        oldest = db.execute(select(func.min(t.next_attempt_at)).where(t.next_attempt_at <= now)).scalar()
        beat = newest_heartbeat(db)
        db.rollback()
    return {
        "pairs": pairs,
        "oldest_due_seconds": max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        "heartbeat_age_seconds": max(0.0, (now - beat).total_seconds()) if beat else None,
    }


# -- heartbeats -------------------------------------------------------------------------------


class Heartbeat:
    """Writes `worker_heartbeat` for one worker, at most every `every` seconds (clock injectable)."""

    def __init__(self, sessions: sessionmaker[Session], *, name: str, every: float,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.sessions = sessions
        self.name = name[:64]
        self.every = every
        self.clock = clock
        self._last: dt.datetime | None = None
        self._lock = threading.Lock()

    def beat(self) -> bool:
        """Write the heartbeat if it is due; True when written. A database error is left to the caller's loop."""
        now = self.clock()
        with self._lock:
            if self._last is not None and (now - self._last).total_seconds() < self.every:
                return False
            with self.sessions() as db, db.begin():
                upsert(db, WorkerHeartbeat.__table__,
                       {"name": self.name, "host": socket.gethostname()[:255], "pid": os.getpid(),
                        "started_at": self._last or now, "seen_at": now},
                       conflict=("name",), update=("seen_at",))
            self._last = now
            return True

    def stop(self) -> None:
        """Say goodbye: the worker's row goes, so a clean stop is not mistaken for a live worker."""
        with self.sessions() as db, db.begin():
            db.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == self.name))


def purge_heartbeats(db: Session, *, older_than: dt.datetime) -> int:
    """Delete the heartbeats of workers gone long ago (maintenance)."""
    return int(db.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.seen_at < older_than)).rowcount or 0)


__all__ = ["Check", "Heartbeat", "delivery_facts", "migration_head", "newest_heartbeat", "purge_heartbeats",
           "readiness"]
