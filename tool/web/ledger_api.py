"""The ledger REST API at the seed's paths (`/api/grades/…`).

Who may do what: TEACHER, MODERATOR, ADMIN and SUPER_ADMIN of the offering's course create,
update, void and view; a STUDENT reads only their own entries, total and breakdown; nobody
reaches another course (403). Bodies and errors: see tool/web/schemas.py and errors.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, jsonify, request

from tool import bonus, gradebook
from tool.errors import Forbidden, NotFound, ToolError, ValidationError
from tool.ledger import service as ledger
from tool.ledger.models import TYPE_CODES, GradeEntry, GradeEntryRevision
from tool.lti.claims import Role
from tool.lti.models import Offering, Person
from tool.web import csv_export, privacy
from tool.web.app import get_db, get_services
from tool.web.auth import SessionClaims, current_session, requires_session, requires_staff
from tool.web.requests import field_errors, json_body, parse, query_bool, query_datetime
from tool.web.schemas import BulkCreate, BulkItem, EntryCreate, EntryUpdate, VoidRequest, dt_json

bp = Blueprint("ledger_api", __name__, url_prefix="/api/grades")


def money(value: Decimal) -> str:
    """Decimal points as an exact string with two places ("12.50")."""
    return f"{value:.2f}"


def entry_json(e: GradeEntry) -> dict[str, Any]:
    """An entry with the seed's field names."""
    return {
        "id": e.id, "offeringId": e.offering_id, "studentId": e.student_id, "points": money(e.points),
        "typeCode": e.type_code, "typeLabel": e.type_label, "description": e.description,
        "lessonId": e.lesson_id, "homeworkSubmissionId": e.homework_submission_id,
        "gradedAt": dt_json(e.graded_at), "status": e.status, "version": e.version,
        "createdBy": e.created_by, "createdAt": dt_json(e.created_at),
        "updatedBy": e.updated_by, "updatedAt": dt_json(e.updated_at),
        "voidedBy": e.voided_by, "voidedAt": dt_json(e.voided_at), "voidReason": e.void_reason,
    }


def revision_json(r: GradeEntryRevision) -> dict[str, Any]:
    """One earlier version of an entry."""
    return {
        "version": r.version, "points": money(r.points), "typeCode": r.type_code, "typeLabel": r.type_label,
        "description": r.description, "lessonId": r.lesson_id, "homeworkSubmissionId": r.homework_submission_id,
        "gradedAt": dt_json(r.graded_at), "changedBy": r.changed_by, "changedAt": dt_json(r.changed_at),
    }


def totals_json(t: ledger.Totals) -> dict[str, Any]:
    """Total, count and breakdowns (every type code present, zero where none)."""
    return {
        "total": money(t.total),
        "entryCount": t.count,
        "breakdownByType": {code: money(t.by_type.get(code, ledger.ZERO)) for code in TYPE_CODES},
        "breakdownByLabel": {label: money(v) for label, v in sorted(t.by_label.items())},
        "entryCountByType": {code: t.count_by_type.get(code, 0) for code in TYPE_CODES},
    }


# -- authorisation -------------------------------------------------------------------------


def offering_of_course(offering_id: int, s: SessionClaims) -> Offering:
    """The offering, which must belong to the session's course."""
    offering = get_db().get(Offering, offering_id)
    if offering is None:
        raise NotFound(f"Offering {offering_id} does not exist.")
    if offering.course_id != s.course_id:
        raise Forbidden("This offering belongs to another course.")
    return offering


def entry_for(entry_id: int, s: SessionClaims, *, write: bool) -> GradeEntry:
    """The entry, if the session may see it (staff of its course, or its own student). For a write
    its row is locked until the request's transaction ends: writers of one entry take turns."""
    entry = ledger.get_entry(get_db(), entry_id, for_update=write)
    offering_of_course(entry.offering_id, s)
    if s.is_staff:
        return entry
    if write or Role.STUDENT not in s.roles or entry.student_id != s.person_id:
        raise Forbidden("Students may only read their own entries.")
    return entry


def etag(e: GradeEntry) -> str:
    """The entry's entity tag: its version (and its voiding, which keeps the version)."""
    return f'"{e.version}-voided"' if e.status == "VOIDED" else f'"{e.version}"'


def with_etag(e: GradeEntry, status: int = 200) -> Any:
    """An entry answer: its JSON with its ETag."""
    resp = jsonify(entry_json(e))
    resp.status_code = status
    resp.headers["ETag"] = etag(e)
    return resp


