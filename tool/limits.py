"""Limits on what an anonymous client may make Tally do, shared by every process.

A `Rule` counts events per key (a client address, an account) in a fixed window. Past the
limit the key is refused until a lockout ends; with `lockout_seconds` each lockout lasts twice
the one before (up to `lockout_max_seconds`), without it the refusal lasts until the window ends.
Counts live in the `rate_limit` table (tool/ops/models.py), so four gunicorn workers or two
machines count together; every step is one conditional UPDATE, atomic on SQLite and PostgreSQL.

Used for:

* the admin login (tool/web/admin_views.py): every attempt counts *before* the password is
  hashed, per client address and for the account; a success clears the client's count;
* OIDC login initiations (`login_state` rows) and recorded launch refusals (`launch_record`
  rows) per client address (tool/web/lti_views.py).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
from dataclasses import dataclass

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.orm import Session

from tool.db import upsert
from tool.ops.models import RateLimit

_T = RateLimit.__table__
_C = _T.c


@dataclass(frozen=True)
class Rule:
    """At most `limit` events per `window_seconds` per key."""

    name: str
    limit: int
    window_seconds: float
    lockout_seconds: float = 0.0  # 0: refused until the window ends; else the first lockout
    lockout_max_seconds: float = 3600.0
    forget_seconds: float = 86400.0  # lockouts are forgotten after this long without an event


@dataclass(frozen=True)
class Decision:
    """Whether the event may happen; if not, after how many seconds to ask again."""

    allowed: bool
    retry_after: int = 0
    count: int = 0


def client_key(address: str | None) -> str:
    """The limiter's name for a client address: IPv4 as is, IPv6 by its /64 (one household)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address) + "/64"
    return str(ip)


def _seconds(until: dt.datetime, now: dt.datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def hit(db: Session, rule: Rule, who: str, *, now: dt.datetime) -> Decision:
    """Count one event of `who` under `rule`; refused when the key is locked or this one is over the limit.

    The caller commits (before doing the expensive thing, so parallel requests see the count).
    """
    key = f"{rule.name}:{who}"[:200]
    upsert(db, _T, {"key": key, "count": 0, "window_start": now, "locked_until": None, "lockouts": 0},
           conflict=("key",), update=())
    window_over = _C.window_start <= now - dt.timedelta(seconds=rule.window_seconds)
    forgotten = _C.window_start <= now - dt.timedelta(seconds=rule.forget_seconds)
    row = db.connection().execute(
        update(_T).where(_C.key == key, or_(_C.locked_until.is_(None), _C.locked_until <= now))
        .values(count=case((window_over, 1), else_=_C.count + 1),
                window_start=case((window_over, now), else_=_C.window_start),
                lockouts=case((forgotten, 0), else_=_C.lockouts), locked_until=None)
        .returning(_C.count, _C.lockouts, _C.window_start)
    ).first()
    if row is None:  # locked
        until = db.connection().execute(select(_C.locked_until).where(_C.key == key)).scalar()
        return Decision(False, _seconds(until or now, now))
    if row.count <= rule.limit:
        return Decision(True, 0, row.count)
    if rule.lockout_seconds:
        lasts = min(rule.lockout_seconds * 2 ** min(row.lockouts, 30), rule.lockout_max_seconds)
        until = now + dt.timedelta(seconds=lasts)
        db.connection().execute(update(_T).where(_C.key == key).values(
            locked_until=until, lockouts=_C.lockouts + 1, count=0, window_start=now))
    else:
        until = row.window_start + dt.timedelta(seconds=rule.window_seconds)
        db.connection().execute(update(_T).where(_C.key == key).values(locked_until=until))
    return Decision(False, _seconds(until, now), row.count)


def locked(db: Session, rule: Rule, who: str, *, now: dt.datetime) -> int:
    """Seconds until `who` may try again under `rule` (0: not locked); counts nothing."""
    until = db.connection().execute(
        select(_C.locked_until).where(_C.key == f"{rule.name}:{who}"[:200], _C.locked_until > now)).scalar()
    return _seconds(until, now) if until is not None else 0


def clear(db: Session, rule: Rule, who: str) -> None:
    """Forget `who`'s count and lockouts under `rule` (a successful login)."""
    db.connection().execute(delete(_T).where(_C.key == f"{rule.name}:{who}"[:200]))


def purge(db: Session, *, now: dt.datetime, older_than: dt.timedelta = dt.timedelta(days=2)) -> int:
    """Delete keys with no event and no lockout for `older_than`; how many."""
    cut = now - older_than
    result = db.connection().execute(delete(_T).where(
        _C.window_start < cut, or_(_C.locked_until.is_(None), _C.locked_until < cut)))
    return int(result.rowcount or 0)
