"""Request bodies of the assessments and schemes API (pydantic; also the OpenAPI schemas)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, WithJsonSchema

from tool.decimals import POINTS_PATTERN, DecimalRefused, parse_decimal, pattern
from tool.ledger.rules import parse_points
from tool.web.schemas import ApiModel, Id, NonBlank, PointsValue, TypeCode


def _positive_points(value: Any) -> Decimal:
    points = parse_points(value)
    if points <= 0:
        raise ValueError("must be greater than 0")
    return points


def _big_points(value: Any) -> Decimal:
    # A maximum or a total may exceed one ledger entry's range (a course grade over many entries).
    from tool.ledger.rules import RuleViolation

    try:
        points = parse_decimal(value, places=2)
    except DecimalRefused as exc:
        raise RuleViolation(str(exc)) from None
    if points <= 0 or points > Decimal("99999999.99"):
        raise RuleViolation("must be greater than 0 and at most 99999999.99")
    return points.quantize(Decimal("0.01"))


MaxPoints = Annotated[Decimal, PlainValidator(_big_points),
                      WithJsonSchema({"oneOf": [{"type": "number"}, {"type": "string", "pattern": pattern(8)}],
                                      "description": "> 0, at most 99999999.99, two decimal places at most"})]
TaskMax = Annotated[Decimal, PlainValidator(_positive_points),
                    WithJsonSchema({"oneOf": [{"type": "number"}, {"type": "string", "pattern": POINTS_PATTERN}],
                                    "description": "> 0, at most 9999.99, two decimal places at most"})]


class TaskIn(ApiModel):
    """A task of an assessment."""

    title: NonBlank = Field(min_length=1, max_length=200)
    max_points: TaskMax


class AssessmentCreate(ApiModel):
    """POST /api/offerings/{offeringId}/assessments"""

    title: NonBlank = Field(min_length=1, max_length=200)
    max_points: MaxPoints
    source: Literal["tasks", "ledger"] = "tasks"
    kind: Literal["exam", "course_grade"] = "exam"
    ledger_type_codes: list[TypeCode] | None = Field(default=None, max_length=20)
    tasks: list[TaskIn] = Field(default_factory=list, max_length=100)


class PointsIn(ApiModel):
    """PUT /api/assessments/{id}/points/{studentId}: a total, or points per task id (null clears)."""

    points: PointsValue | None = None
    tasks: dict[Id, PointsValue | None] | None = Field(default=None, max_length=100)
    # Points above a task's or the assessment's maximum are saved only with this (409
    # bonus_unconfirmed otherwise); more than twice a maximum is refused (422 points_too_high).
    confirm_bonus: bool = Field(default=False, description=(
        "true: save points above a task's or the assessment's maximum (bonus points); without it such "
        "points are refused with 409 bonus_unconfirmed. More than twice a maximum is refused with 422 "
        "points_too_high either way."))


class StatusIn(ApiModel):
    """PUT …/participations/{studentId}/status"""

    status: Literal["pending", "graded", "absent", "exempt"]


class OverrideIn(ApiModel):
    """PUT …/participations/{studentId}/override: a manual grade with a reason."""

    grade: NonBlank = Field(min_length=1, max_length=20)
    reason: NonBlank = Field(min_length=1, max_length=2000)


class SchemeIn(ApiModel):
    """POST /api/assessments/{id}/schemes and PUT /api/schemes/{id}: the config in the seed's
    form ({bands: [{min_points, max_points, grade}]} or min_pct/max_pct) or lower-bound form
    ({unit, bands: [{min, grade}]}), with optional scale, step, rounding, absentGrade."""

    config: dict[str, Any]


class TwoPointIn(ApiModel):
    """POST /api/curves/two-point"""

    passing: PointsValue
    excellence: PointsValue
    step: PointsValue = Decimal("1")
    max_points: MaxPoints
    scale: Any = "german"
    unit: Literal["points", "percent"] = "points"


class BoundariesIn(ApiModel):
    """POST /api/curves/boundaries: one lower bound per grade but the worst, best first."""

    boundaries: list[PointsValue] = Field(min_length=1, max_length=50)
    step: PointsValue | None = None
    scale: Any = "german"
    unit: Literal["points", "percent"] = "points"
    max_points: MaxPoints


class CurveDefaultsIn(ApiModel):
    """POST /api/curves/defaults: the workspace's starting curve (and "Reset to 50 % and 90 %")."""

    max_points: MaxPoints
    scale: Any = "german"
    unit: Literal["points", "percent"] = "points"
    step: PointsValue | None = Field(default=None, description=(
        "the step the teacher has set (1 when absent); kept when every grade fits, else the "
        "coarsest of 1, 0.5, 0.25, 0.1, 0.05, 0.01 below it that fits (stepChanged: true)"))


SCHEMAS = [TaskIn, AssessmentCreate, PointsIn, StatusIn, OverrideIn, SchemeIn, TwoPointIn, BoundariesIn,
           CurveDefaultsIn]
