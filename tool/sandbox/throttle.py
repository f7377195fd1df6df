"""Canvas's request throttle: a leaky bucket per API client (app/middleware/request_throttle.rb).

How Canvas does it, and so the sandbox in canvas mode:

* every request first *reserves* an up-front cost (50) in its client's bucket, and gives it
  back when it ends, replaced by what the request really cost: parallel requests therefore
  fill the bucket although each one is cheap (`LeakyBucket#reserve_capacity`);
* a request that finds the bucket at or above its high-water mark (600) is refused with
  `403` and the body `403 Forbidden (Rate Limit Exceeded)`; there is no Retry-After
  (`RequestThrottle#rate_limit_exceeded`);
* the bucket leaks 10 units a second and holds at most 800 (`maximum`, `hwm`, `outflow`);
* a request costs its CPU and database seconds plus any extra the action adds; the OAuth
  token endpoint adds 200 (app/controllers/oauth2_provider_controller.rb,
  `increment_request_cost(Setting.get("oauth_token_additional_request_cost", "200"))`);
* every answer to an API client carries `X-Rate-Limit-Remaining` (high-water mark minus the
  bucket's level) and, unless throttled, `X-Request-Cost`.

LTI Advantage service calls are bucketed by the token's client_id; token requests carry no
access token and fall into the caller's IP bucket (`RequestThrottle#client_identifiers`).
The sandbox cannot measure Canvas's CPU time: a request costs `request_cost` instead. Time is
the platform's clock, so tests let the bucket leak by moving that clock, without sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

THROTTLED_BODY = "403 Forbidden (Rate Limit Exceeded)\n"


@dataclass(frozen=True)
class ThrottleSettings:
    """The bucket's settings; Canvas's defaults."""

    enabled: bool = True
    hwm: float = 600.0  # the "full" line
    maximum: float = 800.0  # the bucket's top
    outflow: float = 10.0  # units leaked per second
    up_front_cost: float = 50.0  # reserved while a request runs
    request_cost: float = 0.05  # stands in for a request's CPU and database seconds
    token_cost: float = 200.0  # extra for every access token granted


@dataclass
class _Bucket:
    count: float = 0.0
    last_touched: float | None = None


@dataclass(frozen=True)
class Ticket:
    """One request's reservation: whose bucket, and whether the request is refused."""

    key: str
    throttled: bool
    reserved: float


class Throttle:
    """The leaky buckets of one platform (thread-safe)."""

    def __init__(self, *, clock: Callable[[], float], enabled: bool) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self.settings = ThrottleSettings(enabled=enabled)
        self.throttled = 0  # requests refused so far (tests and the gradebook page)
        self.requests = 0

    def configure(self, **changes: float | bool) -> ThrottleSettings:
        """Change settings (unknown names raise TypeError); returns the new settings."""
        known = {f.name for f in fields(ThrottleSettings)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown throttle settings: {', '.join(sorted(unknown))}")
        with self._lock:
            self.settings = replace(self.settings, **changes)  # type: ignore[arg-type]
            return self.settings

    def reset(self) -> None:
        """Empty every bucket."""
        with self._lock:
            self._buckets.clear()
            self.throttled = 0
            self.requests = 0

    def _increment(self, key: str, amount: float) -> float:
        """Leak, then add `amount` (Canvas's `increment_bucket` script); the new level."""
        s = self.settings
        now = self._clock()
        bucket = self._buckets.setdefault(key, _Bucket())
        if bucket.last_touched is not None:
            bucket.count = max(0.0, bucket.count - s.outflow * max(0.0, now - bucket.last_touched))
        bucket.count = min(s.maximum, max(0.0, bucket.count + amount))
        bucket.last_touched = now
        return bucket.count

    def begin(self, key: str) -> Ticket | None:
        """Reserve the up-front cost; None when throttling is off."""
        with self._lock:
            s = self.settings
            if not s.enabled:
                return None
            self.requests += 1
            level = self._increment(key, s.up_front_cost)
            # `allowed?` asks `bucket.full?` after the reservation: this request counts too.
            throttled = level >= s.hwm
            if throttled:
                self.throttled += 1
            return Ticket(key, throttled, s.up_front_cost)

    def end(self, ticket: Ticket, *, extra: float = 0.0) -> tuple[float, float]:
        """Replace the reservation by the request's cost; (cost, remaining allowance)."""
        with self._lock:
            s = self.settings
            cost = 0.0 if ticket.throttled else s.request_cost + extra
            level = self._increment(ticket.key, cost - ticket.reserved)
            return cost, s.hwm - level

    def remaining(self, key: str) -> float:
        """The allowance left in a bucket now (leaked to the platform's clock)."""
        with self._lock:
            return self.settings.hwm - self._increment(key, 0.0)


def header_number(value: float) -> str:
    """A float as Canvas writes it in a header (Ruby's Float#to_s: 600.0, 12.5)."""
    text = repr(round(value, 6))
    return text if "." in text or "e" in text else text + ".0"
