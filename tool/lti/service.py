"""What a launch writes: person, course, offering, membership and the launch record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from tool.clock import utcnow
from tool.db import column_text, upsert
from tool.lti import claims as c
from tool.lti.claims import TALLY_SOURCE, TALLY_SOURCES, Role
from tool.lti.launch import Launch
from tool.lti.models import Course, LaunchRecord, Membership, Offering, Person

_INSERT_RECORD = insert(LaunchRecord.__table__)


@dataclass(frozen=True)
class LaunchContext:
    """Who launched where: the ids a session token is bound to."""

    registration_id: int
    person_id: int
    course_id: int
    offering_id: int
    roles: tuple[Role, ...]


def record_launch(db: Session, launch: Launch) -> LaunchContext:
    """Upsert the person, course, offering and membership of a launch (latest wins)."""
    now = utcnow()
    person_id = upsert(
        db,
        Person.__table__,
        {
            "registration_id": launch.registration_id,
            "sub": launch.sub,
            "name": launch.name or " ".join(p for p in (launch.given_name, launch.family_name) if p),
            "given_name": launch.given_name,
            "family_name": launch.family_name,
            "email": launch.email,
            "updated_at": now,
        },
        conflict=("registration_id", "sub"),
        update=("name", "given_name", "family_name", "email", "updated_at"),
        returning=Person.__table__.c.id,
    )[0]
    # A launch without a context claim (rare: a tool placement outside any course) gets a
    # course of its deployment, so the offering still has a home.
    context_id = launch.context_id or f"deployment:{launch.deployment_id}"
    course_values: dict[str, Any] = {
        "registration_id": launch.registration_id,
        "context_id": context_id,
        "title": launch.context_title or launch.context_label or context_id,
        "label": launch.context_label,
        "updated_at": now,
    }
    course_update = ["title", "label", "updated_at"]
    if launch.nrps_url:
        course_values["nrps_url"] = launch.nrps_url
        course_update.append("nrps_url")
    course_id = upsert(
        db, Course.__table__, course_values, conflict=("registration_id", "context_id"), update=course_update,
        returning=Course.__table__.c.id,
    )[0]
    ags = launch.ags or {}
    custom = launch.claims.get(c.CUSTOM)
    source = custom.get(TALLY_SOURCE) if isinstance(custom, dict) else None
    offering_values: dict[str, Any] = {
        "course_id": course_id,
        "deployment_id": launch.deployment_pk,
        "resource_link_id": launch.resource_link_id,
        "title": launch.resource_link_title or launch.context_title or "Tally",
        "ags_lineitems_url": ags.get("lineitems") if isinstance(ags.get("lineitems"), str) else None,
        "ags_lineitem_url": ags.get("lineitem") if isinstance(ags.get("lineitem"), str) else None,
        "ags_scopes": [s for s in ags.get("scope", []) if isinstance(s, str)] if isinstance(ags.get("scope"), list) else [],
        "nrps_url": launch.nrps_url,
        "updated_at": now,
    }
    offering_update = ["deployment_id", "title", "ags_lineitems_url", "ags_lineitem_url", "ags_scopes", "nrps_url",
                       "updated_at"]
    if source in TALLY_SOURCES:
        # A deep-linked placement: which target its own line item is for (tool/delivery/bindings.py).
        offering_values["tally_source"] = source
        offering_update.append("tally_source")
    offering_id = upsert(
        db,
        Offering.__table__,
        offering_values,
        conflict=("course_id", "resource_link_id"),
        update=tuple(offering_update),
        returning=Offering.__table__.c.id,
    )[0]
    upsert(
        db,
        Membership.__table__,
        {
            "course_id": course_id,
            "person_id": person_id,
            "roles": ",".join(r.value for r in launch.roles),
            "is_student": Role.STUDENT in launch.roles,
            "lti_roles": list(launch.lti_roles),
            "status": "active",
            "last_launch_at": now,
            "updated_at": now,
        },
        conflict=("course_id", "person_id"),
        update=("roles", "is_student", "lti_roles", "status", "last_launch_at", "updated_at"),
    )
    db.connection().execute(
        _INSERT_RECORD,
        {"at": now, "outcome": "accepted", "code": "ok", "reason": "", "issuer": launch.issuer,
         "client_id": launch.client_id, "deployment_id": launch.deployment_id, "sub": launch.sub,
         "extra": {"roles": [r.value for r in launch.roles]}},
    )
    return LaunchContext(
        registration_id=launch.registration_id, person_id=person_id, course_id=course_id,
        offering_id=offering_id, roles=launch.roles,
    )


def record_refusal(db: Session, *, code: str, reason: str, claims: dict[str, Any] | None = None) -> None:
    """Keep a refused launch with its reason for the admin console."""
    claims = claims or {}
    aud = claims.get("aud")
    db.connection().execute(
        _INSERT_RECORD,
        {"at": utcnow(), "outcome": "refused", "code": _text(code, 64), "reason": _text(reason, 2000),
         "issuer": _text(claims.get("iss"), 500),
         "client_id": _text(aud[0] if isinstance(aud, list) and aud else aud, 255),
         "deployment_id": _text(claims.get("https://purl.imsglobal.org/spec/lti/claim/deployment_id"), 255),
         "sub": _text(claims.get("sub"), 255), "extra": {}},
    )


def _text(value: Any, limit: int) -> str:
    """A claim as sent by anyone, as text a column holds (tool/db.column_text)."""
    return column_text(str(value or ""), limit)
