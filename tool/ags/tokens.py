"""Access tokens for platform services, shared by every thread and process of the installation.

A token is keyed by (issuer, client_id, token URL, sorted scopes): Canvas cloud uses one
issuer for every school, and a registration may hold tokens for several scope sets. Where a
token is looked up, in order:

1. this process's memory (no I/O on the hot path: a thousand score posts, one lookup each);
2. the shared store: the `service_token` table (default) or Redis (`token_cache = "redis"`),
   so a second worker, or the web process, reuses a token another process fetched;
3. the platform's token endpoint, one fetch at a time per key: a process-local lock makes
   the threads of a process wait for one fetch, and the shared store makes the processes
   wait for one (a lease row in the database, a lock in Redis).

A token is renewed before it expires (60 s before, or half its lifetime if that is
shorter), and a token the platform answers 401 to is fetched again once (`renew`).

The database store never holds a transaction open across the HTTP call: on SQLite
BEGIN IMMEDIATE would block every writer of the installation for as long as the platform
takes. A process claims a short lease on the row instead (a conditional UPDATE, atomic on
SQLite and PostgreSQL), fetches, and writes the token; the others poll the row until the
token appears or the lease runs out (a crashed fetcher blocks nobody for longer).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from tool.ags.models import ServiceToken
from tool.clock import epoch
from tool.config import Settings
from tool.db import upsert

log = logging.getLogger(__name__)


RENEW_BEFORE_SECONDS = 60.0
POLL_SECONDS = 0.05


class PlatformRegistration(Protocol):
    """What token and AGS calls need of a registration (the `Registration` model has it)."""

    issuer: str
    client_id: str
    auth_token_url: str
    auth_audience: str | None


@dataclass(frozen=True)
class TokenKey:
    """What a token is for: one registration's token endpoint and a set of scopes."""

    issuer: str
    client_id: str
    token_url: str
    scopes: tuple[str, ...]

    @classmethod
    def of(cls, reg: PlatformRegistration, scopes: Iterable[str]) -> "TokenKey":
        """The key of `scopes` (order and repeats do not matter) for a registration."""
        return cls(reg.issuer, reg.client_id, reg.auth_token_url, tuple(sorted(set(scopes))))

    @property
    def digest(self) -> str:
        """A fixed-length name for the key (the table's primary key, the Redis key)."""
        text = "\n".join((self.issuer, self.client_id, self.token_url, " ".join(self.scopes)))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CachedToken:
    """An access token, when it was granted and when it expires (epoch seconds on tool.clock)."""

    value: str
    fetched_at: float
    expires_at: float

    @classmethod
    def granted(cls, value: str, expires_in: float, *, now: float | None = None) -> "CachedToken":
        """A token the platform just granted for `expires_in` seconds."""
        now = epoch() if now is None else now
        return cls(value, now, now + max(0.0, float(expires_in)))

    @property
    def renew_at(self) -> float:
        """When to fetch the next one: 60 s before expiry, or half-way for a shorter-lived token."""
        lifetime = max(0.0, self.expires_at - self.fetched_at)
        return self.expires_at - min(RENEW_BEFORE_SECONDS, lifetime / 2)

    def usable(self, now: float, rejected: str | None = None) -> bool:
        """Not yet due for renewal, and not the token the platform just refused."""
        return now < self.renew_at and self.value != rejected


Fetch = Callable[[], CachedToken]


class TokenStore(Protocol):
    """Where the processes of an installation share tokens."""

    def read(self, key: TokenKey) -> CachedToken | None:
        """The stored token of `key`, usable or not."""

    def fetch_once(self, key: TokenKey, fetch: Fetch, *, rejected: str | None) -> CachedToken:
        """The stored token if usable (and not `rejected`), else one process fetches and stores a new one."""


# -- the database store ------------------------------------------------------------------------


