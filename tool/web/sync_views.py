"""The teacher's sync page and the delivery JSON API: what Tally sent to the LMS gradebook.

Page:  POST /offerings/{id}/sync            per student and column: state and the LMS's words
       (the page's links POST the session token, never put it in the address)
       POST /offerings/{id}/sync/now        compute every score again and deliver (inline, bounded)
       POST /offerings/{id}/sync/retry      send the failed ones again
       POST /offerings/{id}/sync/resend     send chosen scores over what the LMS holds
       POST /offerings/{id}/sync/maximum    the total column's maximum
       POST /offerings/{id}/sync?readback=1 also read the LMS gradebook back, list differences
API:   the same under /api/offerings/{offeringId}/delivery… (JSON, `{code, message, details}` errors)

Who: the staff of the offering's course (the ledger's rules). The LMS is called only after
the request's own transaction ended (on SQLite every transaction holds the write lock).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Blueprint, g, jsonify, redirect, render_template, request, url_for
from typing import Annotated, Literal

from pydantic import Field, PlainValidator, WithJsonSchema

from tool.ags.score import Score
from tool.clock import utcnow
from tool.decimals import DecimalRefused, parse_decimal, pattern
from tool.delivery import release, rules, schedule, status
from tool.delivery.queue import force_due
from tool.delivery.readback import ReadBack, read_back
from tool.delivery.worker import DeliveryWorker, StepResult, worker_name
from tool.errors import ValidationError
from tool.lti.service import LaunchContext
from tool.web.app import get_db, get_services
from tool.web.assessment_schemas import MaxPoints
from tool.web.auth import current_session, requires_staff
from tool.web.ledger_api import money, offering_of_course
from tool.web import released
from tool.web.pages import LandingView
from tool.web.requests import ID_MAX, json_body, parse
from tool.web.schemas import ApiModel, Id, dt_json

bp = Blueprint("sync_views", __name__)


class ResendIn(ApiModel):
    """POST /api/offerings/{offeringId}/delivery/resend"""

    delivery_ids: list[Id] = Field(min_length=1, max_length=5000)


class DeliverySettingsIn(ApiModel):
    """PUT /api/offerings/{offeringId}/delivery/settings"""

    total_maximum: MaxPoints


def _grade_number(value: Any) -> Decimal:
    from tool.ledger.rules import RuleViolation

    try:
        number = parse_decimal(value, places=2)
    except DecimalRefused as exc:
        raise RuleViolation(str(exc)) from None
    if number < 0 or number > Decimal("100000"):
        raise RuleViolation("must be between 0 and 100000")
    return number


GradeNumber = Annotated[Decimal, PlainValidator(_grade_number),
                        WithJsonSchema({"oneOf": [{"type": "number"}, {"type": "string", "pattern": pattern(6)}],
                                        "description": "0 … 100000, two decimal places at most"})]


class ColumnIn(ApiModel):
    """PUT /api/offerings/{offeringId}/delivery/columns/{key}"""

    release: Literal["automatic", "manual"] | None = None
    lms_value: Literal["points", "percent", "grade"] | None = None
    grade_numbers: dict[Annotated[str, Field(min_length=1, max_length=20)], GradeNumber] | None = Field(
        default=None, max_length=100)


class ReleaseIn(ApiModel):
    """POST /api/offerings/{offeringId}/delivery/columns/{key}/release"""

    student_ids: list[Id] | None = Field(default=None, min_length=1, max_length=5000)


SCHEMAS = [ResendIn, DeliverySettingsIn, ColumnIn, ReleaseIn]


def _staff_offering(offering_id: int) -> int:
    offering = offering_of_course(offering_id, current_session())
    return offering.id


# -- actions shared by page and API -------------------------------------------------------------


def sync_now(offering_id: int) -> tuple[int, StepResult]:
    """Compute every desired score again, then deliver for up to `delivery_sync_now_seconds`."""
    db = get_db()
    status.require_delivery(status.get_offering(db, offering_id))
    changed = schedule.reconcile_offering(db, offering_id=offering_id)
    force_due(db, offering_id=offering_id, now=utcnow())
    db.commit()  # ends the transaction before any HTTP
    services = get_services()
    worker = DeliveryWorker(settings=services.settings, sessions=services.sessions, client=services.ags(),
                            name=worker_name())
    result = worker.drain(offering_id=offering_id, seconds=services.settings.delivery_sync_now_seconds)
    return changed, result


def _read_back(offering_id: int) -> ReadBack:
    get_db().commit()
    services = get_services()
    return read_back(services.sessions, services.ags(), offering_id=offering_id)


# -- JSON ---------------------------------------------------------------------------------------


def score_json(score: Score | None) -> dict[str, Any] | None:
    """A stored score for people: points as strings with two places."""
    if score is None:
        return None
    return {"scoreGiven": money(score.score_given) if score.score_given is not None else None,
            "scoreMaximum": money(score.score_maximum) if score.score_maximum is not None else None,
            "activityProgress": score.activity_progress.value, "gradingProgress": score.grading_progress.value,
            "comment": score.comment, "timestamp": dt_json(score.timestamp)}


def delivery_json(view: status.OfferingDelivery) -> dict[str, Any]:
    """The sync page's data."""
    return {
        "offeringId": view.offering_id, "connected": view.connected, "canManageColumns": view.can_manage_columns,
        "platform": "canvas" if view.canvas else "moodle",
        "counts": view.counts,
        "lineItems": [{"id": c.binding_id, "target": c.target, "assessmentId": c.assessment_id, "label": c.label,
                       "scoreMaximum": money(c.score_maximum), "maximumSource": c.maximum_source,
                       "lineItemUrl": c.lineitem_url, "boundVia": c.bound_via, "error": c.last_error,
                       "nextAttemptAt": dt_json(c.next_attempt_at)} for c in view.columns],
        "deliveries": [{"id": r.delivery_id, "lineItemId": r.binding_id, "studentId": r.person_id, "name": r.name,
                        "state": r.state, "desired": score_json(r.desired), "accepted": score_json(r.accepted),
                        "acceptedAt": dt_json(r.accepted_at), "attempts": r.attempts,
                        "nextAttemptAt": dt_json(r.next_attempt_at), "lastStatus": r.last_status,
                        "message": r.message, "note": r.note} for r in view.rows],
    }


