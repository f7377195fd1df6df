"""The tool's keys: generation, JWKS, signing with a served kid, rotation."""

from pathlib import Path

import jwt
from jwt.algorithms import RSAAlgorithm

from tool import clock
from tool.lti.keys import KeyStore, thumbprint


def test_generate_creates_one_signing_key_and_is_idempotent(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    first = store.generate()
    assert first is not None
    assert store.generate() is None
    assert [k.kid for k in store.all()] == [first.kid]
    assert (tmp_path / f"{first.kid}.pem").stat().st_mode & 0o077 == 0  # private: owner only


def test_kid_is_the_rfc7638_thumbprint_and_stable_across_processes(tmp_path: Path) -> None:
    key = KeyStore(tmp_path).generate()
    assert key is not None
    reloaded = KeyStore(tmp_path).all()[0]
    assert reloaded.kid == key.kid == thumbprint(reloaded.private_key.public_key())


def test_a_signed_assertion_names_a_kid_the_jwks_serves_and_verifies(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.generate()
    token = store.sign({"iss": "c", "sub": "c", "aud": "x"})
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in store.jwks()["keys"] if k["kid"] == kid)
    public = RSAAlgorithm.from_jwk(jwk)
    assert jwt.decode(token, public, algorithms=["RS256"], audience="x")["iss"] == "c"
    assert jwk["alg"] == "RS256" and jwk["use"] == "sig" and "d" not in jwk


def test_rotation_publishes_the_new_key_before_it_signs_and_retires_the_old_after_grace(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    old = store.generate()
    assert old is not None
    new = store.rotate(publish_lead_seconds=600, retire_grace_seconds=3600)
    reader = KeyStore(tmp_path)  # another process
    published = {k["kid"] for k in reader.jwks()["keys"]}
    assert published == {old.kid, new.kid}
    assert reader.signing_key().kid == old.kid  # new key is published, not yet signing
    clock.shift(601)
    assert reader.signing_key().kid == new.kid
    assert {k["kid"] for k in reader.jwks()["keys"]} == {old.kid, new.kid}  # old still verifiable
    clock.shift(3600)
    assert {k["kid"] for k in reader.jwks()["keys"]} == {new.kid}
    assert store.prune() == [old.kid]
    assert not (tmp_path / f"{old.kid}.pem").exists()
