"""Platform JWKS: cached per Cache-Control, refetched once on an unknown kid."""

from typing import Iterator

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, jsonify

from tool.errors import LaunchError
from tool.lti.jwks import PlatformKeys, cache_seconds
from tool.lti.keys import public_jwk
from tool.serve import ServerThread


class FakePlatformJwks:
    """A loopback JWKS endpoint whose keys and Cache-Control the test sets."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.cache_control = "max-age=3600"
        self.hits = 0
        app = Flask("jwks")

        @app.get("/jwks")
        def jwks():  # type: ignore[no-untyped-def]
            self.hits += 1
            resp = jsonify(keys=[{**public_jwk(k.public_key()), "kid": kid} for kid, k in self.keys.items()])
            resp.headers["Cache-Control"] = self.cache_control
            return resp

        self.server = ServerThread(app)

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def platform() -> Iterator[FakePlatformJwks]:
    p = FakePlatformJwks()
    p.add_key("k1")
    with p.server:
        yield p


def keys_for(**kw: float) -> PlatformKeys:
    from tool.ags.http import make_session
    from tests.conftest import make_settings

    # Platform JWKS are fetched through the guarded session (tool/outbound.py); loopback is allowed in tests.
    return PlatformKeys(http=make_session(make_settings("sqlite:///unused.db", "keys")), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("max-age=120", 120), ("public, max-age=999999", 86400), ("no-store", 0), ("no-cache, max-age=60", 0), (None, 300),
     ("s-maxage=5", 300), ("private", 300)],
)
def test_cache_lifetime_follows_cache_control(header: str | None, seconds: int) -> None:
    assert cache_seconds(header, default=300, cap=86400) == seconds


def test_keys_are_fetched_once_while_fresh(platform: FakePlatformJwks) -> None:
    keys = keys_for()
    url = platform.server.url + "/jwks"
    for _ in range(5):
        keys.get(url, "k1")
    assert platform.hits == 1


def test_no_store_means_every_launch_fetches(platform: FakePlatformJwks) -> None:
    platform.cache_control = "no-store"
    keys = keys_for()
    url = platform.server.url + "/jwks"
    keys.get(url, "k1")
    keys.get(url, "k1")
    assert platform.hits == 2


def test_an_unknown_kid_refetches_once_and_finds_a_rotated_key(platform: FakePlatformJwks) -> None:
    keys = keys_for(refetch_interval=0)
    url = platform.server.url + "/jwks"
    keys.get(url, "k1")
    platform.add_key("k2")
    assert keys.get(url, "k2") is not None
    assert platform.hits == 2


def test_unknown_kids_do_not_hammer_the_platform(platform: FakePlatformJwks) -> None:
    keys = keys_for(refetch_interval=60)
    url = platform.server.url + "/jwks"
    keys.get(url, "k1")
    for _ in range(5):
        with pytest.raises(LaunchError) as err:
            keys.get(url, "forged")
        assert err.value.code == "unknown_kid"
    assert platform.hits == 1


def test_an_unreachable_key_set_is_a_clear_launch_error() -> None:
    keys = keys_for(timeout=2)
    with pytest.raises(LaunchError) as err:
        keys.get("http://127.0.0.1:9/jwks", "k1")
    assert err.value.code == "platform_jwks_unavailable"
