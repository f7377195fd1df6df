"""Assessments, task points, grading schemes, curves: the JSON API of the exam workflow.

Same rules as the ledger: staff of the offering's course do everything; a student reads
their own participation and grade only; nobody reaches another course.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Blueprint, jsonify

from tool import gradebook
from tool.assessments import service as svc
from tool.assessments.models import Assessment, GradeEvent, GradeScheme, Participation
from tool.errors import Forbidden, NotFound, ValidationError
from tool.lti.claims import Role
from tool.lti.models import Person
from tool.schemes import bands as scheme_bands
from tool.schemes import curve, stats
from tool.schemes.scale import scale_from
from tool.web import privacy, released
from tool.web.app import get_db
from tool.web.assessment_schemas import (AssessmentCreate, BoundariesIn, CurveDefaultsIn, OverrideIn, PointsIn,
                                         SchemeIn, StatusIn, TwoPointIn)
from tool.web.auth import SessionClaims, current_session, requires_session, requires_staff
from tool.web.ledger_api import money, offering_of_course
from tool.web.requests import json_body, parse
from tool.web.schemas import dt_json

bp = Blueprint("assessments_api", __name__, url_prefix="/api")


def _m(value: Decimal | None) -> str | None:
    return money(value) if value is not None else None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _pass_rate(grades: list[str | None], scale: Any) -> str | None:
    """The pass rate in percent with two places ("75.00"), None when nobody has a grade."""
    rate = stats.pass_rate(grades, scale)
    return money(rate * 100) if rate is not None else None


def assessment_json(a: Assessment, tasks: list[Any]) -> dict[str, Any]:
    """An assessment with its tasks."""
    return {"id": a.id, "offeringId": a.offering_id, "title": a.title, "kind": a.kind, "maxPoints": money(a.max_points),
            "source": a.source, "ledgerTypeCodes": a.ledger_type_codes,
            "tasks": [{"id": t.id, "position": t.position, "title": t.title, "maxPoints": money(t.max_points)} for t in tasks],
            "createdAt": dt_json(a.created_at)}


def participation_json(p: Participation, task_points: dict[int, Decimal] | None = None) -> dict[str, Any]:
    """A participation: status, points, grade and what produced it."""
    return {"id": p.id, "studentId": p.student_id, "status": p.status, "points": _m(p.points_total),
            "tasks": {str(k): money(v) for k, v in (task_points or {}).items()},
            "grade": p.grade_value, "gradeSource": p.grade_source, "schemeId": p.grade_scheme_id,
            "override": p.manual_override, "overrideReason": p.override_reason, "overrideBy": p.override_by,
            "overrideAt": dt_json(p.override_at), "updatedAt": dt_json(p.updated_at)}


def scheme_json(s: GradeScheme, assessment: Assessment) -> dict[str, Any]:
    """A scheme version with both band forms and its audit fields."""
    config = svc.scheme_config(s, assessment)
    return {"id": s.id, "assessmentId": s.assessment_id, "version": s.version, "kind": s.kind, "active": s.active,
            "status": "applied" if s.applied_at else "draft", "config": s.config, "versionHash": s.version_hash,
            "seedForm": scheme_bands.to_seed_form(config, max_points=assessment.max_points),
            "createdBy": s.created_by, "createdAt": dt_json(s.created_at),
            "appliedAt": dt_json(s.applied_at), "appliedBy": s.applied_by}


def distribution_json(d: stats.Distribution) -> dict[str, Any]:
    """Statistics with Decimals as strings."""
    return {"count": d.count, "min": _m(d.min), "max": _m(d.max), "mean": _m(d.mean), "median": _m(d.median),
            "stdev": _m(d.stdev), "percentiles": {str(k): _m(v) for k, v in (d.percentiles or {}).items()},
            "maxPossible": money(d.max_possible),
            "binWidth": money(d.bin_width),
            "histogram": [{"from": money(b.lo), "to": money(b.hi), "count": b.count} for b in d.histogram]}


# -- authorisation ------------------------------------------------------------------------------


def assessment_for(assessment_id: int, s: SessionClaims) -> Assessment:
    """The assessment if it belongs to the session's course."""
    a = svc.get_assessment(get_db(), assessment_id)
    offering_of_course(a.offering_id, s)
    return a


def scheme_for(scheme_id: int, s: SessionClaims) -> tuple[GradeScheme, Assessment]:
    """The scheme version and its assessment, if of the session's course."""
    scheme = svc.get_scheme(get_db(), scheme_id)
    return scheme, assessment_for(scheme.assessment_id, s)


