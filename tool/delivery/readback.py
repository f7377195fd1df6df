"""Read the LMS gradebook back and list where it holds another grade than Tally delivered.

A teacher may change a grade in the LMS after Tally sent it. Tally never overwrites that on
its own: the worker only sends a pair again when Tally's own value changes. The read-back
makes such differences visible; the teacher decides whether to resend (status.resend).

The results of each column are read page by page (AGS result service, every `next`
followed), between transactions: the database is read first, then the LMS is asked. Canvas
is asked for 100 a page (its default is 10); Moodle without `limit`, which Moodle 4.5.6 answers
with a 404 HTML page, and which it does not need (it answers every result at once).

`read_result` reads one student's result: the worker asks before it believes a 409 and before
it sends again a score whose claim expired (tool/delivery/worker.py), and before it sends a
changed score to Canvas over what Tally delivered there (tool/delivery/guard.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator, Protocol, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session, sessionmaker

from tool.ags.client import is_canvas
from tool.ags.score import Score, parse_timestamp
from tool.delivery import rules
from tool.delivery.models import LineItemBinding, ScoreDelivery
from tool.delivery.status import get_offering, registration_of
from tool.errors import ToolError
from tool.lti.models import Membership, Person

_T = cast(Table, ScoreDelivery.__table__)
PAGE_SIZE = 100  # results per page asked of the LMS (it may send fewer; every `next` is followed)


class ResultReader(Protocol):
    """The AgsClient's paged result service."""

    def results(self, reg: Any, lineitem_url: str, *, user_id: str | None = None,
                limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Every result of a line item (of one user), `limit` per page."""


def lms_result(data: dict[str, Any]) -> rules.LmsResult:
    """A parsed AGS result (AgsClient.results) as the delivery rules see it."""
    stamp = data.get("timestamp")
    try:
        when = parse_timestamp(stamp) if stamp else None
    except ValueError:
        when = None  # a platform's odd timestamp: the result still counts, its time is unknown
    return rules.LmsResult(data["userId"], data.get("resultScore"), data.get("resultMaximum"), data.get("comment"),
                           when)


def read_result(client: ResultReader, reg: Any, lineitem_url: str, user_id: str) -> rules.LmsResult | None:
    """What the LMS holds for one student in one column (None: no result); AgsError when it cannot
    be read. Filtered by `user_id`, and again here for a platform that ignores the filter."""
    for data in client.results(reg, lineitem_url, user_id=user_id):
        if data.get("userId") == user_id:
            return lms_result(data)
    return None


@dataclass(frozen=True)
class Difference:
    """A pair where the LMS holds something else than what Tally delivered."""

    binding_id: int
    label: str
    user_id: str
    name: str
    kind: str  # changed | cleared | clamped | lms_only
    text: str
    delivery_id: int | None  # None for a grade Tally never sent (lms_only)
    tally_score: str | None  # "8.00 / 10.00" as Tally delivered it, on the column's scale
    lms_score: str | None
    lms_comment: str | None

    @property
    def resendable(self) -> bool:
        """True when Tally has a score the teacher may send over the LMS's."""
        return self.delivery_id is not None and self.kind in ("changed", "cleared")


@dataclass
class ReadBack:
    """The outcome of one read-back of an offering."""

    columns: int = 0
    results: int = 0
    differences: list[Difference] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # columns the LMS would not answer for, in its words


@dataclass(frozen=True)
class _Column:
    binding_id: int
    label: str
    lineitem_url: str
    rows: dict[str, tuple[int, Score | None]]  # user_id → (delivery id, accepted)


def _load(db: Session, offering_id: int) -> tuple[Any, list[_Column], dict[str, str]]:
    offering = get_offering(db, offering_id)
    reg = registration_of(db, offering)
    columns = []
    for b in db.scalars(select(LineItemBinding).where(LineItemBinding.offering_id == offering.id,
                                                      LineItemBinding.lineitem_url.is_not(None))
                        .order_by(LineItemBinding.id)):
        rows = {r.user_id: (r.id, Score.from_json(r.accepted) if r.accepted else None)
                for r in db.execute(select(_T.c.id, _T.c.user_id, _T.c.accepted).where(_T.c.binding_id == b.id))}
        columns.append(_Column(b.id, b.label, b.lineitem_url or "", rows))
    names = dict(db.execute(select(Person.sub, Person.name).join(Membership, Membership.person_id == Person.id)
                            .where(Membership.course_id == offering.course_id)).all())
    return reg, columns, names


def _scaled(accepted: Score | None, maximum: Decimal | None) -> str | None:
    if accepted is None or maximum is None:
        return None
    expected = rules.expected_result(accepted, maximum)
    return None if expected is None else f"{rules.points_text(expected)} / {rules.points_text(maximum)}"


def score_text(score: Decimal | None, maximum: Decimal | None) -> str | None:
    """A result in words, "7.50 / 10.00" (None: no grade)."""
    if score is None:
        return None
    return rules.points_text(score) + (f" / {rules.points_text(maximum)}" if maximum is not None else "")


def read_back(sessions: sessionmaker[Session], client: ResultReader, *, offering_id: int,
              page_size: int = PAGE_SIZE) -> ReadBack:
    """Compare every bound column's results with what the LMS accepted from Tally."""
    with sessions() as db:
        reg, columns, names = _load(db, offering_id)
    out = ReadBack(columns=len(columns))
    limit = page_size if is_canvas(reg) else None
    for column in columns:
        try:
            results = {r["userId"]: r for r in client.results(reg, column.lineitem_url, limit=limit)}
        except ToolError as exc:
            out.errors.append(f"{column.label}: {exc.message}")
            continue
        out.results += len(results)
        for user_id in sorted(set(results) | set(column.rows)):
            delivery_id, accepted = column.rows.get(user_id, (None, None))
            data = results.get(user_id)
            lms = lms_result(data) if data else None
            kind = rules.compare_result(accepted, lms)
            if kind is None:
                continue
            maximum = (lms.maximum if lms is not None and lms.maximum else
                       accepted.score_maximum if accepted is not None else None)
            out.differences.append(Difference(
                binding_id=column.binding_id, label=column.label, user_id=user_id, name=names.get(user_id, user_id),
                kind=kind, text=rules.DIFFERENCE_TEXT[kind], delivery_id=delivery_id,
                tally_score=_scaled(accepted, maximum), lms_score=score_text(lms.score, lms.maximum) if lms else None,
                lms_comment=lms.comment if lms else None))
    return out
