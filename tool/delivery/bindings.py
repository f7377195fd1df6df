"""Binding each target (an offering's total, an assessment) to an LMS line item.

Which line item, in order:

1. the launch's own `lineitem`, when the platform sent one — it does when the placement has
   exactly one line item (AGS §3.1; Moodle: the activity's grade item) — and no other target
   of the offering uses it, goes to the target the placement was made for: the total, unless
   the placement was deep linked as "an exam or course grade" (custom `tally_source =
   assessment`), then the offering's first assessment. That target's maximum is then the line
   item's (the total) or written to it (an assessment). A deep-linked item carries the
   resourceId `tally:<source>`; it is recognised as that target's own column;
2. otherwise the line item with the target's resourceId (and the placement's
   resource_link_id) in the platform's container, found with its query filters, every page
   followed;
3. otherwise a new one: label, scoreMaximum, resourceId, tag, resourceLinkId.

On Canvas, steps 2 and 3 leave the resource link out. Canvas ties a line item created with a
`resourceLinkId` to that link's *assignment*: a Course Navigation or module link has none
(404), and an assignment's link gets a second line item whose scores Canvas stores but never
shows (only an assignment's first line item grades; instructure/canvas-lms,
app/controllers/lti/ims/concerns/gradebook_services.rb, app/models/lti/line_item.rb). So a
column Tally makes on Canvas is an assignment of its own, found again by resourceId and
tag, and an attached line item is never taken for one. Columns other placements of the same
course are bound to are never taken either (no resource link tells them apart on Canvas).
A deep-linked item is its assignment's own line item there too, so it is looked for with its
link, as on Moodle.

When the offering's launches name another container than the one a target was bound in (a
course copy), the target is bound again the same way: the copied column is found by its
resourceId, so no duplicate is created. A label or maximum changed in Tally is written with
GET then PUT. The LMS is called between two short transactions, never inside one.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tool.ags.client import LineItem, is_canvas
from tool.ags.http import AgsUnavailable
from tool.assessments.models import Assessment
from tool.delivery import rules
from tool.delivery.models import LineItemBinding, ScoreDelivery
from tool.delivery.queue import stale_binding
from tool.delivery.schedule import reschedule_binding
from tool.errors import ToolError
from tool.lti.models import Deployment, Offering, Registration

_T = cast(Table, ScoreDelivery.__table__)


class LineItemService(Protocol):
    """The line-item calls of the AgsClient that binding needs."""

    def list_lineitems(self, reg: Any, lineitems_url: str, *, resource_id: str | None = None,
                       tag: str | None = None, resource_link_id: str | None = None,
                       granted: Sequence[str] | None = None) -> list[LineItem]:
        """Every matching line item (all pages)."""

    def get_lineitem(self, reg: Any, lineitem_url: str, *, granted: Sequence[str] | None = None) -> LineItem:
        """One line item."""

    def create_lineitem(self, reg: Any, lineitems_url: str, item: LineItem) -> LineItem:
        """A new line item."""

    def update_lineitem(self, reg: Any, item: LineItem) -> LineItem:
        """GET then PUT of label and maximum."""


@dataclass(frozen=True)
class BindingJob:
    """A claimed binding and everything the LMS calls need (read before the transaction ends)."""

    binding_id: int
    offering_id: int
    target: str
    label: str
    score_maximum: Decimal
    maximum_source: str
    resource_id: str
    tag: str
    resource_link_id: str
    lineitem_url: str | None
    bound_via: str | None
    lineitems_url: str | None  # the offering's container, from its latest launch
    launch_lineitem_url: str | None  # the launch's own line item, when it sent one
    taken_urls: frozenset[str]  # line items other targets of the offering use
    granted: tuple[str, ...]  # the AGS scopes of the offering's latest launch
    registration: Registration
    attempts: int
    container_url: str | None = None  # the container it was bound in
    owns_launch_item: bool = False  # the target the placement's own line item is for
    deep_link_resource_id: str | None = None  # `tally:<source>` when the placement was deep linked for it
    canvas: bool = False  # Canvas: columns are assignments of their own (see the module docstring)

    @property
    def update_only(self) -> bool:
        """True when the binding stands and only label/maximum must be written."""
        return self.lineitem_url is not None and not stale_binding(self.lineitems_url, self.container_url)


@dataclass(frozen=True)
class BindingResult:
    """What the LMS said about a binding: where it is bound, or why not."""

    lineitem_url: str | None = None
    container_url: str | None = None
    bound_via: str | None = None
    lms_maximum: Decimal | None = None  # the launch line item's maximum (the total follows it)
    updated: bool = False
    error: str | None = None
    retry_after: float | None = None
    retryable: bool = True


def claim_bindings(db: Session, *, worker: str, now: dt.datetime, claim_seconds: float,
                   offering_id: int | None = None, limit: int = 20) -> list[BindingJob]:
    """Claim bindings that need the LMS: unbound, stale after a course copy, or label/maximum changed."""
    stmt = (
        select(LineItemBinding, Offering, Deployment.registration_id)
        .join(Offering, Offering.id == LineItemBinding.offering_id)
        .join(Deployment, Deployment.id == Offering.deployment_id)
        .where(or_(LineItemBinding.next_attempt_at.is_(None), LineItemBinding.next_attempt_at <= now),
               or_(LineItemBinding.claim_expires_at.is_(None), LineItemBinding.claim_expires_at < now),
               or_(Offering.ags_lineitems_url.is_not(None), Offering.ags_lineitem_url.is_not(None)),
               or_(LineItemBinding.lineitem_url.is_(None), LineItemBinding.needs_update.is_(True),
                   LineItemBinding.container_url != Offering.ags_lineitems_url))
        .order_by(LineItemBinding.id)
        .limit(limit)
    )
    if offering_id is not None:
        stmt = stmt.where(LineItemBinding.offering_id == offering_id)
    if db.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=LineItemBinding)
    jobs = []
    first_assessment: dict[int, int | None] = {}
    for binding, offering, registration_id in db.execute(stmt).all():
        if binding.lineitem_url is not None and not binding.needs_update and \
                not stale_binding(offering.ags_lineitems_url, binding.container_url):
            continue
        registration = db.get(Registration, registration_id)
        if registration is None:
            continue
        others = LineItemBinding.offering_id == offering.id
        if offering.ags_lineitems_url:
            others = or_(others, LineItemBinding.container_url == offering.ags_lineitems_url)
        taken = frozenset(url for url in db.scalars(select(LineItemBinding.lineitem_url).where(
            others, LineItemBinding.id != binding.id)) if url)
        binding.claimed_by, binding.claim_expires_at = worker, now + dt.timedelta(seconds=claim_seconds)
        binding.attempts += 1
        if offering.id not in first_assessment:
            first_assessment[offering.id] = db.scalar(select(func.min(Assessment.id)).where(
                Assessment.offering_id == offering.id))
        owner = launch_item_target(offering.tally_source, first_assessment[offering.id])
        jobs.append(BindingJob(
            binding_id=binding.id, offering_id=offering.id, target=binding.target, label=binding.label,
            score_maximum=binding.score_maximum, maximum_source=binding.maximum_source,
            resource_id=binding.resource_id, tag=binding.tag, resource_link_id=offering.resource_link_id,
            lineitem_url=binding.lineitem_url, bound_via=binding.bound_via, lineitems_url=offering.ags_lineitems_url,
            launch_lineitem_url=offering.ags_lineitem_url, taken_urls=taken,
            granted=tuple(offering.ags_scopes or ()), registration=registration,
            attempts=binding.attempts, container_url=binding.container_url,
            owns_launch_item=binding.target == owner,
            deep_link_resource_id=deep_link_resource_id(offering.tally_source) if binding.target == owner else None,
            canvas=is_canvas(registration),
        ))
    db.flush()
    return jobs


def launch_item_target(tally_source: str | None, first_assessment_id: int | None) -> str | None:
    """Which target the placement's own line item is the column of (None: none yet).

    A placement deep linked as "an exam or course grade" keeps its line item for its first
    assessment (none until the teacher makes one); any other placement gives it to the total.
    """
    if tally_source == "assessment":
        return rules.assessment_target(first_assessment_id) if first_assessment_id is not None else None
    return rules.TOTAL_TARGET


def deep_link_resource_id(tally_source: str | None) -> str | None:
    """The resourceId Tally gave a deep-linked item of this source (tool/lti/deeplink.py)."""
    return f"tally:{tally_source}" if tally_source else None


def _own_resource_ids(job: BindingJob) -> tuple[str | None, ...]:
    """The resourceIds a launch's line item may carry to be this target's own column."""
    ids: tuple[str | None, ...] = (None, job.resource_id)
    if job.target == rules.TOTAL_TARGET:
        ids += (deep_link_resource_id("ledger_total"),)
    if job.deep_link_resource_id:
        ids += (job.deep_link_resource_id,)
    return ids


def _wanted(job: BindingJob) -> LineItem:
    return LineItem(id=None, label=job.label, score_maximum=job.score_maximum, resource_id=job.resource_id,
                    tag=job.tag, resource_link_id=None if job.canvas else job.resource_link_id)


def _find(client: LineItemService, job: BindingJob) -> list[LineItem]:
    """The target's column in the container, if the LMS has one already (not one bound elsewhere)."""
    reg, url = job.registration, job.lineitems_url
    assert url is not None
    # Its own resourceId; then, for the deep-linked target, the deep link's (Moodle no longer
    # names a link's line item once the link has two, and a course copy names another one).
    for resource_id in (job.resource_id, job.deep_link_resource_id):
        if resource_id is None:
            continue
        if job.canvas and resource_id == job.resource_id:
            # Tally's own columns on Canvas carry no resource link; a line item attached to an
            # assignment's link shows no grade on Canvas: never ours.
            found = [i for i in client.list_lineitems(reg, url, resource_id=resource_id, tag=job.tag,
                                                      granted=job.granted) if not i.resource_link_id]
        else:
            # Moodle's columns, or the deep link's item: its own link's column on either platform.
            found = client.list_lineitems(reg, url, resource_id=resource_id, resource_link_id=job.resource_link_id,
                                          granted=job.granted)
        found = [i for i in found if i.id and i.id not in job.taken_urls]
        if found:
            return found
    return []


