"""Counting what a tool does to the platform: TCP connections accepted (benchmarks, pooling tests).

Token requests are counted by the token service (`Platform.token_requests`); connections are
counted where they are accepted, so a tool that opens a new connection per request shows up.
"""

from __future__ import annotations

import threading
from typing import Any


class ConnectionCounter:
    """How many TCP connections the sandbox's server accepted since `attach` (or `reset`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted = 0

    def attach(self, server: Any) -> None:
        """Count every connection a socketserver-style server (werkzeug's) accepts from now on."""
        accept = server.get_request

        def counting_accept() -> Any:
            connection = accept()
            with self._lock:
                self.accepted += 1
            return connection

        server.get_request = counting_accept

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self.accepted = 0
