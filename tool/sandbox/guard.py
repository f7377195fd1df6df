"""What happens before every AGS, NRPS and token call: faults, latency, Canvas's header rule."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import Response, request

from tool.sandbox.errors import ServiceError, error_response, failure_response, service_error_response
from tool.sandbox.faults import Failure

if TYPE_CHECKING:
    from tool.sandbox.platform import Platform


def refusal_before_call(platform: Platform, where: str) -> Response | None:
    """The answer a fault or a platform rule forces on this call, or None to proceed."""
    faults = platform.faults
    if where == "services" and faults.latency_ms > 0:
        time.sleep(faults.latency_ms / 1000)
    if faults.down:
        return failure_response(platform.mode, Failure(503, reason="Service Unavailable", where=where))
    if platform.mode == "canvas" and not request.headers.get("User-Agent", "").strip():
        # Canvas requires a User-Agent on API calls since 2026.
        return error_response(platform.mode, 400, "A User-Agent header is required")
    failure = faults.take(where)
    if failure is not None:
        return failure_response(platform.mode, failure)
    return None


def service_endpoint(
    platform: Platform, *, on_refusal: Callable[[Response, dict[str, Any]], None] | None = None
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Wrap an AGS/NRPS view: apply faults, render ServiceErrors in the mode's style."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def wrapper(**kwargs: Any) -> Response:
            response = refusal_before_call(platform, "services")
            if response is None:
                try:
                    response = view(**kwargs)
                except ServiceError as exc:
                    response = service_error_response(platform.mode, exc)
            if on_refusal is not None and response.status_code >= 400:
                on_refusal(response, kwargs)
            return response

        return wrapper

    return decorate
