"""`python -m tool platforms …` and `keys …` against the test database."""

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tool.cli import main
from tool.lti.registry import find_registration

ARGS = [
    "--issuer", "https://moodle.example.edu", "--client-id", "abc",
    "--auth-login-url", "https://moodle.example.edu/mod/lti/auth.php",
    "--auth-token-url", "https://moodle.example.edu/mod/lti/token.php",
    "--key-set-url", "https://moodle.example.edu/mod/lti/certs.php",
]


def deployments_of(db: Session, issuer: str, client_id: str) -> list[tuple[str, str]] | None:
    """Read and end the transaction at once (SQLite: an open transaction blocks the CLI's writes)."""
    try:
        reg = find_registration(db, issuer=issuer, client_id=client_id)
        return None if reg is None else [(d.deployment_id, d.status) for d in reg.deployments]
    finally:
        db.rollback()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, keys_dir: Path, db: Session) -> Session:
    monkeypatch.setenv("TOOL_DATABASE_URL", database_url)
    monkeypatch.setenv("TOOL_KEYS_DIR", str(keys_dir))
    return db


def test_add_list_activate_and_remove_a_platform(cli_env: Session, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["platforms", "add", *ARGS, "--deployment-id", "1", "--name", "Uni Moodle"]) == 0
    assert deployments_of(cli_env, "https://moodle.example.edu", "abc") == [("1", "active")]

    assert main(["platforms", "list"]) == 0
    out = capsys.readouterr().out
    assert "Uni Moodle" in out and "deployment    1 (active)" in out

    assert main(["platforms", "disable", "--issuer", "https://moodle.example.edu", "--client-id", "abc",
                 "--deployment-id", "1"]) == 0
    assert deployments_of(cli_env, "https://moodle.example.edu", "abc") == [("1", "disabled")]

    assert main(["platforms", "remove", "--issuer", "https://moodle.example.edu", "--client-id", "abc"]) == 0
    assert deployments_of(cli_env, "https://moodle.example.edu", "abc") is None


def test_adding_with_a_bad_url_is_refused_with_the_field_named(cli_env: Session, capsys: pytest.CaptureFixture[str]) -> None:
    bad = list(ARGS)
    bad[bad.index("--key-set-url") + 1] = "certs.php"
    assert main(["platforms", "add", *bad]) == 2
    assert "key_set_url" in capsys.readouterr().err
    assert deployments_of(cli_env, "https://moodle.example.edu", "abc") is None


def test_removing_an_unknown_platform_fails_cleanly(cli_env: Session, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["platforms", "remove", "--issuer", "https://nowhere", "--client-id", "x"]) == 2
    assert "no registration" in capsys.readouterr().err


def test_the_same_issuer_may_have_several_client_ids(cli_env: Session) -> None:
    canvas = ["--issuer", "https://canvas.instructure.com", "--auth-login-url", "https://sso.canvaslms.com/api/lti/authorize_redirect",
              "--auth-token-url", "https://sso.canvaslms.com/login/oauth2/token",
              "--key-set-url", "https://sso.canvaslms.com/api/lti/security/jwks"]
    assert main(["platforms", "add", *canvas, "--client-id", "10000000000001"]) == 0
    assert main(["platforms", "add", *canvas, "--client-id", "10000000000002"]) == 0
    assert deployments_of(cli_env, "https://canvas.instructure.com", "10000000000002") == []


def test_keys_list_shows_the_signing_key(cli_env: Session, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "list"]) == 0
    assert "signing" in capsys.readouterr().out
