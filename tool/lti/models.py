"""Tables of the LTI layer: registrations, deployments, login states, and what launches tell us."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tool.clock import utcnow
from tool.db import Base, UTCDateTime


class Registration(Base):
    """One LMS installation of the tool, keyed by (issuer, client_id).

    Canvas uses one issuer for every cloud tenant, so the issuer alone is never a key.
    """

    __tablename__ = "registration"
    __table_args__ = (UniqueConstraint("issuer", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    auth_login_url: Mapped[str] = mapped_column(String(1000))
    auth_token_url: Mapped[str] = mapped_column(String(1000))
    key_set_url: Mapped[str] = mapped_column(String(1000))
    auth_audience: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    source: Mapped[str] = mapped_column(String(20), default="cli")  # config | cli | dynamic
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    deployments: Mapped[list["Deployment"]] = relationship(
        back_populates="registration", cascade="all, delete-orphan", passive_deletes=True
    )


class Deployment(Base):
    """(registration, deployment_id). Launches pass only through an active deployment."""

    __tablename__ = "deployment"
    __table_args__ = (UniqueConstraint("registration_id", "deployment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registration.id", ondelete="CASCADE"))
    deployment_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | pending | disabled
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    registration: Mapped[Registration] = relationship(back_populates="deployments")


class LoginState(Base):
    """An OIDC login waiting for its launch: state → nonce, consumed exactly once."""

    __tablename__ = "login_state"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    registration_id: Mapped[int] = mapped_column(ForeignKey("registration.id", ondelete="CASCADE"))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    # The frame the platform offered for its storage (`lti_storage_target`), when it did: the
    # launch must then find the state there unless the browser brought the state cookie.
    storage_target: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Person(Base):
    """A user of one registration, identified by the platform's `sub`."""

    __tablename__ = "person"
    __table_args__ = (UniqueConstraint("registration_id", "sub"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registration.id", ondelete="CASCADE"))
    sub: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(300), default="")
    given_name: Mapped[str] = mapped_column(String(200), default="")
    family_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Course(Base):
    """An LMS course (the `context` claim) of one registration. Its id is the seed's groupId."""

    __tablename__ = "course"
    __table_args__ = (UniqueConstraint("registration_id", "context_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registration.id", ondelete="CASCADE"))
    context_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500), default="")
    label: Mapped[str] = mapped_column(String(255), default="")
    nrps_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    roster_synced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Offering(Base):
    """One tool placement in a course: (course, resource_link_id). The seed's offeringId."""

    __tablename__ = "offering"
    __table_args__ = (UniqueConstraint("course_id", "resource_link_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id", ondelete="CASCADE"))
    resource_link_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500), default="")
    # AGS endpoint claim of the latest launch (latest wins).
    ags_lineitems_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    ags_lineitem_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    ags_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # NRPS claim of the latest launch.
    nrps_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # The deep link's `tally_source` custom parameter: which target the placement's own line
    # item holds ("ledger_total" or "assessment"); None for a placement made by hand.
    tally_source: Mapped[str | None] = mapped_column(String(40), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


def roles_include_student(roles: str) -> bool:
    """True when a comma-separated Tally roles value names STUDENT."""
    return "STUDENT" in roles.split(",")


def _is_student_default(context: Any) -> bool:
    return roles_include_student(context.get_current_parameters().get("roles") or "")


class Membership(Base):
    """A person's Tally roles in a course, from their latest launch (or the roster)."""

    __tablename__ = "membership"
    __table_args__ = (
        UniqueConstraint("course_id", "person_id"),
        # The roster of a course: its active students, one index range.
        Index("ix_membership_course_student", "course_id", "is_student", "status", "person_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    roles: Mapped[str] = mapped_column(String(200), default="")  # comma-separated Tally roles
    # A student of the course (STUDENT among `roles`): what every roster query filters on.
    # Writers of `roles` set it too; an insert without it derives it from `roles`.
    is_student: Mapped[bool] = mapped_column(Boolean, default=_is_student_default, server_default=false())
    lti_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    # active | inactive (left the LMS roster) | deleted (NRPS said so); entries stay either way.
    status: Mapped[str] = mapped_column(String(20), default="active")
    last_launch_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LaunchRecord(Base):
    """Recent launches and refusals with their reasons, for the admin."""

    __tablename__ = "launch_record"
    __table_args__ = (Index("ix_launch_record_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    outcome: Mapped[str] = mapped_column(String(20))  # accepted | refused
    code: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    issuer: Mapped[str] = mapped_column(String(500), default="")
    client_id: Mapped[str] = mapped_column(String(255), default="")
    deployment_id: Mapped[str] = mapped_column(String(255), default="")
    sub: Mapped[str] = mapped_column(String(255), default="")
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SigningKey(Base):
    """One of the tool's RSA keys, shared by every machine through the database.

    The private key is encrypted (AES-GCM, key derived from the installation's secret with
    HKDF; tool/lti/keys.py), so a database dump alone signs nothing.
    """

    __tablename__ = "signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key: Mapped[str] = mapped_column(Text)  # "v1:" + base64(nonce | AES-GCM ciphertext of the PKCS#8 PEM)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    activates_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    retires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RegistrationInvitation(Base):
    """A one-time invitation to register a platform by Dynamic Registration (issue 11).

    Only the SHA-256 of the invitation's secret is kept: the URL is shown once, to the admin who
    made it. A registration in progress holds the invitation (`claimed_until`) so two browsers
    with the same URL register once; a failed attempt lets it go again, a successful one uses it.
    """

    __tablename__ = "registration_invitation"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("registration.id", ondelete="SET NULL"), nullable=True)
