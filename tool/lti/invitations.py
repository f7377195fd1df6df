"""Registration by invitation: Dynamic Registration for whoever holds a one-time URL an admin made.

`/lti/register` fetches URLs a browser hands it and stores what it finds, so it does nothing for
an anonymous caller unless the URL carries a valid invitation (`dynamic_registration_open`
lifts this for development and the sandbox). An admin makes one with `python -m tool platforms
invite [--name …] [--expires …]` or the button on /admin, and pastes the printed URL into
Moodle or Canvas; both keep its query string and add their own parameters to it.

One invitation registers one platform, once:

- `claim` holds it for the registration in progress (two browsers with one URL: one goes on,
  the other is told it is in use), committed before the platform is called;
- `use` marks it used in the transaction that stores the registration;
- `release` lets it go after a failed attempt, so the admin can start again from the LMS.

Only the SHA-256 of the secret is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tool.clock import utcnow
from tool.config import Settings
from tool.errors import Forbidden, ValidationError
from tool.lti.models import RegistrationInvitation

log = logging.getLogger("tool.lti.invitations")

PARAM = "invitation"
MAX_NAME = 200
MIN_SECONDS = 60
MAX_SECONDS = 90 * 86400
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d{1,6})\s*(m|min|h|d|w)\s*$", re.IGNORECASE)


class InvitationRefused(Forbidden):
    """The invitation in the registration URL is missing, unknown, expired, used or in use."""

    code = "invitation_invalid"


@dataclass(frozen=True)
class CreatedInvitation:
    """A new invitation: the URL to paste into the LMS (shown once), its name and expiry."""

    id: int
    url: str
    name: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class ClaimedInvitation:
    """An invitation held by the registration in progress."""

    id: int
    name: str


def token_hash(token: str) -> str:
    """What the database keeps of an invitation's secret."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def parse_expiry(text: str, *, now: dt.datetime | None = None) -> int:
    """Seconds from now until an invitation expires: "90m", "12h", "7d", "2w", or an ISO 8601 date-time."""
    value = (text or "").strip()
    m = _DURATION.match(value)
    if m:
        seconds = int(m.group(1)) * _UNITS[m.group(2).lower()]
    else:
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"expires: {value!r} is neither a duration (90m, 12h, 7d, 2w) nor a date-time (2027-01-31T12:00Z).",
                details={"expires": "a duration like 12h or 7d, or an ISO 8601 date-time"},
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = int((when - (now or utcnow())).total_seconds())
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValidationError("expires: an invitation lasts between 1 minute and 90 days.",
                              details={"expires": "between 1 minute and 90 days from now"})
    return seconds


def describe_lifetime(seconds: int) -> str:
    """"12 hours", "7 days", … for the admin who made the invitation."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds // 60} minutes"


def invitation_url(settings: Settings, token: str) -> str:
    """The registration URL carrying the invitation."""
    return f"{settings.public_base_url}/lti/register?{PARAM}={token}"


def create_invitation(db: Session, settings: Settings, *, name: str = "", expires_in_seconds: int | None = None,
                      created_by: str = "") -> CreatedInvitation:
    """Store a new invitation (never commits); its URL is in the answer and nowhere else."""
    name = " ".join((name or "").split())
    if len(name) > MAX_NAME or "\x00" in name:
        raise ValidationError(f"name: at most {MAX_NAME} characters.", details={"name": f"at most {MAX_NAME} characters"})
    seconds = settings.invitation_ttl_seconds if expires_in_seconds is None else int(expires_in_seconds)
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValidationError("expires: an invitation lasts between 1 minute and 90 days.",
                              details={"expires": "between 1 minute and 90 days from now"})
    token = secrets.token_urlsafe(24)
    now = utcnow()
    row = RegistrationInvitation(token_hash=token_hash(token), name=name, created_by=created_by[:200],
                                 created_at=now, expires_at=now + dt.timedelta(seconds=seconds))
    db.add(row)
    db.flush()
    return CreatedInvitation(id=row.id, url=invitation_url(settings, token), name=name, expires_at=row.expires_at)


def claim(db: Session, token: str, *, hold_seconds: float) -> ClaimedInvitation:
    """Hold a valid invitation for the registration in progress (commits), or InvitationRefused."""
    if not token:
        raise InvitationRefused(
            "This Tally registers platforms only through an invitation URL that its administrator made.",
            code="invitation_required")
    digest = token_hash(token)
    now = utcnow()
    result = db.execute(
        update(RegistrationInvitation)
        .where(RegistrationInvitation.token_hash == digest, RegistrationInvitation.used_at.is_(None),
               RegistrationInvitation.expires_at > now,
               or_(RegistrationInvitation.claimed_until.is_(None), RegistrationInvitation.claimed_until <= now))
        .values(claimed_until=now + dt.timedelta(seconds=hold_seconds))
        .execution_options(synchronize_session=False)
    )
    row = db.execute(select(RegistrationInvitation.id, RegistrationInvitation.name, RegistrationInvitation.used_at,
                            RegistrationInvitation.expires_at)
                     .where(RegistrationInvitation.token_hash == digest)).first()
    db.commit()
    if result.rowcount == 1 and row is not None:  # type: ignore[attr-defined]
        return ClaimedInvitation(id=row.id, name=row.name)
    if row is None:
        raise InvitationRefused("This invitation is not known to Tally.", code="invitation_unknown")
    if row.used_at is not None:
        raise InvitationRefused("This invitation was used already: each one registers one platform, once.",
                                code="invitation_used")
    if row.expires_at <= now:
        raise InvitationRefused("This invitation expired.", code="invitation_expired")
    raise InvitationRefused("This invitation is being used by a registration in progress right now.",
                            code="invitation_in_use")


def use(db: Session, claimed: ClaimedInvitation, registration_id: int) -> None:
    """Mark the invitation used by `registration_id` (in the caller's transaction; never commits)."""
    result = db.execute(
        update(RegistrationInvitation)
        .where(and_(RegistrationInvitation.id == claimed.id, RegistrationInvitation.used_at.is_(None)))
        .values(used_at=utcnow(), claimed_until=None, registration_id=registration_id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InvitationRefused("This invitation was used already: each one registers one platform, once.",
                                code="invitation_used")


def release(db: Session, claimed: ClaimedInvitation) -> None:
    """Let an invitation go after a failed registration (commits). When the database fails too,
    the hold simply runs out (`claim`'s hold_seconds)."""
    try:
        db.execute(
            update(RegistrationInvitation)
            .where(RegistrationInvitation.id == claimed.id, RegistrationInvitation.used_at.is_(None))
            .values(claimed_until=None)
            .execution_options(synchronize_session=False)
        )
        db.commit()
    except SQLAlchemyError:
        db.rollback()
        log.warning("invitation %s not released; it is free again when its hold runs out", claimed.id)


def help_text(settings: Settings) -> str:
    """Where an LMS admin gets an invitation (for the refusal page)."""
    return ("Ask Tally's administrator for a registration URL: `python -m tool platforms invite --name …` prints "
            "one, and so does the Invite button on " + settings.public_base_url + "/admin. Paste that URL "
            "(with its ?invitation=…) into the LMS.")
