"""Delivery tables: which LMS line item each target is bound to, and the state of every
(line item, person) pair — the desired score, the last one the LMS accepted, and the queue
columns the workers claim rows by.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tool.clock import utcnow
from tool.db import Base, Points, UTCDateTime

DELIVERY_STATES = ("pending", "delivered", "retrying", "waiting", "failed", "superseded")
DUE_STATES = ("pending", "retrying", "waiting")  # the states with a next attempt (now or later)


class LineItemBinding(Base):
    """One gradebook column Tally writes: an offering's total, or one of its assessments.

    `lineitem_url` is empty until a worker bound the target (the launch's own line item,
    one found by resourceId, or one it created). `container_url` is the line-items URL it was
    bound under: when the offering's launches name another one (a course copy), the target is
    bound again there — found by resourceId when the copy brought the column along.
    """

    __tablename__ = "line_item_binding"
    __table_args__ = (
        UniqueConstraint("offering_id", "target"),
        # Two targets never write into one column (on Canvas nothing but this tells two
        # placements' columns apart); NULLs, the unbound, do not count.
        Index("uq_line_item_binding_lineitem_url", "lineitem_url", unique=True),
        CheckConstraint("bound_via IS NULL OR bound_via IN ('launch', 'found', 'created')", name="bound_via_known"),
        CheckConstraint("maximum_source IN ('default', 'teacher', 'lms', 'assessment')", name="maximum_source_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id", ondelete="CASCADE"))
    assessment_id: Mapped[int | None] = mapped_column(ForeignKey("assessment.id", ondelete="CASCADE"), nullable=True,
                                                      index=True)
    target: Mapped[str] = mapped_column(String(40))  # "total" | "assessment:<id>"
    label: Mapped[str] = mapped_column(String(500))
    score_maximum: Mapped[Decimal] = mapped_column(Points(10))
    maximum_source: Mapped[str] = mapped_column(String(12))
    resource_id: Mapped[str] = mapped_column(String(255))
    tag: Mapped[str] = mapped_column(String(255))
    lineitem_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    container_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    bound_via: Mapped[str | None] = mapped_column(String(10), nullable=True)
    bound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Label or maximum changed in Tally since the line item was written: PUT at the next pass.
    needs_update: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claim_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ScoreDelivery(Base):
    """The delivery state of one (line item, person): the queue row a worker claims.

    `desired` is the score Tally wants the LMS to hold (AGS JSON with the change's timestamp),
    `accepted` the last one the LMS accepted. A row is due while `next_attempt_at` is set and
    past; a claim (`claimed_by`, `claim_expires_at`) keeps other workers away while its score
    is on the wire, and expires if the worker dies. `inflight` is exactly what that claim sends.
    """

    __tablename__ = "score_delivery"
    __table_args__ = (
        UniqueConstraint("binding_id", "person_id"),
        CheckConstraint("state IN ('pending', 'delivered', 'retrying', 'waiting', 'failed', 'superseded')",
                        name="state_known"),
        CheckConstraint("desired_kind IN ('grade', 'no_grade', 'progress')", name="desired_kind_known"),
        Index("ix_score_delivery_due", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    binding_id: Mapped[int] = mapped_column(ForeignKey("line_item_binding.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(255))  # the LTI `sub`, sent as userId
    state: Mapped[str] = mapped_column(String(12), default="pending")
    desired: Mapped[dict[str, Any]] = mapped_column(JSON)
    desired_kind: Mapped[str] = mapped_column(String(10))
    desired_version: Mapped[int] = mapped_column(Integer, default=1)
    desired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    accepted: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ever_graded: Mapped[bool] = mapped_column(Boolean, default=False)  # a grade was accepted once
    inflight: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    inflight_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_sent_ts: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)  # the platform's words
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # why nothing was sent, extra credit…
    # The desired_version a teacher chose to send over a grade changed in the LMS ("Send Tally's
    # grade again"); the pre-send check of Canvas rows lets that version through.
    lms_override_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claim_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # A change of a column under the `manual` release policy: computed and shown, never claimed
    # (next_attempt_at stays empty) until a teacher releases it (tool/delivery/release.py).
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


RELEASE_POLICIES = ("automatic", "manual")
LMS_VALUES = ("points", "percent", "grade")


class DeliveryColumn(Base):
    """A teacher's settings of one LMS column (key `total` or `assessment-{id}`): its release policy,
    what the column shows, and the grade → number map of `grade`. No row: the defaults
    (tool/delivery/release.py)."""

    __tablename__ = "delivery_column"
    __table_args__ = (
        UniqueConstraint("offering_id", "key"),
        CheckConstraint("release IN ('automatic', 'manual')", name="release_known"),
        CheckConstraint("lms_value IN ('points', 'percent', 'grade')", name="lms_value_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    release: Mapped[str] = mapped_column(String(10))
    lms_value: Mapped[str] = mapped_column(String(10))
    grade_numbers: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReleasedView(Base):
    """What a student sees of one column since its last release (a manual column): the student's own
    answer as it was then (entries and total, or the participation)."""

    __tablename__ = "released_view"
    __table_args__ = (UniqueConstraint("offering_id", "key", "student_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("offering.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    student_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    released_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