def _course_of(a: Assessment, s: SessionClaims) -> int:
    return offering_of_course(a.offering_id, s).course_id


# -- assessments --------------------------------------------------------------------------------


@bp.post("/offerings/<int:offering_id>/assessments")
@requires_staff
def create_assessment(offering_id: int) -> Any:
    """Create an exam or course grade (tasks or ledger as the source of points)."""
    s = current_session()
    offering = offering_of_course(offering_id, s)
    body = parse(AssessmentCreate, json_body())
    db = get_db()
    a = gradebook.create_assessment(db, offering_id=offering.id, course_id=offering.course_id, title=body.title,
                                    max_points=body.max_points, source=body.source, kind=body.kind,
                                    ledger_type_codes=body.ledger_type_codes,
                                    tasks=[(t.title, t.max_points) for t in body.tasks], actor_id=s.person_id)
    out = assessment_json(a, svc.tasks_of(db, assessment_id=a.id))
    db.commit()
    return jsonify(out), 201


@bp.get("/offerings/<int:offering_id>/assessments")
@requires_session
def list_assessments(offering_id: int) -> Any:
    """The offering's assessments."""
    s = current_session()
    offering_of_course(offering_id, s)
    db = get_db()
    return jsonify(assessments=[assessment_json(a, svc.tasks_of(db, assessment_id=a.id))
                                for a in svc.assessments_of(db, offering_id=offering_id)])


@bp.get("/assessments/<int:assessment_id>")
@requires_session
def get_assessment(assessment_id: int) -> Any:
    """An assessment with every participation (staff) or one's own (student)."""
    s = current_session()
    a = assessment_for(assessment_id, s)
    db = get_db()
    # Read only: students who joined got their participation from the launch or roster sync
    # that told Tally (tool/gradebook.py roster_changed).
    parts = svc.participations_of(db, assessment_id=a.id)
    if not s.is_staff:
        if Role.STUDENT not in s.roles:
            raise Forbidden("Only teachers and the course's students see assessments.")
        parts = [p for p in parts if p.student_id == s.person_id]
    tp = svc.task_points_of(db, assessment_id=a.id)
    if not s.is_staff:
        manual, seen = released.released(db, offering_id=a.offering_id, key=f"assessment-{a.id}",
                                         student_id=s.person_id)
        if manual:  # the student's participation as last released (none before the first release)
            return jsonify(privacy.for_student("assessment", {
                **assessment_json(a, svc.tasks_of(db, assessment_id=a.id)),
                "participations": [{**seen, "name": ""}] if seen is not None else []}))
    names = dict(db.execute(Person.__table__.select().with_only_columns(Person.id, Person.name)
                            .where(Person.id.in_([p.student_id for p in parts]))).all()) if parts else {}
    active = svc.active_scheme(db, assessment_id=a.id)
    return jsonify(_seen_by(s, "assessment", {
                   **assessment_json(a, svc.tasks_of(db, assessment_id=a.id)),
                   "activeSchemeId": active.id if active and s.is_staff else None,
                   "participations": [_seen_by(s, "participation",
                                            {**participation_json(p, tp.get(p.id)), "name": names.get(p.student_id, "")})
                                   for p in parts]}))


