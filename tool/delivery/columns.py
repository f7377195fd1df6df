"""A teacher's settings of each LMS column (issue 15): the release policy and what the column shows.

Keys: `total` (the ledger total) and `assessment-{id}`. Without a stored row a column has its
defaults: the total is `automatic`, an assessment with a grading scheme `manual` (its points are
graded before anyone should see them), one without `automatic`; every column shows `points`.
The `grade` value maps each grade of the assessment's scale to a number (rules.default_grade_numbers),
which a teacher may change grade by grade.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from tool.assessments.models import Assessment, GradeScheme
from tool.delivery import rules
from tool.delivery.models import DeliveryColumn
from tool.schemes import bands as scheme_bands
from tool.schemes.scale import Scale


@dataclass(frozen=True)
class ColumnSettings:
    """What decides a column's delivery: its policy, its value, and the grade numbers (grade mode)."""

    key: str
    release: str
    lms_value: str
    scale: Scale | None  # the scale of the assessment's scheme (None: the total, or no scheme)
    numbers: dict[str, Decimal] | None  # grade → number, best grade first (None without a scale)
    default_numbers: dict[str, Decimal] | None

    @property
    def manual(self) -> bool:
        return self.release == "manual"


def assessment_key(assessment_id: int) -> str:
    return f"assessment-{assessment_id}"


def scheme_of(db: Session, assessment_id: int) -> GradeScheme | None:
    """The scheme the column's grades come from: the last applied one, else the active draft."""
    applied = db.scalar(select(GradeScheme).where(GradeScheme.assessment_id == assessment_id,
                                                  GradeScheme.applied_at.is_not(None))
                        .order_by(GradeScheme.applied_at.desc(), GradeScheme.version.desc()).limit(1))
    return applied or db.scalar(select(GradeScheme).where(GradeScheme.assessment_id == assessment_id,
                                                          GradeScheme.active))


def _defaults(scheme: GradeScheme | None, assessment: Assessment | None) -> tuple[Scale | None, dict[str, Decimal] | None]:
    if scheme is None or assessment is None:
        return None, None
    try:
        config = scheme_bands.parse_config(scheme.config, max_points=assessment.max_points)
    except Exception:  # a stored scheme always parses; never let a column setting fail on one
        return None, None
    floors: dict[str, Decimal] = {}
    for band in config.bands:
        floor = band.min if config.unit == "percent" else (
            band.min * 100 / assessment.max_points if assessment.max_points else Decimal(0))
        floors.setdefault(band.grade, floor)
    return config.scale, rules.default_grade_numbers(config.scale.grades, config.scale.failing, floors)


def settings_for(db: Session, *, offering_id: int, key: str) -> ColumnSettings:
    """The settings of one column (stored, or the defaults)."""
    row = db.scalar(select(DeliveryColumn).where(DeliveryColumn.offering_id == offering_id, DeliveryColumn.key == key)
                    .execution_options(populate_existing=True))
    scale = numbers = defaults = None
    has_scheme = False
    if key != rules.TOTAL_KEY:
        assessment_id = int(key.removeprefix("assessment-"))
        scheme = scheme_of(db, assessment_id)
        has_scheme = scheme is not None
        scale, defaults = _defaults(scheme, db.get(Assessment, assessment_id))
        if defaults is not None:
            numbers = dict(defaults)
            for grade, value in ((row.grade_numbers or {}) if row is not None else {}).items():
                if grade in numbers:
                    numbers[grade] = Decimal(value)
    release = row.release if row is not None else ("manual" if has_scheme else "automatic")
    lms_value = row.lms_value if row is not None else "points"
    if lms_value == "grade" and not numbers:
        lms_value = "points"  # the scheme is gone: points again
    return ColumnSettings(key, release, lms_value, scale, numbers, defaults)
