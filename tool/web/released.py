"""What a student sees of a column under the `manual` release policy (issue 15, item 2): their own
answer as it was at their last release, never a held value. These build the answers (cut to
tool/web/privacy.py) that tool/delivery/release.py stores at each release and compares with.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from tool.assessments import service as svc
from tool.assessments.models import Participation
from tool.delivery import columns, release, rules
from tool.ledger import service as ledger
from tool.lti.models import Offering
from tool.web import privacy


def _total_views(db: Session, offering: Offering, student_ids: Sequence[int]) -> dict[int, dict[str, Any] | None]:
    from tool.web.ledger_api import entry_json, totals_json  # the ledger API's own answer shapes

    totals = ledger.totals_by_student(db, offering_id=offering.id, student_ids=list(student_ids))
    out: dict[int, dict[str, Any] | None] = {}
    for sid in student_ids:
        entries = ledger.list_entries(db, offering_id=offering.id, student_id=sid, include_voided=True)
        if not entries:
            out[sid] = None
            continue
        out[sid] = {"entries": [privacy.for_student("entry", entry_json(e)) for e in entries],
                    **totals_json(totals.get(sid, ledger.Totals()))}
    return out


def _assessment_views(db: Session, assessment_id: int, student_ids: Sequence[int]) -> dict[int, dict[str, Any] | None]:
    from tool.web.assessments_api import participation_json

    parts = {p.student_id: p for p in db.scalars(select(Participation).where(
        Participation.assessment_id == assessment_id, Participation.student_id.in_(list(student_ids))))}
    tp = svc.task_points_of(db, assessment_id=assessment_id) if parts else {}
    out: dict[int, dict[str, Any] | None] = {}
    for sid in student_ids:
        p = parts.get(sid)
        if p is None or (p.status == "pending" and p.points_total is None and p.grade_value is None
                         and not tp.get(p.id)):
            out[sid] = None  # nothing to show yet
            continue
        out[sid] = privacy.for_student("participation", participation_json(p, tp.get(p.id)))
    return out


def views(db: Session, offering: Offering, key: str, student_ids: Sequence[int]) -> dict[int, dict[str, Any] | None]:
    """Each student's own answer of a column now (release.Views)."""
    if not student_ids:
        return {}
    if key == rules.TOTAL_KEY:
        return _total_views(db, offering, student_ids)
    return _assessment_views(db, int(key.removeprefix("assessment-")), student_ids)


def released(db: Session, *, offering_id: int, key: str, student_id: int) -> tuple[bool, dict[str, Any] | None]:
    """(manual, what the student may see): for an automatic column (False, None), the caller shows
    the live answer; for a manual one the answer of the student's last release (None: nothing yet)."""
    if not columns.settings_for(db, offering_id=offering_id, key=key).manual:
        return False, None
    return True, release.released_views(db, offering_id, key, [student_id]).get(student_id)


def released_at(db: Session, *, offering_id: int, key: str, student_id: int) -> Any:
    """When the student's answer of a column was last released (None: never)."""
    from tool.delivery.models import ReleasedView

    return db.scalar(select(ReleasedView.released_at).where(ReleasedView.offering_id == offering_id,
                                                            ReleasedView.key == key,
                                                            ReleasedView.student_id == student_id))
