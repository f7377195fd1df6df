"""Tables of operations: worker heartbeats and the leases that let one machine run a maintenance job."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tool.clock import utcnow
from tool.db import Base, UTCDateTime


class WorkerHeartbeat(Base):
    """A delivery worker saying it is alive (written every `worker_heartbeat_seconds`)."""

    __tablename__ = "worker_heartbeat"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # host:pid:random, as in claims
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class MaintenanceLease(Base):
    """One scheduled job: when it is next due, and who runs it now (one runner across machines)."""

    __tablename__ = "maintenance_lease"

    job: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_outcome: Mapped[str] = mapped_column(String(2000), default="")


class RateLimit(Base):
    """One limiter key (tool/limits.py): failures or creations counted in a window, and a lockout.

    Kept in the database so every process of the installation (gunicorn workers, machines)
    counts together; each change is one conditional UPDATE, atomic on SQLite and PostgreSQL.
    """

    __tablename__ = "rate_limit"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # "<rule>:<client or account>"
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)  # lockouts so far: each lasts twice the last


class AdminPasswordUpgrade(Base):
    """The local admin password re-hashed with Argon2 after a login with an older configured hash.

    The configured hash (settings) stays the source of truth: this row only counts while the
    configured hash is the one it was made from (`source` is that hash's SHA-256), so changing
    `admin_password_hash` takes effect at once.
    """

    __tablename__ = "admin_password_upgrade"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    hash: Mapped[str] = mapped_column(String(255))
    upgraded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
