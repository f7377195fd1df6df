"""Request bodies of the JSON API as pydantic models: they validate requests and, through
their JSON Schema, make the OpenAPI document (one source for both).

JSON numbers are parsed as Decimal before validation (tool/web/requests.py), so points
such as 1.005 arrive exactly and are refused rather than rounded.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema,
                      model_validator)
from pydantic.alias_generators import to_camel

from tool.decimals import POINTS_PATTERN
from tool.ledger.models import TYPE_CODES
from tool.ledger.rules import DESCRIPTION_MAX, REASON_MAX, check_type, parse_points
from tool.web.requests import ID_MAX, datetime_problem

PointsValue = Annotated[
    Decimal,
    PlainValidator(parse_points),
    WithJsonSchema(
        {"oneOf": [{"type": "number"}, {"type": "string", "pattern": POINTS_PATTERN}],
         "description": "Points, at most two decimal places, -9999.99 to 9999.99; more decimals are refused."}
    ),
]
TypeCode = Literal["SEMINAR", "EXAM", "COURSEWORK", "HOMEWORK", "OTHER", "CUSTOM"]
assert set(TypeCode.__args__) == set(TYPE_CODES)  # type: ignore[attr-defined]
Ref = Annotated[str, Field(min_length=1, max_length=100)]
# Ids are PostgreSQL integers: outside 1 … 2^31-1 a body is refused (422), a path answers 404.
Id = Annotated[int, Field(ge=1, le=ID_MAX)]
Version = Annotated[int, Field(ge=1, le=ID_MAX)]


def _sane(value: dt.datetime) -> dt.datetime:
    problem = datetime_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _not_blank(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


# A datetime with its zone, within 1900 … 2199 (year 1 at +14:00 does not even fit a datetime in UTC).
SaneDatetime = Annotated[AwareDatetime, AfterValidator(_sane)]
# A reason or a grade someone must give: surrounding whitespace dropped, whitespace alone refused.
NonBlank = Annotated[str, AfterValidator(_not_blank)]


class ApiModel(BaseModel):
    """camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class _TypeChecked(ApiModel):
    @model_validator(mode="after")
    def _label_matches_code(self) -> Any:
        code = getattr(self, "type_code", None)
        if code is not None:
            _, label = check_type(code, getattr(self, "type_label", None))
            object.__setattr__(self, "type_label", label)
        return self


class EntryCreate(_TypeChecked):
    """POST /api/grades/entries"""

    offering_id: Id
    student_id: Id
    points: PointsValue
    type_code: TypeCode
    type_label: str | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    lesson_id: Ref | None = None
    homework_submission_id: Ref | None = None
    graded_at: SaneDatetime | None = None
    # Points beyond ± ledger_confirm_points (default 1,000) are saved only with this (409 bonus_unconfirmed).
    confirm_bonus: bool = Field(default=False, description=(
        "true: save points outside the usual range of one entry (± the ledger_confirm_points setting, "
        "default 1000); without it such points are refused with 409 bonus_unconfirmed."))


class EntryUpdate(_TypeChecked):
    """PUT /api/grades/entries/{id}: the fields given replace the entry's; the others stay."""

    points: PointsValue | None = None
    type_code: TypeCode | None = None
    type_label: str | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    lesson_id: Ref | None = None
    homework_submission_id: Ref | None = None
    graded_at: SaneDatetime | None = None
    # The version the writer read (like If-Match): a stale one is refused with 409 entry_changed.
    version: Version | None = None
    # Points beyond ± ledger_confirm_points (default 1,000) are saved only with this (409 bonus_unconfirmed).
    confirm_bonus: bool = Field(default=False, description=(
        "true: save points outside the usual range of one entry (± the ledger_confirm_points setting, "
        "default 1000); without it such points are refused with 409 bonus_unconfirmed."))


class BulkItem(ApiModel):
    """One student's points in a bulk request."""

    student_id: Id
    points: PointsValue
    homework_submission_id: Ref | None = None
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)


class BulkCreate(_TypeChecked):
    """POST /api/grades/entries/bulk: one offering, one type, many students (all or nothing)."""

    offering_id: Id
    type_code: TypeCode
    type_label: str | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    lesson_session_id: Ref | None = None
    graded_at: SaneDatetime | None = None
    items: list[dict[str, Any]] = Field(min_length=1, max_length=2000,
                                        json_schema_extra={"items": {"$ref": "#/components/schemas/BulkItem"}})
    # Items beyond ± ledger_confirm_points are saved only with this (409 bonus_unconfirmed, by index).
    confirm_bonus: bool = Field(default=False, description=(
        "true: save items outside the usual range of one entry (± the ledger_confirm_points setting, "
        "default 1000); without it such items are refused with 409 bonus_unconfirmed, listed by index."))


class VoidRequest(ApiModel):
    """DELETE /api/grades/entries/{id}: why the entry is voided."""

    reason: NonBlank = Field(min_length=1, max_length=REASON_MAX)
    version: Version | None = None  # the version the writer read, as for PUT


SCHEMAS: list[type[BaseModel]] = [EntryCreate, EntryUpdate, BulkItem, BulkCreate, VoidRequest]


def dt_json(value: dt.datetime | None) -> str | None:
    """ISO 8601 with zone and microseconds, or None."""
    return value.isoformat() if value is not None else None