def _bind(client: LineItemService, job: BindingJob) -> BindingResult:
    reg = job.registration
    launch = job.launch_lineitem_url
    if job.owns_launch_item and launch and launch not in job.taken_urls:
        item = client.get_lineitem(reg, launch, granted=job.granted)
        # The launch's line item is the placement's only column; its target takes it unless it
        # is a column Tally made for something else (another target's resourceId).
        if item.resource_id in _own_resource_ids(job):
            if job.target == rules.TOTAL_TARGET:
                return BindingResult(lineitem_url=launch, container_url=job.lineitems_url, bound_via="launch",
                                     lms_maximum=item.score_maximum)
            # An assessment keeps its own maximum and title: written to the LMS's column.
            updated = item.label != job.label or item.score_maximum != job.score_maximum
            if updated:
                client.update_lineitem(reg, LineItem(id=launch, label=job.label, score_maximum=job.score_maximum,
                                                     resource_id=item.resource_id, tag=item.tag))
            return BindingResult(lineitem_url=launch, container_url=job.lineitems_url, bound_via="launch",
                                 updated=updated)
    if not job.lineitems_url:
        return BindingResult(error="The LMS names no line-items container for this placement, so Tally can "
                                   "neither find nor create this column (in Moodle, give the tool "
                                   "\"column management\").", retryable=False)
    found = _find(client, job)
    if found:
        item = found[0]
        own = item.resource_id == job.resource_id  # a deep-linked item keeps its resourceId
        if not own and job.target == rules.TOTAL_TARGET:
            # The deep-linked total column: its maximum is the LMS's, as when a launch names it.
            return BindingResult(lineitem_url=item.id, container_url=job.lineitems_url, bound_via="found",
                                 lms_maximum=item.score_maximum)
        updated = False
        if item.label != job.label or item.score_maximum != job.score_maximum:
            client.update_lineitem(reg, LineItem(id=item.id, label=job.label, score_maximum=job.score_maximum,
                                                 resource_id=job.resource_id if own else item.resource_id,
                                                 tag=job.tag if own else item.tag))
            updated = True
        return BindingResult(lineitem_url=item.id, container_url=job.lineitems_url, bound_via="found",
                             updated=updated)
    created = client.create_lineitem(reg, job.lineitems_url, _wanted(job))
    return BindingResult(lineitem_url=created.id, container_url=job.lineitems_url, bound_via="created")