def _moment(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def _from_row(row: Any) -> CachedToken | None:
    if row is None or not row.access_token or row.expires_at is None:
        return None
    expires_at = row.expires_at.timestamp()
    fetched_at = row.fetched_at.timestamp() if row.fetched_at is not None else expires_at
    return CachedToken(row.access_token, fetched_at, expires_at)


class DatabaseTokenStore:
    """Tokens in the `service_token` table; a lease on the row makes one process fetch at a time."""

    def __init__(self, sessions: sessionmaker[Session], *, lease_seconds: float = 30.0) -> None:
        self.sessions = sessions
        self.lease_seconds = lease_seconds

    def read(self, key: TokenKey) -> CachedToken | None:
        """The stored token of `key`, usable or not."""
        with self.sessions() as db, db.begin():
            return _from_row(self._row(db, key))

    @staticmethod
    def _row(db: Session, key: TokenKey) -> Any:
        return db.execute(
            select(ServiceToken.access_token, ServiceToken.expires_at, ServiceToken.fetched_at)
            .where(ServiceToken.cache_key == key.digest)
        ).first()

    def _claim(self, key: TokenKey, owner: str, rejected: str | None) -> tuple[CachedToken | None, bool]:
        """In one short transaction: the usable stored token, or whether we now hold the lease."""
        now = epoch()
        with self.sessions() as db, db.begin():
            upsert(db, ServiceToken.__table__,
                   {"cache_key": key.digest, "issuer": key.issuer, "client_id": key.client_id,
                    "token_url": key.token_url, "scopes": " ".join(key.scopes)},
                   conflict=("cache_key",), update=())
            row = self._row(db, key)
            stored = _from_row(row)
            if stored is not None and stored.usable(now, rejected):
                return stored, False
            seen = row.access_token if row is not None else None
            # Compare-and-set: the lease is free (or ran out) and nobody stored a token since we
            # looked. PostgreSQL re-checks the WHERE after waiting for a concurrent writer's row
            # lock; SQLite runs one writer at a time (BEGIN IMMEDIATE).
            taken = db.execute(
                update(ServiceToken)
                .where(ServiceToken.cache_key == key.digest,
                       or_(ServiceToken.lease_until.is_(None), ServiceToken.lease_until < _moment(now)),
                       ServiceToken.access_token.is_(None) if seen is None else ServiceToken.access_token == seen)
                .values(lease_owner=owner, lease_until=_moment(now + self.lease_seconds))
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            return None, taken == 1

    def _store(self, key: TokenKey, token: CachedToken) -> None:
        with self.sessions() as db, db.begin():
            db.execute(
                update(ServiceToken)
                .where(ServiceToken.cache_key == key.digest)
                .values(access_token=token.value, fetched_at=_moment(token.fetched_at),
                        expires_at=_moment(token.expires_at), lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def _release(self, key: TokenKey, owner: str) -> None:
        with self.sessions() as db, db.begin():
            db.execute(
                update(ServiceToken)
                .where(ServiceToken.cache_key == key.digest, ServiceToken.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def fetch_once(self, key: TokenKey, fetch: Fetch, *, rejected: str | None) -> CachedToken:
        """The stored token if usable, else fetch under the row's lease (others wait for it)."""
        owner = secrets.token_hex(16)
        deadline = time.monotonic() + 2 * self.lease_seconds
        while True:
            stored, leased = self._claim(key, owner, rejected)
            if stored is not None:
                return stored
            if leased:
                try:
                    token = fetch()
                except BaseException:
                    self._release(key, owner)
                    raise
                self._store(key, token)
                return token
            if time.monotonic() > deadline:
                # The lease keeps being renewed by others and no token appears: stop waiting.
                return fetch()
            time.sleep(POLL_SECONDS)


# -- the Redis store ---------------------------------------------------------------------------


class RedisTokenStore:
    """Tokens in Redis (`SET … PX`); a Redis lock makes one process fetch at a time."""

    def __init__(self, client: Any, *, prefix: str = "tally:service-token:", lease_seconds: float = 30.0) -> None:
        self.client = client
        self.prefix = prefix
        self.lease_seconds = lease_seconds

    def read(self, key: TokenKey) -> CachedToken | None:
        """The stored token of `key`, usable or not."""
        raw = self.client.get(self.prefix + key.digest)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return CachedToken(str(data["value"]), float(data["fetched_at"]), float(data["expires_at"]))
        except (ValueError, KeyError, TypeError):
            return None  # written by another version: fetch anew

    def _write(self, key: TokenKey, token: CachedToken) -> None:
        ttl_ms = int((token.expires_at - epoch()) * 1000)
        if ttl_ms > 0:
            payload = json.dumps({"value": token.value, "fetched_at": token.fetched_at,
                                  "expires_at": token.expires_at})
            self.client.set(self.prefix + key.digest, payload, px=ttl_ms)

    def fetch_once(self, key: TokenKey, fetch: Fetch, *, rejected: str | None) -> CachedToken:
        """The stored token if usable, else fetch while holding the key's Redis lock.

        Redis being down does not stop score delivery: the process then fetches a token of
        its own (logged), as it would without a shared cache.
        """
        import redis

        try:
            return self._fetch_once(key, fetch, rejected=rejected)
        except redis.RedisError as exc:
            log.warning("token cache in Redis unavailable (%s): fetching a token for this process only", exc)
            return fetch()

    def _fetch_once(self, key: TokenKey, fetch: Fetch, *, rejected: str | None) -> CachedToken:
        stored = self.read(key)
        if stored is not None and stored.usable(epoch(), rejected):
            return stored
        lock = self.client.lock(self.prefix + "lock:" + key.digest, timeout=self.lease_seconds,
                                blocking_timeout=2 * self.lease_seconds, sleep=POLL_SECONDS)
        acquired = lock.acquire()
        try:
            stored = self.read(key)
            if stored is not None and stored.usable(epoch(), rejected):
                return stored
            token = fetch()
            self._write(key, token)
            return token
        finally:
            if acquired:
                try:
                    lock.release()
                except Exception:  # noqa: BLE001  (the lock timed out during a slow fetch: nothing to release)
                    log.debug("token lock %s had expired before release", key.digest)


def make_token_store(settings: Settings, sessions: sessionmaker[Session]) -> TokenStore:
    """The store the settings ask for: the database (default) or Redis."""
    lease = settings.http_connect_timeout_seconds + settings.http_timeout_seconds + 5
    if settings.token_cache == "redis":
        import redis

        return RedisTokenStore(redis.Redis.from_url(settings.redis_url), lease_seconds=lease)
    return DatabaseTokenStore(sessions, lease_seconds=lease)


# -- the process's tokens ----------------------------------------------------------------------


class AccessTokens:
    """Every access token this process uses: memory first, then the shared store, then the platform.

    `fetch(key)` asks the platform (see `tool.lti.assertion.request_access_token`); it runs
    at most once at a time per key in this process, and per key in the installation when the
    store allows (see the module docstring).
    """

    def __init__(self, *, store: TokenStore, fetch: Callable[[TokenKey], CachedToken]) -> None:
        self.store = store
        self._fetch = fetch
        self._memory: dict[TokenKey, CachedToken] = {}
        self._locks: dict[TokenKey, threading.Lock] = {}
        self._guard = threading.Lock()
        self.fetches = 0  # token requests this process made (tests, benchmark)

    def _lock(self, key: TokenKey) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    def _counted_fetch(self, key: TokenKey) -> Fetch:
        def fetch() -> CachedToken:
            with self._guard:
                self.fetches += 1
            return self._fetch(key)

        return fetch

    def get(self, key: TokenKey) -> str:
        """A usable token for `key`."""
        token = self._memory.get(key)
        if token is not None and token.usable(epoch()):
            return token.value
        return self._refresh(key, rejected=None)

    def renew(self, key: TokenKey, *, rejected: str) -> str:
        """A token other than `rejected`, which the platform just answered 401 to."""
        return self._refresh(key, rejected=rejected)

    def _refresh(self, key: TokenKey, *, rejected: str | None) -> str:
        with self._lock(key):
            token = self._memory.get(key)  # another thread may have refreshed it meanwhile
            if token is not None and token.usable(epoch(), rejected):
                return token.value
            token = self.store.fetch_once(key, self._counted_fetch(key), rejected=rejected)
            self._memory[key] = token
            return token.value

    def forget(self) -> None:
        """Drop this process's memory (tests: behave like a fresh process)."""
        with self._guard:
            self._memory.clear()
