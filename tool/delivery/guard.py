"""Before a changed score goes to Canvas: does Canvas still hold what Tally last delivered?

Canvas does not protect a grade a teacher changed in its gradebook. The submission's score
changes and the LTI result follows *without* moving its `updated_at` (instructure/canvas-lms,
app/models/submission.rb `update_line_item_result`, app/models/lti/result.rb
`update_score_for_submission`), so Canvas takes any later tool score over the teacher's.
Moodle stamps the edit with its time and refuses an older score with 409: nothing to do there.

So, for each claimed Canvas row whose pair Tally delivered to before, the student's result is
read back (the AGS result service: per student, or the whole column when many of its rows are
due) and compared with the score Tally last delivered. Where Canvas holds something else, the
row's score is not sent: it is recorded as superseded, with Canvas's value in words, and the
teacher decides on the sync page ("Send Tally's grade again"). A resend marks its version
(`lms_override_version`), which this check lets through.

A read-back the LMS cannot answer now (down, throttled) makes the row a retry: nothing is sent
blind. One it refuses (no result scope on the key) cannot protect anything: the score is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session, sessionmaker

from tool.ags.client import is_canvas
from tool.ags.http import AgsUnavailable
from tool.ags.score import Score
from tool.delivery import rules
from tool.delivery.models import ScoreDelivery
from tool.delivery.queue import Attempt, Claimed
from tool.delivery.readback import PAGE_SIZE, ResultReader, lms_result, read_result, score_text
from tool.errors import ToolError

log = logging.getLogger(__name__)

_T = cast(Table, ScoreDelivery.__table__)
# From this many due rows of one column, its whole result list is read (PAGE_SIZE a page)
# instead of one request per student.
WHOLE_COLUMN = 10


@dataclass(frozen=True)
class _Delivered:
    accepted: Score | None
    override_version: int | None


def _delivered(sessions: sessionmaker[Session], ids: Sequence[int]) -> dict[int, _Delivered]:
    with sessions() as db:
        rows = db.execute(select(_T.c.id, _T.c.accepted, _T.c.lms_override_version).where(_T.c.id.in_(list(ids))))
        return {r.id: _Delivered(Score.from_json(r.accepted) if r.accepted else None, r.lms_override_version)
                for r in rows}


def _lms_results(client: ResultReader, reg: Any, lineitem_url: str,
                 users: Sequence[str]) -> dict[str, rules.LmsResult | None]:
    if len(users) >= WHOLE_COLUMN:
        wanted = set(users)
        found = {r["userId"]: lms_result(r) for r in client.results(reg, lineitem_url, limit=PAGE_SIZE)
                 if r["userId"] in wanted}
        return {user: found.get(user) for user in users}
    return {user: read_result(client, reg, lineitem_url, user) for user in users}


def held_message(kind: str, accepted: Score, lms: rules.LmsResult | None) -> str:
    """What the teacher reads about a held score: what Canvas holds, and what to do."""
    tally = score_text(accepted.score_given if accepted.writes_grade else None, accepted.score_maximum) or "no grade"
    canvas = score_text(lms.score if lms else None, lms.maximum if lms else None) or "no grade"
    if kind == "cleared":
        what = f"Canvas holds no grade for this student, though Tally delivered {tally}: it was removed in Canvas."
    elif kind == "lms_only":
        what = f"Canvas holds {canvas} for this student, a grade Tally never sent: it was entered in Canvas."
    else:
        what = f"Canvas holds {canvas} for this student, not the {tally} Tally delivered: it was changed in Canvas."
    return what + " Tally's new score is held; “Send Tally's grade again” puts it over Canvas's."


def screen(sessions: sessionmaker[Session], client: ResultReader, items: Sequence[Claimed],
           registrations: Mapping[int, Any]) -> tuple[list[Claimed], list[Attempt]]:
    """Split claimed rows into those to send and those held back (with the attempt to record)."""
    canvas = [c for c in items if c.registration_id in registrations and is_canvas(registrations[c.registration_id])]
    if not canvas:
        return list(items), []
    facts = _delivered(sessions, [c.delivery_id for c in canvas])
    to_check = [c for c in canvas if (f := facts.get(c.delivery_id)) is not None and f.accepted is not None
                and f.override_version != c.version]
    columns: dict[tuple[int, str], list[Claimed]] = {}
    for c in to_check:
        columns.setdefault((c.registration_id, c.lineitem_url), []).append(c)
    held: dict[int, Attempt] = {}
    for (reg_id, url), group in columns.items():
        reg = registrations[reg_id]
        try:
            lms = _lms_results(client, reg, url, sorted({c.score.user_id for c in group}))
        except AgsUnavailable as exc:
            words = f"Tally could not check the grade Canvas holds before sending: {exc.words or exc.message}"
            for c in group:
                held[c.delivery_id] = Attempt(c, "retry", c.version, status=exc.status, message=words[:500],
                                              retry_after=exc.retry_after)
            continue
        except ToolError as exc:
            log.warning("cannot read results of %s to protect edits made in Canvas: %s", url, exc.message)
            continue
        for c in group:
            accepted = facts[c.delivery_id].accepted
            assert accepted is not None
            result = lms.get(c.score.user_id)
            kind = rules.compare_result(accepted, result)
            if kind in ("changed", "cleared", "lms_only"):
                held[c.delivery_id] = Attempt(c, "superseded", c.version, message=held_message(kind, accepted, result))
    send = [c for c in items if c.delivery_id not in held]
    return send, [held[c.delivery_id] for c in items if c.delivery_id in held]
