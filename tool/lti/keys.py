"""The tool's RSA keys: where they live, their lifetimes, the JWKS, and signing.

Two stores, one interface (`KeyStore`):

* **the database** (`key_store = "database"`, the default): table `signing_key`, shared by
  every web and worker machine without a shared filesystem. Private keys are encrypted with
  AES-GCM under a key derived from the installation's secret (HKDF-SHA256), so a database
  dump alone signs nothing; the secret and the database are backed up together.
* **a directory** (`keys/`): `keys/<kid>.pem` (PKCS#8) and `keys/keys.json`, the manifest of
  lifetimes. One machine, a shared disk, and the import/export format of `keys import|export`.

`kid` is the key's RFC 7638 thumbprint, so it is stable and the same in every process.
Each key records when it starts signing (`activates_at`) and when it leaves the JWKS
(`retires_at`). A rotation publishes the new key `key_publish_lead_seconds` before it signs,
so platforms that cache our JWKS already know it, and keeps the old key published
`key_retire_grace_seconds` after it stops signing, so tokens it signed still verify. Every
process looks for keys another process rotated or pruned at most every `reload_seconds`
(`key_reload_seconds`), on a clock that tests inject.
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
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from tool.clock import utcnow
from tool.errors import KeyStoreError
from tool.lti.models import SigningKey

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


def _pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def _load_pem(data: bytes, where: str) -> rsa.RSAPrivateKey:
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyStoreError(f"{where}: unreadable private key ({exc})") from exc
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise KeyStoreError(f"{where}: not an RSA key")
    return private_key


def new_key(activates_at: dt.datetime) -> ToolKey:
    """A fresh 2048-bit RSA key that signs from `activates_at`."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ToolKey(thumbprint(private_key.public_key()), private_key, utcnow(), activates_at, None)


class KeyBackend(Protocol):
    """Where keys are kept: the database or a directory."""

    where: str

    def version(self) -> Hashable:
        """A cheap marker that changes whenever a key is added, changed or removed."""

    def read(self) -> list[ToolKey]:
        """Every key, oldest first."""

    def add(self, key: ToolKey, *, retire_current_at: dt.datetime | None) -> None:
        """Store `key`; when given, keys without a retirement time retire at `retire_current_at` (atomically)."""

    def remove(self, kids: Sequence[str]) -> None:
        """Delete these keys."""


# -- a directory --------------------------------------------------------------------------------


class DirectoryKeys:
    """`<kid>.pem` files and the `keys.json` manifest in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.where = str(directory)

    @property
    def manifest(self) -> Path:
        """The manifest file."""
        return self.directory / MANIFEST

    def version(self) -> Hashable:
        try:
            return self.manifest.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def read(self) -> list[ToolKey]:
        if not self.manifest.exists():
            return []
        try:
            manifest = json.loads(self.manifest.read_text())
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"{self.manifest}: unreadable ({exc})") from exc
        keys = []
        for entry in manifest.get("keys", []):
            pem_path = self.directory / f"{entry['kid']}.pem"
            try:
                data = pem_path.read_bytes()
            except OSError as exc:
                raise KeyStoreError(f"{pem_path}: unreadable private key ({exc})") from exc
            keys.append(ToolKey(
                kid=entry["kid"], private_key=_load_pem(data, str(pem_path)),
                created_at=_parse(entry["created_at"]) or utcnow(),
                activates_at=_parse(entry["activates_at"]) or utcnow(),
                retires_at=_parse(entry.get("retires_at")),
            ))
        return keys

    def _write_manifest(self, keys: list[ToolKey]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        data = {"keys": [{"kid": k.kid, "created_at": _iso(k.created_at), "activates_at": _iso(k.activates_at),
                          "retires_at": _iso(k.retires_at)} for k in keys]}
        tmp = self.manifest.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.manifest)  # atomic: readers never see half a manifest

    def write_pem(self, key: ToolKey) -> None:
        """Write one key's PEM file (mode 0600)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{key.kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_pem(key.private_key))

    def add(self, key: ToolKey, *, retire_current_at: dt.datetime | None) -> None:
        keys = self.read()
        if retire_current_at is not None:
            keys = [k if k.retires_at is not None else replace(k, retires_at=retire_current_at) for k in keys]
        self.write_pem(key)
        self._write_manifest([k for k in keys if k.kid != key.kid] + [key])

    def remove(self, kids: Sequence[str]) -> None:
        self._write_manifest([k for k in self.read() if k.kid not in kids])
        for kid in kids:
            (self.directory / f"{kid}.pem").unlink(missing_ok=True)


