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
