"""The one place Tally reads the time, so tests can move it."""

from __future__ import annotations

import datetime as dt
import time

_offset_seconds: float = 0.0


def utcnow() -> dt.datetime:
    """Return the current time as an aware UTC datetime (microseconds kept)."""
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=_offset_seconds)


def epoch() -> float:
    """Return the current time as seconds since the epoch."""
    return time.time() + _offset_seconds


def shift(seconds: float) -> None:
    """Move the clock by `seconds` (tests only: expiry and leeway checks)."""
    global _offset_seconds
    _offset_seconds += seconds


def reset() -> None:
    """Undo every `shift`."""
    global _offset_seconds
    _offset_seconds = 0.0