# -- the database -------------------------------------------------------------------------------

_HKDF_INFO = b"tally signing-key encryption v1"
_PREFIX = "v1:"


def encryption_key(secret: bytes) -> bytes:
    """The AES-256 key that encrypts private keys in the database, derived from the secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tally", info=_HKDF_INFO).derive(secret)


def seal(aes_key: bytes, kid: str, pem: bytes) -> str:
    """Encrypt a PEM (the kid is authenticated with it: a row cannot be swapped for another)."""
    nonce = secrets.token_bytes(12)
    return _PREFIX + base64.b64encode(nonce + AESGCM(aes_key).encrypt(nonce, pem, kid.encode())).decode()


def unseal(aes_key: bytes, kid: str, sealed: str) -> bytes:
    """Decrypt what `seal` made; KeyStoreError when the secret is not the one it was sealed with."""
    if not sealed.startswith(_PREFIX):
        raise KeyStoreError(f"signing key {kid}: unknown encryption format")
    raw = base64.b64decode(sealed[len(_PREFIX):])
    try:
        return AESGCM(aes_key).decrypt(raw[:12], raw[12:], kid.encode())
    except InvalidTag:
        raise KeyStoreError(
            f"signing key {kid} cannot be decrypted: the secret (TOOL_SECRET_KEY / secret_key_file) is not the "
            "one the key was stored with. Restore that secret, or generate new keys (`python -m tool keys rotate`)."
        ) from None


class DatabaseKeys:
    """The `signing_key` table; private keys sealed with the secret."""

    where = "the database (table signing_key)"

    def __init__(self, sessions: sessionmaker[Session], *, secret: bytes) -> None:
        self.sessions = sessions
        self._aes = encryption_key(secret)
        self._decrypted: dict[str, rsa.RSAPrivateKey] = {}  # unsealing and parsing a key costs milliseconds

    def version(self) -> Hashable:
        with self.sessions() as db:
            rows = db.execute(select(SigningKey.kid, SigningKey.activates_at, SigningKey.retires_at)
                              .order_by(SigningKey.kid)).all()
        return tuple(tuple(r) for r in rows)

    def read(self) -> list[ToolKey]:
        with self.sessions() as db:
            rows = db.execute(select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid)).scalars().all()
        keys = []
        for row in rows:
            private_key = self._decrypted.get(row.kid)
            if private_key is None:
                private_key = _load_pem(unseal(self._aes, row.kid, row.private_key), f"signing key {row.kid}")
                self._decrypted[row.kid] = private_key
            keys.append(ToolKey(row.kid, private_key, row.created_at, row.activates_at, row.retires_at))
        return keys

    def add(self, key: ToolKey, *, retire_current_at: dt.datetime | None) -> None:
        with self.sessions() as db, db.begin():
            if retire_current_at is not None:
                db.execute(update(SigningKey).where(SigningKey.retires_at.is_(None), SigningKey.kid != key.kid)
                           .values(retires_at=retire_current_at))
            db.merge(SigningKey(kid=key.kid, private_key=seal(self._aes, key.kid, _pem(key.private_key)),
                                created_at=key.created_at, activates_at=key.activates_at, retires_at=key.retires_at))
        self._decrypted[key.kid] = key.private_key

    def remove(self, kids: Sequence[str]) -> None:
        with self.sessions() as db, db.begin():
            db.execute(delete(SigningKey).where(SigningKey.kid.in_(list(kids))))


# -- the store ----------------------------------------------------------------------------------


class KeyStore:
    """The tool's keys in one backend; reloads itself when another process changes them.

    `KeyStore(path)` keeps keys in a directory; `KeyStore(backend=DatabaseKeys(…))` in the
    database (see `open_key_store`). `reload_seconds` and `monotonic` say how often to look
    for another process's changes, and on which clock (tests pass their own).
    """

    def __init__(self, directory: Path | None = None, *, backend: KeyBackend | None = None,
                 reload_seconds: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        if backend is None:
            if directory is None:
                raise ValueError("a KeyStore needs a directory or a backend")
            backend = DirectoryKeys(directory)
        self.backend = backend
        self.directory = directory
        self.reload_seconds = reload_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: list[ToolKey] = []
        self._version: Hashable = _UNREAD
        self._checked_at = 0.0

    # -- reading --------------------------------------------------------------------------

    def _maybe_reload(self) -> None:
        now = self._monotonic()
        if self._version is not _UNREAD and now - self._checked_at < self.reload_seconds:
            return
        with self._lock:
            self._checked_at = now
            version = self.backend.version()
            if version != self._version:
                self._keys = self.backend.read()
                self._version = version

    def refresh(self) -> None:
        """Look for another process's changes now (the next read reloads)."""
        self._version = _UNREAD

    def all(self) -> list[ToolKey]:
        """Every key, oldest first."""
        self._maybe_reload()
        return list(self._keys)

    def signing_key(self) -> ToolKey:
        """The key that signs now: the most recently activated one."""
        now = utcnow()
        candidates = [k for k in self.all() if k.activates_at <= now]
        if not candidates:
            raise KeyStoreError(f"no signing key in {self.backend.where}; run `python -m tool keys generate`")
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

    def generate(self) -> ToolKey | None:
        """Create a signing key if there is none; return it, or None when one exists."""
        with self._lock:
            now = utcnow()
            if any(k.activates_at <= now and (k.retires_at is None or k.retires_at > now) for k in self.backend.read()):
                return None
            key = new_key(now)
            self.backend.add(key, retire_current_at=None)
        self.refresh()
        return key

    def rotate(self, *, publish_lead_seconds: int, retire_grace_seconds: int) -> ToolKey:
        """Publish a new key now, sign with it after the lead, retire the old ones after the grace."""
        with self._lock:
            activates = utcnow() + dt.timedelta(seconds=publish_lead_seconds)
            key = new_key(activates)
            self.backend.add(key, retire_current_at=activates + dt.timedelta(seconds=retire_grace_seconds))
        self.refresh()
        return key

    def prune(self) -> list[str]:
        """Delete keys whose retirement has passed; return their kids."""
        with self._lock:
            now = utcnow()
            gone = [k.kid for k in self.backend.read() if k.retires_at is not None and k.retires_at <= now]
            if gone:
                self.backend.remove(gone)
        self.refresh()
        return gone

    def import_keys(self, keys: Sequence[ToolKey]) -> list[str]:
        """Store keys read elsewhere (`keys import`), lifetimes kept; return the kids that were new."""
        with self._lock:
            known = {k.kid for k in self.backend.read()}
            added = [k for k in keys if k.kid not in known]
            for k in added:
                self.backend.add(k, retire_current_at=None)
        self.refresh()
        return [k.kid for k in added]


_UNREAD = object()


def open_key_store(settings: Any, sessions: sessionmaker[Session] | None = None) -> KeyStore:
    """The key store the settings name: the database (with `sessions`) or `keys_dir`."""
    if settings.key_store == "directory":
        return KeyStore(settings.path(settings.keys_dir), reload_seconds=settings.key_reload_seconds)
    if sessions is None:
        raise ValueError("the database key store needs a session factory")
    return KeyStore(backend=DatabaseKeys(sessions, secret=settings.session_secret()),
                    reload_seconds=settings.key_reload_seconds)


def ensure_session_secret(path: Path) -> bool:
    """Create the session-token secret file if missing; True when created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48) + "\n")
    return True
