"""Database plumbing: the declarative Base, engines, sessions and a portable upsert.

Services receive a `Session` and never commit; the web request or worker step that
opened the session owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable, Mapping, TypeVar

from decimal import Decimal

from sqlalchemy import DateTime, Engine, Integer, MetaData, Numeric, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every Tally table."""

    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Points(TypeDecorator[Decimal]):
    """A Decimal with two places (DECIMAL(6,2) on PostgreSQL).

    SQLite has no decimal type: it would store floats and sum them inexactly, so there the
    column holds integer hundredths. Either way Python sees an exact Decimal, sums included.
    """

    impl = Numeric(6, 2)
    cache_ok = True
    _CENT = Decimal("0.01")

    def __init__(self, precision: int = 6, **_: Any) -> None:
        super().__init__()
        self.precision = precision  # digits in all, two of them after the point
        self.impl = Numeric(precision, 2)  # what Alembic renders into migrations

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Integer())
        return dialect.type_descriptor(Numeric(self.precision, 2, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        if dialect.name == "sqlite":
            return int((value * 100).to_integral_value())
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-2)
        if isinstance(value, Decimal) and value.as_tuple().exponent == -2:
            return value  # NUMERIC(p,2) and its sums already have two places: the hot path of totals
        return Decimal(value).quantize(self._CENT)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout for threaded servers."""
    # A failed statement's message would otherwise quote its parameters (grades, tokens) into logs.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling defers BEGIN; take it over so that
            # SAVEPOINT and write locks behave (SQLAlchemy docs, "Serializable isolation").
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock at BEGIN, so two writers queue on busy_timeout
            # instead of one failing with "database is locked" when it upgrades its lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


# SQLSTATEs after which PostgreSQL has rolled the transaction back and running it again may
# succeed: serialization_failure, deadlock_detected.
# Ids are integer columns, PostgreSQL's 4-byte integer: 1 … 2147483647.
ID_MAX = 2**31 - 1


def column_text(value: str, limit: int) -> str:
    """Text from outside (a claim, an NRPS member) as a text column holds it: cut to `limit`, no NUL
    and no lone surrogate (PostgreSQL refuses both; SQLite would store them)."""
    return value[:limit].replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """True for a serialization failure or a deadlock: the database rolled the transaction back."""
    orig = getattr(exc, "orig", None)
    return isinstance(exc, DBAPIError) and getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def is_unavailable(exc: BaseException) -> bool:
    """True when the database could not be used at all: connection lost or refused, pool exhausted,
    a retryable conflict that happened again."""
    return isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)) or is_retryable(exc) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


def in_transaction(sessions: Callable[[], Session], work: Callable[[Session], T], *, attempts: int = 3) -> T:
    """Run `work` in a new session and commit; again (up to `attempts` times) when the database
    rolled it back for a deadlock or a serialization failure."""
    for attempt in range(1, attempts + 1):
        with sessions() as db:
            try:
                result = work(db)
                db.commit()
                return result
            except DBAPIError as exc:
                db.rollback()
                if attempt == attempts or not is_retryable(exc):
                    raise
    raise AssertionError("unreachable")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def relax_durability(db: Session) -> None:
    """Let this transaction commit without waiting for the WAL flush (PostgreSQL only).

    For writes that the next request recreates anyway (login states, what a launch
    refreshes): a crash may lose the last few milliseconds of them, never a grade.
    Ledger and delivery writes never call this.
    """
    if db.get_bind().dialect.name == "postgresql":
        db.connection().exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


_UPSERTS: dict[tuple[Any, ...], Any] = {}


def _upsert_statement(dialect: str, table: Any, columns: tuple[str, ...], conflict: tuple[str, ...],
                      update: tuple[str, ...], returning: tuple[Any, ...]) -> Any:
    key = (dialect, table.name, columns, conflict, update, returning)
    stmt = _UPSERTS.get(key)
    if stmt is None:
        # Building an INSERT … ON CONFLICT costs more than running it (SQLite's `excluded`
        # copies every column of the table): build each shape once, bind values per call.
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        base = insert(table)
        if update:
            stmt = base.on_conflict_do_update(index_elements=list(conflict), set_={c: base.excluded[c] for c in update})
        else:
            stmt = base.on_conflict_do_nothing(index_elements=list(conflict))
        if returning:
            stmt = stmt.returning(*returning)
        _UPSERTS[key] = stmt
    return stmt


def upsert(
    db: Session,
    table: Any,
    values: Mapping[str, Any],
    *,
    conflict: Iterable[str],
    update: Iterable[str],
    returning: Any = None,
) -> Any:
    """INSERT … ON CONFLICT (conflict) DO UPDATE SET update; one statement on SQLite and PostgreSQL.

    Returns the first row of `returning` columns when given. Atomic under concurrency,
    unlike SELECT-then-INSERT.
    """
    dialect = db.get_bind().dialect.name
    ret = tuple(returning) if isinstance(returning, (list, tuple)) else (returning,) if returning is not None else ()
    stmt = _upsert_statement(dialect, table, tuple(values), tuple(conflict), tuple(update), ret)
    # Core on the session's connection: the ORM's execute path adds nothing for a table statement.
    result = db.connection().execute(stmt, dict(values))
    return result.first() if ret else None
