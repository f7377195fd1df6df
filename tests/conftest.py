"""Shared fixtures: settings, a migrated database, the app, and live loopback servers.

The database is SQLite in a temporary directory unless TOOL_DATABASE_URL names another
(CI runs the suite a second time on a throwaway PostgreSQL database). Tables are emptied
after every test that touched them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tool import clock
from tool.config import Settings, load_settings
from tool.db import Base, make_engine
from tool.lti.keys import KeyStore

os.environ["TOOL_ENV"] = "test"


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tally")


@pytest.fixture(scope="session")
def database_url(base_dir: Path) -> str:
    return os.environ.get("TOOL_DATABASE_URL") or f"sqlite:///{base_dir / 'test.db'}"


@pytest.fixture(scope="session")
def keys_dir(base_dir: Path) -> Path:
    d = base_dir / "keys"
    KeyStore(d).generate()
    return d


def make_settings(database_url: str, keys_dir: Path, **overrides: object) -> Settings:
    """Test settings with explicit overrides (the environment's TOOL_* are ignored but the DB URL)."""
    return load_settings(
        {"TOOL_ENV": "test"},
        overrides={"database_url": database_url, "keys_dir": str(keys_dir), **overrides},
    )


@pytest.fixture(scope="session")
def base_settings(database_url: str, keys_dir: Path) -> Settings:
    return make_settings(database_url, keys_dir)


@pytest.fixture(scope="session")
def engine(base_settings: Settings) -> Iterator[Engine]:
    from tool import migrate

    migrate.upgrade(base_settings)
    eng = make_engine(base_settings.resolved_database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clean_db(engine: Engine) -> Iterator[Engine]:
    """The migrated database, emptied after the test."""
    yield engine
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def db(clean_db: Engine) -> Iterator[Session]:
    from tool.db import make_session_factory

    session = make_session_factory(clean_db)()
    yield session
    session.rollback()
    session.close()


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    yield
    clock.reset()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` run only when TOOL_DATABASE_URL names a PostgreSQL database."""
    if (os.environ.get("TOOL_DATABASE_URL") or "").startswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set TOOL_DATABASE_URL=postgresql://…")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
