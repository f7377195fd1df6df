"""What the benchmark scripts share: their database, app settings, statement counting,
percentiles, tables, the final JSON line and `main`.

Not a benchmark (`make bench` skips files starting with `_`). benchmarks/ is not a package:
each script puts its own folder on `sys.path` and imports this module as `_support`;
importing it puts the repository root on `sys.path`, so `tool` imports without an install.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import secrets
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"


class BenchmarkError(RuntimeError):
    """A wrong answer or a failed step: the script says so and exits 2."""


# -- the database of a run ------------------------------------------------------------------------


class PostgresDatabase:
    """A throwaway PostgreSQL database `tally_bench_<random>`, dropped by `drop()`."""

    def __init__(self, server_url: str) -> None:
        import psycopg

        self.server_url = server_url.rstrip("/")
        self.name = "tally_bench_" + secrets.token_hex(4)
        with psycopg.connect(f"{self.server_url}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    @property
    def url(self) -> str:
        return f"{self.server_url}/{self.name}"

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(f"{self.server_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@dataclass
class Workspace:
    """A run's temporary directory and its database."""

    workdir: Path
    database_url: str
    postgres: PostgresDatabase | None = None  # the throwaway PostgreSQL database, if any
    sqlite_path: Path | None = None  # the temporary SQLite file, if that is the database


@contextmanager
def workspace(postgres_server: str | None = None, *, database_url: str | None = None,
              prefix: str = "tally-bench-", announce: bool = False) -> Iterator[Workspace]:
    """A temporary directory and the run's database: a throwaway `tally_bench_<random>` database
    on `postgres_server` (named on stderr when `announce`), else `database_url`, else a SQLite
    file in the directory. Afterwards the PostgreSQL database is dropped and the directory removed."""
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    workdir = Path(tmp.name)
    pg: PostgresDatabase | None = None
    try:
        if postgres_server:
            pg = PostgresDatabase(postgres_server)
            if announce:
                progress(f"[postgres] database {pg.name}")
            yield Workspace(workdir, pg.url, postgres=pg)
        elif database_url:
            yield Workspace(workdir, database_url)
        else:
            path = workdir / "bench.db"
            yield Workspace(workdir, f"sqlite:///{path}", sqlite_path=path)
    finally:
        if pg is not None:
            pg.drop()
        tmp.cleanup()


def add_database_options(p: argparse.ArgumentParser) -> None:
    """--database sqlite|postgres|both and --postgres SERVER_URL (see `on_each_database`)."""
    p.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both",
                   help="which databases to run on (default both)")
    p.add_argument("--postgres", default=DEFAULT_SERVER, metavar="SERVER_URL",
                   help=f"PostgreSQL server for the throwaway tally_bench_<random> database (default {DEFAULT_SERVER})")


