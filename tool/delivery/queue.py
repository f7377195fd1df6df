"""The delivery table as a queue: claim due rows, then record what the LMS answered.

A worker step is three short transactions and no transaction around the HTTP calls:

1. `claim_due` picks due rows and marks them claimed (`claimed_by`, `claim_expires_at`) with
   the exact score it will send (`inflight`), then commits. On PostgreSQL the rows are
   selected `FOR UPDATE SKIP LOCKED`, so workers on several machines never pick one row
   twice; on SQLite every write transaction starts with BEGIN IMMEDIATE (tool/db.py), which
   serialises the claims. A claim expires, so a worker that died frees its rows.
2. the worker posts the scores (outside any transaction);
3. `record_outcomes` writes each answer, but only into rows this worker still holds: when
   a claim expired and another worker took the row, the newer attempt decides.

A new desired score written while one is on the wire bumps `desired_version`; the outcome
of the older one then leaves the row pending, and the newer score goes out next.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from tool.ags.client import Outcome, is_canvas
from tool.ags.score import Score
from tool.delivery import rules
from tool.delivery.models import LineItemBinding, ScoreDelivery
from tool.delivery.schedule import HELD_NOTE
from tool.errors import ToolError
from tool.lti.models import Deployment, Offering, Registration

_T = cast(Table, ScoreDelivery.__table__)
_B = cast(Table, LineItemBinding.__table__)
_O = cast(Table, Offering.__table__)
_D = cast(Table, Deployment.__table__)
LOST_COLUMN_ATTEMPTS = 3  # a column the LMS keeps answering 404 for, after this many rebinds: failed


@dataclass(frozen=True)
class Claimed:
    """One claimed row: where its score goes and exactly what is sent."""

    delivery_id: int
    binding_id: int
    registration_id: int
    lineitem_url: str
    score: Score  # as sent (Canvas: an unchanged comment left out)
    version: int  # the desired_version this attempt carries
    attempts: int  # attempts so far, this one included


@dataclass
class Claim:
    """What one claim took: the rows to send and their registrations."""

    items: list[Claimed] = field(default_factory=list)
    registrations: dict[int, Registration] = field(default_factory=dict)
    held: int = 0  # progress scores not sent: a grade was accepted before


def stale_binding(lineitems_url: str | None, container_url: str | None) -> bool:
    """True when the offering's launches now name another line-items container (a course copy)."""
    return bool(lineitems_url and container_url and lineitems_url != container_url)


def _due_rows(db: Session, *, now: dt.datetime, limit: int, offering_id: int | None) -> list[Any]:
    stmt = (
        select(_T.c.id, _T.c.binding_id, _T.c.desired, _T.c.desired_kind, _T.c.desired_version, _T.c.desired_at,
               _T.c.accepted, _T.c.ever_graded, _T.c.last_sent_ts, _T.c.attempts, _B.c.lineitem_url,
               _B.c.container_url, _O.c.ags_lineitems_url, _D.c.registration_id)
        .join(_B, _B.c.id == _T.c.binding_id)
        .join(_O, _O.c.id == _B.c.offering_id)
        .join(_D, _D.c.id == _O.c.deployment_id)
        .where(_T.c.next_attempt_at <= now,
               or_(_T.c.claim_expires_at.is_(None), _T.c.claim_expires_at < now),
               _B.c.lineitem_url.is_not(None), _B.c.needs_update.is_(False),
               # Not into a container the placement left (a course copy): the binder moves those
               # first. In SQL, so such rows never crowd the others out of a batch.
               or_(_O.c.ags_lineitems_url.is_(None), _B.c.container_url.is_(None),
                   _B.c.container_url == _O.c.ags_lineitems_url))
        .order_by(_T.c.next_attempt_at, _T.c.id)
        .limit(limit)
    )
    if offering_id is not None:
        stmt = stmt.where(_B.c.offering_id == offering_id)
    if db.get_bind().dialect.name == "postgresql":
        # Workers on other machines skip the rows this one is claiming instead of queueing on them.
        stmt = stmt.with_for_update(skip_locked=True, of=_T)
    return list(db.connection().execute(stmt))


