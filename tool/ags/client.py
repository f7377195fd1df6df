"""AgsClient: the one object through which Tally talks AGS to every platform (one per process, thread-safe).

Score posts never raise: each answers an `Outcome` the delivery worker records.

| the platform answers                                         | Outcome.kind |
|--------------------------------------------------------------|--------------|
| 2xx                                                          | accepted     |
| 409 (Moodle: "Refusing score with an earlier timestamp…")    | superseded   |
| another 4xx saying the timestamp is older/earlier/before     | superseded   |
| 5xx, timeout, no connection, 429, Canvas 403 "Rate Limit Exceeded" | retry (retry_after from Retry-After) |
| 422 "still unpublished", "closed grading period", "course has concluded" (Canvas) | waiting (retry_after: delivery_waiting_seconds) |
| 401                                                          | the token is fetched again and the post resent once; a second 401 is failed |
| any other 4xx (not a student, bad score…)                    | failed, with the platform's words |
| the token endpoint refuses (4xx)                             | failed, with its words |
| the token endpoint is down, slow or throttling (Canvas: 403 "Rate Limit Exceeded") | retry |
| the line item URL is not a URL (a broken claim)              | failed |

When to try again is the delivery layer's decision (it keeps attempts and backoff per
row); this module only says whether a retry makes sense and what the platform asked for.
A *waiting* score is one the LMS refuses until a teacher acts there (publishes the
assignment, reopens the grading period or the course): it is tried again after a long pause.
Once a platform throttles a batch, the rest of that batch is not sent (each answer a retry):
Canvas's bucket only drains with time, and every refused request costs it more.

Tokens: one access token per registration for every scope it was granted (the scopes of its
latest placement's launch, and the roster scope when that launch offered the roster), where
the platform allows it; a call needing a scope outside that set, or a platform that refuses
the whole set, gets a token for the call's own scopes.

Line item and results calls raise `AgsUnavailable` / `AgsRefused` (see tool.ags.http).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tool import outbound
from tool.ags import lineitems as li
from tool.ags.http import (
    AgsRefused,
    AgsUnavailable,
    PlatformSlots,
    is_retryable,
    platform_words,
    process_session,
    retry_after,
    throttle_answer,
    timeouts,
)
from tool.ags.lineitems import SCORE_TYPE, LineItem, service_url
from tool.ags.score import Score
from tool.ags.tokens import (
    AccessTokens,
    CachedToken,
    PlatformRegistration,
    TokenKey,
    TokenStore,
    make_token_store,
)
from tool.config import Settings
from tool.lti.assertion import TokenRequestError, request_access_token
from tool.lti.claims import SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_NRPS, SCOPE_RESULT_READONLY, SCOPE_SCORE
from tool.lti.keys import KeyStore
from tool.lti.models import Deployment, Offering

__all__ = ["AgsClient", "LineItem", "Outcome", "is_canvas", "classify"]

CANVAS_ISSUER_HOST = "canvas.instructure.com"
SCORE_SCOPES = (SCOPE_SCORE,)
# Moodle: "Refusing score with an earlier timestamp"; Canvas: "Provided timestamp of … before
# last updated timestamp of …"; the sandbox: "Score timestamp cannot be older than …".
_OLDER_TIMESTAMP = re.compile(r"timestamp.*\b(older|earlier|before)\b|\b(older|earlier)\b.*timestamp",
                              re.IGNORECASE | re.DOTALL)
# Canvas refuses every grade until a teacher acts in Canvas: app/models/submission.rb
# ("This assignment is still unpublished", "… in a closed grading period …") and
# app/controllers/lti/ims/concerns/gradebook_services.rb ("This course has concluded. …").
_WAITING = re.compile(r"\bunpublished\b|closed grading period|\bconcluded\b", re.IGNORECASE)
MAX_MESSAGE = 500
SERVICE_SCOPES = frozenset({SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY, SCOPE_SCORE, SCOPE_NRPS})
GRANTED_SCOPES_TTL = 300.0  # seconds a registration's learned scope set is kept in memory
NOT_SENT_THROTTLED = ("Not sent yet: the LMS is throttling Tally's requests (rate limit); it goes out with the "
                      "next try.")


@dataclass(frozen=True)
class Outcome:
    """What became of one score post."""

    kind: Literal["accepted", "superseded", "retry", "waiting", "failed"]
    status: int | None  # HTTP status; None for a transport error or timeout
    message: str  # the platform's words (trimmed) or the transport error
    retry_after: float | None = None  # seconds, from Retry-After when present (waiting: the pause)


class Answer(Protocol):
    """What became of one send (an Outcome, or the worker's Attempt)."""

    @property
    def kind(self) -> str:
        """accepted, retry, …"""

    @property
    def status(self) -> int | None:
        """The HTTP status, if any."""


def throttles(answer: Answer) -> bool:
    """True when the platform throttled the send: a 403 or 429 worth retrying (Canvas: 403 "Rate
    Limit Exceeded", also from its token endpoint)."""
    return answer.kind == "retry" and answer.status in (403, 429)


_Item = TypeVar("_Item")
_Answer = TypeVar("_Answer", bound=Answer)


def send_in_lanes(items: Sequence[_Item], send: Callable[[_Item], _Answer], *, lanes: int, pool: Executor,
                  not_sent: Callable[[_Item], _Answer], platform: Callable[[_Item], Hashable] = lambda _: None,
                  throttled: Iterable[Hashable] = ()) -> list[_Answer]:
    """Send items in `lanes` concurrent lanes (the calling thread is one; the others run in `pool`),
    answers in the order of items. Once a platform throttles, the rest of its items are not sent
    (`not_sent` each, a retry): Canvas's bucket only drains with time, and every refused request
    costs it more. `throttled` names platforms known to throttle already."""
    answers: list[_Answer | None] = [None] * len(items)
    indexes = itertools.count()  # next() on a count is atomic: lanes share the work as they free up
    stopped = set(throttled)  # set.add and `in` are atomic: lanes see each other's stops

    def lane() -> None:
        while (i := next(indexes)) < len(items):
            key = platform(items[i])
            if key in stopped:
                answers[i] = not_sent(items[i])
                continue
            answer = answers[i] = send(items[i])
            if throttles(answer):
                stopped.add(key)

    futures = [pool.submit(lane) for _ in range(min(lanes, len(items)) - 1)]
    lane()
    for future in futures:
        future.result()
    return cast(list[_Answer], answers)


def is_canvas(reg: Any) -> bool:
    """Whether the registration is a Canvas installation (cloud or self-hosted).

    Canvas cloud has one issuer for every school; a self-hosted Canvas (and the sandbox in
    canvas mode) has its own, but every Canvas serves its token endpoint at
    `/login/oauth2/token` and its OIDC endpoint at `/api/lti/authorize_redirect`.
    """
    family = getattr(reg, "platform_family", None)
    if isinstance(family, str) and family:
        return family.lower() == "canvas"
    host = (urlsplit(reg.issuer).hostname or "").lower()
    if host == CANVAS_ISSUER_HOST or host.endswith(".instructure.com"):
        return True
    token_path = urlsplit(reg.auth_token_url or "").path.rstrip("/")
    login_path = urlsplit(getattr(reg, "auth_login_url", "") or "").path.rstrip("/")
    return token_path.endswith("/login/oauth2/token") or login_path.endswith("/api/lti/authorize_redirect")


def _trim(text: str) -> str:
    return " ".join(text.split())[:MAX_MESSAGE]


def classify(resp: requests.Response, *, waiting_seconds: float | None = None) -> Outcome:
    """The Outcome of a score post's answer (after any 401 refetch)."""
    status = resp.status_code
    if 200 <= status < 300:
        return Outcome("accepted", status, "")
    words = platform_words(resp) or f"HTTP {status}"
    if status == 409 or (400 <= status < 500 and _OLDER_TIMESTAMP.search(words)):
        # The platform holds a newer score for this pair: ours lost the race, nothing to redo.
        return Outcome("superseded", status, words)
    if is_retryable(resp):
        return Outcome("retry", status, words, retry_after(resp))
    if status == 422 and _WAITING.search(words):
        return Outcome("waiting", status, words, waiting_seconds)
    return Outcome("failed", status, words)


def _token_throttled(exc: TokenRequestError) -> bool:
    details = exc.details if isinstance(exc.details, dict) else {}
    return throttle_answer(details.get("status"), str(details.get("body") or ""), str(details.get("reason") or ""))


def _token_outcome(exc: TokenRequestError) -> Outcome:
    details = exc.details if isinstance(exc.details, dict) else {}
    status = details.get("status")
    if status is None or status >= 500 or _token_throttled(exc):
        # Down, slow or throttling (Canvas charges every token request extra): try later.
        return Outcome("retry", status, _trim(exc.message))
    return Outcome("failed", status, _trim(f"The LMS refused Tally an access token: {exc.message}"))


def _scope_refused(exc: TokenRequestError) -> bool:
    """True when the token endpoint refused the scopes asked for (Canvas: all or nothing)."""
    details = exc.details if isinstance(exc.details, dict) else {}
    return details.get("status") == 400 and details.get("error") == "invalid_scope"


def covers(granted: frozenset[str], scopes: Sequence[str]) -> bool:
    """True when a token for `granted` may make a call that needs `scopes` (lineitem covers reading)."""
    return all(s in granted or (s == SCOPE_LINEITEM_READONLY and SCOPE_LINEITEM in granted) for s in scopes)


@contextmanager
def _token_errors() -> Iterator[None]:
    """A refused token request of a line item or results call, as the AgsError it amounts to."""
    try:
        yield
    except TokenRequestError as exc:
        outcome = _token_outcome(exc)
        error = AgsUnavailable if outcome.kind == "retry" else AgsRefused
        raise error(outcome.message, status=outcome.status, words=exc.message) from exc


class AgsClient:
    """AGS calls to every platform: pooled HTTP, shared tokens, a concurrency cap per platform.

    One per process (thread-safe); `close()` stops its threads. `http` and `token_store`
    default to the process session and the store the settings name.
    """

    def __init__(self, *, settings: Settings, session_factory: sessionmaker[Session], keys: KeyStore,
                 http: requests.Session | None = None, token_store: TokenStore | None = None) -> None:
        self.settings = settings
        self.keys = keys
        self.sessions = session_factory
        self.http = http or process_session(settings)
        self.timeouts = timeouts(settings)
        self.tokens = AccessTokens(store=token_store or make_token_store(settings, session_factory),
                                   fetch=self._fetch_token)
        self.slots = PlatformSlots(settings.ags_concurrency)
        self._registrations: dict[TokenKey, PlatformRegistration] = {}
        self._registrations_lock = threading.Lock()
        # registration id -> (the scopes its launches grant, when to look again); and the sets a
        # platform refused to grant together (asked again once the launches grant another set).
        self._granted: dict[int, tuple[frozenset[str] | None, float]] = {}
        self._refused_sets: set[tuple[str, str, frozenset[str]]] = set()
        # Room for a few platforms' batches at once; each request still waits for its platform's slot.
        self._pool = ThreadPoolExecutor(max_workers=min(64, settings.ags_concurrency * 4),
                                        thread_name_prefix="tally-ags")

    def close(self) -> None:
        """Stop the worker threads (pooled connections belong to the process session)."""
        self._pool.shutdown(wait=True)

    # -- tokens ----------------------------------------------------------------------------

    def granted_scopes(self, reg: PlatformRegistration) -> frozenset[str] | None:
        """The service scopes the registration's latest launch granted (None: no launch yet)."""
        reg_id = getattr(reg, "id", None)
        if not isinstance(reg_id, int):
            return None
        now = time.monotonic()
        with self._registrations_lock:
            cached = self._granted.get(reg_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        with self.sessions() as db:
            row = db.execute(
                select(Offering.ags_scopes, Offering.nrps_url)
                .join(Deployment, Deployment.id == Offering.deployment_id)
                .where(Deployment.registration_id == reg_id)
                .order_by(Offering.updated_at.desc(), Offering.id.desc()).limit(1)
            ).first()
        granted: frozenset[str] | None = None
        if row is not None:
            scopes = {s for s in (row.ags_scopes or []) if s in SERVICE_SCOPES}
            if row.nrps_url:
                scopes.add(SCOPE_NRPS)  # the launch offered the roster: its scope is on the key
            granted = frozenset(scopes) or None
        with self._registrations_lock:
            self._granted[reg_id] = (granted, now + GRANTED_SCOPES_TTL)
        return granted

    def _token_scopes(self, reg: PlatformRegistration, scopes: Sequence[str]) -> tuple[str, ...]:
        """The scopes to ask for: every granted one where that covers the call, else the call's own."""
        granted = self.granted_scopes(reg)
        if granted and covers(granted, scopes) and (reg.issuer, reg.client_id, granted) not in self._refused_sets:
            return tuple(sorted(granted))
        return tuple(scopes)

    def _key(self, reg: PlatformRegistration, scopes: Sequence[str]) -> TokenKey:
        key = TokenKey.of(reg, scopes)
        with self._registrations_lock:
            self._registrations[key] = reg
        return key

    def _token(self, reg: PlatformRegistration, scopes: Sequence[str]) -> tuple[TokenKey, str]:
        """A usable token for a call needing `scopes`, and its key (TokenRequestError when refused)."""
        key = self._key(reg, self._token_scopes(reg, scopes))
        try:
            return key, self.tokens.get(key)
        except TokenRequestError as exc:
            if key.scopes == tuple(sorted(set(scopes))) or not _scope_refused(exc):
                raise
            # The platform will not grant the whole set together: each call asks for its own
            # scopes until the launches grant another set.
            with self._registrations_lock:
                self._refused_sets.add((reg.issuer, reg.client_id, frozenset(key.scopes)))
            key = self._key(reg, scopes)
            return key, self.tokens.get(key)

    def access_token(self, reg: PlatformRegistration, scopes: Sequence[str]) -> str:
        """A usable bearer token covering `scopes` (the roster's NRPS calls; TokenRequestError when refused)."""
        return self._token(reg, scopes)[1]

    def _fetch_token(self, key: TokenKey) -> CachedToken:
        with self._registrations_lock:
            reg = self._registrations[key]
        granted = request_access_token(
            self.http, self.keys, client_id=reg.client_id, token_url=reg.auth_token_url,
            audience=reg.auth_audience, scopes=key.scopes,
            timeout=self.timeouts,  # type: ignore[arg-type]  # requests takes (connect, read)
        )
        return CachedToken.granted(granted.token, granted.expires_in)

    @property
    def token_requests(self) -> int:
        """How many access tokens this process fetched from platforms."""
        return self.tokens.fetches

    # -- one authorised request --------------------------------------------------------------

    def call(self, reg: PlatformRegistration, method: str, url: str, *, scopes: tuple[str, ...], accept: str,
             body: Any = None, content_type: str | None = None) -> requests.Response:
        """Send one AGS request with a shared token; on 401 fetch a new token and send it once more.

        Transport failures raise AgsUnavailable, an unusable URL AgsRefused, a refused token
        request TokenRequestError.
        """
        key, token = self._token(reg, scopes)
        data = json.dumps(body) if body is not None else None
        resp = self._send(reg, method, url, token, accept, data, content_type)
        if resp.status_code == 401:
            # The platform forgot or revoked the token before its expiry (a restart, a key
            # change): one new token, one more try; a second 401 is the platform's answer.
            token = self.tokens.renew(key, rejected=token)
            resp = self._send(reg, method, url, token, accept, data, content_type)
        return resp

    def _send(self, reg: PlatformRegistration, method: str, url: str, token: str, accept: str,
              data: str | None, content_type: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            with self.slots.slot((reg.issuer, reg.client_id)):
                # Guarded (tool/outbound.py): the URLs come from launches and platform answers.
                return outbound.fetch(self.http, method, url, headers=headers, data=data, timeout=self.timeouts)
        except requests.Timeout as exc:
            raise AgsUnavailable(f"The LMS did not answer in time: {exc}", words=str(exc)) from exc
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            # A broken URL (a bad lineitem claim) will not heal by waiting.
            raise AgsRefused(f"Not a usable AGS URL {url!r}: {exc}", words=str(exc)) from exc
        except requests.RequestException as exc:
            raise AgsUnavailable(f"The LMS could not be reached: {exc}", words=str(exc)) from exc

    # -- scores ------------------------------------------------------------------------------

    def post_score(self, reg: PlatformRegistration, lineitem_url: str, score: Score) -> Outcome:
        """POST one score to the line item's `/scores`; never raises for what the platform does."""
        body = score.to_json(canvas=is_canvas(reg))
        try:
            resp = self.call(reg, "POST", service_url(lineitem_url, "/scores"), scopes=SCORE_SCOPES,
                             accept="application/json", body=body, content_type=SCORE_TYPE)
        except AgsUnavailable as exc:
            return Outcome("retry", None, _trim(exc.message))
        except AgsRefused as exc:
            return Outcome("failed", None, _trim(exc.message))
        except TokenRequestError as exc:
            return _token_outcome(exc)
        return classify(resp, waiting_seconds=self.settings.delivery_waiting_seconds)

    def post_scores(self, reg: PlatformRegistration, items: Sequence[tuple[str, Score]]) -> list[Outcome]:
        """Post many scores concurrently (at most the platform's cap in flight); outcomes in the order of items."""
        # As many lanes as the cap allows: more threads would only wait for a slot (and for the
        # GIL), fewer would leave the platform's allowance unused.
        return send_in_lanes(items, lambda item: self.post_score(reg, *item), lanes=self.slots.cap, pool=self._pool,
                             not_sent=lambda _: Outcome("retry", None, NOT_SENT_THROTTLED))

    # -- line items and results ----------------------------------------------------------------

    @staticmethod
    def _read_scopes(granted: Sequence[str] | None) -> tuple[str, ...]:
        # A platform that granted only the full lineitem scope (some Canvas developer keys)
        # refuses a token request for lineitem.readonly.
        if granted is not None and SCOPE_LINEITEM_READONLY not in granted and SCOPE_LINEITEM in granted:
            return (SCOPE_LINEITEM,)
        return li.READ_SCOPES

    def list_lineitems(self, reg: PlatformRegistration, lineitems_url: str, *, resource_id: str | None = None,
                       tag: str | None = None, resource_link_id: str | None = None, limit: int | None = None,
                       granted: Sequence[str] | None = None) -> list[LineItem]:
        """Every line item of the container matching the filters (every `next` page followed)."""
        with _token_errors():
            return li.list_lineitems(self, reg, lineitems_url, resource_id=resource_id, tag=tag,
                                     resource_link_id=resource_link_id, limit=limit, scopes=self._read_scopes(granted))

    def get_lineitem(self, reg: PlatformRegistration, lineitem_url: str, *,
                     granted: Sequence[str] | None = None) -> LineItem:
        """One line item."""
        with _token_errors():
            return li.get_lineitem(self, reg, lineitem_url, scopes=self._read_scopes(granted))

    def create_lineitem(self, reg: PlatformRegistration, lineitems_url: str, item: LineItem) -> LineItem:
        """Create a line item (label, scoreMaximum, resourceId, tag, resourceLinkId); the platform's copy."""
        with _token_errors():
            return li.create_lineitem(self, reg, lineitems_url, item)

    def update_lineitem(self, reg: PlatformRegistration, item: LineItem) -> LineItem:
        """Update label and maximum by GET then PUT (keeps the fields the platform added)."""
        with _token_errors():
            return li.update_lineitem(self, reg, item)

    def results(self, reg: PlatformRegistration, lineitem_url: str, *, user_id: str | None = None,
                limit: int | None = None) -> Iterator[dict[str, Any]]:
        """What the gradebook holds for the line item, paged: {userId, resultScore, resultMaximum, comment, timestamp?}."""
        with _token_errors():
            yield from li.iter_results(self, reg, lineitem_url, user_id=user_id, limit=limit)
