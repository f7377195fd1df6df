"""Assessment tables: the assessment and its tasks, a participation per student with task
points and its grade, versioned grade schemes, and the audit trail of every grade."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tool.clock import utcnow
from tool.db import Base, Points, UTCDateTime

PARTICIPATION_STATUSES = ("pending", "graded", "absent", "exempt")


class Assessment(Base):
    """An exam or a course grade in an offering, with a maximum and a source of points."""

    __tablename__ = "assessment"
    __table_args__ = (
        CheckConstraint("source IN ('tasks', 'ledger')", name="source_known"),
        CheckConstraint("kind IN ('exam', 'course_grade')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="exam")
    max_points: Mapped[Decimal] = mapped_column(Points(10))
    source: Mapped[str] = mapped_column(String(10), default="tasks")
    # For source = ledger: the type codes summed (None: every type).
    ledger_type_codes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Task(Base):
    """One task (problem) of an assessment with its own maximum."""

    __tablename__ = "assessment_task"
    __table_args__ = (UniqueConstraint("assessment_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessment.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    max_points: Mapped[Decimal] = mapped_column(Points())


class Participation(Base):
    """A student in an assessment: status, points total and the grade with what produced it."""

    __tablename__ = "participation"
    __table_args__ = (
        UniqueConstraint("assessment_id", "student_id"),
        CheckConstraint("status IN ('pending', 'graded', 'absent', 'exempt')", name="status_known"),
        CheckConstraint("grade_source IS NULL OR grade_source IN ('scheme', 'override', 'absent')", name="grade_source_known"),
        CheckConstraint("NOT manual_override OR (grade_value IS NOT NULL AND override_reason IS NOT NULL)",
                        name="override_has_grade_and_reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessment.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    # A ledger-fed total may exceed one entry's range: 10 digits.
    points_total: Mapped[Decimal | None] = mapped_column(Points(10), nullable=True)
    grade_value: Mapped[str | None] = mapped_column(String(20), nullable=True)
    grade_source: Mapped[str | None] = mapped_column(String(10), nullable=True)
    grade_scheme_id: Mapped[int | None] = mapped_column(ForeignKey("grade_scheme.id", ondelete="SET NULL"), nullable=True)
    manual_override: Mapped[bool] = mapped_column(Boolean, default=False)
    override_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    override_by: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"), nullable=True)
    override_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TaskPoints(Base):
    """Points of one participation on one task."""

    __tablename__ = "task_points"
    __table_args__ = (UniqueConstraint("participation_id", "task_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participation_id: Mapped[int] = mapped_column(ForeignKey("participation.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(ForeignKey("assessment_task.id", ondelete="CASCADE"))
    points: Mapped[Decimal] = mapped_column(Points())


class GradeScheme(Base):
    """One version of an assessment's grading scheme. Drafts change in place; an applied
    version never changes again (a change makes the next version)."""

    __tablename__ = "grade_scheme"
    __table_args__ = (
        UniqueConstraint("assessment_id", "version"),
        # One active scheme per assessment, enforced by the database (partial unique index).
        Index("uq_grade_scheme_one_active", "assessment_id", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessment.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20), default="absolute")
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    version_hash: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    applied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    applied_by: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"), nullable=True)


class GradeEvent(Base):
    """Every grade a participation received and what produced it (scheme version or override)."""

    __tablename__ = "grade_event"
    __table_args__ = (Index("ix_grade_event_participation", "participation_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participation_id: Mapped[int] = mapped_column(ForeignKey("participation.id", ondelete="CASCADE"))
    grade_value: Mapped[str | None] = mapped_column(String(20), nullable=True)
    source: Mapped[str] = mapped_column(String(20))  # scheme | override | override_removed | absent | exempt | cleared
    scheme_id: Mapped[int | None] = mapped_column(ForeignKey("grade_scheme.id", ondelete="SET NULL"), nullable=True)
    points_total: Mapped[Decimal | None] = mapped_column(Points(10), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"), nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