def columns_json(view: status.OfferingDelivery, cols: list[status.ColumnRelease]) -> list[dict[str, Any]]:
    """Each LMS column's settings, counts, and per student whether a change is held (and its score)."""
    return [{"key": c.key, "label": c.label, "release": c.settings.release, "lmsValue": c.settings.lms_value,
             "gradeNumbers": {g: money(n) for g, n in c.settings.numbers.items()} if c.settings.numbers else None,
             "counts": c.counts,
             "students": [{"studentId": st.student_id, "name": st.name, "state": st.state, "held": st.held,
                           "heldScore": score_json(st.held_score) if st.held else None} for st in c.students]}
            for c in cols]


def step_json(changed: int, result: StepResult) -> dict[str, Any]:
    """What a sync did."""
    return {"rescheduled": changed, "sent": result.sent, "accepted": result.accepted,
            "superseded": result.superseded, "retrying": result.retrying, "waiting": result.waiting,
            "failed": result.failed,
            "held": result.held, "lineItemsBound": result.bound, "lineItemErrors": result.binding_errors}


def readback_json(rb: ReadBack) -> dict[str, Any]:
    """Differences between the LMS gradebook and what Tally delivered."""
    return {"lineItems": rb.columns, "results": rb.results, "errors": rb.errors,
            "differences": [{"lineItemId": d.binding_id, "label": d.label, "userId": d.user_id, "name": d.name,
                             "kind": d.kind, "message": d.text, "deliveryId": d.delivery_id,
                             "tally": d.tally_score, "lms": d.lms_score, "lmsComment": d.lms_comment,
                             "resendable": d.resendable} for d in rb.differences]}


@bp.get("/api/offerings/<int:offering_id>/delivery")
@requires_staff
def api_status(offering_id: int) -> Any:
    """Per student and line item: the state of delivery and the platform's words."""
    oid = _staff_offering(offering_id)
    db = get_db()
    view = status.offering_delivery(db, offering_id=oid)
    return jsonify({**delivery_json(view), "columns": columns_json(view, status.column_releases(db, view, released.views))})


@bp.put("/api/offerings/<int:offering_id>/delivery/columns/<key>")
@requires_staff
def api_column(offering_id: int, key: str) -> Any:
    """A column's release policy and what it shows in the LMS (and the grade numbers of `grade`)."""
    oid = _staff_offering(offering_id)
    body = parse(ColumnIn, json_body())
    db = get_db()
    settings = release.set_column(db, offering_id=oid, key=key[:60], views=released.views,
                                  release_policy=body.release, lms_value=body.lms_value,
                                  grade_numbers=dict(body.grade_numbers) if body.grade_numbers else None)
    out = {"key": settings.key, "release": settings.release, "lmsValue": settings.lms_value,
           "gradeNumbers": {g: money(n) for g, n in settings.numbers.items()} if settings.numbers else None}
    db.commit()
    return jsonify(out)


