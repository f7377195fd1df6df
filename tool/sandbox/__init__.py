"""The sandbox LMS: a small real LTI 1.3 Advantage platform (Moodle or Canvas flavour) for dev and tests."""

from tool.sandbox.app import create_sandbox_app
from tool.sandbox.config import SandboxConfig
from tool.sandbox.platform import Platform

__all__ = ["Platform", "SandboxConfig", "create_sandbox_app"]
