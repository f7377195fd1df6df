"""Talking HTTP to platforms: one pooled session per process, timeouts, a cap per platform, their words.

    ToolError
    └── AgsError            a line item or results call did not succeed (`status`, the platform's words)
        ├── AgsUnavailable  worth trying again later: transport error, timeout, 5xx, 429, Canvas's 403 throttle
        └── AgsRefused      the platform refused the call (another 4xx); trying again will not help

Score posts do not raise: `tool.ags.client` turns the same facts into an `Outcome`.
"""

from __future__ import annotations

import email.utils
import html
import json
import os
import re
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Hashable

import requests

import tool
from tool.clock import epoch
from tool.config import Settings
from tool.errors import ToolError

# Canvas's throttle answers 403 "403 Forbidden (Rate Limit Exceeded)", with no Retry-After
# (app/middleware/request_throttle.rb); other platforms answer 429.
_RATE_LIMITED = re.compile(r"rate\s+limit\s+exceeded", re.IGNORECASE)
MAX_WORDS = 500


class AgsError(ToolError):
    """A line item or results call failed; `status` is the HTTP status (None: no answer)."""

    code = "ags_error"

    def __init__(self, message: str, *, status: int | None = None, words: str = "",
                 retry_after: float | None = None, details: Any = None) -> None:
        super().__init__(message, details=details if details is not None else {"status": status, "platform": words})
        self.status = status
        self.words = words
        self.retry_after = retry_after


class AgsUnavailable(AgsError):
    """The platform did not answer usefully now (transport error, 5xx, throttled): try later."""

    code = "ags_unavailable"


class AgsRefused(AgsError):
    """The platform refused the call (a 4xx other than throttling)."""

    code = "ags_refused"


def user_agent(settings: Settings) -> str:
    """The User-Agent of every call to a platform (Canvas refuses API calls without one since 2026)."""
    return settings.user_agent or f"Tally/{tool.__version__}"


def timeouts(settings: Settings) -> tuple[float, float]:
    """(connect, read) timeouts of a platform call."""
    return (settings.http_connect_timeout_seconds, settings.http_timeout_seconds)


def make_session(settings: Settings, *, pool_size: int | None = None) -> requests.Session:
    """A new pooled session with Tally's User-Agent: keep-alive connections, enough of them for
    the concurrency cap (or `pool_size`). The web app's JWKS/NRPS/registration calls use one too."""
    http = requests.Session()
    http.headers["User-Agent"] = user_agent(settings)
    proxies = urllib.request.getproxies()
    if not proxies.get("no"):
        # With trust_env, requests scans os.environ for proxies and looks for ~/.netrc on every
        # request: a fifth of a score post's CPU. Resolve the proxy variables once instead
        # (with no_proxy set, the per-host decision stays with requests).
        http.trust_env = False
        http.proxies.update({k: v for k, v in proxies.items() if k in ("http", "https", "all")})
    # Without pool_maxsize >= the cap, urllib3 opens extra connections and throws them away
    # after one request ("Connection pool is full, discarding connection").
    size = pool_size or max(10, settings.ags_concurrency)
    # Every platform call timed and counted (MeasuredAdapter), and guarded (tool/outbound.py):
    # checked addresses only, one total deadline, a size cap.
    from tool.outbound import GuardedAdapter, Policy

    adapter = GuardedAdapter(Policy.from_settings(settings), pool_connections=20, pool_maxsize=size)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


_shared: tuple[int, str, requests.Session] | None = None
_shared_lock = threading.Lock()


def process_session(settings: Settings) -> requests.Session:
    """The process's one pooled session (made again after a fork: sockets must not be shared)."""
    global _shared
    pid = os.getpid()
    with _shared_lock:
        agent = user_agent(settings)
        if _shared is None or _shared[0] != pid or _shared[1] != agent:
            _shared = (pid, agent, make_session(settings))
        return _shared[2]


