"""gunicorn's access log through Tally's logging: one `http.access` event per request.

gunicorn's default line holds the request line with its query string and the Referer, and
a query string or a Referer may hold a session token (`?st=…`). This logger writes the
path alone, the status, the time taken and the request id (the one Tally answered in
X-Request-ID), as JSON in production. Used by config/gunicorn.conf.py (`logger_class`).
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from tool.config import load_settings
from tool.logs import configure_from, event

log = logging.getLogger("tool.access")


class AccessLogger(Logger):
    """gunicorn's logger with Tally's format for both its error log and its access log."""

    def setup(self, cfg: Any) -> None:
        """gunicorn's own set-up, then Tally's handler on the root logger for everything else."""
        super().setup(cfg)
        settings = load_settings()
        handler = configure_from(settings)
        # gunicorn's error log ("Booting worker …") in the same format, once.
        self.error_log.handlers = [handler]
        self.error_log.propagate = False

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """One line per request: method, path (no query), status, duration, request id, client."""
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.logconfig_dict or self.cfg.syslog):
            return
        headers = dict((k.lower(), v) for k, v in (resp.headers or []))
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        event(log, "http.access", method=environ.get("REQUEST_METHOD"), path=environ.get("PATH_INFO"),
              status=int(status) if str(status).isdigit() else status,
              duration_ms=round(request_time.total_seconds() * 1000, 1),
              request_id=headers.get("x-request-id"), client=environ.get("REMOTE_ADDR"),
              bytes=getattr(resp, "sent", None))
