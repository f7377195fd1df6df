"""What a student may see: the one list every student-readable answer is cut to.

Teachers' answers carry who changed what and why (notes such as an override's or a voiding's
reason); a student's carry their own points, grades and the facts about them, nothing a teacher
wrote for colleagues. Every endpoint a student can read builds its teacher answer and passes it
through `for_student(kind, …)`, which keeps only the fields listed here: a field added to an
answer later stays teacher-only until someone adds it to this list on purpose.

tests/e2e/test_privacy.py calls every GET route of the app with a student's session and fails on
any TEACHER_ONLY field in any answer.
"""

from __future__ import annotations

from typing import Any

# Never in a student's answer, whatever the endpoint.
TEACHER_ONLY = frozenset({
    "overrideReason",  # a teacher's note on a manual grade
    "overrideBy", "overrideAt",
    "voidReason",  # why an entry was voided
    "createdBy", "updatedBy", "voidedBy", "changedBy", "actorId", "appliedBy",  # which colleague did it
    "reason",  # a grade event's note (the override's reason)
    "activeSchemeId", "schemeId", "versionHash", "email",
})

# Answers that describe Tally rather than anyone's data (field names, not values): not cut.
DOCUMENTS = frozenset({"/api/openapi.json"})

STUDENT_FIELDS: dict[str, frozenset[str]] = {
    # a ledger entry (GET /api/grades/entries/{id}, the student's entries)
    "entry": frozenset({"id", "offeringId", "studentId", "points", "typeCode", "typeLabel", "description", "lessonId",
                        "homeworkSubmissionId", "gradedAt", "status", "version", "createdAt", "updatedAt",
                        "voidedAt"}),
    # an assessment's participation (GET /api/assessments/{id}, /api/me/grades)
    "participation": frozenset({"id", "studentId", "status", "points", "tasks", "grade", "gradeSource", "override",
                                "updatedAt", "name"}),
    # an assessment with the student's own participation (GET /api/assessments/{id})
    "assessment": frozenset({"id", "offeringId", "title", "kind", "maxPoints", "source", "ledgerTypeCodes", "tasks",
                             "createdAt", "participations"}),
    # one grade in a participation's history
    "grade_event": frozenset({"grade", "source", "points", "at", "schemeVersion"}),
}


def for_student(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` cut to the fields a student may see of a `kind` (a key of STUDENT_FIELDS)."""
    allowed = STUDENT_FIELDS[kind]
    return {k: v for k, v in data.items() if k in allowed}
