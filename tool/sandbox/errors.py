"""How each platform answers a refused service call.

Moodle puts the detail in the HTTP reason phrase and answers the body `[]`
(mod/lti/service/gradebookservices throws `\\Exception($message, $code)`, which services.php
turns into the status line). Canvas's LTI services answer `{"errors": {"type": "unprocessable_entity",
"message": ...}}` (app/controllers/lti/ims/concerns/lti_services.rb, `render_error`); a record
Canvas cannot find is its generic API 404, `{"errors": [{"message": "The specified resource does
not exist."}]}`, and a grade the submission refuses is a validation error on the field `grade`.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from flask import Response

from tool.sandbox.faults import Failure


class ServiceError(Exception):
    """A refusal of an AGS, NRPS or token call, rendered in the mode's style."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None,
                 body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.body = body  # Canvas: a JSON body other than render_error's, when Canvas answers one


NOT_FOUND = "The specified resource does not exist."


def canvas_not_found() -> ServiceError:
    """Canvas's answer to a record it cannot find (ActiveRecord::RecordNotFound in an API call)."""
    return ServiceError(404, NOT_FOUND, body={"errors": [{"message": NOT_FOUND}]})


def canvas_invalid(field: str, message: str) -> ServiceError:
    """Canvas's answer to a record that failed validation (e.g. a grade the submission refuses)."""
    return ServiceError(422, message, body={"errors": [{"field": field, "message": message, "error_code": None}]})


def _status_type(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def reason_phrase(text: str) -> str:
    """Text fit for an HTTP status line (one latin-1 line)."""
    return " ".join(text.split()).encode("latin-1", "replace").decode("latin-1")[:200]


def error_response(mode: str, status: int, message: str, headers: dict[str, str] | None = None, *,
                   body: Any = None) -> Response:
    """The refusal as the mode's platform would send it."""
    if mode == "moodle":
        response = Response("[]", content_type="application/json")
        response.status = f"{status} {reason_phrase(message)}"
    elif status in (204, 401) and body == "":
        response = Response(status=status)  # Canvas's `head :unauthorized`
    else:
        data = body if body is not None else {"errors": {"type": _status_type(status), "message": message}}
        response = Response(json.dumps(data), status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def service_error_response(mode: str, error: ServiceError) -> Response:
    """Render a ServiceError."""
    return error_response(mode, error.status, error.message, error.headers, body=error.body)


def failure_response(mode: str, failure: Failure) -> Response:
    """Render a queued fault (rate limit, outage, ...)."""
    headers = dict(failure.headers)
    if failure.retry_after is not None:
        headers.setdefault("Retry-After", str(failure.retry_after))
    if mode == "canvas" and failure.status in (403, 429):
        # Canvas's throttle reports the bucket; 0 means "wait".
        headers.setdefault("X-Rate-Limit-Remaining", "0.0")
    if failure.body is not None:
        response = Response(failure.body, status=failure.status, content_type="text/plain; charset=utf-8")
        if failure.reason:
            response.status = f"{failure.status} {reason_phrase(failure.reason)}"
        for name, value in headers.items():
            response.headers[name] = value
        return response
    message = failure.reason or _default_message(failure.status)
    return error_response(mode, failure.status, message, headers)


def _default_message(status: int) -> str:
    if status == 403:
        return "Rate Limit Exceeded"  # what older Canvas installs answered when throttling
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