def claim_due(db: Session, *, worker: str, now: dt.datetime, limit: int, claim_seconds: float,
              offering_id: int | None = None) -> Claim:
    """Claim up to `limit` due rows whose line item is bound; the caller commits before sending."""
    rows = _due_rows(db, now=now, limit=limit, offering_id=offering_id)
    claim = Claim()
    if not rows:
        return claim
    for reg_id in {r.registration_id for r in rows}:
        reg = db.get(Registration, reg_id)
        if reg is not None:
            claim.registrations[reg_id] = reg
    expires = now + dt.timedelta(seconds=claim_seconds)
    claims: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    broken: list[dict[str, Any]] = []
    for r in rows:
        if r.registration_id not in claim.registrations:
            continue
        if not rules.should_send(r.desired_kind, ever_graded=bool(r.ever_graded)):
            held.append({"rid": r.id, "now": now})
            continue
        send_at = rules.send_timestamp(r.desired_at, r.last_sent_ts, now)
        try:
            inflight = Score.from_json(r.desired).with_timestamp(send_at)
            accepted = Score.from_json(r.accepted) if r.accepted else None
        except ToolError as exc:  # never block the queue on one unreadable row
            broken.append({"rid": r.id, "now": now, "error": f"Tally could not build this score: {exc.message}"})
            continue
        sent = rules.for_platform(inflight, accepted=accepted,
                                  canvas=is_canvas(claim.registrations[r.registration_id]))
        claims.append({"rid": r.id, "worker": worker, "expires": expires, "inflight": inflight.to_json(),
                       "version": r.desired_version, "sent_ts": send_at, "now": now})
        claim.items.append(Claimed(r.id, r.binding_id, r.registration_id, r.lineitem_url, sent, r.desired_version,
                                   r.attempts + 1))
    conn = db.connection()
    if claims:
        conn.execute(
            update(_T).where(_T.c.id == bindparam("rid")).values(
                claimed_by=bindparam("worker"), claim_expires_at=bindparam("expires"),
                inflight=bindparam("inflight"), inflight_version=bindparam("version"),
                last_sent_ts=bindparam("sent_ts"), last_attempt_at=bindparam("now"),
                attempts=_T.c.attempts + 1, updated_at=bindparam("now")),
            claims,
        )
    if held:
        conn.execute(update(_T).where(_T.c.id == bindparam("rid")).values(
            state="delivered", next_attempt_at=None, note=HELD_NOTE, updated_at=bindparam("now")), held)
    if broken:
        conn.execute(update(_T).where(_T.c.id == bindparam("rid")).values(
            state="failed", next_attempt_at=None, last_status=None, last_error=bindparam("error"),
            updated_at=bindparam("now")), broken)
    claim.held = len(held)
    return claim


@dataclass
class Recorded:
    """How the outcomes of one batch were recorded."""

    accepted: int = 0
    superseded: int = 0
    retrying: int = 0
    failed: int = 0
    rebinding: int = 0
    lost_claims: int = 0  # rows another worker took over after this one's claim expired
    waiting: int = 0  # refused until a teacher acts in the LMS (unpublished, closed, concluded)


_RELEASE = {"claimed_by": None, "claim_expires_at": None, "inflight": None, "inflight_version": None}


def _still_held(db: Session, worker: str, ids: Sequence[int]) -> dict[int, Any]:
    rows = db.connection().execute(
        select(_T.c.id, _T.c.claimed_by, _T.c.desired_version, _T.c.inflight, _T.c.ever_graded)
        .where(_T.c.id.in_(list(ids)))
    )
    return {r.id: r for r in rows if r.claimed_by == worker}


