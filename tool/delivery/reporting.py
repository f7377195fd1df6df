"""What a delivery worker tells the operator: one log event per score outcome and per step, and metrics.

Kept apart from the worker loop so the loop stays about claiming and recording.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from tool.logs import event
from tool.metrics import DELIVERY_OUTCOMES, platform_label

log = logging.getLogger("tool.delivery")

_LEVEL = {"accepted": logging.INFO, "superseded": logging.INFO, "restamp": logging.INFO, "retry": logging.WARNING,
          "waiting": logging.WARNING, "failed": logging.WARNING}
# Attempts that are no post's outcome: a progress score held back, a row another worker took over.
_NOT_POSTED = ("held", "lost")


def report_outcomes(attempts: Sequence[Any], registrations: Mapping[int, Any]) -> None:
    """One `delivery.outcome` event per score the worker sent or held for the teacher (tool.delivery.queue.
    Attempt), with the LMS's words, and the outcome counters."""
    for attempt in attempts:
        if attempt.kind in _NOT_POSTED:
            continue
        claimed = attempt.claimed
        reg = registrations.get(claimed.registration_id)
        platform = platform_label(getattr(reg, "issuer", None))
        DELIVERY_OUTCOMES.labels(platform, attempt.kind).inc()
        event(log, "delivery.outcome", level=_LEVEL.get(attempt.kind, logging.INFO), outcome=attempt.kind,
              platform=getattr(reg, "issuer", None), delivery_id=claimed.delivery_id, binding_id=claimed.binding_id,
              attempt=claimed.attempts, status=attempt.status, lms_words=attempt.message or None,
              retry_after=attempt.retry_after)


def describe(result: Any) -> str:
    """A step's result in words: "3 sent: 2 accepted, 1 to retry" (what `worker --once` prints)."""
    parts = [f"{result.sent} sent"]
    detail = [f"{getattr(result, k)} {word}" for k, word in (
        ("accepted", "accepted"), ("superseded", "superseded"), ("restamped", "sent again after the LMS's time"),
        ("retrying", "to retry"), ("waiting", "waiting for the teacher in the LMS"), ("failed", "failed"),
        ("rebinding", "to bind again"), ("held", "held back"), ("lost_claims", "taken over by another worker"))
        if getattr(result, k, 0)]
    text = parts[0] + (": " + ", ".join(detail) if detail else "")
    if result.bound or result.binding_errors:
        text += f"; {result.bound} column(s) bound" + (f", {result.binding_errors} binding error(s)"
                                                       if result.binding_errors else "")
    return text


def report_step(worker: str, result: Any) -> None:
    """One `worker.step` event for a step that found work (idle steps stay quiet)."""
    if result.busy:
        fields = {k: v for k, v in vars(result).items() if v}
        event(log, "worker.step", worker=worker, summary=describe(result), **fields)


def report_binding_error(job: Any, error: Any) -> None:
    """A line item the worker could not bind (the LMS's words)."""
    event(log, "delivery.binding_failed", level=logging.WARNING, offering=job.offering_id, target=job.target,
          lms_words=str(error) if error else None)
