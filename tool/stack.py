"""The embedded stack: the tool and the sandbox LMS, registered with each other.

Used by `python -m tool run`, the end-to-end tests and the benchmarks, so all three wire
the two together the same way.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from sqlalchemy.orm import Session

from tool.config import Settings
from tool.lti.models import Registration
from tool.lti.registry import add_registration
from tool.sandbox import Platform, SandboxConfig, create_sandbox_app


def make_sandbox(settings: Settings, *, base_url: str, mode: str | None = None, key_path: Path | None = None) -> Flask:
    """A sandbox LMS app pointing at this tool's login, launch and JWKS URLs."""
    tool = settings.public_base_url
    return create_sandbox_app(
        SandboxConfig(
            base_url=base_url,
            tool_login_url=tool + "/lti/login",
            tool_launch_url=tool + "/lti/launch",
            tool_jwks_url=tool + "/.well-known/jwks.json",
            mode=mode or settings.sandbox_mode,
            client_id=settings.sandbox_client_id,
            deployment_id=settings.sandbox_deployment_id,
            key_path=key_path,
            platform_storage=settings.sandbox_platform_storage,
        )
    )


def register_platform(db: Session, platform: Platform, *, deploy: bool = True) -> Registration:
    """Register a sandbox platform with the tool (idempotent); its deployment active when `deploy`."""
    return add_registration(
        db,
        issuer=platform.issuer,
        client_id=platform.client_id,
        auth_login_url=platform.paths.auth_url,
        auth_token_url=platform.paths.token_url,
        key_set_url=platform.paths.jwks_url,
        name=f"Sandbox LMS ({platform.mode})",
        deployment_ids=[platform.deployment_id] if deploy else [],
        source="config",
    )