def record_outcomes(db: Session, *, worker: str, results: Sequence[tuple[Claimed, Outcome]], now: dt.datetime,
                    backoff_base: float, backoff_cap: float,
                    rand: Callable[[], float] = random.random) -> Recorded:
    """Write each answer into the row it belongs to (same transaction for the whole batch)."""
    done = Recorded()
    if not results:
        return done
    held = _still_held(db, worker, [c.delivery_id for c, _ in results])
    by_kind: dict[str, list[dict[str, Any]]] = {"accepted": [], "plain": []}
    lost_bindings: set[int] = set()
    for claimed, outcome in results:
        row = held.get(claimed.delivery_id)
        if row is None:
            done.lost_claims += 1
            continue
        newer = row.desired_version != claimed.version
        base = {"rid": row.id, "now": now, "status": outcome.status, "error": outcome.message or None}
        if outcome.kind == "accepted":
            accepted = row.inflight
            graded = bool(row.ever_graded) or Score.from_json(accepted).writes_grade
            by_kind["accepted"].append({**base, "accepted": accepted, "graded": graded,
                                        "state": "pending" if newer else "delivered",
                                        "next": now if newer else None,
                                        "note": rules.clamp_note(Score.from_json(accepted))})
            done.accepted += 1
        elif outcome.kind == "superseded":
            # The platform holds a newer score. If Tally has a newer one too, it goes out next;
            # otherwise the LMS's stays, and the teacher sees it (and may resend).
            by_kind["plain"].append({**base, "state": "pending" if newer else "superseded",
                                     "next": now if newer else None})
            done.superseded += 1
        elif outcome.kind == "retry":
            delay = rules.retry_delay(claimed.attempts, base=backoff_base, cap=backoff_cap,
                                      retry_after=outcome.retry_after, rand=rand)
            by_kind["plain"].append({**base, "state": "retrying", "next": now + dt.timedelta(seconds=delay)})
            done.retrying += 1
        elif outcome.kind == "waiting":
            # The LMS takes no grade here until a teacher acts there: a long pause (at least the
            # outcome's), whatever Tally changes meanwhile.
            delay = rules.retry_delay(claimed.attempts, base=backoff_base, cap=max(backoff_cap, outcome.retry_after or 0),
                                      retry_after=outcome.retry_after, rand=rand)
            by_kind["plain"].append({**base, "state": "waiting", "next": now + dt.timedelta(seconds=delay)})
            done.waiting += 1
        elif outcome.status == 404 and claimed.attempts < LOST_COLUMN_ATTEMPTS:
            # The column is gone (deleted in the LMS, or the course was copied): bind again.
            lost_bindings.add(claimed.binding_id)
            by_kind["plain"].append({**base, "state": "pending", "next": now})
            done.rebinding += 1
        else:
            # Refused. A newer desired score (written meanwhile) deserves its own attempt.
            by_kind["plain"].append({**base, "state": "pending" if newer else "failed", "next": now if newer else None})
            done.failed += 1
    conn = db.connection()
    if by_kind["accepted"]:
        conn.execute(update(_T).where(_T.c.id == bindparam("rid")).values(
            accepted=bindparam("accepted"), accepted_at=bindparam("now"), ever_graded=bindparam("graded"),
            state=bindparam("state"), next_attempt_at=bindparam("next"), attempts=0,
            last_status=bindparam("status"), last_error=None, note=bindparam("note"),
            updated_at=bindparam("now"), **_RELEASE), by_kind["accepted"])
    if by_kind["plain"]:
        conn.execute(update(_T).where(_T.c.id == bindparam("rid")).values(
            state=bindparam("state"), next_attempt_at=bindparam("next"), last_status=bindparam("status"),
            last_error=bindparam("error"), updated_at=bindparam("now"), **_RELEASE), by_kind["plain"])
    for binding_id in lost_bindings:
        conn.execute(update(_B).where(_B.c.id == binding_id).values(
            lineitem_url=None, bound_via=None, bound_at=None, next_attempt_at=None, updated_at=now,
            last_error="The LMS no longer has this column (404); Tally binds it again."))
    return done


def force_due(db: Session, *, offering_id: int, now: dt.datetime) -> int:
    """Make the offering's retrying and waiting rows due now ("sync now" and `python -m tool sync`)."""
    ids = select(_B.c.id).where(_B.c.offering_id == offering_id).scalar_subquery()
    result = db.connection().execute(
        update(_T).where(_T.c.binding_id.in_(ids), _T.c.state.in_(("retrying", "waiting"))).values(next_attempt_at=now))
    db.connection().execute(update(_B).where(_B.c.offering_id == offering_id, _B.c.next_attempt_at.is_not(None))
                            .values(next_attempt_at=now))
    return int(result.rowcount or 0)


def due_count(db: Session, *, now: dt.datetime, offering_id: int | None = None) -> int:
    """How many rows wait to be sent now or later (pending, retrying or waiting), optionally of one offering."""
    from sqlalchemy import func

    stmt = select(func.count()).select_from(_T.join(_B, _B.c.id == _T.c.binding_id)).where(
        _T.c.next_attempt_at.is_not(None))
    if offering_id is not None:
        stmt = stmt.where(_B.c.offering_id == offering_id)
    return int(db.connection().execute(stmt).scalar() or 0)
