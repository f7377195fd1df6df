"""The tool's RSA keys: files in `keys/`, a manifest of their lifetimes, the JWKS, and signing.

Each key is `keys/<kid>.pem` (PKCS#8); `kid` is the key's RFC 7638 thumbprint, so it is
stable and the same in every process. `keys/keys.json` records when each key starts
signing (`activates_at`) and when it leaves the JWKS (`retires_at`). A rotation publishes
the new key `key_publish_lead_seconds` before it signs, so platforms that cache our JWKS
already know it, and keeps the old key published `key_retire_grace_seconds` after it stops
signing, so tokens it signed still verify.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tool.clock import utcnow
from tool.errors import KeyStoreError

MANIFEST = "keys.json"


def _b64url_uint(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The JWK members of an RSA public key (without kid/alg/use)."""
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "e": _b64url_uint(numbers.e), "n": _b64url_uint(numbers.n)}


def thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a stable kid."""
    jwk = public_jwk(public_key)
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class ToolKey:
    """One RSA key pair of the tool with its lifetime."""

    kid: str
    private_key: rsa.RSAPrivateKey
    created_at: dt.datetime
    activates_at: dt.datetime
    retires_at: dt.datetime | None

    def jwk(self) -> dict[str, str]:
        """The public JWK as published."""
        return {**public_jwk(self.private_key.public_key()), "kid": self.kid, "alg": "RS256", "use": "sig"}

    def state(self, now: dt.datetime, signing_kid: str | None) -> str:
        """A word for `keys list`: signing, published, retiring, retired."""
        if self.kid == signing_kid:
            return "signing"
        if self.retires_at is not None and self.retires_at <= now:
            return "retired"
        if self.activates_at > now:
            return "published (signs from %s)" % self.activates_at.isoformat(timespec="seconds")
        return "retiring"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


class KeyStore:
    """The keys in one directory; reloads itself when another process changes the manifest."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._keys: list[ToolKey] = []
        self._mtime: float | None = None
        self._checked_at = 0.0

    # -- reading --------------------------------------------------------------------------

    def _manifest_path(self) -> Path:
        return self.directory / MANIFEST

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if self._mtime is not None and now - self._checked_at < 1.0:
            return
        with self._lock:
            self._checked_at = now
            try:
                mtime = self._manifest_path().stat().st_mtime
            except FileNotFoundError:
                self._keys, self._mtime = [], None
                return
            if mtime != self._mtime:
                self._keys = self._read()
                self._mtime = mtime

    def _read(self) -> list[ToolKey]:
        try:
            manifest = json.loads(self._manifest_path().read_text())
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"{self._manifest_path()}: unreadable ({exc})") from exc
        keys = []
        for entry in manifest.get("keys", []):
            pem_path = self.directory / f"{entry['kid']}.pem"
            try:
                private_key = serialization.load_pem_private_key(pem_path.read_bytes(), password=None)
            except (OSError, ValueError) as exc:
                raise KeyStoreError(f"{pem_path}: unreadable private key ({exc})") from exc
            if not isinstance(private_key, rsa.RSAPrivateKey):
                raise KeyStoreError(f"{pem_path}: not an RSA key")
            keys.append(
                ToolKey(
                    kid=entry["kid"],
                    private_key=private_key,
                    created_at=_parse(entry["created_at"]) or utcnow(),
                    activates_at=_parse(entry["activates_at"]) or utcnow(),
                    retires_at=_parse(entry.get("retires_at")),
                )
            )
        return keys

    def all(self) -> list[ToolKey]:
        """Every key in the manifest, oldest first."""
        self._maybe_reload()
        return list(self._keys)

    def signing_key(self) -> ToolKey:
        """The key that signs now: the most recently activated one."""
        now = utcnow()
        candidates = [k for k in self.all() if k.activates_at <= now]
        if not candidates:
            raise KeyStoreError(
                f"no signing key in {self.directory}; run `python -m tool keys generate`"
            )
        return max(candidates, key=lambda k: k.activates_at)

    def published(self) -> list[ToolKey]:
        """The keys the JWKS serves: every key not yet retired."""
        now = utcnow()
        return [k for k in self.all() if k.retires_at is None or k.retires_at > now]

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set served at /.well-known/jwks.json."""
        return {"keys": [k.jwk() for k in self.published()]}

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        """Sign claims as an RS256 JWT whose kid is one the JWKS serves."""
        key = self.signing_key()
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={**(headers or {}), "kid": key.kid})

    # -- writing --------------------------------------------------------------------------

    def _write(self, keys: list[ToolKey]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        data = {
            "keys": [
                {
                    "kid": k.kid,
                    "created_at": _iso(k.created_at),
                    "activates_at": _iso(k.activates_at),
                    "retires_at": _iso(k.retires_at),
                }
                for k in keys
            ]
        }
        tmp = self._manifest_path().with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self._manifest_path())  # atomic: readers never see half a manifest
        self._mtime = None

    def _new_key(self, activates_at: dt.datetime) -> ToolKey:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = thumbprint(private_key.public_key())
        self.directory.mkdir(parents=True, exist_ok=True)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = self.directory / f"{kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return ToolKey(kid=kid, private_key=private_key, created_at=utcnow(), activates_at=activates_at, retires_at=None)

    def generate(self) -> ToolKey | None:
        """Create a signing key if there is none; return it, or None when one exists."""
        with self._lock:
            keys = self._read() if self._manifest_path().exists() else []
            now = utcnow()
            if any(k.activates_at <= now and (k.retires_at is None or k.retires_at > now) for k in keys):
                return None
            key = self._new_key(now)
            self._write(keys + [key])
            return key

    def rotate(self, *, publish_lead_seconds: int, retire_grace_seconds: int) -> ToolKey:
        """Publish a new key now, sign with it after the lead, retire the old ones after the grace."""
        with self._lock:
            keys = self._read() if self._manifest_path().exists() else []
            now = utcnow()
            activates = now + dt.timedelta(seconds=publish_lead_seconds)
            new = self._new_key(activates)
            retire_at = activates + dt.timedelta(seconds=retire_grace_seconds)
            updated = [
                k if k.retires_at is not None else ToolKey(k.kid, k.private_key, k.created_at, k.activates_at, retire_at)
                for k in keys
            ]
            self._write(updated + [new])
            return new

    def prune(self) -> list[str]:
        """Delete keys whose retirement has passed; return their kids."""
        with self._lock:
            keys = self._read() if self._manifest_path().exists() else []
            now = utcnow()
            gone = [k for k in keys if k.retires_at is not None and k.retires_at <= now]
            self._write([k for k in keys if k not in gone])
            for k in gone:
                (self.directory / f"{k.kid}.pem").unlink(missing_ok=True)
            return [k.kid for k in gone]


def ensure_session_secret(path: Path) -> bool:
    """Create the session-token secret file if missing; True when created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48) + "\n")
    return True