def _seen_by(s: SessionClaims, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` as the session may see it: whole for staff, cut to tool/web/privacy.py for a student."""
    return data if s.is_staff else privacy.for_student(kind, data)


def _participation(a: Assessment, student_id: int, s: SessionClaims) -> Participation:
    """The participation a write changes (the assessment locked first: gradebook.participation_for_write)."""
    return gradebook.participation_for_write(get_db(), assessment=a, student_id=student_id,
                                             course_id=_course_of(a, s))


@bp.put("/assessments/<int:assessment_id>/points/<int:student_id>")
@requires_staff
def put_points(assessment_id: int, student_id: int) -> Any:
    """Enter a student's total or task points; regrades at once after apply (unless overridden)."""
    s = current_session()
    a = assessment_for(assessment_id, s)
    body = parse(PointsIn, json_body())
    if (body.points is None) == (body.tasks is None) and not (body.points is None and "points" in body.model_fields_set):
        raise ValidationError("Send either points or tasks.", details=[{"field": "points", "message": "points or tasks"}])
    db = get_db()
    part = _participation(a, student_id, s)
    gradebook.enter_points(db, assessment=a, part=part, points=body.points, task_points=body.tasks,
                           actor_id=s.person_id, confirm_bonus=body.confirm_bonus)
    part = db.get(Participation, part.id)
    out = participation_json(part, svc.task_points_of(db, assessment_id=a.id).get(part.id))
    db.commit()
    return jsonify(out)


@bp.put("/assessments/<int:assessment_id>/participations/<int:student_id>/status")
@requires_staff
def put_status(assessment_id: int, student_id: int) -> Any:
    """Mark pending, graded, absent (gets the absent grade) or exempt (no grade)."""
    s = current_session()
    a = assessment_for(assessment_id, s)
    body = parse(StatusIn, json_body())
    db = get_db()
    part = _participation(a, student_id, s)
    gradebook.set_status(db, assessment=a, part=part, status=body.status, actor_id=s.person_id)
    out = participation_json(db.get(Participation, part.id))
    db.commit()
    return jsonify(out)


@bp.put("/assessments/<int:assessment_id>/participations/<int:student_id>/override")
@requires_staff
def put_override(assessment_id: int, student_id: int) -> Any:
    """A manual grade with a reason; apply never overwrites it."""
    s = current_session()
    a = assessment_for(assessment_id, s)
    body = parse(OverrideIn, json_body())
    db = get_db()
    part = _participation(a, student_id, s)
    gradebook.override_grade(db, assessment=a, part=part, grade=body.grade, reason=body.reason, actor_id=s.person_id)
    out = participation_json(db.get(Participation, part.id))
    db.commit()
    return jsonify(out)


@bp.delete("/assessments/<int:assessment_id>/participations/<int:student_id>/override")
@requires_staff
def delete_override(assessment_id: int, student_id: int) -> Any:
    """Remove a manual grade: the applied scheme grades the student again."""
    s = current_session()
    a = assessment_for(assessment_id, s)
    db = get_db()
    part = _participation(a, student_id, s)
    gradebook.remove_override(db, assessment=a, part=part, actor_id=s.person_id)
    out = participation_json(db.get(Participation, part.id))
    db.commit()
    return jsonify(out)


def event_json(e: GradeEvent) -> dict[str, Any]:
    """One grade in a participation's history."""
    return {"grade": e.grade_value, "source": e.source, "schemeId": e.scheme_id, "points": _m(e.points_total),
            "reason": e.reason, "actorId": e.actor_id, "at": dt_json(e.at)}


@bp.get("/assessments/<int:assessment_id>/participations/<int:student_id>/history")
@requires_session
def grade_history(assessment_id: int, student_id: int) -> Any:
    """Every grade the student had here and what produced it (scheme version or override)."""
    s = current_session()
    a = assessment_for(assessment_id, s)
    if not s.is_staff and (Role.STUDENT not in s.roles or student_id != s.person_id):
        raise Forbidden("Students may only read their own grades.")
    db = get_db()
    part = svc.find_participation(db, assessment_id=a.id, student_id=student_id)
    if part is None:
        raise NotFound(f"Student {student_id} has no participation in this assessment.")
    versions = {sc.id: sc.version for sc in svc.scheme_versions(db, assessment_id=a.id)}
    events = svc.grade_history(db, participation_id=part.id)
    if not s.is_staff:
        manual, _ = released.released(db, offering_id=a.offering_id, key=f"assessment-{a.id}", student_id=student_id)
        if manual:  # grades up to the student's last release only
            until = released.released_at(db, offering_id=a.offering_id, key=f"assessment-{a.id}",
                                         student_id=student_id)
            events = [e for e in events if until is not None and e.at <= until]
    return jsonify(studentId=student_id, assessmentId=a.id,
                   events=[_seen_by(s, "grade_event", {**event_json(e), "schemeVersion": versions.get(e.scheme_id)})
                           for e in events])


# -- schemes ------------------------------------------------------------------------------------

MAX_BANDS = 100  # bands of a scheme, grades of a custom scale: far above any real scale (German: 11)


def _bounded(config: Any, field: str = "config") -> Any:
    """Refuse a scheme config or scale whose lists are too long to be a grading scheme, before any
    work on them (100,000 bands would otherwise cost seconds of CPU per request)."""
    if not isinstance(config, dict):
        return config
    lists = [("bands", config.get("bands"))]
    scale = config.get("scale")
    if isinstance(scale, dict):
        lists += [("scale.grades", scale.get("grades")), ("scale.failing", scale.get("failing"))]
    for name, value in lists:
        if isinstance(value, list) and len(value) > MAX_BANDS:
            raise ValidationError(f"A scheme has at most {MAX_BANDS} bands and grades; {name} has {len(value)}.",
                                  code="too_many_bands",
                                  details=[{"field": f"{field}.{name}", "message": f"at most {MAX_BANDS}"}])
    return config



@bp.post("/assessments/<int:assessment_id>/schemes")
@requires_staff
def create_scheme(assessment_id: int) -> Any:
    """Save a draft scheme (the next version, now the active one)."""
    s = current_session()
    a = assessment_for(assessment_id, s)
    body = parse(SchemeIn, json_body())
    _bounded(body.config)
    db = get_db()
    scheme = gradebook.save_scheme(db, assessment=a, raw_config=body.config, actor_id=s.person_id)
    out = scheme_json(scheme, a)
    db.commit()
    return jsonify(out), 201


@bp.get("/assessments/<int:assessment_id>/schemes")
@requires_staff
def list_schemes(assessment_id: int) -> Any:
    """Every version with who applied it and when (audit)."""
    s = current_session()
    a = assessment_for(assessment_id, s)
    return jsonify(schemes=[scheme_json(sc, a) for sc in svc.scheme_versions(get_db(), assessment_id=a.id)])


@bp.post("/assessments/<int:assessment_id>/scheme-check")
@requires_staff
def check_scheme(assessment_id: int) -> Any:
    """Live check of an unsaved config: its problems, and if valid the counts per grade and pass rate."""
    s = current_session()
    a = assessment_for(assessment_id, s)
    body = parse(SchemeIn, json_body())
    _bounded(body.config)
    try:
        config = scheme_bands.parse_config(body.config, max_points=a.max_points)
    except scheme_bands.SchemeInvalid as exc:
        return jsonify(valid=False, problems=exc.details or [{"band": None, "message": exc.message}])
    rows = svc.preview(get_db(), assessment=a, config=config)
    grades = [r.proposed_grade for r in rows]
    return jsonify(valid=True, problems=[], counts=stats.grade_counts(grades, config.scale),
                   passRate=_pass_rate(grades, config.scale), changes=sum(1 for r in rows if r.changes))


@bp.get("/schemes/<int:scheme_id>")
@requires_staff
def get_scheme(scheme_id: int) -> Any:
    """One scheme version."""
    scheme, a = scheme_for(scheme_id, current_session())
    return jsonify(scheme_json(scheme, a))


@bp.put("/schemes/<int:scheme_id>")
@requires_staff
def put_scheme(scheme_id: int) -> Any:
    """Change a scheme: a draft changes in place; an applied version makes the next version (201)."""
    s = current_session()
    scheme, a = scheme_for(scheme_id, s)
    body = parse(SchemeIn, json_body())
    _bounded(body.config)
    db = get_db()
    saved = gradebook.save_scheme(db, assessment=a, raw_config=body.config, actor_id=s.person_id, draft=scheme)
    out = scheme_json(saved, a)
    db.commit()
    return jsonify(out), (200 if saved.id == scheme.id else 201)


@bp.get("/assessments/<int:assessment_id>/distribution")
@requires_staff
def get_assessment_distribution(assessment_id: int) -> Any:
    """The distribution of the points before any scheme exists (the first of the four phases)."""
    a = assessment_for(assessment_id, current_session())
    return jsonify(distribution_json(svc.distribution(get_db(), assessment=a)))


@bp.get("/schemes/<int:scheme_id>/distribution")
@requires_staff
def get_distribution(scheme_id: int) -> Any:
    """Statistics of the assessment's graded points (count … percentiles, histogram)."""
    _, a = scheme_for(scheme_id, current_session())
    return jsonify(distribution_json(svc.distribution(get_db(), assessment=a)))


@bp.get("/schemes/<int:scheme_id>/preview")
@requires_staff
def get_preview(scheme_id: int) -> Any:
    """What applying would do: per student points, percentage, proposed and current grade."""
    scheme, a = scheme_for(scheme_id, current_session())
    config = svc.scheme_config(scheme, a)
    rows = svc.preview(get_db(), assessment=a, config=config)
    grades = [r.proposed_grade for r in rows]
    return jsonify(
        schemeId=scheme.id,
        rows=[{"studentId": r.student_id, "status": r.status, "points": _m(r.points), "percentage": _m(r.percentage),
               "proposedGrade": r.proposed_grade, "currentGrade": r.current_grade, "changes": r.changes,
               "override": r.overridden} for r in rows],
        counts=stats.grade_counts(grades, config.scale), passRate=_pass_rate(grades, config.scale),
    )


@bp.post("/schemes/<int:scheme_id>/apply")
@requires_staff
def apply(scheme_id: int) -> Any:
    """Apply the version: one transaction, overrides skipped; the same version again changes nothing."""
    s = current_session()
    scheme, a = scheme_for(scheme_id, s)
    db = get_db()
    result = gradebook.apply_scheme(db, assessment=a, scheme=scheme, course_id=_course_of(a, s),
                                    actor_id=s.person_id)
    applied = db.get(GradeScheme, scheme.id)
    db.commit()
    if result.already_applied:
        message = "Already applied: nothing changed."
    else:
        message = f"Applied version {applied.version}: {_count(result.changed, 'grade')} changed"
        if result.restamped:
            message += f", {_count(result.restamped, 'unchanged grade')} now attributed to this version"
        if result.overridden:
            message += f", {_count(result.overridden, 'manual grade')} kept"
        message += "."
    return jsonify(schemeId=scheme.id, version=applied.version, changed=result.changed, unchanged=result.unchanged,
                   overridden=result.overridden, restamped=result.restamped,
                   alreadyApplied=result.already_applied, message=message,
                   appliedAt=dt_json(applied.applied_at), appliedBy=applied.applied_by)


# -- curves -------------------------------------------------------------------------------------


def _bands_json(bands: tuple[scheme_bands.Band, ...]) -> list[dict[str, str]]:
    return [{"min": scheme_bands.number_text(b.min), "grade": b.grade} for b in bands]


@bp.post("/curves/two-point")
@requires_staff
def two_point() -> Any:
    """Every band from the passing and excellence thresholds (linear, snapped to the step)."""
    body = parse(TwoPointIn, json_body())
    _bounded({"scale": body.scale}, "body")
    bands = curve.two_point(passing=body.passing, excellence=body.excellence, max_points=body.max_points,
                            step=body.step, scale=scale_from(body.scale), unit=body.unit)
    return jsonify(unit=body.unit, bands=_bands_json(bands))


@bp.post("/curves/defaults")
@requires_staff
def curve_defaults() -> Any:
    """The scheme workspace's defaults: passing at 50 %, excellence at 90 %, on a step at which
    every grade fits, so that the curve it starts from can always be saved (tool/schemes/curve.py)."""
    body = parse(CurveDefaultsIn, json_body())
    _bounded({"scale": body.scale}, "body")
    found = curve.default_curve(max_points=body.max_points, scale=scale_from(body.scale), unit=body.unit,
                                step=body.step)
    return jsonify(unit=body.unit, step=scheme_bands.number_text(found.step),
                   passing=scheme_bands.number_text(found.passing),
                   excellence=scheme_bands.number_text(found.excellence),
                   stepChanged=found.step_changed, bands=_bands_json(found.bands))


@bp.post("/curves/boundaries")
@requires_staff
def boundaries() -> Any:
    """Bands from one boundary per grade (manual mode), validated."""
    body = parse(BoundariesIn, json_body())
    _bounded({"scale": body.scale}, "body")
    scale = scale_from(body.scale)
    bands = curve.from_boundaries(list(body.boundaries), scale=scale, unit=body.unit, max_points=body.max_points,
                                  step=body.step)
    return jsonify(unit=body.unit, bands=_bands_json(bands))


@bp.get("/me/grades")
@requires_session
def my_grades() -> Any:
    """A student's own grades in the session's offering."""
    s = current_session()
    if Role.STUDENT not in s.roles:
        raise Forbidden("Only students have grades here.")
    db = get_db()
    out = []
    for a in svc.assessments_of(db, offering_id=s.offering_id):
        manual, seen = released.released(db, offering_id=a.offering_id, key=f"assessment-{a.id}",
                                         student_id=s.person_id)
        if manual:  # a manual column: what was released to this student, never a held value
            out.append({"assessmentId": a.id, "title": a.title, "maxPoints": money(a.max_points),
                        "participation": seen, "released": True})
            continue
        part = db.query(Participation).filter_by(assessment_id=a.id, student_id=s.person_id).one_or_none()
        out.append({"assessmentId": a.id, "title": a.title, "maxPoints": money(a.max_points),
                    "participation": privacy.for_student("participation", participation_json(part)) if part else None})
    return jsonify(grades=out)


