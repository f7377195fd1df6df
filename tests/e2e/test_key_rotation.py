"""Key rotation: `python -m tool keys rotate` publishes the next key before it signs and retires the
old one after the grace period; no launch or service call fails meanwhile, even against a
platform that caches our JWKS and ignores unknown kids until its cache expires."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
import requests

from tool import cli, clock
from tool.lti.assertion import TokenRequestError, client_assertion, request_access_token
from tool.lti.keys import KeyStore
from tool.ags.http import make_session
from tests.e2e.conftest import NewStack, Stack

SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"


@pytest.fixture
def own_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A keys directory of this test alone (rotation must not disturb other tests), used by the CLI too."""
    keys = tmp_path / "keys"
    KeyStore(keys).generate()
    monkeypatch.setenv("TOOL_KEYS_DIR", str(keys))
    return keys


@pytest.fixture(params=["moodle", "canvas"])
def rot_stack(request: pytest.FixtureRequest, new_stack: NewStack, own_keys: Path) -> Stack:
    # The web process looks at the keys on every request (key_reload_seconds=0), as a signer's view below does:
    # these tests rotate with leads of seconds, not the minutes of a real rotation.
    return new_stack(request.param, keys_dir=own_keys, key_reload_seconds=0)


def _served_kids(stack: Stack) -> set[str]:
    return {k["kid"] for k in requests.get(stack.tool_url + "/.well-known/jwks.json").json()["keys"]}


def _wait_until_served(stack: Stack, kid: str) -> None:
    assert kid in _served_kids(stack), "the JWKS did not publish the new key"


def _signing_kid(keys: Path) -> str:
    return jwt.get_unverified_header(client_assertion(KeyStore(keys), client_id="c", audience="a"))["kid"]


def _token(stack: Stack, signer: KeyStore) -> str:
    """A token request signed by `signer` (another process's view of the keys, like a worker's)."""
    token = request_access_token(make_session(stack.settings), signer, client_id=stack.platform.client_id,
                                 token_url=stack.platform.paths.token_url, audience=None, scopes=[SCORE])
    return token.token


def test_rotate_publishes_first_signs_after_the_lead_and_retires_after_the_grace(
        moodle: Stack, own_keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `moodle` serves the session's shared keys; this test rotates its own directory through the CLI.
    old = _signing_kid(own_keys)
    assert cli.main(["keys", "rotate", "--lead", "600", "--grace", "3600"]) == 0
    assert "published key" in capsys.readouterr().out
    new = next(k.kid for k in KeyStore(own_keys).all() if k.kid != old)
    store = KeyStore(own_keys)
    assert {k["kid"] for k in store.jwks()["keys"]} == {old, new}  # published at once
    assert _signing_kid(own_keys) == old  # …but not signing yet
    clock.shift(601)
    assert _signing_kid(own_keys) == new
    assert {k["kid"] for k in KeyStore(own_keys).jwks()["keys"]} == {old, new}  # the grace period
    clock.shift(3600)
    assert {k["kid"] for k in KeyStore(own_keys).jwks()["keys"]} == {new}
    assert cli.main(["keys", "prune"]) == 0
    assert not (own_keys / f"{old}.pem").exists() and (own_keys / f"{new}.pem").exists()


def test_the_default_lead_outlasts_the_cache_time_of_our_jwks(rot_stack: Stack) -> None:
    answer = requests.get(rot_stack.tool_url + "/.well-known/jwks.json")
    max_age = int(answer.headers["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert rot_stack.settings.key_publish_lead_seconds > max_age


def test_no_launch_or_service_call_fails_during_a_rotation_with_a_caching_platform(
        rot_stack: Stack, own_keys: Path) -> None:
    stack = rot_stack
    stack.platform.tokens.jwks_cache_seconds = 1.0  # trusts a fetched JWKS for 1 s, unknown kids included
    # This loop asks for a token every 50 ms; Canvas would throttle that (each token costs 200
    # units of its rate limit, tests/sandbox/test_canvas_code.py): the subject here is the key.
    stack.platform.throttle.configure(enabled=False)
    signer = KeyStore(own_keys, reload_seconds=0)
    old = _signing_kid(own_keys)
    _token(stack, signer)  # the platform now caches a JWKS with the old key only
    assert cli.main(["keys", "rotate", "--lead", "3", "--grace", "600"]) == 0
    new = next(k.kid for k in KeyStore(own_keys).all() if k.kid != old)
    failures: list[str] = []
    kids_used: set[str] = set()
    switched_at: float | None = None
    teacher = stack.platform.teacher.id
    while switched_at is None or time.monotonic() < switched_at + 1.5:
        kid = _signing_kid(own_keys)
        kids_used.add(kid)
        if kid == new and switched_at is None:
            switched_at = time.monotonic()
        try:
            _token(stack, signer)
        except TokenRequestError as exc:
            failures.append(f"token with {kid}: {exc.message}")
        launched = stack.launch(teacher)
        if launched.status != 200:
            failures.append(f"launch: {launched.status} {launched.refusal_code}")
        time.sleep(0.05)
    assert failures == []
    assert kids_used == {old, new}
    assert new in _served_kids(stack) and old in _served_kids(stack)  # the old key is in its grace period


def test_without_a_lead_a_caching_platform_refuses_the_new_key(rot_stack: Stack, own_keys: Path) -> None:
    # The control: what the lead prevents.
    stack = rot_stack
    stack.platform.tokens.jwks_cache_seconds = 60.0
    signer = KeyStore(own_keys, reload_seconds=0)
    _token(stack, signer)
    new = KeyStore(own_keys).rotate(publish_lead_seconds=0, retire_grace_seconds=600)
    _wait_until_served(stack, new.kid)
    with pytest.raises(TokenRequestError) as err:
        _token(stack, signer)
    # Moodle's words, in its reason phrase or (Canvas mode) inside a JSON body.
    assert '"kid" invalid' in err.value.message.replace('\\"', '"')


def test_a_platform_that_refetches_on_an_unknown_kid_follows_a_rotation(rot_stack: Stack, own_keys: Path) -> None:
    stack = rot_stack  # the default sandbox: refetches our JWKS when a kid is unknown
    signer = KeyStore(own_keys, reload_seconds=0)
    _token(stack, signer)
    fetches = stack.platform.tokens.jwks_fetches
    new = KeyStore(own_keys).rotate(publish_lead_seconds=0, retire_grace_seconds=600)
    _wait_until_served(stack, new.kid)
    assert _token(stack, signer)
    assert stack.platform.tokens.jwks_fetches == fetches + 1
    assert jwt.get_unverified_header(client_assertion(signer, client_id="c", audience="a"))["kid"] == new.kid
