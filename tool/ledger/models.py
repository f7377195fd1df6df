"""Ledger tables: `grade_entry` (one allocation or correction of points) and its revisions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tool.clock import utcnow
from tool.db import Base, Points, UTCDateTime

TYPE_CODES = ("SEMINAR", "EXAM", "COURSEWORK", "HOMEWORK", "OTHER", "CUSTOM")
STATUSES = ("ACTIVE", "VOIDED")
_codes = ", ".join(f"'{c}'" for c in TYPE_CODES)


class GradeEntry(Base):
    """Points allocated to a student in an offering. Only ACTIVE entries count in totals."""

    __tablename__ = "grade_entry"
    __table_args__ = (
        CheckConstraint(f"type_code IN ({_codes})", name="type_code_known"),
        # CUSTOM requires a label; the other codes forbid one.
        CheckConstraint(
            "(type_code = 'CUSTOM' AND type_label IS NOT NULL AND length(type_label) > 0)"
            " OR (type_code <> 'CUSTOM' AND type_label IS NULL)",
            name="type_label_iff_custom",
        ),
        CheckConstraint("status IN ('ACTIVE', 'VOIDED')", name="status_known"),
        # Points are DECIMAL(6,2) on PostgreSQL and integer hundredths on SQLite (tool.db.Points).
        CheckConstraint("points >= -9999.99 AND points <= 9999.99", name="points_range").ddl_if(dialect="postgresql"),
        CheckConstraint("points >= -999999 AND points <= 999999", name="points_range_cents").ddl_if(dialect="sqlite"),
        CheckConstraint("description IS NULL OR length(description) <= 2000", name="description_length"),
        CheckConstraint(
            "(status = 'VOIDED') = (voided_at IS NOT NULL)", name="voided_iff_void_recorded"
        ),
        # Totals and the group summary: one index-only pass over an offering's entries, already
        # in (student, type, label) order for the GROUP BY; status and points ride along.
        Index("ix_grade_entry_offering_student", "offering_id", "student_id", "type_code", "type_label", "status",
              "points"),
        Index("ix_grade_entry_student_offering", "student_id", "offering_id", "graded_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    points: Mapped[Decimal] = mapped_column(Points())
    type_code: Mapped[str] = mapped_column(String(20))
    type_label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    lesson_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    homework_submission_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    graded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(10), default="ACTIVE")
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Who did it: removing that person leaves the record with an unknown actor (SET NULL), it
    # never deletes it (migration 0006).
    created_by: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"), nullable=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    voided_by: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"), nullable=True)
    voided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    void_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class GradeEntryRevision(Base):
    """The values an entry had before an update: who changed it and when."""

    __tablename__ = "grade_entry_revision"
    __table_args__ = (Index("ix_grade_entry_revision_entry", "entry_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("grade_entry.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    points: Mapped[Decimal] = mapped_column(Points())
    type_code: Mapped[str] = mapped_column(String(20))
    type_label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    lesson_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    homework_submission_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    graded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"), nullable=True)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