def on_each_database(args: argparse.Namespace,
                     run_one: Callable[[str, argparse.Namespace], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`run_one(kind, args)` for each database of --database ("sqlite", then "postgres"); the results by kind."""
    results: dict[str, dict[str, Any]] = {}
    for kind in ["sqlite", "postgres"] if args.database == "both" else [args.database]:
        results[kind] = run_one(kind, args)
        gc.collect()
    return results


# -- the app under test -----------------------------------------------------------------------------


def bench_settings(database_url: str, workdir: Path, **overrides: Any) -> Any:
    """Production-like settings (no sandbox, default log level) on `database_url`, keys in
    `workdir`, a fresh secret key; `overrides` on top."""
    from tool.config import load_settings

    return load_settings({"TOOL_ENV": "production"}, overrides={
        "database_url": database_url, "keys_dir": str(workdir / "keys"), "secret_key": secrets.token_urlsafe(48),
        # A benchmark on loopback: SQLite and http are its point, keys sit in its work directory.
        "production_allow_sqlite": True, "production_allow_http": True, "key_store": "directory",
        # The sandbox LMS on loopback stands in for the platform (production refuses loopback otherwise).
        "outbound_allowed_hosts": ("127.0.0.0/8",),
        # Every simulated browser comes from 127.0.0.1: the per-address cap on OIDC logins (300 per
        # state lifetime) would answer 429 from the 301st launch on.
        "login_states_per_client": 100000,
        **overrides})


def teacher_headers(app: Any, registration_id: int, teacher_id: int, course_id: int,
                    offering_id: int) -> dict[str, str]:
    """The Authorization header of a teacher's session token for the offering (valid 6 hours)."""
    from tool.lti.claims import Role
    from tool.lti.service import LaunchContext
    from tool.web.auth import issue_token

    token = issue_token(app.extensions["tally"].session_secret,
                        LaunchContext(registration_id, teacher_id, course_id, offering_id, (Role.TEACHER,)),
                        ttl=6 * 3600)
    return {"Authorization": f"Bearer {token}"}


def insert_platform(conn: Any) -> tuple[int, int]:
    """The benchmark platform's registration and its deployment "1"; their ids."""
    from sqlalchemy import insert

    from tool.lti.models import Deployment, Registration

    reg = conn.execute(insert(Registration.__table__).returning(Registration.__table__.c.id), {
        "name": "Benchmark platform", "issuer": "https://lms.bench.example", "client_id": "bench-client",
        "auth_login_url": "https://lms.bench.example/auth", "auth_token_url": "https://lms.bench.example/token",
        "key_set_url": "https://lms.bench.example/jwks", "source": "cli"}).scalar_one()
    dep = conn.execute(insert(Deployment.__table__).returning(Deployment.__table__.c.id), {
        "registration_id": reg, "deployment_id": "1", "status": "active"}).scalar_one()
    return reg, dep


def membership(course_id: int, person_id: int, *, teacher: bool) -> dict[str, Any]:
    """An active membership row: a teacher (LTI Instructor) or a student (Learner)."""
    return {"course_id": course_id, "person_id": person_id, "roles": "TEACHER" if teacher else "STUDENT",
            "is_student": not teacher, "lti_roles": [INSTRUCTOR if teacher else LEARNER], "status": "active"}


class Statement(NamedTuple):
    """One cursor.execute() seen by a StatementLog."""

    text: str
    parameters: Any
    executemany: bool
    ms: float

    @property
    def sets(self) -> int:
        """Parameter sets: the rows of an executemany, else 1."""
        return len(self.parameters) if self.executemany else 1


class StatementLog:
    """Counts the statements (an executemany counts once) and the time spent in cursor.execute();
    while `capture` is a list, appends each Statement to it."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.count = 0
        self.seconds = 0.0
        self.capture: list[Statement] | None = None
        self._t0 = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *args: Any) -> None:
        self.count += 1
        self._t0 = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        elapsed = time.perf_counter() - self._t0
        self.seconds += elapsed
        if self.capture is not None:
            self.capture.append(Statement(statement, parameters, executemany, elapsed * 1000.0))

    def reset(self) -> None:
        self.count = 0
        self.seconds = 0.0


# -- figures and output ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of non-empty values."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def progress(msg: str) -> None:
    """A progress line on stderr (stdout holds the table and the JSON line)."""
    print(msg, file=sys.stderr, flush=True)


def machine(*, load_average: bool = True) -> str:
    """"Python 3.x.y, N CPUs[, load average L at start]" for a script's header line."""
    text = f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    return text + (f", load average {os.getloadavg()[0]:.2f} at start" if load_average else "")


def print_cells(cells: list[list[str]], left: tuple[int, ...] = (0,)) -> None:
    """A table: the first row is the header, underlined; the columns in `left` left-aligned, the
    others right-aligned, each as wide as its widest cell."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(row)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_profile(profiler: Any, title: str) -> None:
    """`title`, then a cProfile's top 25 functions by cumulative time."""
    import pstats

    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    print(title)
    print(out.getvalue().strip())


def finish(line: dict[str, Any], *, strict: bool) -> int:
    """Print the figures as ONE line of JSON (the last line of stdout); the exit status: 1 when
    `strict` and a target was missed (`line["met"]` is False), else 0."""
    print(json.dumps(line), flush=True)
    return 1 if strict and line["met"] is False else 0


def run_main(parse_args: Callable[[list[str] | None], argparse.Namespace],
             run: Callable[[argparse.Namespace], int], argv: list[str] | None = None) -> int:
    """A script's main: its exit status, 2 (with the reason on stderr) when a BenchmarkError ends it."""
    args = parse_args(argv)
    try:
        return run(args)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2


# -- pylti1p3's side ---------------------------------------------------------------------------------


class MemoryCache:
    """What pylti1p3's FlaskCacheDataStorage uses of flask_caching's Cache (the "simple" in-memory
    cache of pylti1p3's example app)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float | None, Any]] = {}

    def get(self, key: str) -> Any:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return value

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        self._data[key] = (time.monotonic() + timeout if timeout else None, value)
        return True

    def delete(self, key: str) -> bool:
        return self._data.pop(key, None) is not None
