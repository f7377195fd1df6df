"""Settings: TOML then environment; a bad value stops start-up naming the setting."""

from pathlib import Path

import pytest

from tool.config import load_settings
from tool.errors import ConfigError


def write(dir_: Path, name: str, text: str) -> None:
    (dir_ / name).write_text(text)


def test_environment_overrides_the_toml_files(tmp_path: Path) -> None:
    write(tmp_path, "default.toml", 'port = 8000\nleeway_seconds = 5\n')
    write(tmp_path, "production.toml", "leeway_seconds = 10\n")
    s = load_settings({"TOOL_ENV": "production", "TOOL_PORT": "9000", "SANDBOX_PORT": "9001"}, config_dir=tmp_path)
    assert (s.env, s.port, s.leeway_seconds, s.sandbox_port) == ("production", 9000, 10, 9001)


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings({}, config_dir=tmp_path)
    with pytest.raises(Exception):
        s.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TOOL_PORT": "eighty"}, "port"),
        ({"TOOL_LEEWAY_SECONDS": "-1"}, "leeway_seconds"),
        ({"TOOL_DATABASE_URL": "mysql://x"}, "database_url"),
        ({"TOOL_PUBLIC_BASE_URL": "example.com"}, "public_base_url"),
        ({"TOOL_AUTO_ACTIVATE_DEPLOYMENTS": "perhaps"}, "auto_activate_deployments"),
    ],
)
def test_a_bad_value_is_refused_with_the_setting_named(tmp_path: Path, env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env, config_dir=tmp_path)
    assert named in err.value.message
    assert "TOOL_" + named.upper() in err.value.message


def test_an_unknown_key_in_a_toml_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "default.toml", "leeway = 5\n")
    with pytest.raises(ConfigError, match="leeway"):
        load_settings({}, config_dir=tmp_path)


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, "default.toml", "port = = 1\n")
    with pytest.raises(ConfigError, match="default.toml"):
        load_settings({}, config_dir=tmp_path)


def test_postgresql_urls_use_the_psycopg3_driver(tmp_path: Path) -> None:
    s = load_settings({"TOOL_DATABASE_URL": "postgresql://postgres@127.0.0.1/tally"}, config_dir=tmp_path)
    assert s.database_url == "postgresql+psycopg://postgres@127.0.0.1/tally"


def test_static_platforms_are_read_from_toml(tmp_path: Path) -> None:
    write(tmp_path, "default.toml", """
[[platforms]]
issuer = "https://moodle.example.edu"
client_id = "abc"
auth_login_url = "https://moodle.example.edu/mod/lti/auth.php"
auth_token_url = "https://moodle.example.edu/mod/lti/token.php"
key_set_url = "https://moodle.example.edu/mod/lti/certs.php"
deployment_ids = ["1"]
""")
    s = load_settings({}, config_dir=tmp_path)
    assert s.platforms[0].client_id == "abc" and s.platforms[0].deployment_ids == ("1",)


def test_a_missing_session_secret_says_how_to_make_one(tmp_path: Path) -> None:
    s = load_settings({}, config_dir=tmp_path, overrides={"secret_key_file": str(tmp_path / "none")})
    with pytest.raises(ConfigError, match="keys generate"):
        s.session_secret()


def test_the_public_base_url_follows_the_port_unless_set(tmp_path: Path) -> None:
    assert load_settings({"TOOL_PORT": "8100"}, config_dir=tmp_path).public_base_url == "http://127.0.0.1:8100"
    s = load_settings({"TOOL_PORT": "8100", "TOOL_PUBLIC_BASE_URL": "https://tally.example.edu/"}, config_dir=tmp_path)
    assert s.public_base_url == "https://tally.example.edu"