def expected_version(e: GradeEntry, body_version: int | None) -> int | None:
    """The version a writer read: from If-Match (an ETag of this API, or `*`) or the body's
    `version`; None when it sent neither (the write is serialised all the same)."""
    header = request.headers.get("If-Match")
    if header is None or not header.strip():
        return body_version
    tags = [t.strip() for t in header.split(",") if t.strip()]
    if "*" in tags or etag(e) in tags:
        return e.version if body_version is None else body_version
    # A stale or foreign tag: a version that cannot match, so the write is refused as stale.
    return 0


def _changed(exc: ledger.EntryChanged | ledger.EntryVoided, e: GradeEntry) -> ToolError:
    """The 409 with the entry as it is now, so the page can show the other teacher's change."""
    return type(exc)(exc.message, details={**(exc.details or {}), "current": entry_json(e)})


def _window() -> ledger.Window:
    since, until = query_datetime("from"), query_datetime("to", end_of_day=True)
    if since and until and since > until:
        raise ValidationError("'from' is after 'to'.", details=[{"field": "from", "message": "after 'to'"}])
    return ledger.Window(since=since, until=until)


def _values(body: EntryCreate | BulkCreate, *, points: Decimal, homework: str | None, description: str | None,
            lesson: str | None) -> ledger.EntryValues:
    return ledger.EntryValues(points=points, type_code=body.type_code, type_label=body.type_label,
                              description=description, lesson_id=lesson, homework_submission_id=homework,
                              graded_at=body.graded_at)


def _usual() -> Decimal:
    """How far from 0 one entry usually is (the ledger_confirm_points setting)."""
    return get_services().settings.ledger_confirm_points


def _check_range(findings: list[bonus.Finding | None], *, confirmed: bool) -> None:
    """Points far outside the usual range need the teacher's confirmation (tool/bonus.py)."""
    bonus.enforce(findings, confirmed=confirmed)


# -- endpoints ------------------------------------------------------------------------------


@bp.post("/entries")
@requires_staff
def create_entry() -> Any:
    """Create one entry."""
    s = current_session()
    body = parse(EntryCreate, json_body())
    offering = offering_of_course(body.offering_id, s)
    db = get_db()
    values = _values(body, points=body.points, homework=body.homework_submission_id, description=body.description,
                     lesson=body.lesson_id)
    _check_range([bonus.ledger_finding(body.points, _usual(), field="points")], confirmed=body.confirm_bonus)
    entry, _ = gradebook.add_entry(db, course_id=offering.course_id, offering_id=offering.id,
                                   student_id=body.student_id, actor_id=s.person_id, values=values)
    out = with_etag(entry, 201)
    db.commit()
    return out


@bp.post("/entries/bulk")
@requires_staff
def create_entries() -> Any:
    """Create many entries for one offering: all or nothing, every bad item reported by index."""
    s = current_session()
    raw = json_body()
    body = parse(BulkCreate, raw)
    offering = offering_of_course(body.offering_id, s)
    db = get_db()
    problems: list[dict[str, Any]] = []
    items: list[tuple[int, BulkItem]] = []
    seen: dict[int, int] = {}
    for index, data in enumerate(body.items):
        try:
            item = BulkItem.model_validate(data)
        except Exception as exc:  # pydantic.ValidationError
            for p in field_errors(exc, prefix=("items", index)):  # type: ignore[arg-type]
                problems.append({"index": index, **p})
            continue
        if item.student_id in seen:
            problems.append({"index": index, "field": f"items.{index}.studentId",
                             "message": f"student {item.student_id} appears twice (first at index {seen[item.student_id]})"})
            continue
        seen[item.student_id] = index
        items.append((index, item))
    on_roster = ledger.roster_student_ids(db, course_id=offering.course_id, candidates=[i.student_id for _, i in items])
    for index, item in items:
        if item.student_id not in on_roster:
            problems.append({"index": index, "field": f"items.{index}.studentId", "code": "student_not_in_offering",
                             "message": f"student {item.student_id} is not a student of this offering"})
    if problems:
        problems.sort(key=lambda p: p["index"])
        raise ValidationError(f"{len({p['index'] for p in problems})} of {len(body.items)} items are invalid; nothing was saved.",
                              details=problems)
    bound = _usual()
    _check_range([bonus.ledger_finding(item.points, bound, field=f"items.{index}.points") for index, item in items],
                 confirmed=body.confirm_bonus)
    values = [
        (item.student_id, _values(body, points=item.points, homework=item.homework_submission_id,
                                  description=item.description or body.description, lesson=body.lesson_session_id))
        for _, item in items
    ]
    ids, _ = gradebook.add_entries(db, course_id=offering.course_id, offering_id=offering.id, actor_id=s.person_id,
                                   items=values)
    db.commit()
    return jsonify(offeringId=offering.id, created=len(ids), ids=ids), 201


