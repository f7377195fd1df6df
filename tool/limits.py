"""Limits on what an anonymous client may make Tally do, shared by every process.

A `Rule` counts events per key (a client address, an account) in a fixed window. Past the
limit the key is refused until a lockout ends; with `lockout_seconds` each lockout lasts twice
the one before (up to `lockout_max_seconds`), without it the refusal lasts until the window ends.
Counts live in the `rate_limit` table (tool/ops/models.py), so four gunicorn workers or two
machines count together; every step is one conditional UPDATE, atomic on SQLite and PostgreSQL.
With `limiter = "redis"` they live in Redis instead (one Lua script per step, as atomic), and no
attempt writes to the database; if Redis cannot be reached the database counts.

Used for:

* the admin login (tool/web/admin_views.py): every attempt counts *before* the password is
  hashed, per client address and for the account; a success clears the client's count;
* OIDC login initiations (`login_state` rows) and recorded launch refusals (`launch_record`
  rows) per client address (tool/web/lti_views.py).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, delete, or_, select, update
from sqlalchemy.orm import Session

from tool.db import upsert
from tool.ops.models import RateLimit

log = logging.getLogger("tool.limits")
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


# One conditional UPDATE per event, built once: every OIDC login runs it, and building the CASE
# expressions anew for each request cost more than the statement itself (launch benchmark).
_WHEN = _C.window_start.type  # the column's own UTC type: the same stored form as the rows'
_NOW, _WINDOW_START, _FORGET_BEFORE = (bindparam(n, type_=_WHEN) for n in ("now", "window_cutoff", "forget_cutoff"))
_COUNT = (
    update(_T).where(_C.key == bindparam("k"), or_(_C.locked_until.is_(None), _C.locked_until <= _NOW))
    .values(count=case((_C.window_start <= _WINDOW_START, 1), else_=_C.count + 1),
            window_start=case((_C.window_start <= _WINDOW_START, _NOW), else_=_C.window_start),
            lockouts=case((_C.window_start <= _FORGET_BEFORE, 0), else_=_C.lockouts), locked_until=None)
    .returning(_C.count, _C.lockouts, _C.window_start)
)


def hit(db: Session, rule: Rule, who: str, *, now: dt.datetime) -> Decision:
    """Count one event of `who` under `rule`; refused when the key is locked or this one is over the limit.

    The caller commits (before doing the expensive thing, so parallel requests see the count).
    """
    key = f"{rule.name}:{who}"[:200]
    upsert(db, _T, {"key": key, "count": 0, "window_start": now, "locked_until": None, "lockouts": 0},
           conflict=("key",), update=())
    row = db.connection().execute(_COUNT, {
        "k": key, "now": now, "window_cutoff": now - dt.timedelta(seconds=rule.window_seconds),
        "forget_cutoff": now - dt.timedelta(seconds=rule.forget_seconds)}).first()
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


# -- where the counts live ------------------------------------------------------------------------


class Limiter:
    """The counts of one installation: in the database (default) or in Redis (`limiter = "redis"`)."""

    def __init__(self, db: Session) -> None:
        self.db = db

    def hit(self, rule: Rule, who: str, *, now: dt.datetime) -> Decision:
        """Count one event (see `hit`); the caller commits the database session before the expensive part."""
        return hit(self.db, rule, who, now=now)

    def locked(self, rule: Rule, who: str, *, now: dt.datetime) -> int:
        """Seconds until `who` may try again (0: not locked)."""
        return locked(self.db, rule, who, now=now)

    def clear(self, rule: Rule, who: str) -> None:
        """Forget `who`'s count and lockouts."""
        clear(self.db, rule, who)


# One atomic step in Redis, the same rule as the database's UPDATEs: a hash per key with the count,
# the window's start, the lockout's end and the number of lockouts; it expires when forgotten.
_REDIS_HIT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lockout, lockmax, forget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'count', 'start', 'locked', 'lockouts')
local count, start = tonumber(h[1]) or 0, tonumber(h[2]) or now
local locked, lockouts = tonumber(h[3]) or 0, tonumber(h[4]) or 0
if locked > now then return {'0', tostring(locked), tostring(count)} end
if start <= now - forget then lockouts = 0 end
if start <= now - window then count = 1; start = now else count = count + 1 end
local finish = 0
local seen = count
if count > limit then
  if lockout > 0 then
    finish = now + math.min(lockout * 2 ^ math.min(lockouts, 30), lockmax)
    lockouts = lockouts + 1; count = 0; start = now
  else
    finish = start + window
  end
end
redis.call('HSET', KEYS[1], 'count', count, 'start', tostring(start), 'locked', tostring(finish), 'lockouts', lockouts)
redis.call('EXPIRE', KEYS[1], math.ceil(math.max(forget, finish - now, window)) + 60)
if finish > 0 then return {'0', tostring(finish), tostring(seen)} end
return {'1', '0', tostring(seen)}
"""
REDIS_PREFIX = "tally:limit:"


class RedisLimiter(Limiter):
    """Counts in Redis: no database write per attempt. Redis down → the database counts instead."""

    def __init__(self, client: Any, db: Session) -> None:
        super().__init__(db)
        self.client = client
        self._script = client.register_script(_REDIS_HIT)

    def _key(self, rule: Rule, who: str) -> str:
        return REDIS_PREFIX + f"{rule.name}:{who}"[:200]

    def hit(self, rule: Rule, who: str, *, now: dt.datetime) -> Decision:
        import redis

        t = now.timestamp()
        try:
            allowed, until, seen = self._script(keys=[self._key(rule, who)], args=[
                repr(t), rule.window_seconds, rule.limit, rule.lockout_seconds, rule.lockout_max_seconds,
                rule.forget_seconds])
        except redis.RedisError as exc:
            log.warning("limiter in Redis unavailable (%s): counting in the database", exc)
            return super().hit(rule, who, now=now)
        if allowed in (b"1", "1"):
            return Decision(True, 0, int(seen))
        return Decision(False, max(1, math.ceil(float(until) - t)), int(seen))

    def locked(self, rule: Rule, who: str, *, now: dt.datetime) -> int:
        import redis

        try:
            until = self.client.hget(self._key(rule, who), "locked")
        except redis.RedisError:
            return super().locked(rule, who, now=now)
        wait = float(until or 0) - now.timestamp()
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def clear(self, rule: Rule, who: str) -> None:
        import redis

        try:
            self.client.delete(self._key(rule, who))
        except redis.RedisError:
            super().clear(rule, who)


_REDIS_CLIENTS: dict[str, Any] = {}


def limiter(settings: Any, db: Session) -> Limiter:
    """The limiter the settings ask for (`limiter`: "database" or "redis" at `redis_url`)."""
    if getattr(settings, "limiter", "database") != "redis":
        return Limiter(db)
    client = _REDIS_CLIENTS.get(settings.redis_url)
    if client is None:
        import redis

        client = _REDIS_CLIENTS[settings.redis_url] = redis.Redis.from_url(
            settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    return RedisLimiter(client, db)
