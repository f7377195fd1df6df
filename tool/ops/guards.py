"""Guard rails: TOOL_ENV=production refuses to start misconfigured.

Each rule names what is wrong, how to fix it, and the setting that overrides it for an
administrator who knows why (a single-machine pilot on SQLite, TLS terminated elsewhere
with an internal http URL, …). `python -m tool doctor` prints the same findings in any
environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from tool.config import Settings
from tool.errors import ConfigError, ToolError


@dataclass(frozen=True)
class Finding:
    """One guard rail that a configuration trips."""

    code: str
    problem: str
    fix: str
    override: str  # the setting that allows it anyway ("": nothing does)

    def text(self) -> str:
        """The finding as two readable lines."""
        if not self.override:
            return f"{self.problem}\n    fix: {self.fix}"
        return f"{self.problem}\n    fix: {self.fix}\n    (or set {self.override} = true if you know why)"


def _secret_missing(settings: Settings) -> str | None:
    if settings.secret_key:
        return None if len(settings.secret_key) >= 32 else "secret_key has fewer than 32 characters"
    try:
        settings.session_secret()
    except ToolError as exc:
        return exc.message
    return None


def findings(settings: Settings) -> list[Finding]:
    """What a production start would refuse, overrides not applied (doctor shows them all)."""
    out: list[Finding] = []
    if settings.database_url.startswith("sqlite"):
        out.append(Finding("sqlite", "the database is SQLite: one machine, one writer at a time, no shared state "
                           "for several web and worker processes",
                           "set TOOL_DATABASE_URL=postgresql://user@host/tally", "production_allow_sqlite"))
    if not settings.public_base_url.startswith("https://"):
        out.append(Finding("http_public_url", f"the public URL {settings.public_base_url} is not https: LMSs embed "
                           "Tally in an iframe of an https page and browsers refuse mixed content",
                           "set TOOL_PUBLIC_BASE_URL=https://tally.example.edu (TLS at nginx, see deploy/)",
                           "production_allow_http"))
    if settings.sandbox_enabled:
        out.append(Finding("sandbox", "the sandbox LMS is on: a fake platform that anyone could launch from",
                           "set sandbox_enabled = false (config/production.toml does)", "production_allow_sandbox"))
    if settings.admin_password:
        out.append(Finding("plain_admin_password", "admin_password holds a plain development password",
                           "set admin_password_hash from `python -m tool admin hash-password` and remove "
                           "admin_password", "production_allow_plain_admin_password"))
    if settings.dynamic_registration_open:
        out.append(Finding("open_registration", "dynamic_registration_open lets anyone start a Dynamic Registration: "
                           "Tally then fetches URLs a stranger chose and stores a pending registration for them",
                           "set dynamic_registration_open = false and invite platforms with `python -m tool "
                           "platforms invite` or the button on /admin", ""))
    missing = _secret_missing(settings)
    if missing is not None:
        out.append(Finding("secret", f"no secret: {missing}. Every web and worker machine needs the same one "
                           "(it signs sessions and encrypts the signing keys in the database)",
                           "set TOOL_SECRET_KEY (32+ random characters, the same on every machine; keep a copy "
                           "with your database backups)", "production_allow_generated_secret"))
    return out


_OVERRIDES = {
    "sqlite": "production_allow_sqlite",
    "http_public_url": "production_allow_http",
    "sandbox": "production_allow_sandbox",
    "plain_admin_password": "production_allow_plain_admin_password",
    "secret": "production_allow_generated_secret",
}


def refusals(settings: Settings) -> list[Finding]:
    """The findings that stop a production start: those not overridden. Outside production, none."""
    if settings.env != "production":
        return []
    # Open registration has no override: it is for development and the sandbox only.
    return [f for f in findings(settings)
            if f.code == "open_registration" or not getattr(settings, _OVERRIDES[f.code])]


def enforce(settings: Settings) -> None:
    """Raise ConfigError listing every refusal (a production start stops with it).

    With `production_allow_generated_secret`, a missing secret file is created here (one
    machine only: another machine would create a different one).
    """
    if settings.env == "production" and settings.production_allow_generated_secret and _secret_missing(settings):
        if not settings.secret_key:
            from tool.lti.keys import ensure_session_secret

            ensure_session_secret(settings.path(settings.secret_key_file))
    refused = refusals(settings)
    if refused:
        raise ConfigError(
            "Tally refuses to start in production:\n  - " + "\n  - ".join(f.text() for f in refused),
            code="unsafe_production_config",
        )
