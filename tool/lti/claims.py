"""LTI claim names and the one table that maps LTI role URIs to Tally roles.

Role vocabularies: LTI 1.3 core spec §A.2 (https://www.imsglobal.org/spec/lti/v1p3/#role-vocabularies).
Context (membership) roles decide what someone may do *in this course*; of the
institution and system roles only Administrator counts, because Canvas sends
`institution/person#Student` to every student of the institution, including in courses
where they teach.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterable

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = LTI + "message_type"
VERSION = LTI + "version"
DEPLOYMENT_ID = LTI + "deployment_id"
TARGET_LINK_URI = LTI + "target_link_uri"
RESOURCE_LINK = LTI + "resource_link"
ROLES = LTI + "roles"
CONTEXT = LTI + "context"
TOOL_PLATFORM = LTI + "tool_platform"
CUSTOM = LTI + "custom"
LAUNCH_PRESENTATION = LTI + "launch_presentation"
AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"

# Service scopes a tool asks for in its token requests (AGS 2.0, NRPS 2.0).
AGS_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCOPE_SCORE = AGS_SCOPE + "score"
SCOPE_LINEITEM = AGS_SCOPE + "lineitem"
SCOPE_LINEITEM_READONLY = AGS_SCOPE + "lineitem.readonly"
SCOPE_RESULT_READONLY = AGS_SCOPE + "result.readonly"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"

# The custom parameter a deep-linked Tally item carries (tool/lti/deeplink.py): what its
# line item holds.
TALLY_SOURCE = "tally_source"
TALLY_SOURCES = ("ledger_total", "assessment")

MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
MEMBERSHIP_SUB = "http://purl.imsglobal.org/vocab/lis/v2/membership/"
INSTITUTION = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#"
SYSTEM = "http://purl.imsglobal.org/vocab/lis/v2/system/person#"


class Role(str, Enum):
    """What a person may do in Tally, per course."""

    TEACHER = "TEACHER"
    MODERATOR = "MODERATOR"
    ADMIN = "ADMIN"
    SUPER_ADMIN = "SUPER_ADMIN"
    STUDENT = "STUDENT"


STAFF_ROLES = frozenset({Role.TEACHER, Role.MODERATOR, Role.ADMIN, Role.SUPER_ADMIN})

# Context roles by their short name (the part after '#', or the whole value when a
# platform sends the deprecated short form such as "Instructor").
_CONTEXT_ROLES: dict[str, Role | None] = {
    "Instructor": Role.TEACHER,
    "TeachingAssistant": Role.MODERATOR,
    # A content developer (Canvas "Designer") builds the course and may manage its grades.
    "ContentDeveloper": Role.MODERATOR,
    "Administrator": Role.ADMIN,
    "Manager": Role.ADMIN,
    "Learner": Role.STUDENT,
    # Mentors (Canvas "Observer", parents) see someone else's work: no ledger access of
    # their own; they get the "no access" page rather than a student's view.
    "Mentor": None,
    "Member": None,
    "Officer": None,
}

# Sub-roles are named after their principal role: membership/Instructor#TeachingAssistant.
_SUB_ROLE_OVERRIDES: dict[str, Role | None] = {
    "Instructor#TeachingAssistant": Role.MODERATOR,
    "Instructor#Grader": Role.MODERATOR,
    "Learner#Learner": Role.STUDENT,
    "Learner#NonCreditLearner": Role.STUDENT,
    "Administrator#Administrator": Role.ADMIN,
}

_INSTITUTION_OR_SYSTEM: dict[str, Role] = {
    INSTITUTION + "Administrator": Role.ADMIN,
    SYSTEM + "Administrator": Role.SUPER_ADMIN,
    SYSTEM + "SysAdmin": Role.SUPER_ADMIN,
}

_ORDER = [Role.SUPER_ADMIN, Role.ADMIN, Role.TEACHER, Role.MODERATOR, Role.STUDENT]


def map_role(uri: str) -> Role | None:
    """Map one LTI role URI (or short name) to a Tally role; None for roles Tally ignores."""
    uri = uri.strip()
    if uri in _INSTITUTION_OR_SYSTEM:
        return _INSTITUTION_OR_SYSTEM[uri]
    if uri.startswith(MEMBERSHIP):
        return _CONTEXT_ROLES.get(uri[len(MEMBERSHIP) :])
    if uri.startswith(MEMBERSHIP_SUB):
        sub = uri[len(MEMBERSHIP_SUB) :]
        if sub in _SUB_ROLE_OVERRIDES:
            return _SUB_ROLE_OVERRIDES[sub]
        return _CONTEXT_ROLES.get(sub.split("#", 1)[0])
    if ":" not in uri and "/" not in uri:
        return _CONTEXT_ROLES.get(uri)  # short form, e.g. "Learner"
    return None


def map_roles(uris: Iterable[str]) -> tuple[Role, ...]:
    """Map a `roles` claim to Tally roles, de-duplicated, strongest first."""
    found = {r for r in (map_role(u) for u in uris if isinstance(u, str)) if r is not None}
    return tuple(r for r in _ORDER if r in found)


def is_staff(roles: Iterable[Role | str]) -> bool:
    """True when any role may manage grades in its course."""
    return any(Role(r) in STAFF_ROLES for r in roles)
