"""The Flask entry point: `create_app(settings)`."""

from tool.web.app import create_app

__all__ = ["create_app"]