@bp.post("/api/offerings/<int:offering_id>/delivery/columns/<key>/release")
@requires_staff
def api_release(offering_id: int, key: str) -> Any:
    """Release the held changes of a column: of `studentIds`, or of every held student."""
    oid = _staff_offering(offering_id)
    body = parse(ReleaseIn, json_body()) if request.get_data() else ReleaseIn()
    db = get_db()
    n = release.release(db, offering_id=oid, key=key[:60], views=released.views, student_ids=body.student_ids)
    db.commit()
    return jsonify(released=n)


@bp.post("/api/offerings/<int:offering_id>/delivery/sync")
@requires_staff
def api_sync(offering_id: int) -> Any:
    """Compute every score again and deliver now (what is left goes to the workers)."""
    changed, result = sync_now(_staff_offering(offering_id))
    return jsonify(step_json(changed, result))


@bp.post("/api/offerings/<int:offering_id>/delivery/retry")
@requires_staff
def api_retry(offering_id: int) -> Any:
    """Send every failed score of the offering again."""
    oid = _staff_offering(offering_id)
    db = get_db()
    n = status.retry_failed(db, offering_id=oid, now=utcnow())
    db.commit()
    return jsonify(requeued=n)


@bp.post("/api/offerings/<int:offering_id>/delivery/resend")
@requires_staff
def api_resend(offering_id: int) -> Any:
    """Send chosen scores again over what the LMS holds (superseded, or changed in the LMS)."""
    oid = _staff_offering(offering_id)
    body = parse(ResendIn, json_body())
    db = get_db()
    n = status.resend(db, offering_id=oid, delivery_ids=body.delivery_ids, now=utcnow())
    db.commit()
    return jsonify(requeued=n)


@bp.put("/api/offerings/<int:offering_id>/delivery/settings")
@requires_staff
def api_settings(offering_id: int) -> Any:
    """The maximum of the offering's total column (when it is not the LMS's own column)."""
    oid = _staff_offering(offering_id)
    body = parse(DeliverySettingsIn, json_body())
    db = get_db()
    binding = status.set_total_maximum(db, offering_id=oid, maximum=body.total_maximum, now=utcnow())
    out = {"totalMaximum": money(binding.score_maximum), "maximumSource": binding.maximum_source}
    db.commit()
    return jsonify(out)


@bp.get("/api/offerings/<int:offering_id>/delivery/readback")
@requires_staff
def api_readback(offering_id: int) -> Any:
    """Read the LMS gradebook back (every page) and list where it differs from what Tally delivered."""
    return jsonify(readback_json(_read_back(_staff_offering(offering_id))))


# -- the page -----------------------------------------------------------------------------------

MESSAGES = {
    "synced": "Synchronised: {sent} scores sent, {accepted} accepted, {retrying} to retry, {waiting} waiting, "
              "{failed} failed.",
    "retried": "{n} failed scores will be sent again.",
    "resent": "{n} scores will be sent again over what the LMS holds.",
    "maximum": "The total's maximum is now {max}; every total will be sent again.",
    "released": "{n} held grades released: they go to the LMS and the students now.",
    "column": "The column's settings are saved.",
}


def _page_token() -> str:
    return str(g.tally_token)


def _back(offering_id: int, done: str, **values: Any) -> Any:
    # 307: the browser POSTs the same form (and so the token) to the page; the address holds only
    # what was done. Reloading it shows the page again, it does not repeat the action.
    return redirect(url_for("sync_views.page", offering_id=offering_id, done=done, **values), 307)


def _message() -> str | None:
    template = MESSAGES.get(request.args.get("done", ""))
    if template is None:
        return None
    values = {k: v for k, v in request.args.items() if k != "st"}
    try:
        return template.format(**values)
    except (KeyError, IndexError):
        return None


