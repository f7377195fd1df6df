"""gunicorn settings for Tally: `gunicorn -c config/gunicorn.conf.py tool.web.wsgi:app`.

Threads (gthread): a request mostly waits for the database or an LMS, so a few processes
with several threads each serve many teachers with little memory. Where gunicorn listens
comes from Tally's settings (host, port), so `TOOL_PORT` moves it; gunicorn's own command
line (`--bind`, `--workers`) still wins. Before any worker starts, the master checks the
production guard rails and exits non-zero, with the reason, when one trips.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project, when started from elsewhere

from tool.config import load_settings  # noqa: E402

_settings = load_settings()

# Every worker process writes its metrics to files here; /metrics adds them up (tool/metrics.py).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"tally-metrics-{_settings.port}"))

bind = [f"{_settings.host}:{_settings.port}"]
worker_class = "gthread"
workers = min(2 * (os.cpu_count() or 1) + 1, 8)
threads = 4
# A request that takes longer than this (an LMS that hangs past Tally's own HTTP timeouts) is killed.
timeout = 60
# SIGTERM: stop accepting, let requests in flight finish (a "Sync now" delivers for up to 20 s).
graceful_timeout = 30
keepalive = 5
max_requests = 10000  # recycle a worker now and then; jitter so they do not restart together
max_requests_jitter = 1000

# The access log goes through Tally's logging (JSON in production) and never holds a query
# string or a Referer, where a session token could be (tool/ops/access_log.py).
accesslog = "-"
errorlog = "-"
logger_class = "tool.ops.access_log.AccessLogger"
loglevel = "info"


def on_starting(server):  # noqa: ANN001, ANN201  (gunicorn's hook signature)
    """In the master, before any worker: the guard rails, then a clean metrics directory."""
    from tool.errors import ConfigError
    from tool.ops import guards

    try:
        guards.enforce(_settings)
    except ConfigError as exc:
        print(exc.message, file=sys.stderr, flush=True)
        sys.exit(4)
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)  # counters of an earlier run would be added in
    os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):  # noqa: ANN001, ANN201
    """A worker process ended: its live gauges leave /metrics (its counters stay counted)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
