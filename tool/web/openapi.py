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
from tool.ledger.models import TYPE_CODES
from tool.web.schemas import SCHEMAS

bp = Blueprint("openapi", __name__)

MONEY = {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["12.50"]}
TS = {"type": ["string", "null"], "format": "date-time"}
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
    (404, "Not found"), (409, "The entry is voided"), (422, "Invalid fields; details list each"),
)}


def _param(name: str, where: str = "path", schema: dict[str, Any] | None = None, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema or {"type": "integer"},
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
                                         "responses": {"201": _json("Entry", "Created"), **ERRORS}}},
        "/api/grades/entries/bulk": {"post": {
            "summary": "Create entries for many students of one offering (all or nothing)",
            "requestBody": _body("BulkCreate"),
            "responses": {"201": {"description": "Created", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"offeringId": {"type": "integer"}, "created": {"type": "integer"},
                                                 "ids": {"type": "array", "items": {"type": "integer"}}}}}}},
                          **ERRORS}}},
        "/api/grades/entries/{entryId}": {
            "get": {"summary": "Get an entry", "parameters": entry, "responses": {"200": _json("Entry"), **ERRORS}},
            "put": {"summary": "Correct an ACTIVE entry (old values kept as a revision)", "parameters": entry,
                    "requestBody": _body("EntryUpdate"), "responses": {"200": _json("Entry"), **ERRORS}},
            "delete": {"summary": "Void an entry (soft delete) with a reason", "parameters": entry,
                       "requestBody": _body("VoidRequest"), "responses": {"200": _json("Entry"), **ERRORS}},
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
            "summary": "The summary as CSV", "parameters": [_param("groupId"), _param("offeringId"), *WINDOW],
            "responses": {"200": {"description": "CSV", "content": {"text/csv": {}}}, **ERRORS}}},
    }


@functools.cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once per process)."""
    _, defs = models_json_schema([(m, "validation") for m in SCHEMAS], ref_template="#/components/schemas/{model}")
    schemas = {**defs.get("$defs", {}), **RESPONSES}
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
