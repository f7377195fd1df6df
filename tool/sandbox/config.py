"""The sandbox LMS's settings: where the tool lives and which platform to imitate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODES = ("moodle", "canvas")


@dataclass(frozen=True)
class SandboxConfig:
    """How one sandbox platform is wired to one tool."""

    base_url: str  # e.g. "http://127.0.0.1:8001"; also the issuer unless `issuer` is given
    tool_login_url: str  # the tool's OIDC login initiation URL
    tool_launch_url: str  # the tool's redirect_uri / target_link_uri for resource links
    tool_jwks_url: str  # the tool's JWKS, fetched over HTTP to verify client assertions
    mode: str = "moodle"  # "moodle" | "canvas"
    client_id: str = "tally-sandbox"
    deployment_id: str = "1"
    issuer: str | None = None
    key_path: Path | None = None  # platform private key PEM; generated (and written) if missing
    id_token_lifetime: int = 60  # Moodle signs id_tokens valid for 60 s
    tool_deep_link_url: str | None = None
    # Canvas mode: offer platform storage (lti_storage_target, a post_message_forwarding frame that
    # answers lti.put_data / lti.get_data) to tools that cannot keep cookies.
    platform_storage: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @property
    def effective_issuer(self) -> str:
        """The `iss` of every id_token: the explicit issuer or the base URL."""
        return self.issuer or self.base_url
