"""Guard rails: each unsafe production setting refuses the start with a clear message, and its
override lets it pass; outside production nothing is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tool import cli
from tool.config import Settings, load_settings
from tool.errors import ConfigError
from tool.ops import guards
from tool.web import create_app

SAFE: dict[str, Any] = {
    "database_url": "postgresql://tally@db.example.edu/tally",
    "public_base_url": "https://tally.example.edu",
    "sandbox_enabled": False,
    "admin_password": "",
    "secret_key": "a-production-secret-of-at-least-32-characters",
}


def production(tmp_path: Path, **changes: Any) -> Settings:
    return load_settings({"TOOL_ENV": "production"}, config_dir=tmp_path,
                         overrides={**SAFE, "secret_key_file": str(tmp_path / "none.secret"), **changes})


CASES = [
    ("sqlite", {"database_url": "sqlite:///var/tally.db"}, "production_allow_sqlite", "SQLite"),
    ("http_public_url", {"public_base_url": "http://tally.example.edu"}, "production_allow_http", "not https"),
    ("sandbox", {"sandbox_enabled": True}, "production_allow_sandbox", "sandbox LMS is on"),
    ("plain_admin_password", {"admin_password": "development"}, "production_allow_plain_admin_password",
     "plain development password"),
    ("secret", {"secret_key": ""}, "production_allow_generated_secret", "no secret"),
]


def test_a_safe_production_configuration_starts(tmp_path: Path) -> None:
    guards.enforce(production(tmp_path))


@pytest.mark.parametrize(("code", "change", "override", "words"), CASES, ids=[c[0] for c in CASES])
def test_each_guard_rail_refuses_and_its_override_passes(tmp_path: Path, code: str, change: dict[str, Any],
                                                         override: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        guards.enforce(production(tmp_path, **change))
    assert "refuses to start in production" in refused.value.message
    assert words in refused.value.message and override in refused.value.message
    assert [f.code for f in guards.refusals(production(tmp_path, **change))] == [code]
    guards.enforce(production(tmp_path, **change, **{override: True}))


def test_the_generated_secret_override_creates_the_secret_file(tmp_path: Path) -> None:
    settings = production(tmp_path, secret_key="", production_allow_generated_secret=True)
    guards.enforce(settings)
    assert len((tmp_path / "none.secret").read_text().strip()) >= 32


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fewer than 32"):
        guards.enforce(production(tmp_path, secret_key="short"))


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    settings = production(tmp_path, **{k: v for _, change, _, _ in CASES for k, v in change.items()})
    assert {f.code for f in guards.refusals(settings)} == {c[0] for c in CASES}


def test_development_refuses_nothing(tmp_path: Path) -> None:
    settings = load_settings({"TOOL_ENV": "development"}, config_dir=tmp_path, overrides={"secret_key": "x" * 40})
    assert guards.refusals(settings) == [] and len(guards.findings(settings)) >= 2


def test_the_web_app_refuses_to_be_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SQLite"):
        create_app(production(tmp_path, database_url="sqlite:///" + str(tmp_path / "t.db")))


def test_the_worker_command_exits_non_zero_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TOOL_ENV", "production")
    monkeypatch.setenv("TOOL_DATABASE_URL", "sqlite:///" + str(tmp_path / "t.db"))
    monkeypatch.setenv("TOOL_PUBLIC_BASE_URL", "https://tally.example.edu")
    monkeypatch.setenv("TOOL_SECRET_KEY", "s" * 40)
    assert cli.main(["worker", "--once"]) == 2
    err = capsys.readouterr().err
    assert "refuses to start in production" in err and "production_allow_sqlite" in err
