"""The OpenAPI 3.1 document at /api/openapi.json.

Request bodies come from the same pydantic models that validate the requests
(tool/web/schemas.py); responses are described here.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint, jsonify
from pydantic.json_schema import models_json_schema

import tool
from tool.db import ID_MAX
from tool.ledger.models import TYPE_CODES
from tool.web.assessment_schemas import SCHEMAS as ASSESSMENT_SCHEMAS
from tool.web.schemas import SCHEMAS
from tool.web.sync_views import SCHEMAS as SYNC_SCHEMAS

bp = Blueprint("openapi", __name__)

MONEY = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["12.50"]}
TS = {"type": ["string", "null"], "format": "date-time"}
NULLABLE_MONEY = {"type": ["string", "null"], "pattern": r"^-?[0-9]+\.[0-9]{2}$"}
BREAKDOWN = {"type": "object", "properties": {c: MONEY for c in TYPE_CODES}}

RESPONSES: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string", "examples": ["validation_error", "forbidden", "entry_voided",
                                                              "student_not_in_offering", "not_found"]},
                       "message": {"type": "string"}, "details": {}},
    },
    "Entry": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"}, "offeringId": {"type": "integer"}, "studentId": {"type": "integer"},
            "points": MONEY, "typeCode": {"enum": list(TYPE_CODES)}, "typeLabel": {"type": ["string", "null"]},
            "description": {"type": ["string", "null"]}, "lessonId": {"type": ["string", "null"]},
            "homeworkSubmissionId": {"type": ["string", "null"]}, "gradedAt": TS,
            "status": {"enum": ["ACTIVE", "VOIDED"]}, "version": {"type": "integer"},
            "createdBy": {"type": "integer"}, "createdAt": TS, "updatedBy": {"type": ["integer", "null"]},
            "updatedAt": TS, "voidedBy": {"type": ["integer", "null"]}, "voidedAt": TS,
            "voidReason": {"type": ["string", "null"]},
        },
    },
    "Totals": {
        "type": "object",
        "properties": {"total": MONEY, "entryCount": {"type": "integer"}, "breakdownByType": BREAKDOWN,
                       "breakdownByLabel": {"type": "object", "additionalProperties": MONEY},
                       "entryCountByType": {"type": "object", "additionalProperties": {"type": "integer"}}},
    },
    "StudentOffering": {
        "allOf": [{"$ref": "#/components/schemas/Totals"}, {
            "type": "object",
            "properties": {"studentId": {"type": "integer"}, "offeringId": {"type": "integer"}, "name": {"type": "string"},
                           "entries": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}}}}],
    },
    "GroupSummary": {
        "type": "object",
        "properties": {
            "groupId": {"type": "integer"}, "offeringId": {"type": "integer"},
            "typeCodes": {"type": "array", "items": {"type": "string"}},
            "students": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/Totals"}, {
                "type": "object", "properties": {"studentId": {"type": "integer"}, "name": {"type": "string"},
                                                 "email": {"type": "string"}, "inRoster": {"type": "boolean"}}}]}},
        },
    },
    "Assessment": {"type": "object", "properties": {
        "id": {"type": "integer"}, "offeringId": {"type": "integer"}, "title": {"type": "string"},
        "kind": {"enum": ["exam", "course_grade"]}, "maxPoints": MONEY, "source": {"enum": ["tasks", "ledger"]},
        "ledgerTypeCodes": {"type": ["array", "null"], "items": {"enum": list(TYPE_CODES)}},
        "tasks": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "position": {"type": "integer"}, "title": {"type": "string"}, "maxPoints": MONEY}}},
        "createdAt": TS}},
    "Participation": {"type": "object", "properties": {
        "id": {"type": "integer"}, "studentId": {"type": "integer"},
        "status": {"enum": ["pending", "graded", "absent", "exempt"]}, "points": NULLABLE_MONEY,
        "tasks": {"type": "object", "additionalProperties": MONEY}, "grade": {"type": ["string", "null"]},
        "gradeSource": {"enum": ["scheme", "override", "absent", None]}, "schemeId": {"type": ["integer", "null"]},
        "override": {"type": "boolean"}, "overrideReason": {"type": ["string", "null"]},
        "overrideBy": {"type": ["integer", "null"]}, "overrideAt": TS, "updatedAt": TS}},
    "Scheme": {"type": "object", "properties": {
        "id": {"type": "integer"}, "assessmentId": {"type": "integer"}, "version": {"type": "integer"},
        "kind": {"const": "absolute"}, "active": {"type": "boolean"}, "status": {"enum": ["draft", "applied"]},
        "config": {"type": "object", "description": "canonical lower-bound form"}, "versionHash": {"type": "string"},
        "seedForm": {"type": "object", "description": "the seed's min_points/max_points (or min_pct/max_pct) form"},
        "createdBy": {"type": "integer"}, "createdAt": TS, "appliedAt": TS, "appliedBy": {"type": ["integer", "null"]}}},
    "Distribution": {"type": "object", "properties": {
        "count": {"type": "integer"}, "min": NULLABLE_MONEY, "max": NULLABLE_MONEY, "mean": NULLABLE_MONEY,
        "median": NULLABLE_MONEY, "stdev": NULLABLE_MONEY,
        "percentiles": {"type": "object", "properties": {p: NULLABLE_MONEY for p in ("10", "25", "50", "75", "90")}},
        "maxPossible": MONEY, "binWidth": MONEY,
        "histogram": {"type": "array", "items": {"type": "object", "properties": {
            "from": MONEY, "to": MONEY, "count": {"type": "integer"}}}}}},
    "Preview": {"type": "object", "properties": {
        "schemeId": {"type": "integer"},
        "rows": {"type": "array", "items": {"type": "object", "properties": {
            "studentId": {"type": "integer"}, "status": {"type": "string"}, "points": NULLABLE_MONEY,
            "percentage": NULLABLE_MONEY, "proposedGrade": {"type": ["string", "null"]},
            "currentGrade": {"type": ["string", "null"]}, "changes": {"type": "boolean"}, "override": {"type": "boolean"}}}},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}}, "passRate": NULLABLE_MONEY}},
    "ApplyResult": {"type": "object", "properties": {
        "schemeId": {"type": "integer"}, "version": {"type": "integer"}, "changed": {"type": "integer"},
        "unchanged": {"type": "integer"}, "overridden": {"type": "integer"}, "restamped": {"type": "integer"}, "alreadyApplied": {"type": "boolean"},
        "message": {"type": "string"}, "appliedAt": TS, "appliedBy": {"type": "integer"}}},
    "Bands": {"type": "object", "properties": {
        "unit": {"enum": ["points", "percent"]},
        "bands": {"type": "array", "items": {"type": "object", "properties": {
            "min": {"type": "string"}, "grade": {"type": "string"}}}}}},
    "CurveDefaults": {"type": "object", "properties": {
        "unit": {"enum": ["points", "percent"]}, "step": {"type": "string"}, "passing": {"type": "string"},
        "excellence": {"type": "string"},
        "stepChanged": {"type": "boolean", "description": "the step sent could not place every grade: a finer one"},
        "bands": {"type": "array", "items": {"type": "object", "properties": {
            "min": {"type": "string"}, "grade": {"type": "string"}}}}}},
    "GradeHistory": {"type": "object", "properties": {
        "studentId": {"type": "integer"}, "assessmentId": {"type": "integer"},
        "events": {"type": "array", "items": {"type": "object", "properties": {
            "grade": {"type": ["string", "null"]}, "source": {"type": "string"}, "schemeId": {"type": ["integer", "null"]},
            "schemeVersion": {"type": ["integer", "null"]}, "points": NULLABLE_MONEY, "reason": {"type": ["string", "null"]},
            "actorId": {"type": ["integer", "null"]}, "at": TS}}}}},
    "Me": {"type": "object", "properties": {"personId": {"type": "integer"}, "courseId": {"type": "integer"},
                                           "offeringId": {"type": "integer"},
                                           "roles": {"type": "array", "items": {"type": "string"}}}},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


ERRORS = {str(code): _json("Error", text) for code, text in (
    (401, "No valid session token"), (403, "Not allowed for this session (role or course)"),
    (404, "Not found"), (409, "The entry is voided (entry_voided), changed since the version sent (entry_changed: "
                              "details.current is the entry as it is now), or another request changed the same data "
                              "at the same moment (conflict), or points need the teacher's confirmation "
                              "(bonus_unconfirmed: task points or a total above the maximum, a ledger entry "
                              "beyond ± ledger_confirm_points; details list each field with its points and "
                              "limit; send the request again with \"confirmBonus\": true)"),
    (413, "The request body is over 1 MiB (body_too_large)"),
    (422, "Invalid fields; details list each (validation_error). Also invalid_json, invalid_encoding (not UTF-8), "
          "invalid_text (a NUL byte or lone surrogate), empty_update, too_many_bands, points_too_high (more "
          "than twice a task's or the assessment's maximum: a typo, refused even with confirmBonus)"),
    (503, "The database is busy or restarting (database_unavailable): nothing was saved; try again after "
          "Retry-After seconds"),
)}
ETAG = {"ETag": {"description": "The entry's version as an entity tag (\"3\"; \"3-voided\" once voided)",
                 "schema": {"type": "string"}}}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
            "description": "The ETag the writer read (or *): a stale one is refused with 409 entry_changed. The "
                           "body's `version` does the same."}


def _entry(description: str = "OK") -> dict[str, Any]:
    return {**_json("Entry", description), "headers": ETAG}


def _param(name: str, where: str = "path", schema: dict[str, Any] | None = None, description: str = "") -> dict[str, Any]:
    # Ids are PostgreSQL integers: outside 1 … 2147483647 a path names nothing (404).
    return {"name": name, "in": where, "required": where == "path",
            "schema": schema or {"type": "integer", "minimum": 1, "maximum": ID_MAX},
            "description": description}


WINDOW = [
    _param("from", "query", {"type": "string", "format": "date-time"}, "graded_at ≥ from (a date means 00:00 UTC)"),
    _param("to", "query", {"type": "string", "format": "date-time"}, "graded_at ≤ to (a date means end of day UTC)"),
]


def _paths() -> dict[str, Any]:
    entry = [_param("entryId")]
    return {
        "/api/me": {"get": {"summary": "The session's person, course, offering and roles", "responses": {"200": _json("Me"), **ERRORS}}},
        "/api/grades/entries": {"post": {"summary": "Create an entry", "requestBody": _body("EntryCreate"),
                                         "responses": {"201": _entry("Created"), **ERRORS}}},
        "/api/grades/entries/bulk": {"post": {
            "summary": "Create entries for many students of one offering (all or nothing)",
            "requestBody": _body("BulkCreate"),
            "responses": {"201": {"description": "Created", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"offeringId": {"type": "integer"}, "created": {"type": "integer"},
                                                 "ids": {"type": "array", "items": {"type": "integer"}}}}}}},
                          **ERRORS}}},
        "/api/grades/entries/{entryId}": {
            "get": {"summary": "Get an entry", "parameters": entry, "responses": {"200": _entry(), **ERRORS}},
            "put": {"summary": "Correct an ACTIVE entry (old values kept as a revision)",
                    "parameters": [*entry, IF_MATCH], "requestBody": _body("EntryUpdate"),
                    "responses": {"200": _entry(), **ERRORS}},
            "delete": {"summary": "Void an entry (soft delete) with a reason", "parameters": [*entry, IF_MATCH],
                       "requestBody": _body("VoidRequest"), "responses": {"200": _entry(), **ERRORS}},
        },
        "/api/grades/entries/{entryId}/history": {"get": {"summary": "An entry and its earlier versions", "parameters": entry,
                                                          "responses": {"200": {"description": "OK"}, **ERRORS}}},
        "/api/grades/students/{studentId}/offerings/{offeringId}": {"get": {
            "summary": "A student's entries, total and breakdown by type",
            "parameters": [_param("studentId"), _param("offeringId"), *WINDOW,
                           _param("includeVoided", "query", {"type": "boolean"}, "list voided entries too (never counted)")],
            "responses": {"200": _json("StudentOffering"), **ERRORS}}},
        "/api/grades/groups/{groupId}/offerings/{offeringId}/summary": {"get": {
            "summary": "Per-student total and breakdown for the course roster",
            "parameters": [_param("groupId", description="the course id"), _param("offeringId"), *WINDOW],
            "responses": {"200": _json("GroupSummary"), **ERRORS}}},
        "/api/grades/groups/{groupId}/offerings/{offeringId}/summary.csv": {"get": {
            "summary": "The summary as CSV: UTF-8 with BOM; a cell starting with = + - @ tab or CR gets a leading "
                       "' (formula injection)",
            "parameters": [_param("groupId"), _param("offeringId"), *WINDOW,
                           _param("format", "query", {"type": "string", "enum": ["comma", "semicolon"], "default": "comma"},
                                  "comma: ',' and a decimal point; semicolon: ';' and a decimal comma (Excel in "
                                  "German, French… locales)")],
            "responses": {"200": {"description": "CSV", "content": {"text/csv": {}}}, **ERRORS}}},
        **_assessment_paths(),
        **_delivery_paths(),
    }


def _assessment_paths() -> dict[str, Any]:
    a, st, sc = _param("assessmentId"), _param("studentId"), _param("schemeId")
    ok = lambda schema: {"200": _json(schema), **ERRORS}  # noqa: E731
    return {
        "/api/offerings/{offeringId}/assessments": {
            "post": {"summary": "Create an assessment (tasks or ledger as the source of points)",
                     "parameters": [_param("offeringId")], "requestBody": _body("AssessmentCreate"),
                     "responses": {"201": _json("Assessment", "Created"), **ERRORS}},
            "get": {"summary": "The offering's assessments", "parameters": [_param("offeringId")],
                    "responses": {"200": {"description": "OK"}, **ERRORS}}},
        "/api/assessments/{assessmentId}": {"get": {
            "summary": "An assessment with its participations (a student sees their own)", "parameters": [a],
            "responses": {"200": {"description": "Assessment with participations"}, **ERRORS}}},
        "/api/assessments/{assessmentId}/points/{studentId}": {"put": {
            "summary": "Enter a student's points (a total, or per task id; half points allowed)", "parameters": [a, st],
            "requestBody": _body("PointsIn"), "responses": ok("Participation")}},
        "/api/assessments/{assessmentId}/participations/{studentId}/status": {"put": {
            "summary": "Mark pending, graded, absent or exempt", "parameters": [a, st], "requestBody": _body("StatusIn"),
            "responses": ok("Participation")}},
        "/api/assessments/{assessmentId}/participations/{studentId}/override": {
            "put": {"summary": "A manual grade with a reason (never overwritten by apply)", "parameters": [a, st],
                    "requestBody": _body("OverrideIn"), "responses": ok("Participation")},
            "delete": {"summary": "Remove a manual grade", "parameters": [a, st], "responses": ok("Participation")}},
        "/api/assessments/{assessmentId}/participations/{studentId}/history": {"get": {
            "summary": "Every grade of the student and the scheme version or override that produced it",
            "parameters": [a, st], "responses": ok("GradeHistory")}},
        "/api/assessments/{assessmentId}/schemes": {
            "post": {"summary": "Save a draft scheme (seed form or lower-bound form); the next version",
                     "parameters": [a], "requestBody": _body("SchemeIn"),
                     "responses": {"201": _json("Scheme", "Created"), **ERRORS}},
            "get": {"summary": "Every version with who applied it and when", "parameters": [a],
                    "responses": {"200": {"description": "{schemes: [Scheme]}"}, **ERRORS}}},
        "/api/assessments/{assessmentId}/scheme-check": {"post": {
            "summary": "Check an unsaved config: problems, or counts per grade and pass rate", "parameters": [a],
            "requestBody": _body("SchemeIn"), "responses": {"200": {"description": "{valid, problems, counts, passRate}"},
                                                            **ERRORS}}},
        "/api/schemes/{schemeId}": {
            "get": {"summary": "One scheme version", "parameters": [sc], "responses": ok("Scheme")},
            "put": {"summary": "Change a draft in place; an applied version makes the next version (201)",
                    "parameters": [sc], "requestBody": _body("SchemeIn"),
                    "responses": {"200": _json("Scheme"), "201": _json("Scheme", "New version"), **ERRORS}}},
        "/api/assessments/{assessmentId}/distribution": {"get": {
            "summary": "Statistics and histogram of the graded points, before any scheme exists", "parameters": [a],
            "responses": ok("Distribution")}},
        "/api/schemes/{schemeId}/distribution": {"get": {
            "summary": "Statistics and histogram of the graded points", "parameters": [sc], "responses": ok("Distribution")}},
        "/api/schemes/{schemeId}/preview": {"get": {
            "summary": "Per student: points, percentage, proposed and current grade; counts and pass rate",
            "parameters": [sc], "responses": ok("Preview")}},
        "/api/schemes/{schemeId}/apply": {"post": {
            "summary": "Apply the version (one transaction; overrides skipped; idempotent)", "parameters": [sc],
            "responses": ok("ApplyResult")}},
        "/api/curves/two-point": {"post": {
            "summary": "Every band from passing and excellence thresholds", "requestBody": _body("TwoPointIn"),
            "responses": ok("Bands")}},
        "/api/curves/boundaries": {"post": {
            "summary": "Bands from one boundary per grade (manual mode)", "requestBody": _body("BoundariesIn"),
            "responses": ok("Bands")}},
        "/api/curves/defaults": {"post": {
            "summary": "The scheme workspace's defaults (passing 50 %, excellence 90 %) on a step at which every "
                       "grade fits: always a savable scheme", "requestBody": _body("CurveDefaultsIn"),
            "responses": ok("CurveDefaults")}},
        "/api/me/grades": {"get": {"summary": "A student's own grades in the session's offering",
                                   "responses": {"200": {"description": "OK"}, **ERRORS}}},
    }


SCORE = {"type": ["object", "null"], "properties": {
    "scoreGiven": NULLABLE_MONEY, "scoreMaximum": NULLABLE_MONEY,
    "activityProgress": {"enum": ["Initialized", "Started", "InProgress", "Submitted", "Completed"]},
    "gradingProgress": {"enum": ["FullyGraded", "Pending", "PendingManual", "Failed", "NotReady"]},
    "comment": {"type": ["string", "null"]}, "timestamp": TS}}
DELIVERY_STATE = {"enum": ["pending", "delivered", "retrying", "waiting", "failed", "superseded"],
                  "description": "waiting: the LMS takes no grade for this column until a teacher acts there "
                                 "(publishes the assignment, reopens the grading period or the course)"}
DELIVERY_RESPONSES: dict[str, Any] = {
    "Delivery": {"type": "object", "properties": {
        "offeringId": {"type": "integer"}, "connected": {"type": "boolean"}, "canManageColumns": {"type": "boolean"},
        "platform": {"enum": ["moodle", "canvas"]},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "columns": {"type": "array", "items": {"type": "object", "properties": {
            "key": {"type": "string", "examples": ["total", "assessment-3"]}, "label": {"type": "string"},
            "release": {"enum": ["automatic", "manual"]}, "lmsValue": {"enum": ["points", "percent", "grade"]},
            "gradeNumbers": {"type": ["object", "null"], "additionalProperties": MONEY},
            "counts": {"type": "object", "description": "held, released, delivered, superseded, failed",
                       "additionalProperties": {"type": "integer"}},
            "students": {"type": "array", "items": {"type": "object", "properties": {
                "studentId": {"type": "integer"}, "name": {"type": "string"},
                "state": {"enum": ["held", "released", "delivered", "superseded", "failed", "none"]},
                "held": {"type": "boolean"},
                "heldScore": {"type": ["object", "null"], "description": "the score the LMS gets on release"}}}}}}},
        "lineItems": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "target": {"type": "string", "examples": ["total", "assessment:3"]},
            "assessmentId": {"type": ["integer", "null"]}, "label": {"type": "string"}, "scoreMaximum": MONEY,
            "maximumSource": {"enum": ["default", "teacher", "lms", "assessment"]},
            "lineItemUrl": {"type": ["string", "null"]}, "boundVia": {"enum": ["launch", "found", "created", None]},
            "error": {"type": ["string", "null"], "description": "the LMS's words when binding failed"},
            "nextAttemptAt": TS}}},
        "deliveries": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "lineItemId": {"type": "integer"}, "studentId": {"type": "integer"},
            "name": {"type": "string"}, "state": DELIVERY_STATE, "desired": SCORE, "accepted": SCORE,
            "acceptedAt": TS, "attempts": {"type": "integer"}, "nextAttemptAt": TS,
            "lastStatus": {"type": ["integer", "null"]},
            "message": {"type": ["string", "null"],
                        "description": "the platform's words (failed, retrying, waiting, superseded)"},
            "note": {"type": ["string", "null"]}}}}}},
    "SyncResult": {"type": "object", "properties": {k: {"type": "integer"} for k in (
        "rescheduled", "sent", "accepted", "superseded", "retrying", "waiting", "failed", "held", "lineItemsBound",
        "lineItemErrors")}},
    "Requeued": {"type": "object", "properties": {"requeued": {"type": "integer"}}},
    "Released": {"type": "object", "properties": {"released": {"type": "integer"}}},
    "ColumnSettings": {"type": "object", "properties": {
        "key": {"type": "string"}, "release": {"enum": ["automatic", "manual"]},
        "lmsValue": {"enum": ["points", "percent", "grade"]},
        "gradeNumbers": {"type": ["object", "null"], "additionalProperties": {"type": "string"}}}},
    "DeliverySettings": {"type": "object", "properties": {
        "totalMaximum": MONEY, "maximumSource": {"enum": ["teacher"]}}},
    "ReadBack": {"type": "object", "properties": {
        "lineItems": {"type": "integer"}, "results": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "string"}},
        "differences": {"type": "array", "items": {"type": "object", "properties": {
            "lineItemId": {"type": "integer"}, "label": {"type": "string"}, "userId": {"type": "string"},
            "name": {"type": "string"}, "kind": {"enum": ["changed", "cleared", "clamped", "lms_only"]},
            "message": {"type": "string"}, "deliveryId": {"type": ["integer", "null"]},
            "tally": {"type": ["string", "null"]}, "lms": {"type": ["string", "null"]},
            "lmsComment": {"type": ["string", "null"]}, "resendable": {"type": "boolean"}}}}}},
}


def _delivery_paths() -> dict[str, Any]:
    o = [_param("offeringId")]
    base = "/api/offerings/{offeringId}/delivery"
    return {
        base: {"get": {"summary": "Per student and line item: the delivery state and the LMS's words",
                       "parameters": o, "responses": {"200": _json("Delivery"), **ERRORS}}},
        base + "/sync": {"post": {"summary": "Compute every score again and deliver now (bounded; workers do the rest)",
                                  "parameters": o, "responses": {"200": _json("SyncResult"), **ERRORS}}},
        base + "/retry": {"post": {"summary": "Send the failed scores again", "parameters": o,
                                   "responses": {"200": _json("Requeued"), **ERRORS}}},
        base + "/resend": {"post": {"summary": "Send chosen scores again over what the LMS holds", "parameters": o,
                                    "requestBody": _body("ResendIn"), "responses": {"200": _json("Requeued"), **ERRORS}}},
        base + "/settings": {"put": {"summary": "The maximum of the offering's total column", "parameters": o,
                                     "requestBody": _body("DeliverySettingsIn"),
                                     "responses": {"200": _json("DeliverySettings"), **ERRORS}}},
        base + "/readback": {"get": {"summary": "Read the LMS gradebook back (paged) and list differences",
                                     "parameters": o, "responses": {"200": _json("ReadBack"), **ERRORS}}},
        base + "/columns/{key}": {"put": {
            "summary": "A column's release policy (automatic | manual) and what the LMS column shows "
                       "(points | percent | grade, with the grade numbers)",
            "parameters": o + [_param("key", schema={"type": "string", "pattern": "^(total|assessment-[1-9][0-9]*)$"})],
            "requestBody": _body("ColumnIn"), "responses": {"200": _json("ColumnSettings"), **ERRORS}}},
        base + "/columns/{key}/release": {"post": {
            "summary": "Release a column's held changes (of studentIds, or every held student): they go to "
                       "the LMS and the students",
            "parameters": o + [_param("key", schema={"type": "string", "pattern": "^(total|assessment-[1-9][0-9]*)$"})],
            "requestBody": {**_body("ReleaseIn"), "required": False},
            "responses": {"200": _json("Released"), **ERRORS}}},
    }


@functools.cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once per process)."""
    _, defs = models_json_schema([(m, "validation") for m in (*SCHEMAS, *ASSESSMENT_SCHEMAS, *SYNC_SCHEMAS)],
                                 ref_template="#/components/schemas/{model}")
    schemas = {**defs.get("$defs", {}), **RESPONSES, **DELIVERY_RESPONSES}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tally API", "version": tool.__version__,
                 "description": "Every call carries the session token of an LTI launch: Authorization: Bearer <token>."},
        "components": {"schemas": schemas,
                       "securitySchemes": {"session": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"session": []}],
        "paths": _paths(),
    }


@bp.get("/api/openapi.json")
def openapi_json() -> Any:
    """Serve the OpenAPI document."""
    return jsonify(document())
