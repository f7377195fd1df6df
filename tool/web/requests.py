"""Reading JSON bodies and query parameters with clear 4xx errors."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any, TypeVar

import pydantic
from flask import request

from tool.errors import ValidationError

M = TypeVar("M", bound=pydantic.BaseModel)


def json_body() -> Any:
    """The request's JSON, numbers with decimals as Decimal (never float)."""
    if not request.is_json:
        raise ValidationError("Send a JSON body with Content-Type: application/json.", code="invalid_json")
    try:
        return json.loads(request.get_data(as_text=True) or "null", parse_float=Decimal)
    except ValueError as exc:
        raise ValidationError(f"The body is not valid JSON: {exc}", code="invalid_json") from None


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
            return dt.datetime.combine(day, t, tzinfo=dt.timezone.utc)
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"'{name}' must be an ISO 8601 date or datetime.",
                              details=[{"field": name, "message": "not an ISO 8601 date or datetime"}]) from None
    if value.tzinfo is None:
        raise ValidationError(f"'{name}' needs a time zone (e.g. 2026-01-31T23:59:59Z).",
                              details=[{"field": name, "message": "datetime without time zone"}])
    return value


def query_bool(name: str) -> bool:
    """A boolean query parameter: true/false/1/0 (absent is false)."""
    raw = request.args.get(name, "false").lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no", ""):
        return False
    raise ValidationError(f"'{name}' must be true or false.", details=[{"field": name, "message": "not a boolean"}])