def resolve(client: LineItemService, job: BindingJob) -> BindingResult:
    """Ask the LMS (outside any transaction); never raises for what the LMS or the network does."""
    try:
        if job.update_only:
            if job.maximum_source == "lms":  # the LMS's own column: its title and maximum are the LMS's
                return BindingResult(lineitem_url=job.lineitem_url, container_url=job.lineitems_url,
                                     bound_via=job.bound_via)
            # The placement's own column keeps the resourceId and tag the LMS (or the deep link) gave it.
            own = job.bound_via != "launch"
            client.update_lineitem(job.registration, LineItem(id=job.lineitem_url, label=job.label,
                                                              score_maximum=job.score_maximum,
                                                              resource_id=job.resource_id if own else None,
                                                              tag=job.tag if own else None))
            return BindingResult(lineitem_url=job.lineitem_url, container_url=job.lineitems_url,
                                 bound_via=job.bound_via, updated=True)
        return _bind(client, job)
    except AgsUnavailable as exc:
        return BindingResult(error=exc.message, retry_after=exc.retry_after)
    except ToolError as exc:
        return BindingResult(error=exc.message, retryable=False)


def _taken_elsewhere(db: Session, binding_id: int, lineitem_url: str | None) -> bool:
    """True when another binding holds the line item: the unique index says so, also for a binding a
    concurrent worker is committing (PostgreSQL waits for it), inside a savepoint."""
    if lineitem_url is None:
        return False
    try:
        with db.begin_nested():
            db.execute(update(LineItemBinding).where(LineItemBinding.id == binding_id)
                       .values(lineitem_url=lineitem_url).execution_options(synchronize_session=False))
    except IntegrityError:
        return True
    return False


