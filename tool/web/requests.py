"""Reading JSON bodies and query parameters with clear 4xx errors."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from urllib.parse import unquote_to_bytes
from typing import Any, TypeVar

import pydantic
from flask import request

from tool.db import ID_MAX
from tool.errors import NotFound, ValidationError

M = TypeVar("M", bound=pydantic.BaseModel)


MAX_BODY_BYTES = 1024 * 1024  # every request body (Flask's MAX_CONTENT_LENGTH); more is refused with 413
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc)  # dates a grade or a query may carry
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc)


def _exact_number(text: str) -> Decimal:
    # JSON numbers with a fraction arrive exactly as written; an exponent is outside the grammar
    # (tool/decimals.py), and 1e999999 would cost the server to expand.
    if "e" in text or "E" in text:
        raise ValueError(f"the number {text[:20]} has an exponent; write it out (e.g. 1000, 12.5)")
    return Decimal(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number Tally accepts")


def bad_text(value: str) -> str | None:
    """Why a text cannot be stored (a NUL byte, a lone surrogate), or None."""
    if "\x00" in value:
        return "contains a NUL byte"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (not valid Unicode)"
    return None


def _check_texts(data: Any) -> None:
    """Refuse a body any of whose strings (keys too) could not be stored as text."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            why = bad_text(value)
            if why:
                raise ValidationError(f"Text {why}.", code="invalid_text",
                                      details=[{"field": path or "body", "message": why}])
        elif isinstance(value, dict):
            for key, inner in value.items():
                where = f"{path}.{key}" if path else str(key)
                stack.append((str(key), where))
                stack.append((inner, where))
        elif isinstance(value, list):
            stack.extend((inner, f"{path}.{i}" if path else str(i)) for i, inner in enumerate(value))


def json_body() -> Any:
    """The request's JSON, numbers with decimals as Decimal (never float): strict UTF-8, no NUL
    or lone surrogate in any string, no exponent, NaN or Infinity; at most MAX_BODY_BYTES."""
    if not request.is_json:
        raise ValidationError("Send a JSON body with Content-Type: application/json.", code="invalid_json")
    raw = request.get_data(cache=True)  # over the cap: 413 body_too_large (tool/web/errors.py)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"The body is not valid UTF-8 (byte {exc.start}).", code="invalid_encoding") from None
    try:
        data = json.loads(text or "null", parse_float=_exact_number, parse_int=_bounded_int,
                          parse_constant=_no_constant)
    except RecursionError:
        raise ValidationError("The body is nested too deeply.", code="invalid_json") from None
    except ValueError as exc:
        raise ValidationError(f"The body is not valid JSON: {exc}", code="invalid_json") from None
    _check_texts(data)
    return data


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 40:
        raise ValueError("an integer is far too long")
    return int(text)


def check_request() -> None:
    """Before every view: an id in the path outside 1 … 2^31-1 (a PostgreSQL integer) names nothing
    (404); a query string or form with a NUL byte or broken UTF-8 is refused (422)."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and not 1 <= value <= ID_MAX:
            raise NotFound(f"There is no {name.removesuffix('_id').replace('_', ' ')} {value}.")
    raw: list[tuple[str, bytes]] = [("query", request.query_string)]
    sources: list[tuple[str, Any]] = [("query", request.args)]
    if request.mimetype == "application/x-www-form-urlencoded":
        raw.append(("form", request.get_data(cache=True)))  # capped like any body; the form parses the cache
        sources.append(("form", request.form))
    for source, data in raw:
        try:
            unquote_to_bytes(data.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(f"The {source} is not valid UTF-8.", code="invalid_text",
                                  details=[{"field": source, "message": "not valid UTF-8"}]) from None
    for source, values in sources:
        for key, value in values.items(multi=True):
            why = bad_text(key) or bad_text(value)
            if why:
                raise ValidationError(f"The {source} parameter {key[:40]!r} {why}.", code="invalid_text",
                                      details=[{"field": key[:40], "message": why}])


def datetime_problem(value: dt.datetime) -> str | None:
    """Why a datetime is outside EARLIEST … LATEST (far dates overflow the database and are typing
    slips; year 1 at +14:00 does not even exist in UTC), or None."""
    try:
        utc = value.astimezone(dt.timezone.utc)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        return f"must be between {EARLIEST.year} and {LATEST.year - 1}"
    return None


def sane_datetime(value: dt.datetime, name: str) -> dt.datetime:
    """`value`, or a ValidationError naming the parameter when datetime_problem finds one."""
    problem = datetime_problem(value)
    if problem:
        raise ValidationError(f"'{name}' {problem}.", details=[{"field": name, "message": problem}])
    return value


def field_errors(exc: pydantic.ValidationError, *, prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """pydantic's errors as [{field, message}], field a dotted path such as items.3.points."""
    out = []
    for err in exc.errors(include_url=False):
        path = [*prefix, *err["loc"]]
        message = err["msg"].removeprefix("Value error, ")
        out.append({"field": ".".join(str(p) for p in path) or "body", "message": message})
    return out


def parse(model: type[M], data: Any, *, prefix: tuple[Any, ...] = ()) -> M:
    """Validate data against a model; a ValidationError lists every bad field."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError("The request has invalid fields.", details=field_errors(exc, prefix=prefix)) from None


def query_datetime(name: str, *, end_of_day: bool = False) -> dt.datetime | None:
    """An ISO 8601 query parameter (a date alone means the start, or end, of that day in UTC)."""
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            t = dt.time.max if end_of_day else dt.time.min
            return sane_datetime(dt.datetime.combine(day, t, tzinfo=dt.timezone.utc), name)
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"'{name}' must be an ISO 8601 date or datetime.",
                              details=[{"field": name, "message": "not an ISO 8601 date or datetime"}]) from None
    if value.tzinfo is None:
        raise ValidationError(f"'{name}' needs a time zone (e.g. 2026-01-31T23:59:59Z).",
                              details=[{"field": name, "message": "datetime without time zone"}])
    return sane_datetime(value, name)


def query_bool(name: str) -> bool:
    """A boolean query parameter: true/false/1/0 (absent is false)."""
    raw = request.args.get(name, "false").lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no", ""):
        return False
    raise ValidationError(f"'{name}' must be true or false.", details=[{"field": name, "message": "not a boolean"}])
