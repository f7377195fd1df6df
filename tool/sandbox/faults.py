"""Fault and behaviour knobs that tests and benchmarks turn: outage, queued failures, latency."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

WHERE = ("services", "token", "any")


@dataclass(frozen=True)
class Failure:
    """One queued failing answer."""

    status: int
    reason: str | None = None  # Moodle style: the detail in the HTTP reason phrase
    body: str | None = None  # verbatim body (e.g. Canvas's "403 Forbidden (Rate Limit Exceeded)")
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    where: str = "services"


class Faults:
    """What the platform does wrong on purpose.

    `down`: every AGS, NRPS and token call answers 503. `refuse_connections`: the server
    answers nothing at all: every connection is reset as soon as it is accepted, kept-alive
    ones included, so no request reaches the platform (a host that is down, not a 503).
    `latency_ms`: added before each AGS and NRPS call. `fail_next(...)`: the next n matching
    calls answer the given failure.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down: bool = False
        self.refuse_connections: bool = False
        self.latency_ms: int = 0
        self._queue: list[Failure] = []

    def fail_next(
        self,
        n: int = 1,
        status: int = 429,
        body: str | None = None,
        *,
        reason: str | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
        where: str = "services",
    ) -> None:
        """Make the next `n` calls (AGS/NRPS by default, or "token", or "any") fail with `status`."""
        if where not in WHERE:
            raise ValueError(f"where must be one of {WHERE}")
        if status == 429 and retry_after is None:
            retry_after = 1
        failure = Failure(status, reason, body, retry_after, dict(headers or {}), where)
        with self._lock:
            self._queue.extend([failure] * n)

    def take(self, where: str) -> Failure | None:
        """Pop the next queued failure that applies to a call of this kind."""
        with self._lock:
            for i, failure in enumerate(self._queue):
                if failure.where in (where, "any"):
                    return self._queue.pop(i)
            return None

    @property
    def pending(self) -> int:
        """How many queued failures are left."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Back to a healthy platform."""
        with self._lock:
            self.down = False
            self.refuse_connections = False
            self.latency_ms = 0
            self._queue.clear()
