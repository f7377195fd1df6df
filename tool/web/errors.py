"""ToolError → HTTP. The only module that knows status codes.

API requests (`/api/…`) get JSON `{code, message, details}`; pages get a readable page.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, make_response, render_template, request
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from tool.errors import (
    ConfigError,
    DeploymentNotActive,
    Forbidden,
    KeyStoreError,
    LaunchError,
    NotFound,
    RegistrationError,
    SessionError,
    ToolError,
    ValidationError,
)
from tool.bonus import BonusUnconfirmed
from tool.assessments.service import OverrideInvalid, SchemeApplied, SchemeNotActive
from tool.db import is_unavailable
from tool.delivery.status import MaximumFromLms
from tool.ledger.service import EntryChanged, EntryVoided, StudentNotInOffering
from tool.lti.nrps import RosterUnavailable
from tool.lti.roster import RosterNotOffered
from tool.ops.health import NotReady

log = logging.getLogger("tool.web")

STATUS: list[tuple[type[ToolError], int]] = [
    (BonusUnconfirmed, 409),  # points above a maximum (or outside the ledger's usual range): confirm to save
    (EntryVoided, 409),
    (EntryChanged, 409),  # someone saved the entry since the writer read it
    (SchemeApplied, 409),
    (SchemeNotActive, 409),
    (MaximumFromLms, 409),  # the LMS owns that column's maximum
    (OverrideInvalid, 422),
    (StudentNotInOffering, 422),
    (DeploymentNotActive, 403),
    (LaunchError, 400),
    (SessionError, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (ValidationError, 422),
    (RegistrationError, 400),
    (KeyStoreError, 503),
    (NotReady, 503),
    (RosterUnavailable, 502),  # the LMS failed, not the request
    (RosterNotOffered, 409),  # the course lacks the service; asking again will not help
    (ConfigError, 500),
]


def status_for(exc: ToolError) -> int:
    """The HTTP status of a ToolError."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


DATABASE_RETRY_AFTER = 2  # seconds: a PostgreSQL restart or a failover takes about that


def _answer(status: int, code: str, message: str) -> Any:
    """An error as JSON for the API, as a page otherwise (a Response either way)."""
    if _wants_json():
        resp = jsonify(code=code, message=message, details=None)
    else:
        resp = make_response(render_template("error.html", status=status, code=code, message=message))
    resp.status_code = status
    return resp


def register(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(ToolError)
    def _tool_error(exc: ToolError) -> Any:
        status = status_for(exc)
        if _wants_json():
            return jsonify(code=exc.code, message=exc.message, details=exc.details), status
        if isinstance(exc, LaunchError):
            return render_template("launch_error.html", error=exc), status
        return render_template("error.html", status=status, code=exc.code, message=exc.message), status

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Any:
        limit = request.max_content_length or 0
        return _answer(413, "body_too_large", f"The request body is larger than Tally accepts ({limit} bytes).")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        code = (exc.name or "error").lower().replace(" ", "_")
        status = exc.code or 500
        if _wants_json():
            return jsonify(code=code, message=exc.description, details=None), status
        return render_template("error.html", status=status, code=code, message=exc.description), status

    @app.errorhandler(IntegrityError)
    def _integrity(exc: IntegrityError) -> Any:
        # A uniqueness or reference another request broke first (they are written race-free;
        # this is the safety net): nothing of this request was saved.
        log.warning("integrity error on %s %s: %s", request.method, request.path, exc.orig)
        message = "Another request changed the same data at the same moment. Nothing was saved; please try again."
        return _answer(409, "conflict", message)

    @app.errorhandler(DBAPIError)
    def _database(exc: DBAPIError) -> Any:
        if not is_unavailable(exc):
            return _unexpected(exc)
        # Lost connection (a restart), refused connection, or a deadlock that happened again after
        # the retry (tool/web/app.py): the client may simply try again shortly.
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc.orig)
        message = "The database is busy or restarting. Nothing was saved by this request; please try again."
        resp = _answer(503, "database_unavailable", message)
        resp.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return resp

    @app.errorhandler(PoolTimeout)
    def _pool(exc: PoolTimeout) -> Any:
        log.warning("no database connection free on %s %s", request.method, request.path)
        resp = _answer(503, "database_unavailable", "Tally is very busy. Nothing was saved; please try again.")
        resp.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = "Something went wrong inside Tally. Nothing was saved by this request; please try again."
        if _wants_json():
            return jsonify(code="internal_error", message=message, details=None), 500
        return render_template("error.html", status=500, code="internal_error", message=message), 500