@bp.get("/entries/<int:entry_id>")
@requires_session
def get_entry(entry_id: int) -> Any:
    """One entry (staff of its course, or the student it belongs to), with its ETag."""
    s = current_session()
    entry = entry_for(entry_id, s, write=False)
    if s.is_staff:
        return with_etag(entry)
    from tool.web import released  # (imports this module)

    manual, seen = released.released(get_db(), offering_id=entry.offering_id, key="total", student_id=s.person_id)
    if manual:  # the entry as last released to the student, if it was
        shown = next((e for e in (seen or {}).get("entries", []) if e.get("id") == entry.id), None)
        if shown is None:
            raise NotFound(f"Entry {entry_id} does not exist.")
        return jsonify(shown)
    resp = jsonify(privacy.for_student("entry", entry_json(entry)))
    resp.headers["ETag"] = etag(entry)
    return resp


@bp.get("/entries/<int:entry_id>/history")
@requires_staff
def get_history(entry_id: int) -> Any:
    """An entry with its earlier versions."""
    entry = entry_for(entry_id, current_session(), write=False)
    return jsonify(entry=entry_json(entry), revisions=[revision_json(r) for r in ledger.entry_history(get_db(), entry_id=entry.id)])


@bp.put("/entries/<int:entry_id>")
@requires_staff
def update_entry(entry_id: int) -> Any:
    """Correct an ACTIVE entry; the given fields replace the old ones, which are kept as a revision.

    With `If-Match` (the entry's ETag) or a `version` field, a stale write is refused with 409
    entry_changed and the entry as it is now; without, writes are serialised (row lock), so N
    accepted corrections are N revisions with consecutive versions.
    """
    s = current_session()
    body = parse(EntryUpdate, json_body())
    given = body.model_fields_set
    if not given - {"version", "confirm_bonus"}:
        raise ValidationError("Send at least one field to change; an empty correction is not saved.",
                              code="empty_update", details=[{"field": "body", "message": "no field to change"}])
    entry = entry_for(entry_id, s, write=True)
    code = body.type_code if "type_code" in given else entry.type_code
    label = body.type_label if "type_label" in given else (entry.type_label if code == "CUSTOM" else None)
    try:
        from tool.ledger.rules import check_type

        code, label = check_type(code, label)
    except ValueError as exc:
        raise ValidationError("The request has invalid fields.", details=[{"field": "typeLabel", "message": str(exc)}]) from None

    def pick(name: str) -> Any:
        return getattr(body, name) if name in given else getattr(entry, name)

    values = ledger.EntryValues(
        points=body.points if body.points is not None else entry.points, type_code=code, type_label=label,
        description=pick("description"), lesson_id=pick("lesson_id"),
        homework_submission_id=pick("homework_submission_id"), graded_at=body.graded_at or entry.graded_at,
    )
    if "points" in given and body.points is not None and body.points != entry.points:
        _check_range([bonus.ledger_finding(body.points, _usual(), field="points")], confirmed=body.confirm_bonus)
    db = get_db()
    try:
        gradebook.correct_entry(db, entry=entry, actor_id=s.person_id, values=values,
                                expected_version=expected_version(entry, body.version))
    except (ledger.EntryChanged, ledger.EntryVoided) as exc:
        raise _changed(exc, entry) from None
    out = with_etag(entry)
    db.commit()
    return out


@bp.delete("/entries/<int:entry_id>")
@requires_staff
def void_entry(entry_id: int) -> Any:
    """Void an entry (soft delete) with a reason, from the JSON body or `?reason=`."""
    s = current_session()
    data = json_body() if request.content_length else {"reason": request.args.get("reason", "")}
    body = parse(VoidRequest, data)
    entry = entry_for(entry_id, s, write=True)
    db = get_db()
    try:
        gradebook.void_entry(db, entry=entry, actor_id=s.person_id, reason=body.reason,
                             expected_version=expected_version(entry, body.version))
    except (ledger.EntryChanged, ledger.EntryVoided) as exc:
        raise _changed(exc, entry) from None
    out = with_etag(entry)
    db.commit()
    return out


