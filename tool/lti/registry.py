"""Registrations and deployments in the database, and pylti1p3's ToolConf backed by them."""

from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import urlsplit

from pylti1p3.deployment import Deployment as PyltiDeployment
from pylti1p3.registration import Registration as PyltiRegistration
from pylti1p3.tool_config import ToolConfAbstract
from sqlalchemy import Row, bindparam, delete, select
from sqlalchemy.orm import Session

from tool.clock import utcnow
from tool.config import Settings
from tool.errors import RegistrationError
from tool.lti.models import Deployment, Registration


def _check_url(field: str, value: str) -> None:
    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistrationError(f"{field}: {value!r} is not an absolute http(s) URL", details={field: "not a URL"})


_REG = Registration.__table__.c
_REGISTRATION_ROW = select(Registration.__table__).where(
    _REG.issuer == bindparam("issuer"), _REG.client_id == bindparam("client_id")
)


def registration_row(db: Session, *, issuer: str, client_id: str) -> Row[Any] | None:
    """The registration (issuer, client_id) as a plain row: the launch hot path skips the ORM."""
    return db.connection().execute(_REGISTRATION_ROW, {"issuer": issuer, "client_id": client_id}).first()


def find_registration(db: Session, *, issuer: str, client_id: str) -> Registration | None:
    """The registration for (issuer, client_id), or None."""
    return db.scalar(select(Registration).where(Registration.issuer == issuer, Registration.client_id == client_id))


def registrations_of_issuer(db: Session, issuer: str) -> list[Registration]:
    """Every registration of an issuer (Canvas: one issuer, many client_ids)."""
    return list(db.scalars(select(Registration).where(Registration.issuer == issuer).order_by(Registration.id)))


def list_registrations(db: Session) -> list[Registration]:
    """All registrations with their deployments, oldest first."""
    return list(db.scalars(select(Registration).order_by(Registration.id)))


def add_registration(
    db: Session,
    *,
    issuer: str,
    client_id: str,
    auth_login_url: str,
    auth_token_url: str,
    key_set_url: str,
    auth_audience: str | None = None,
    name: str = "",
    deployment_ids: Iterable[str] = (),
    source: str = "cli",
) -> Registration:
    """Create or update the registration (issuer, client_id) and add active deployments."""
    if not issuer or not client_id:
        raise RegistrationError("issuer and client_id are required", details={"issuer": "required", "client_id": "required"})
    for field, value in (
        ("auth_login_url", auth_login_url),
        ("auth_token_url", auth_token_url),
        ("key_set_url", key_set_url),
    ):
        _check_url(field, value)
    reg = find_registration(db, issuer=issuer, client_id=client_id)
    if reg is None:
        reg = Registration(issuer=issuer, client_id=client_id)
        db.add(reg)
    reg.auth_login_url = auth_login_url
    reg.auth_token_url = auth_token_url
    reg.key_set_url = key_set_url
    reg.auth_audience = auth_audience or None
    reg.name = name or reg.name or issuer
    reg.source = source
    db.flush()
    for dep_id in deployment_ids:
        ensure_deployment(db, registration_id=reg.id, deployment_id=dep_id, status="active")
    return reg


def ensure_deployment(db: Session, *, registration_id: int, deployment_id: str, status: str) -> Deployment:
    """Return the deployment, creating it with `status`; an existing one is activated if status is active."""
    dep = db.scalar(
        select(Deployment).where(Deployment.registration_id == registration_id, Deployment.deployment_id == deployment_id)
    )
    if dep is None:
        dep = Deployment(registration_id=registration_id, deployment_id=deployment_id, status=status)
        if status == "active":
            dep.activated_at = utcnow()
        db.add(dep)
        db.flush()
    elif status == "active" and dep.status != "active":
        dep.status, dep.activated_at = "active", utcnow()
    return dep


def set_deployment_status(db: Session, *, issuer: str, client_id: str, deployment_id: str, status: str) -> Deployment:
    """Activate or disable a deployment of a known registration."""
    reg = find_registration(db, issuer=issuer, client_id=client_id)
    if reg is None:
        raise RegistrationError(f"no registration for issuer {issuer!r} and client_id {client_id!r}")
    dep = ensure_deployment(db, registration_id=reg.id, deployment_id=deployment_id, status=status)
    dep.status = status
    if status == "active" and dep.activated_at is None:
        dep.activated_at = utcnow()
    return dep


def remove_registration(db: Session, *, issuer: str, client_id: str) -> None:
    """Delete a registration, its deployments and everything launched through it."""
    reg = find_registration(db, issuer=issuer, client_id=client_id)
    if reg is None:
        raise RegistrationError(f"no registration for issuer {issuer!r} and client_id {client_id!r}")
    db.execute(delete(Registration).where(Registration.id == reg.id))


def import_static_platforms(db: Session, settings: Settings) -> int:
    """Upsert the `[[platforms]]` of the settings; returns how many."""
    for p in settings.platforms:
        add_registration(
            db,
            issuer=p.issuer,
            client_id=p.client_id,
            auth_login_url=p.auth_login_url,
            auth_token_url=p.auth_token_url,
            key_set_url=p.key_set_url,
            auth_audience=p.auth_audience,
            name=p.name,
            deployment_ids=p.deployment_ids,
            source="config",
        )
    return len(settings.platforms)


def to_pylti_registration(reg: Registration | Row[Any]) -> PyltiRegistration:
    """pylti1p3's view of a registration (the tool's keys are ours, not its)."""
    return (
        PyltiRegistration()
        .set_issuer(reg.issuer)
        .set_client_id(reg.client_id)
        .set_auth_login_url(reg.auth_login_url)
        .set_auth_token_url(reg.auth_token_url)
        .set_key_set_url(reg.key_set_url)
        .set_auth_audience(reg.auth_audience or reg.auth_token_url)
    )


class DatabaseToolConf(ToolConfAbstract[Any]):
    """pylti1p3 ToolConf reading registrations and deployments from the database.

    Every issuer is treated as "many client_ids" (Canvas), so pylti1p3 always looks up by
    (issuer, client_id). The last registration found is kept for the caller.
    """

    def __init__(self, db: Session) -> None:
        self.db = db
        self.registration: Registration | None = None

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> PyltiRegistration:
        regs = registrations_of_issuer(self.db, iss)
        if len(regs) != 1:
            return None  # type: ignore[return-value]  # pylti1p3 treats None as "not found"
        self.registration = registration_row(self.db, issuer=iss, client_id=regs[0].client_id)
        return to_pylti_registration(regs[0])

    def find_registration_by_params(self, iss: str, client_id: str, *args: Any, **kwargs: Any) -> PyltiRegistration:
        if not client_id:
            return self.find_registration_by_issuer(iss)
        reg = registration_row(self.db, issuer=iss, client_id=client_id)
        self.registration = reg
        return to_pylti_registration(reg) if reg else None  # type: ignore[return-value]

    def find_deployment(self, iss: str, deployment_id: str) -> PyltiDeployment | None:
        return None

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str, *args: Any, **kwargs: Any
    ) -> PyltiDeployment | None:
        reg = registration_row(self.db, issuer=iss, client_id=client_id)
        if reg is None:
            return None
        dep = self.db.scalar(
            select(Deployment).where(
                Deployment.registration_id == reg.id,
                Deployment.deployment_id == deployment_id,
                Deployment.status == "active",
            )
        )
        return PyltiDeployment().set_deployment_id(deployment_id) if dep else None
