"""What happens around every AGS, NRPS and token call: Canvas's throttle, faults, latency, Canvas's header rule."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import Response, request

from tool.sandbox.errors import ServiceError, error_response, failure_response, service_error_response
from tool.sandbox.faults import Failure
from tool.sandbox.throttle import THROTTLED_BODY, Ticket, header_number

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


def service_client_key(platform: Platform) -> str:
    """Canvas's throttle bucket of a service call: the token's client_id, else the caller's IP."""
    token = platform.tokens.lookup(request.headers.get("Authorization"))
    return f"lti_advantage:{token.client_id}" if token is not None else f"ip:{request.remote_addr}"


def throttle_begin(platform: Platform, key: str) -> Ticket | None:
    """Reserve the request's up-front cost in its bucket (Canvas mode; None when not throttling)."""
    return platform.throttle.begin(key)


def throttled_response() -> Response:
    """Canvas's `rate_limit_exceeded`: 403, plain text, no Retry-After."""
    return Response(THROTTLED_BODY, status=403, content_type="text/plain; charset=utf-8")


def throttle_end(platform: Platform, ticket: Ticket | None, response: Response, *, extra: float = 0.0) -> Response:
    """Settle the request's cost and report the allowance left, as Canvas does on every API answer."""
    if ticket is None:
        return response
    cost, remaining = platform.throttle.end(ticket, extra=extra)
    if not ticket.throttled:
        response.headers["X-Request-Cost"] = header_number(cost)
    # An injected fault that imitates the throttle reports its own (empty) allowance.
    response.headers.setdefault("X-Rate-Limit-Remaining", header_number(remaining))
    return response


def service_endpoint(
    platform: Platform, *, on_refusal: Callable[[Response, dict[str, Any]], None] | None = None
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Wrap an AGS/NRPS view: apply faults, render ServiceErrors in the mode's style."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def wrapper(**kwargs: Any) -> Response:
            ticket = throttle_begin(platform, service_client_key(platform))
            response = throttled_response() if ticket is not None and ticket.throttled else \
                refusal_before_call(platform, "services")
            if response is None:
                try:
                    response = view(**kwargs)
                except ServiceError as exc:
                    response = service_error_response(platform.mode, exc)
            if on_refusal is not None and response.status_code >= 400:
                on_refusal(response, kwargs)
            return throttle_end(platform, ticket, response)

        return wrapper

    return decorate
