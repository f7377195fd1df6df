"""The delivery table as a queue: claim due rows, then record what the LMS answered.

A worker step is three short transactions and no transaction around the HTTP calls:

1. `claim_due` picks due rows and marks them claimed (`claimed_by`, `claim_expires_at`), then
   commits. On PostgreSQL the rows are selected `FOR UPDATE SKIP LOCKED`, so workers on
   several machines never pick one row twice (and a claim never waits for a lock, so it takes
   part in no deadlock); on SQLite every write transaction starts with BEGIN IMMEDIATE
   (tool/db.py), which serialises the claims. A claim expires, so a worker that died frees its
   rows; the next claim of such a row says so (`Claimed.recovering`).
2. the worker posts each score as its row holds it *at sending time* (tool/delivery/worker.py),
   outside any transaction, and reads a result back where the answer alone does not decide;
3. `record_outcomes` writes each `Attempt`, but only into rows this worker still holds: when a
   claim expired and another worker took the row, the newer attempt decides. It locks the
   bindings of the batch, then their rows, by id — the lock order of every writer of
   score_delivery rows (tool/delivery/schedule.py) — so it never deadlocks with them.

A new desired score written while one is on the wire bumps `desired_version`; the outcome
of the older one then leaves the row pending, and the newer score goes out next.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import Table, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from tool.ags.client import is_canvas
from tool.ags.score import Score, format_timestamp
from tool.delivery import rules
from tool.delivery.models import LineItemBinding, ScoreDelivery
from tool.delivery.schedule import HELD_NOTE, lock_bindings, lock_offering_columns, locks_rows
from tool.errors import ToolError
from tool.lti.models import Deployment, Offering, Registration

_T = cast(Table, ScoreDelivery.__table__)
_B = cast(Table, LineItemBinding.__table__)
_O = cast(Table, Offering.__table__)
_D = cast(Table, Deployment.__table__)
LOST_COLUMN_ATTEMPTS = 3  # a column the LMS keeps answering 404 for, after this many rebinds: failed


@dataclass(frozen=True)
class Claimed:
    """One claimed row: where its score goes, and the score as it was when claimed."""

    delivery_id: int
    binding_id: int
    registration_id: int
    lineitem_url: str
    user_id: str
    score: Score  # the desired score when claimed (the worker sends the row's score as it is then)
    version: int  # the desired_version claimed
    attempts: int  # attempts so far, this one included
    recovering: bool = False  # an earlier claim of the row expired: its score may be in the LMS already


@dataclass
class Claim:
    """What one claim took: the rows to send and their registrations."""

    items: list[Claimed] = field(default_factory=list)
    registrations: dict[int, Registration] = field(default_factory=dict)
    held: int = 0  # progress scores not sent: a grade was accepted before


AttemptKind = Literal["accepted", "superseded", "restamp", "retry", "waiting", "failed", "held", "lost"]


@dataclass(frozen=True)
class Attempt:
    """What became of one claimed row: what was sent (the row's desired score at sending time,
    version `version`) and what the LMS answered or held when read back."""

    claimed: Claimed
    kind: AttemptKind
    version: int
    sent: dict[str, Any] | None = None  # the desired score's JSON as sent (None when nothing was)
    status: int | None = None
    message: str = ""
    retry_after: float | None = None
    stamp: dt.datetime | None = None  # restamp: the timestamp after the LMS's own


def stale_binding(lineitems_url: str | None, container_url: str | None) -> bool:
    """True when the offering's launches now name another line-items container (a course copy)."""
    return bool(lineitems_url and container_url and lineitems_url != container_url)


