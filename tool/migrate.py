"""Schema migrations through Alembic (`python -m tool db upgrade`)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from tool.config import PROJECT_ROOT, Settings


def alembic_config(settings: Settings) -> Config:
    """An Alembic Config pointing at migrations/ and the settings' database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Apply migrations up to `revision`, creating the SQLite directory if needed."""
    if settings.sqlite_path is not None:
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), revision)


def current(settings: Settings) -> None:
    """Print the database's current revision."""
    command.current(alembic_config(settings))
