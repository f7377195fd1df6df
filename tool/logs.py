"""Tally's log output: one event per line, readable in development, JSON in production.

Code logs events, not sentences: `event(log, "launch.refused", code=…, reason=…)`. Each line
carries the time, level, logger, the event name, its fields, and the context of the request
or worker step it happened in (request id, platform, offering, person), which `bind` sets.

Nothing secret reaches a line: fields named like a token, secret, assertion, password or
authorization are replaced, and the text of every line is scrubbed of JWTs, bearer tokens
and `st=` session tokens (an exception's message may quote a request). SQL parameters
never appear: engines are made with `hide_parameters` (tool/db.py), and the values a
database error quotes back (PostgreSQL's DETAIL line) are replaced too.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import sys
from typing import Any, Iterator, TextIO

# Fields of the request or step a line belongs to, in the order they are printed.
CONTEXT_FIELDS = ("request_id", "platform", "offering", "person")
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("tally_log_context", default={})  # noqa: B039  (never mutated: bind() replaces it)

# A field *named* like a secret is never printed (token_url or token_fetches are fine).
_SECRET_NAME = re.compile(r"^(?:.*_)?(?:token|secret|secret_key|api_key|assertion|password|passwd|authorization"
                          r"|cookie|key_pem|private_key)$", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:st|token|access_token|registration_token|client_assertion)=)[^&\s\"']+")
# What a database error quotes of the data: PostgreSQL's DETAIL line ("Key (email)=(ada@…) already
# exists", "Failing row contains (…)"), the value an input syntax error names, and SQLAlchemy's
# parameter list should an engine not hide it.
_SQL_DETAIL = re.compile(r"(?m)^(DETAIL:|\[parameters:)[^\n]*")
_SQL_VALUE = re.compile(r'((?:invalid input (?:syntax|value) for [^:\n]{1,80}|out of range[^:\n]{0,80}): )"[^"\n]*"')
REDACTED = "[redacted]"
_HANDLER_MARK = "_tally_handler"


def scrub(text: str) -> str:
    """The text with JWTs, bearer tokens, token query parameters and the data a SQL error quotes replaced."""
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SQL_DETAIL.sub(lambda m: f"{m.group(1)} {REDACTED}" + ("]" if m.group(1)[0] == "[" else ""), text)
    text = _SQL_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    return _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, text)


def _clean(name: str, value: Any) -> Any:
    if _SECRET_NAME.search(name) and value not in (None, "", 0):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_clean(name, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(str(k), v) for k, v in value.items()}
    return scrub(str(value))


# -- context ----------------------------------------------------------------------------------


def bind(**fields: Any) -> None:
    """Add fields (request_id, platform, offering, person, …) to every later line of this context."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def clear() -> None:
    """Forget the context (the end of a request or a worker step)."""
    _context.set({})


def current() -> dict[str, Any]:
    """The fields bound in this context."""
    return dict(_context.get())


@contextlib.contextmanager
def scope(**fields: Any) -> Iterator[None]:
    """Bind fields for the duration of a block, then restore the context before it."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def event(logger: logging.Logger, name: str, *, level: int = logging.INFO, exc_info: Any = None,
          **fields: Any) -> None:
    """Log the event `name` with its fields (one line)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"event": name, "fields": fields}, exc_info=exc_info)


# -- formatting -------------------------------------------------------------------------------


def _record_fields(record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    name = getattr(record, "event", None) or ""
    fields = dict(getattr(record, "fields", None) or {})
    if not name:
        name = "log"
        fields["message"] = record.getMessage()
    elif record.args:
        fields["message"] = record.getMessage()
    ctx = {k: v for k, v in _context.get().items()}
    for k in CONTEXT_FIELDS:
        if k in fields:
            ctx[k] = fields.pop(k)
    return name, {**ctx, **fields}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, context, fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        name, fields = _record_fields(record)
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": name,
        }
        for k, v in fields.items():
            out.setdefault(k, _clean(k, v))
        if record.exc_info:
            out["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`12:00:01 INFO  tool.lti  launch.refused  code=state_invalid … [rid=…]` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        name, fields = _record_fields(record)
        when = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        if name == "log":  # a library's plain message (werkzeug's access line, a warning): as it is
            name = scrub(str(fields.pop("message", "")))
        parts = []
        for k, v in fields.items():
            v = _clean(k, v)
            text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
            parts.append(f"{k}={json.dumps(text, ensure_ascii=False) if (' ' in text or not text) else text}")
        line = f"{when} {record.levelname:<7} {record.name:<18} {name}"
        if parts:
            line += "  " + " ".join(parts)
        if record.exc_info:
            line += "\n" + scrub(self.formatException(record.exc_info))
        return line


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (so redirected stderr, and test capture, work)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def wants_json(env: str, log_format: str) -> bool:
    """JSON lines in production (or when asked), readable lines otherwise."""
    return log_format == "json" or (log_format == "auto" and env == "production")


def configure(*, env: str, level: str, log_format: str = "auto", stream: TextIO | None = None) -> logging.Handler:
    """Install Tally's handler on the root logger (once: a second call replaces it).

    The `tool` logger logs at `level`; other libraries at WARNING, so their warnings (the
    connection pool, urllib3) come out in the same format.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_MARK, False):
            root.removeHandler(h)
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter() if wants_json(env, log_format) else TextFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger("tool").setLevel(level)
    # SQLAlchemy logs statements (and, below WARNING, their parameters) only when asked: never here.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    return handler


def configure_from(settings: Any, *, stream: TextIO | None = None) -> logging.Handler:
    """`configure` with a Settings object's env, log_level and log_format."""
    return configure(env=settings.env, level=settings.log_level, log_format=settings.log_format, stream=stream)