class PlatformSlots:
    """At most `cap` requests in flight per platform across the threads of this process.

    Canvas's leaky bucket charges parallel requests extra, and no platform likes a tool that
    opens a hundred connections at once; workers on other machines have caps of their own.
    """

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("the concurrency cap must be at least 1")
        self.cap = cap
        self._lock = threading.Lock()
        self._semaphores: dict[Hashable, threading.BoundedSemaphore] = {}

    def _semaphore(self, platform: Hashable) -> threading.BoundedSemaphore:
        with self._lock:
            semaphore = self._semaphores.get(platform)
            if semaphore is None:
                semaphore = self._semaphores[platform] = threading.BoundedSemaphore(self.cap)
            return semaphore

    @contextmanager
    def slot(self, platform: Hashable) -> Iterator[None]:
        """Hold one of the platform's slots for the duration of one request."""
        semaphore = self._semaphore(platform)
        semaphore.acquire()
        try:
            yield
        finally:
            semaphore.release()


def _json_words(body: dict[str, Any]) -> str:
    errors = body.get("errors")
    if isinstance(errors, list):
        return "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message"))
    if isinstance(errors, dict):
        # Canvas's LTI services: {"errors": {"type": "unprocessable_entity", "message": "…"}}.
        if isinstance(errors.get("message"), str) and errors["message"]:
            return str(errors["message"])
        return "; ".join(f"{k}: {v}" for k, v in errors.items())
    for key in ("error_description", "message", "error"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])
    return ""


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def _html_words(resp: requests.Response, text: str) -> str:
    """One line for an HTML page (an LMS's error page): its title, never its markup."""
    match = _TITLE.search(text[:20000])
    title = " ".join(_TAG.sub(" ", html.unescape(match.group(1))).split())[:120] if match else ""
    return "an HTML page instead of an AGS answer" + (f" ({title})" if title else "")


def platform_words(resp: requests.Response) -> str:
    """What the platform said: Canvas's JSON errors, an OAuth error, Moodle's reason phrase, or the
    body; an HTML page (an error page) as its status and title in one line."""
    text = resp.text.strip()
    if "html" in resp.headers.get("Content-Type", "").lower() or text[:15].lower().startswith(("<!doctype html",
                                                                                               "<html")):
        return _html_words(resp, text)
    body: Any = None
    if text[:1] in ("[", "{"):
        try:
            body = json.loads(text)
        except ValueError:
            body = None
    words = _json_words(body) if isinstance(body, dict) else ""
    if not words:
        if not text or body in ([], {}):
            words = resp.reason or ""  # Moodle answers `[]` and puts the detail in the reason phrase
        else:
            words = text
    return " ".join(words.split())[:MAX_WORDS]


def retry_after(resp: requests.Response) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), if any."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - epoch())


def throttle_answer(status: int | None, text: str, reason: str = "") -> bool:
    """429, or Canvas's 403 "403 Forbidden (Rate Limit Exceeded)" (in the body or the reason phrase)."""
    if status == 429:
        return True
    return status == 403 and bool(_RATE_LIMITED.search(text[:2000] + " " + reason))


def is_throttled(resp: requests.Response) -> bool:
    """429, or Canvas's 403 "Rate Limit Exceeded" (app/middleware/request_throttle.rb)."""
    return throttle_answer(resp.status_code, resp.text, resp.reason or "")


def is_retryable(resp: requests.Response) -> bool:
    """5xx or throttled: the same request may succeed later."""
    return resp.status_code >= 500 or is_throttled(resp)


def raise_for_answer(resp: requests.Response, what: str) -> None:
    """Raise AgsUnavailable / AgsRefused for a non-2xx answer to a line item or results call."""
    if 200 <= resp.status_code < 300:
        return
    words = platform_words(resp)
    message = f"The LMS answered {resp.status_code} to {what}: {words}"
    if is_retryable(resp):
        raise AgsUnavailable(message, status=resp.status_code, words=words, retry_after=retry_after(resp))
    raise AgsRefused(message, status=resp.status_code, words=words)