@bp.route("/offerings/<int:offering_id>/sync", methods=["GET", "POST"])
@requires_staff
def page(offering_id: int) -> Any:
    """The teacher's view of delivery to the LMS gradebook."""
    s = current_session()
    oid = _staff_offering(offering_id)
    db = get_db()
    view = LandingView.from_db(db, LaunchContext(s.registration_id, s.person_id, s.course_id, oid, s.roles))
    data = status.offering_delivery(db, offering_id=oid)
    releases = status.column_releases(db, data, released.views)
    rb = _read_back(oid) if request.values.get("readback") == "1" else None
    return render_template("teacher_sync.html", token=_page_token(), view=view, roles=[r.value for r in s.roles],
                           data=data, releases=releases, readback=rb, message=_message(), money=money, rules=rules,
                           waiting_minutes=max(1, round(get_services().settings.delivery_waiting_seconds / 60)))


@bp.post("/offerings/<int:offering_id>/sync/now")
@requires_staff
def page_sync(offering_id: int) -> Any:
    """"Sync now" from the page."""
    oid = _staff_offering(offering_id)
    _, result = sync_now(oid)
    return _back(oid, "synced", sent=result.sent, accepted=result.accepted, retrying=result.retrying,
                 waiting=result.waiting, failed=result.failed)


@bp.post("/offerings/<int:offering_id>/sync/retry")
@requires_staff
def page_retry(offering_id: int) -> Any:
    """"Retry failed" from the page (they go out with the next worker step)."""
    oid = _staff_offering(offering_id)
    db = get_db()
    n = status.retry_failed(db, offering_id=oid, now=utcnow())
    db.commit()
    return _back(oid, "retried", n=n)


@bp.post("/offerings/<int:offering_id>/sync/resend")
@requires_staff
def page_resend(offering_id: int) -> Any:
    """"Send Tally's grade again" for one or more pairs."""
    oid = _staff_offering(offering_id)
    ids = _form_ids("delivery_id")
    db = get_db()
    n = status.resend(db, offering_id=oid, delivery_ids=ids, now=utcnow())
    db.commit()
    return _back(oid, "resent", n=n)


@bp.post("/offerings/<int:offering_id>/sync/maximum")
@requires_staff
def page_maximum(offering_id: int) -> Any:
    """The total column's maximum, from the page's form."""
    oid = _staff_offering(offering_id)
    body = parse(DeliverySettingsIn, {"totalMaximum": request.form.get("total_maximum", "").strip().replace(",", ".")})
    db = get_db()
    binding = status.set_total_maximum(db, offering_id=oid, maximum=Decimal(body.total_maximum), now=utcnow())
    db.commit()
    return _back(oid, "maximum", max=money(binding.score_maximum))


def _form_ids(field: str, *, most: int = 5000) -> list[int]:
    """The ids a form posts under `field` (checkboxes): each in the id range, at most `most` of them."""
    try:
        ids = [int(v) for v in request.form.getlist(field)]
        if not all(1 <= i <= ID_MAX for i in ids) or len(ids) > most:
            raise ValueError
    except ValueError:
        raise ValidationError(f"{field} must be a list of at most {most} numbers.",
                              details=[{"field": field, "message": "not a number"}]) from None
    return ids


def _form_key() -> str | None:
    key = request.form.get("key", "").strip()
    if key and rules.target_of_key(key) is None:
        raise ValidationError("key must be 'total' or 'assessment-<id>'.", details=[{"field": "key", "message": "unknown"}])
    return key or None


@bp.post("/offerings/<int:offering_id>/sync/release")
@requires_staff
def page_release(offering_id: int) -> Any:
    """"Release" (one column, or one student of it) or "Release all" (every column) from the page."""
    oid = _staff_offering(offering_id)
    key = _form_key()
    students = _form_ids("student_id")
    if students and key is None:
        raise ValidationError("Name the column of these students.", details=[{"field": "key", "message": "missing"}])
    db = get_db()
    keys = [key] if key else release.column_keys(db, oid)
    n = sum(release.release(db, offering_id=oid, key=k, views=released.views, student_ids=students or None)
            for k in keys)
    db.commit()
    return _back(oid, "released", n=n)


@bp.post("/offerings/<int:offering_id>/sync/column")
@requires_staff
def page_column(offering_id: int) -> Any:
    """A column's release policy and LMS value from the page's form."""
    oid = _staff_offering(offering_id)
    key = _form_key()
    if key is None:
        raise ValidationError("Name the column.", details=[{"field": "key", "message": "missing"}])
    body = parse(ColumnIn, {"release": request.form.get("release") or None,
                            "lmsValue": request.form.get("lms_value") or None})
    db = get_db()
    release.set_column(db, offering_id=oid, key=key, views=released.views, release_policy=body.release,
                       lms_value=body.lms_value)
    db.commit()
    return _back(oid, "column")