@bp.get("/students/<int:student_id>/offerings/<int:offering_id>")
@requires_session
def student_offering(student_id: int, offering_id: int) -> Any:
    """A student's entries, total and breakdown in an offering."""
    s = current_session()
    offering = offering_of_course(offering_id, s)
    if not s.is_staff and (Role.STUDENT not in s.roles or student_id != s.person_id):
        raise Forbidden("Students may only read their own grades.")
    db = get_db()
    person = db.get(Person, student_id)
    if person is None or person.registration_id != s.registration_id:
        raise NotFound(f"Student {student_id} does not exist.")
    if s.is_staff and not ledger.belongs_to_offering(db, course_id=offering.course_id, offering_id=offering.id,
                                                     student_id=student_id):
        # Staff see their course's students (and former ones with entries here), nobody else.
        raise Forbidden("This person is not a student of this offering.")
    window = _window()
    if not s.is_staff:
        from tool.web import released  # (imports this module)

        manual, seen = released.released(db, offering_id=offering.id, key="total", student_id=student_id)
        if manual:  # the ledger total is held: the entries and total of the student's last release
            seen = seen or {"entries": [], **totals_json(ledger.Totals())}
            shown = [e for e in seen["entries"] if query_bool("includeVoided") or e.get("status") != "VOIDED"]
            return jsonify(studentId=student_id, offeringId=offering.id, name=person.name,
                           **{**seen, "entries": shown})
    entries = ledger.list_entries(db, offering_id=offering.id, student_id=student_id, window=window,
                                  include_voided=query_bool("includeVoided"))
    totals = ledger.totals_by_student(db, offering_id=offering.id, student_ids=[student_id], window=window)
    return jsonify(
        studentId=student_id, offeringId=offering.id, name=person.name,
        entries=[entry_json(e) if s.is_staff else privacy.for_student("entry", entry_json(e)) for e in entries],
        **totals_json(totals.get(student_id, ledger.Totals())),
    )


def group_summary_rows(group_id: int, offering_id: int) -> tuple[Offering, list[dict[str, Any]]]:
    """Every roster student (zero where no entries), then former students who have entries."""
    s = current_session()
    if group_id != s.course_id:
        raise Forbidden("This group is another course.")
    offering = offering_of_course(offering_id, s)
    db = get_db()
    window = _window()
    totals = ledger.totals_by_student(db, offering_id=offering.id, window=window)
    roster = ledger.roster_students(db, course_id=group_id)
    on_roster = {p.id for p in roster}
    former = ledger.people(db, (sid for sid in totals if sid not in on_roster))
    rows = []
    for people, in_roster in ((roster, True), (sorted(former, key=lambda p: (p.family_name, p.name)), False)):
        for p in people:
            rows.append({"studentId": p.id, "name": p.name, "email": p.email, "inRoster": in_roster,
                         **totals_json(totals.get(p.id, ledger.Totals()))})
    return offering, rows


@bp.get("/groups/<int:group_id>/offerings/<int:offering_id>/summary")
@requires_staff
def group_summary(group_id: int, offering_id: int) -> Any:
    """Per-student total and breakdown for the course roster."""
    offering, rows = group_summary_rows(group_id, offering_id)
    return jsonify(groupId=group_id, offeringId=offering.id, typeCodes=list(TYPE_CODES), students=rows)


@bp.route("/groups/<int:group_id>/offerings/<int:offering_id>/summary.csv", methods=["GET", "POST"])
@requires_staff
def group_summary_csv(group_id: int, offering_id: int) -> Any:
    """The summary as CSV (one row per student, a column per type code): UTF-8 with BOM, formula
    cells escaped (the page's link POSTs its token); `?format=semicolon` for spreadsheets that use a decimal comma (tool/web/csv_export.py)."""
    dialect = csv_export.dialect_of(request.values.get("format"))
    offering, rows = group_summary_rows(group_id, offering_id)
    N = csv_export.Number
    header = ["student_id", "name", "email", "in_roster", "total", *[c.lower() for c in TYPE_CODES], "entries"]
    body = csv_export.render(header, ([r["studentId"], r["name"], r["email"], r["inRoster"], N(r["total"]),
                                       *[N(r["breakdownByType"][c]) for c in TYPE_CODES], r["entryCount"]]
                                      for r in rows), dialect=dialect)
    suffix = "" if dialect == "comma" else f"-{dialect}"
    filename = f"tally-offering-{offering.id}-summary{suffix}.csv"
    return Response(body.encode("utf-8"), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
