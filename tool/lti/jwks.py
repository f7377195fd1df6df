"""Platform public keys: fetched over HTTP, cached per process as ready key objects.

pylti1p3 converts the JWK to PEM with jwcrypto on every launch and PyJWT parses the PEM
again; most of a cached launch goes there. We keep `RSAPublicKey` objects instead, honour
the platform's Cache-Control max-age, and refetch once when a token names a kid we do not
know (the platform rotated), at most once per `refetch_interval` per URL so a stream of
forged kids cannot make us hammer the platform.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from tool import outbound
from tool.errors import LaunchError

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*(\d+)", re.I)


@dataclass
class _Entry:
    keys: dict[str, RSAPublicKey] = field(default_factory=dict)
    expires: float = 0.0
    fetched: float = 0.0


def cache_seconds(cache_control: str | None, *, default: int, cap: int) -> int:
    """Seconds to keep a JWKS answer: its max-age (0 for no-store/no-cache), else the default, capped."""
    if not cache_control:
        return min(default, cap)
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0
    m = _MAX_AGE.search(cache_control)
    return min(int(m.group(1)), cap) if m else min(default, cap)


class PlatformKeys:
    """A per-process cache of platform JWKS keyed by URL."""

    def __init__(
        self,
        *,
        http: requests.Session,
        timeout: float = 10.0,
        default_max_age: int = 300,
        max_age_cap: int = 86400,
        refetch_interval: float = 10.0,
    ) -> None:
        self.http = http
        self.timeout = timeout
        self.default_max_age = default_max_age
        self.max_age_cap = max_age_cap
        self.refetch_interval = refetch_interval
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def _fetch(self, url: str) -> _Entry:
        self.fetches += 1
        try:
            # The key set URL came with a registration: fetched through the guard (tool/outbound.py).
            resp = outbound.fetch(self.http, "GET", url, timeout=self.timeout, headers={"Accept": "application/json"})
            resp.raise_for_status()
            body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            # A launch's refusal page is anyone's: the kind of failure, never the platform's answer.
            words = f"it answered {exc.response.status_code}" if isinstance(exc, requests.HTTPError) and \
                exc.response is not None else ("it is not JSON" if isinstance(exc, ValueError) else
                                               f"it {outbound.describe(exc)}")
            raise LaunchError(
                f"Could not read the platform's public keys at {url}: {words}.",
                code="platform_jwks_unavailable",
                hint="Check the key set URL of this registration and that the platform is reachable from Tally.",
            ) from exc
        keys: dict[str, RSAPublicKey] = {}
        for jwk in body.get("keys", []) if isinstance(body, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not jwk.get("kid"):
                continue
            try:
                key = RSAAlgorithm.from_jwk(json.dumps(jwk))
            except Exception:  # a malformed key in the set must not hide the good ones
                continue
            if isinstance(key, RSAPublicKey):
                keys[str(jwk["kid"])] = key
        now = time.monotonic()
        ttl = cache_seconds(resp.headers.get("Cache-Control"), default=self.default_max_age, cap=self.max_age_cap)
        return _Entry(keys=keys, expires=now + ttl, fetched=now)

    def get(self, url: str, kid: str) -> RSAPublicKey:
        """The platform key `kid` from the JWKS at `url`; refetches once on an unknown kid."""
        now = time.monotonic()
        entry = self._entries.get(url)
        if entry is not None and entry.expires > now and kid in entry.keys:
            return entry.keys[kid]
        with self._lock:
            entry = self._entries.get(url)
            stale = entry is None or entry.expires <= now
            unknown = entry is not None and kid not in entry.keys
            if stale or (unknown and now - entry.fetched >= self.refetch_interval):  # type: ignore[union-attr]
                entry = self._fetch(url)
                self._entries[url] = entry
        assert entry is not None
        if kid not in entry.keys:
            raise LaunchError(
                f"The id_token was signed with key {kid!r}, which the platform's key set does not contain.",
                code="unknown_kid",
                hint="The platform may have rotated its keys; check the registration's key set URL.",
            )
        return entry.keys[kid]

    def clear(self) -> None:
        """Forget every cached key set."""
        with self._lock:
            self._entries.clear()
