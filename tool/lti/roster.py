"""The course roster: NRPS members become persons and memberships; the sync use case.

A sync reads the whole roster from the platform outside any database transaction, then
writes it in one. Students the platform no longer lists leave the roster (`inactive`);
their ledger entries stay. Staff are never removed for being absent: a Moodle site admin
or a Canvas account admin launches without being enrolled, so NRPS never lists them.

    ToolError
    └── RosterNotOffered   the platform sent no NRPS endpoint for this course
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tool.clock import utcnow
from tool.config import Settings
from tool.db import upsert
from tool.errors import NotFound, ToolError
from tool.lti.assertion import TokenRequestError
from tool.lti.claims import SCOPE_NRPS, Role, is_staff, map_roles
from tool.lti.models import Course, Membership, Person, Registration, roles_include_student
from tool.lti.nrps import Member, MemberStatus, RosterUnavailable, fetch_members

ACTIVE, INACTIVE, DELETED = "active", "inactive", "deleted"
_MEMBERSHIP_STATUS = {MemberStatus.ACTIVE: ACTIVE, MemberStatus.INACTIVE: INACTIVE, MemberStatus.DELETED: DELETED}
_PERSON_FIELDS = ("name", "given_name", "family_name", "email")
# Keeps every `IN (…)` well under SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK = 500
T = TypeVar("T")


class RosterNotOffered(ToolError):
    """The course has no NRPS endpoint: the platform did not offer the roster service."""

    code = "roster_not_offered"


@dataclass(frozen=True)
class RosterChange:
    """What a sync changed: memberships added, updated, that left the roster, and members listed."""

    added: int
    updated: int
    left: int
    total: int
    synced_at: dt.datetime


@dataclass(frozen=True)
class PersonFields:
    """The profile fields of a person that the roster can tell us."""

    name: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""


@dataclass(frozen=True)
class RosterEntry:
    """One member of a course as Tally knows them."""

    person_id: int
    name: str
    given_name: str
    family_name: str
    email: str
    roles: tuple[Role, ...]
    status: str
    last_launch_at: dt.datetime | None

    @property
    def is_staff(self) -> bool:
        """True for teachers, moderators and admins."""
        return is_staff(self.roles)


@dataclass(frozen=True)
class TokenTarget:
    """The registration whose token endpoint grants the roster's access token."""

    id: int
    issuer: str
    client_id: str
    auth_token_url: str
    auth_audience: str | None