def _due_rows(db: Session, *, now: dt.datetime, limit: int, offering_id: int | None) -> list[Any]:
    stmt = (
        select(_T.c.id, _T.c.binding_id, _T.c.user_id, _T.c.desired, _T.c.desired_kind, _T.c.desired_version,
               _T.c.desired_at, _T.c.ever_graded, _T.c.attempts, _T.c.claimed_by, _B.c.lineitem_url,
               _B.c.container_url, _O.c.ags_lineitems_url, _D.c.registration_id)
        .join(_B, _B.c.id == _T.c.binding_id)
        .join(_O, _O.c.id == _B.c.offering_id)
        .join(_D, _D.c.id == _O.c.deployment_id)
        .where(_T.c.next_attempt_at <= now, _T.c.held.is_(False),  # a held change waits for its release
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
    if locks_rows(db):
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
        try:
            score = Score.from_json(r.desired)  # its timestamp is the change's: a retry keeps it
        except ToolError as exc:  # never block the queue on one unreadable row
            broken.append({"rid": r.id, "now": now, "error": f"Tally could not build this score: {exc.message}"})
            continue
        claims.append({"rid": r.id, "worker": worker, "expires": expires, "inflight": r.desired,
                       "version": r.desired_version, "now": now})
        claim.items.append(Claimed(r.id, r.binding_id, r.registration_id, r.lineitem_url, r.user_id, score,
                                   r.desired_version, r.attempts + 1, recovering=r.claimed_by is not None))
    conn = db.connection()
    if claims:
        conn.execute(
            update(_T).where(_T.c.id == bindparam("rid")).values(
                claimed_by=bindparam("worker"), claim_expires_at=bindparam("expires"),
                inflight=bindparam("inflight"), inflight_version=bindparam("version"),
                last_attempt_at=bindparam("now"), attempts=_T.c.attempts + 1, updated_at=bindparam("now")),
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


@dataclass(frozen=True)
class Fresh:
    """A claimed row as it is now: what the worker sends."""

    desired: dict[str, Any]
    desired_kind: str
    version: int
    accepted: dict[str, Any] | None
    ever_graded: bool


def fresh_row(db: Session, *, worker: str, delivery_id: int) -> Fresh | None:
    """The row's desired score as it is now; None when this worker no longer holds its claim."""
    row = db.connection().execute(
        select(_T.c.desired, _T.c.desired_kind, _T.c.desired_version, _T.c.accepted, _T.c.ever_graded,
               _T.c.claimed_by).where(_T.c.id == delivery_id)).first()
    if row is None or row.claimed_by != worker:
        return None
    return Fresh(row.desired, row.desired_kind, row.desired_version, row.accepted, bool(row.ever_graded))


def platform_score(fresh: Fresh, *, reg: Any) -> Score:
    """The score to post for a row: its desired score, and for Canvas without an unchanged comment."""
    accepted = Score.from_json(fresh.accepted) if fresh.accepted else None
    return rules.for_platform(Score.from_json(fresh.desired), accepted=accepted, canvas=is_canvas(reg))


@dataclass
class Recorded:
    """How the outcomes of one batch were recorded."""

    accepted: int = 0
    superseded: int = 0
    retrying: int = 0
    failed: int = 0
    rebinding: int = 0
    restamped: int = 0  # sent again after the LMS's own timestamp (it held Tally's last delivery)
    held: int = 0  # progress scores not sent at sending time: a grade was accepted before
    lost_claims: int = 0  # rows another worker took over after this one's claim expired
    waiting: int = 0  # refused until a teacher acts in the LMS (unpublished, closed, concluded)


_RELEASE = {"claimed_by": None, "claim_expires_at": None, "inflight": None, "inflight_version": None}


def _still_held(db: Session, worker: str, ids: Sequence[int]) -> dict[int, Any]:
    stmt = (select(_T.c.id, _T.c.claimed_by, _T.c.desired, _T.c.desired_version, _T.c.ever_graded,
                   _T.c.last_sent_ts)
            .where(_T.c.id.in_(sorted(set(ids)))))
    if locks_rows(db):
        stmt = stmt.order_by(_T.c.id).with_for_update(key_share=True)
    return {r.id: r for r in db.connection().execute(stmt) if r.claimed_by == worker}


def _sent_at(sent: dict[str, Any] | None) -> dt.datetime | None:
    try:
        return Score.from_json(sent).timestamp if sent else None
    except ToolError:
        return None


def _unless_held(param: str) -> Any:
    """The next attempt (bind parameter `param`), unless a change written meanwhile is held (it waits
    for its release)."""
    return case((_T.c.held.is_(True), None), else_=bindparam(param, type_=_T.c.next_attempt_at.type))


def record_outcomes(db: Session, *, worker: str, results: Sequence[Attempt], now: dt.datetime,
                    backoff_base: float, backoff_cap: float,
                    rand: Callable[[], float] = random.random) -> Recorded:
    """Write each attempt into the row it belongs to (same transaction for the whole batch)."""
    done = Recorded()
    if not results:
        return done
    # The lock order of every writer: the columns by id, then their rows by id.
    lock_bindings(db, [a.claimed.binding_id for a in results])
    held = _still_held(db, worker, [a.claimed.delivery_id for a in results])
    by_kind: dict[str, list[dict[str, Any]]] = {"accepted": [], "plain": [], "restamp": [], "held": []}
    lost_bindings: set[int] = set()
    for attempt in sorted(results, key=lambda a: a.claimed.delivery_id):
        claimed = attempt.claimed
        row = held.get(claimed.delivery_id)
        if row is None or attempt.kind == "lost":
            done.lost_claims += 1
            continue
        newer = row.desired_version != attempt.version
        sent_at = rules.latest(row.last_sent_ts, _sent_at(attempt.sent))
        base = {"rid": row.id, "now": now, "status": attempt.status, "error": attempt.message or None,
                "sent_at": sent_at}
        if attempt.kind == "accepted":
            assert attempt.sent is not None
            score = Score.from_json(attempt.sent)
            by_kind["accepted"].append({**base, "accepted": attempt.sent,
                                        "graded": bool(row.ever_graded) or score.writes_grade,
                                        "state": "pending" if newer else "delivered",
                                        "next": now if newer else None, "note": rules.clamp_note(score)})
            done.accepted += 1
        elif attempt.kind == "held":
            by_kind["held"].append({"rid": row.id, "now": now, "state": "pending" if newer else "delivered",
                                    "next": now if newer else None, "note": None if newer else HELD_NOTE})
            done.held += 1
        elif attempt.kind == "restamp" and not newer:
            # The LMS holds what Tally last delivered, stamped with its own later clock: the same
            # score again, timestamped after it, goes out at once.
            assert attempt.stamp is not None
            by_kind["restamp"].append({**base, "desired": {**row.desired, "timestamp": format_timestamp(attempt.stamp)},
                                       "at": attempt.stamp})
            done.restamped += 1
        elif attempt.kind in ("superseded", "restamp"):
            # The platform holds a newer score. If Tally has a newer one too, it goes out next;
            # otherwise the LMS's stays, and the teacher sees it (and may resend).
            by_kind["plain"].append({**base, "state": "pending" if newer else "superseded",
                                     "next": now if newer else None})
            done.superseded += attempt.kind == "superseded"
            done.restamped += attempt.kind == "restamp"
        elif attempt.kind == "retry":
            delay = rules.retry_delay(claimed.attempts, base=backoff_base, cap=backoff_cap,
                                      retry_after=attempt.retry_after, rand=rand)
            by_kind["plain"].append({**base, "state": "retrying", "next": now + dt.timedelta(seconds=delay)})
            done.retrying += 1
        elif attempt.kind == "waiting":
            # The LMS takes no grade here until a teacher acts there: a long pause (at least the
            # attempt's), whatever Tally changes meanwhile.
            delay = rules.retry_delay(claimed.attempts, base=backoff_base,
                                      cap=max(backoff_cap, attempt.retry_after or 0),
                                      retry_after=attempt.retry_after, rand=rand)
            by_kind["plain"].append({**base, "state": "waiting", "next": now + dt.timedelta(seconds=delay)})
            done.waiting += 1
        elif attempt.status == 404 and claimed.attempts < LOST_COLUMN_ATTEMPTS:
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
            state=bindparam("state"), next_attempt_at=_unless_held("next"), attempts=0,
            last_status=bindparam("status"), last_error=None, note=bindparam("note"),
            last_sent_ts=bindparam("sent_at"), updated_at=bindparam("now"), **_RELEASE), by_kind["accepted"])
    if by_kind["restamp"]:
        conn.execute(update(_T).where(_T.c.id == bindparam("rid")).values(
            desired=bindparam("desired"), desired_at=bindparam("at"), state="pending",
            next_attempt_at=_unless_held("now"),
            last_status=bindparam("status"), last_error=bindparam("error"), last_sent_ts=bindparam("sent_at"),
            updated_at=bindparam("now"), **_RELEASE), by_kind["restamp"])
    if by_kind["held"]:
        conn.execute(update(_T).where(_T.c.id == bindparam("rid")).values(
            state=bindparam("state"), next_attempt_at=_unless_held("next"), note=bindparam("note"),
            updated_at=bindparam("now"), **_RELEASE), by_kind["held"])
    if by_kind["plain"]:
        conn.execute(update(_T).where(_T.c.id == bindparam("rid")).values(
            state=bindparam("state"), next_attempt_at=_unless_held("next"), last_status=bindparam("status"),
            last_error=bindparam("error"), last_sent_ts=bindparam("sent_at"), updated_at=bindparam("now"),
            **_RELEASE), by_kind["plain"])
    for binding_id in sorted(lost_bindings):
        conn.execute(update(_B).where(_B.c.id == binding_id).values(
            lineitem_url=None, bound_via=None, bound_at=None, next_attempt_at=None, updated_at=now,
            last_error="The LMS no longer has this column (404); Tally binds it again."))
    return done


def force_due(db: Session, *, offering_id: int, now: dt.datetime) -> int:
    """Make the offering's retrying and waiting rows due now ("sync now" and `python -m tool sync`)."""
    lock_offering_columns(db, offering_id=offering_id)
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
