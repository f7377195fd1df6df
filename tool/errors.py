"""Every failure Tally reports is a `ToolError`.

    ToolError
    ├── ConfigError            a setting is missing or invalid (start-up stops)
    ├── KeyStoreError          the tool's RSA keys are missing or unreadable
    ├── RegistrationError      a platform registration is unknown, duplicated or invalid
    ├── LaunchError            an OIDC login or LTI launch was refused
    │   └── DeploymentNotActive  the deployment is known but waits for an admin
    ├── SessionError           the session token is missing, expired or forged
    ├── Forbidden              the session may not do this
    ├── NotFound               the thing asked for does not exist (for this session)
    └── ValidationError        input was rejected; `details` names each field

Third-party exceptions are translated at the boundary (`raise LaunchError(...) from exc`).
HTTP status codes live only in `tool/web/errors.py`.
"""

from __future__ import annotations

from typing import Any


class ToolError(Exception):
    """Base of every error Tally raises on purpose."""

    code: str = "tool_error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class ConfigError(ToolError):
    """A setting is missing or invalid."""

    code = "config_error"


class KeyStoreError(ToolError):
    """The tool's keys are missing or unreadable."""

    code = "key_store_error"


class RegistrationError(ToolError):
    """A platform registration is unknown, duplicated or invalid."""

    code = "registration_error"


class LaunchError(ToolError):
    """An OIDC login or an LTI launch was refused.

    `hint` tells the platform admin what to fix; it is shown on the refusal page.
    """

    code = "launch_refused"

    def __init__(self, message: str, *, code: str | None = None, hint: str = "", details: Any = None) -> None:
        super().__init__(message, code=code, details=details)
        self.hint = hint


class DeploymentNotActive(LaunchError):
    """The deployment is known but waits for an admin's activation."""

    code = "deployment_not_active"


class SessionError(ToolError):
    """The session token is missing, expired or forged."""

    code = "session_invalid"


class Forbidden(ToolError):
    """The session's roles do not allow this."""

    code = "forbidden"


class NotFound(ToolError):
    """The thing asked for does not exist, or not for this session."""

    code = "not_found"


class ValidationError(ToolError):
    """Input was rejected; `details` maps each field to its problem."""

    code = "validation_error"