class RosterServices(Protocol):
    """What `sync_roster` needs of the process's services (the web app's, a worker's maintenance)."""

    @property
    def settings(self) -> Settings:
        """The process's settings (HTTP timeout)."""

    @property
    def http(self) -> requests.Session:
        """The session the roster is read with."""

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The database."""

    def service_token(self, reg: TokenTarget, scopes: Sequence[str]) -> str:
        """An access token of the registration covering `scopes` (the process's shared tokens)."""


def membership_status(status: MemberStatus) -> str:
    """The Tally membership status of an NRPS member status."""
    return _MEMBERSHIP_STATUS[status]


def person_fields(member: Member) -> PersonFields:
    """The profile a member carries; `name` falls back to given and family name, as at launch."""
    name = member.name or " ".join(p for p in (member.given_name, member.family_name) if p)
    return PersonFields(name=name, given_name=member.given_name, family_name=member.family_name, email=member.email)


def merge_person(known: PersonFields | None, member: Member) -> PersonFields:
    """The person after this member: new values win, but an empty one never erases a known one.

    Platforms withhold names and emails when the tool's privacy level forbids them (Canvas
    "anonymous", Moodle "never share"); that is not the person losing their name.
    """
    listed = person_fields(member)
    if known is None:
        return listed
    return PersonFields(**{f: getattr(listed, f) or getattr(known, f) for f in _PERSON_FIELDS})


def parse_roles(csv: str) -> tuple[Role, ...]:
    """The Tally roles of a membership's comma-separated `roles` column (unknown words skipped)."""
    known = {r.value for r in Role}
    return tuple(Role(r) for r in csv.split(",") if r in known)


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _known_persons(db: Session, registration_id: int, subs: Sequence[str]) -> dict[str, tuple[int, PersonFields]]:
    known: dict[str, tuple[int, PersonFields]] = {}
    for chunk in _chunks(subs):
        rows = db.execute(
            select(Person.id, Person.sub, Person.name, Person.given_name, Person.family_name, Person.email).where(
                Person.registration_id == registration_id, Person.sub.in_(chunk)
            )
        )
        for row in rows:
            known[row.sub] = (row.id, PersonFields(row.name, row.given_name, row.family_name, row.email))
    return known


def _write_person(db: Session, registration_id: int, sub: str, fields: PersonFields, now: dt.datetime) -> int:
    # Only non-empty fields go into the UPDATE, so a launch racing this sync keeps its names too.
    filled = tuple(f for f in _PERSON_FIELDS if getattr(fields, f))
    values = {"registration_id": registration_id, "sub": sub, **{f: getattr(fields, f) for f in _PERSON_FIELDS},
              "updated_at": now}
    row = upsert(db, Person.__table__, values, conflict=("registration_id", "sub"), update=(*filled, "updated_at"),
                 returning=Person.__table__.c.id)
    return int(row[0])


def apply_roster(
    db: Session,
    *,
    course_id: int,
    registration_id: int,
    members: Iterable[Member],
    complete: bool,
    as_of: dt.datetime | None = None,
) -> RosterChange:
    """Write a roster into persons and memberships; when `complete`, absent students leave.

    `as_of` is when the roster was read: a student who launched after it keeps an active
    membership even if absent (they may have enrolled after the platform answered).
    """
    now = utcnow()
    course = db.scalar(select(Course).where(Course.id == course_id, Course.registration_id == registration_id))
    if course is None:
        raise NotFound("This course does not exist in Tally.")
    listed: dict[str, Member] = {}
    for member in members:
        listed[member.user_id] = member  # a platform listing someone twice: the last entry wins
    known = _known_persons(db, registration_id, list(listed))
    existing = {
        row.person_id: row
        for row in db.execute(
            select(Membership.id, Membership.person_id, Membership.roles, Membership.lti_roles, Membership.status,
                   Membership.last_launch_at).where(Membership.course_id == course_id)
        )
    }
    added = updated = left = 0
    seen: set[int] = set()
    for sub, member in listed.items():
        before = known.get(sub)
        fields = merge_person(before[1] if before else None, member)
        person_changed = before is None or before[1] != fields
        if before is not None and not person_changed:
            person_id = before[0]
        else:
            person_id = _write_person(db, registration_id, sub, fields, now)
        seen.add(person_id)
        roles = ",".join(r.value for r in map_roles(member.roles))
        status = membership_status(member.status)
        previous = existing.get(person_id)
        membership_changed = previous is None or (previous.roles, list(previous.lti_roles or []), previous.status) != (
            roles, list(member.roles), status)
        if membership_changed:
            upsert(
                db,
                Membership.__table__,
                {"course_id": course_id, "person_id": person_id, "roles": roles,
                 "is_student": roles_include_student(roles), "lti_roles": list(member.roles),
                 "status": status, "updated_at": now},
                conflict=("course_id", "person_id"),
                update=("roles", "is_student", "lti_roles", "status", "updated_at"),
            )
        if previous is None:
            added += 1
        elif previous.status == ACTIVE and status != ACTIVE:
            left += 1
        elif membership_changed or person_changed:
            updated += 1
    # An LMS lists at least the course's teacher: an empty answer is a fault on its side (a
    # misconfigured service, a truncated page), never "everybody left", so nobody leaves on it.
    if complete and listed:
        leaving = [
            row.id for person_id, row in existing.items()
            if person_id not in seen and row.status == ACTIVE and not is_staff(parse_roles(row.roles))
            and not (as_of is not None and row.last_launch_at is not None and row.last_launch_at >= as_of)
        ]
        for chunk in _chunks(leaving):
            result = db.execute(
                update(Membership)
                .where(Membership.id.in_(chunk), Membership.status == ACTIVE)
                .values(status=INACTIVE, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            left += result.rowcount  # type: ignore[attr-defined]
    course.roster_synced_at = now
    db.flush()
    return RosterChange(added=added, updated=updated, left=left, total=len(listed), synced_at=now)


def list_roster(db: Session, *, course_id: int, include_inactive: bool = False) -> list[RosterEntry]:
    """The course's members: students first, then staff, each by family name."""
    query = (
        select(Person.id, Person.name, Person.given_name, Person.family_name, Person.email, Membership.roles,
               Membership.status, Membership.last_launch_at)
        .join(Membership, Membership.person_id == Person.id)
        .where(Membership.course_id == course_id)
    )
    if not include_inactive:
        query = query.where(Membership.status == ACTIVE)
    entries = [
        RosterEntry(person_id=row.id, name=row.name or " ".join(p for p in (row.given_name, row.family_name) if p),
                    given_name=row.given_name, family_name=row.family_name, email=row.email,
                    roles=parse_roles(row.roles), status=row.status, last_launch_at=row.last_launch_at)
        for row in db.execute(query)
    ]
    # Without a family name (privacy settings), the full name is the best sort key there is.
    return sorted(entries, key=lambda e: (e.is_staff, (e.family_name or e.name).casefold(),
                                          e.given_name.casefold(), e.name.casefold(), e.person_id))


def sync_roster(services: RosterServices, *, course_id: int,
                after_write: Callable[[Session], object] | None = None) -> RosterChange:
    """Read the course's roster from its platform and write it; commits its own transaction.

    `after_write` runs in that transaction after the roster is written (tool/gradebook.py gives
    the students who joined their participations there).
    """
    # A short read, ended before any HTTP: a slow LMS must not hold a transaction (on
    # SQLite, BEGIN IMMEDIATE would block every launch for as long as the LMS takes).
    with services.sessions() as db, db.begin():
        target = db.execute(
            select(Course.nrps_url, Course.registration_id, Registration.issuer, Registration.client_id,
                   Registration.auth_token_url, Registration.auth_audience)
            .join(Registration, Registration.id == Course.registration_id)
            .where(Course.id == course_id)
        ).first()
    if target is None:
        raise NotFound("This course does not exist in Tally.")
    if not target.nrps_url:
        raise RosterNotOffered(
            "The LMS did not offer the roster service (Names and Role Provisioning) for this course, so Tally "
            "cannot read its class list. Ask the LMS administrator to let the tool see the course's members, "
            "then open Tally from the course again."
        )
    as_of = utcnow()
    timeout = services.settings.http_timeout_seconds
    reg = TokenTarget(target.registration_id, target.issuer, target.client_id, target.auth_token_url,
                      target.auth_audience)
    try:
        # The registration's shared token (one for all its granted scopes where the LMS allows):
        # Canvas charges every token request extra against its rate limit.
        token = services.service_token(reg, [SCOPE_NRPS])
    except TokenRequestError as exc:
        raise RosterUnavailable(
            f"The LMS did not grant Tally access to the roster: {exc.message}", details=exc.details
        ) from exc
    members = fetch_members(services.http, url=target.nrps_url, access_token=token, timeout=timeout)
    with services.sessions() as db, db.begin():
        change = apply_roster(db, course_id=course_id, registration_id=target.registration_id, members=members,
                              complete=True, as_of=as_of)
        if after_write is not None:
            after_write(db)
        return change
