"""Use cases that cross packages. Every change to a student's total goes through here.

The web layer and the CLI call these, never the ledger service's writers directly, so
that score delivery (the AGS issue) has exactly one place to hook in: `totals_changed`,
which runs in the same transaction as the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy.orm import Session

from tool.ledger import service as ledger
from tool.ledger.models import GradeEntry


@dataclass(frozen=True)
class TotalsChange:
    """Whose totals in which offering a write changed."""

    offering_id: int
    student_ids: tuple[int, ...]


def totals_changed(db: Session, *, offering_id: int, student_ids: Sequence[int]) -> TotalsChange:
    """The one seam after every change of ledger totals (same transaction as the change).

    Delivery to the LMS gradebook will schedule its desired scores here; today the change
    is returned to the caller, which reports it.
    """
    return TotalsChange(offering_id=offering_id, student_ids=tuple(sorted(set(student_ids))))


def add_entry(db: Session, *, course_id: int, offering_id: int, student_id: int, actor_id: int,
              values: ledger.EntryValues) -> tuple[GradeEntry, TotalsChange]:
    """Record one entry for a student of the offering's roster."""
    ledger.require_students(db, course_id=course_id, student_ids=[student_id])
    entry = ledger.record_entry(db, offering_id=offering_id, student_id=student_id, actor_id=actor_id, values=values)
    return entry, totals_changed(db, offering_id=offering_id, student_ids=[student_id])


def add_entries(db: Session, *, course_id: int, offering_id: int, actor_id: int,
                items: Sequence[tuple[int, ledger.EntryValues]]) -> tuple[list[int], TotalsChange]:
    """Record many entries at once; every student must be on the roster (all or nothing)."""
    ledger.require_students(db, course_id=course_id, student_ids=[sid for sid, _ in items])
    ids = ledger.record_entries(db, offering_id=offering_id, actor_id=actor_id, items=items)
    return ids, totals_changed(db, offering_id=offering_id, student_ids=[sid for sid, _ in items])


def correct_entry(db: Session, *, entry: GradeEntry, actor_id: int, values: ledger.EntryValues) -> tuple[GradeEntry, TotalsChange]:
    """Change an ACTIVE entry, keeping the old values as a revision."""
    ledger.update_entry(db, entry=entry, actor_id=actor_id, values=values)
    return entry, totals_changed(db, offering_id=entry.offering_id, student_ids=[entry.student_id])


def void_entry(db: Session, *, entry: GradeEntry, actor_id: int, reason: str) -> tuple[GradeEntry, TotalsChange]:
    """Void an ACTIVE entry (it leaves every total)."""
    ledger.void_entry(db, entry=entry, actor_id=actor_id, reason=reason)
    return entry, totals_changed(db, offering_id=entry.offering_id, student_ids=[entry.student_id])
