"""Signing keys in the database: shared by processes without a keys/ directory, encrypted with the
secret, rotated and pruned across processes that notice each other's changes on an injected clock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from sqlalchemy import Engine, select, text

from tool import clock
from tool.config import PROJECT_ROOT
from tool.db import make_session_factory
from tool.errors import KeyStoreError
from tool.lti.keys import DatabaseKeys, KeyStore, open_key_store
from tool.lti.models import SigningKey
from tool.web import create_app
from tests.conftest import make_settings

SECRET = b"database-keys-test-secret-0123456789abcdef"


class FakeMonotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(engine: Engine, tick: FakeMonotonic, *, secret: bytes = SECRET, reload: float = 5.0) -> KeyStore:
    """One process's view of the keys in the database."""
    return KeyStore(backend=DatabaseKeys(make_session_factory(engine), secret=secret), reload_seconds=reload,
                    monotonic=tick)


def test_keys_are_shared_by_two_processes_without_a_keys_directory(clean_db: Engine, database_url: str,
                                                                   tmp_path: Path) -> None:
    nowhere = tmp_path / "keys-that-do-not-exist"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOL_")}
    env.update({"TOOL_ENV": "test", "TOOL_DATABASE_URL": database_url, "TOOL_KEY_STORE": "database",
                "TOOL_KEYS_DIR": str(nowhere), "TOOL_SECRET_KEY": SECRET.decode()})

    def tool(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "tool", *args], env=env, cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = tool("keys", "generate")  # process 1
    kid = created.split("created signing key ")[1].split()[0]
    assert kid in tool("keys", "list")  # process 2 reads what process 1 wrote
    signer = subprocess.run(  # process 3 signs
        [sys.executable, "-c", "from tool.config import load_settings; from tool.db import make_engine, "
         "make_session_factory; from tool.lti.keys import open_key_store; s = load_settings(); "
         "print(open_key_store(s, make_session_factory(make_engine(s.resolved_database_url)))"
         ".sign({'iss': 'tally', 'aud': 'lms'}))"],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert signer.returncode == 0, signer.stderr
    token = signer.stdout.strip()
    # This process serves the JWKS from the database and verifies what process 3 signed.
    settings = make_settings(database_url, nowhere, key_store="database", secret_key=SECRET.decode())
    app = create_app(settings)
    try:
        jwks = app.test_client().get("/.well-known/jwks.json").json
    finally:
        app.extensions["tally"].close()
    assert [k["kid"] for k in jwks["keys"]] == [kid] == [jwt.get_unverified_header(token)["kid"]]
    public = jwt.PyJWK(jwks["keys"][0]).key
    assert jwt.decode(token, public, algorithms=["RS256"], audience="lms")["iss"] == "tally"
    assert not nowhere.exists()


def test_private_keys_are_stored_encrypted(clean_db: Engine) -> None:
    key = store(clean_db, FakeMonotonic()).generate()
    assert key is not None
    with clean_db.connect() as conn:
        sealed = conn.execute(select(SigningKey.private_key)).scalar_one()
    assert sealed.startswith("v1:") and "PRIVATE KEY" not in sealed and "MII" not in sealed


def test_another_secret_cannot_use_the_keys_and_says_why(clean_db: Engine) -> None:
    store(clean_db, FakeMonotonic()).generate()
    with pytest.raises(KeyStoreError, match="secret .* is not the one the key was stored with"):
        store(clean_db, FakeMonotonic(), secret=b"another-secret-another-secret-another").signing_key()


def test_a_row_cannot_be_swapped_for_another_kids_key(clean_db: Engine) -> None:
    a = store(clean_db, FakeMonotonic())
    first = a.generate()
    second = a.rotate(publish_lead_seconds=0, retire_grace_seconds=60)
    assert first is not None
    with clean_db.begin() as conn:  # an attacker with database access moves one sealed key onto another kid
        sealed = conn.execute(select(SigningKey.private_key).where(SigningKey.kid == first.kid)).scalar_one()
        conn.execute(text("UPDATE signing_key SET private_key = :s WHERE kid = :k"), {"s": sealed, "k": second.kid})
    with pytest.raises(KeyStoreError):
        store(clean_db, FakeMonotonic()).all()


def test_rotation_and_pruning_reach_the_other_process_after_its_reload_interval(clean_db: Engine) -> None:
    web_clock, worker_clock = FakeMonotonic(), FakeMonotonic()
    web, worker = store(clean_db, web_clock), store(clean_db, worker_clock)
    old = web.generate()
    assert old is not None and worker.signing_key().kid == old.kid

    new = web.rotate(publish_lead_seconds=0, retire_grace_seconds=3600)  # the admin rotates on the web machine
    assert web.signing_key().kid == new.kid
    assert worker.signing_key().kid == old.kid  # the worker has not looked yet…
    worker_clock.now += 5.0
    assert worker.signing_key().kid == new.kid  # …and follows once its reload interval passed
    assert {k.kid for k in worker.published()} == {old.kid, new.kid}  # the old key in its grace period

    clock.shift(3601)
    assert worker.prune() == [old.kid]  # pruning runs in the worker's maintenance
    assert {k.kid for k in web.all()} == {old.kid, new.kid}  # the web process still has its copy…
    web_clock.now += 5.0
    assert [k.kid for k in web.all()] == [new.kid]  # …until it reloads


def test_keys_import_moves_a_keys_directory_into_the_database_and_export_writes_it_back(
        clean_db: Engine, tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    on_disk = KeyStore(directory)
    on_disk.generate()
    on_disk.rotate(publish_lead_seconds=60, retire_grace_seconds=60)
    db_store = store(clean_db, FakeMonotonic())
    assert sorted(db_store.import_keys(on_disk.all())) == sorted(k.kid for k in on_disk.all())
    assert db_store.import_keys(on_disk.all()) == []  # twice changes nothing
    assert [(k.kid, k.activates_at, k.retires_at) for k in db_store.all()] == \
           [(k.kid, k.activates_at, k.retires_at) for k in on_disk.all()]


def test_generate_imports_an_existing_keys_directory_on_upgrade(clean_db: Engine, database_url: str,
                                                                tmp_path: Path) -> None:
    from tool.cli import generate_keys

    directory = tmp_path / "keys"
    kid = KeyStore(directory).generate().kid  # type: ignore[union-attr]
    settings = make_settings(database_url, directory, key_store="database", secret_key=SECRET.decode())
    said = generate_keys(settings)
    assert any("imported 1 key(s)" in line for line in said) and "a signing key exists already" in said
    keys = open_key_store(settings, make_session_factory(clean_db))
    assert keys.signing_key().kid == kid