def record_binding(db: Session, *, worker: str, job: BindingJob, result: BindingResult, now: dt.datetime,
                   backoff_base: float, backoff_cap: float, rand: Callable[[], float] = random.random) -> bool:
    """Store the result; rows follow a new column (resent) or a new maximum (recomputed). True when bound."""
    binding = db.get(LineItemBinding, job.binding_id, with_for_update=db.get_bind().dialect.name == "postgresql")
    if binding is None or binding.claimed_by != worker:
        return False
    binding.claimed_by, binding.claim_expires_at, binding.updated_at = None, None, now
    if result.error is not None:
        binding.last_error = result.error
        cap = backoff_cap if result.retryable else max(backoff_cap, 3600.0)
        delay = rules.retry_delay(job.attempts, base=backoff_base, cap=cap, retry_after=result.retry_after, rand=rand)
        binding.next_attempt_at = now + dt.timedelta(seconds=delay if result.retryable else cap)
        if job.update_only:
            binding.needs_update = False  # the scores go out on the column as it is
        return False
    moved = result.lineitem_url != binding.lineitem_url
    if moved and _taken_elsewhere(db, binding.id, result.lineitem_url):
        # Another target (on Canvas: another placement of the course) got this column first:
        # look again at once, with that column out of the running.
        binding.last_error = "Another of Tally's columns already uses this line item; Tally looks for another."
        binding.next_attempt_at = now
        db.flush()
        return False
    binding.lineitem_url, binding.container_url = result.lineitem_url, result.container_url
    binding.bound_via = result.bound_via
    binding.bound_at = binding.bound_at if not moved else now
    binding.needs_update, binding.last_error, binding.next_attempt_at, binding.attempts = False, None, None, 0
    if moved:
        # A new column holds nothing of ours: every pair is sent again.
        db.connection().execute(update(_T).where(_T.c.binding_id == binding.id).values(
            state="pending", accepted=None, accepted_at=None, ever_graded=False, attempts=0, updated_at=now,
            # a held change still waits for its release
            next_attempt_at=case((_T.c.held.is_(True), None),
                                 else_=bindparam("moved_at", now, type_=_T.c.next_attempt_at.type))))
    if result.lms_maximum is not None and result.lms_maximum > 0 and (
            binding.score_maximum != result.lms_maximum or binding.maximum_source != "lms"):
        binding.score_maximum, binding.maximum_source = result.lms_maximum, "lms"
        db.flush()
        reschedule_binding(db, binding)
    db.flush()
    return True
