"""Prometheus metrics: what Tally counts, and /metrics in the text exposition format.

Counters and histograms live in each process. Under gunicorn every worker process writes
them to files in `PROMETHEUS_MULTIPROC_DIR` (config/gunicorn.conf.py sets it up) and
/metrics adds the files of all of them; a `python -m tool worker` serves its own on
`worker_metrics_port`. What the database knows (delivery pairs by state, the age of the
oldest due score, the newest worker heartbeat) is read at scrape time by whichever process
answers, so it is the same wherever it is scraped.

Names (README, "Metrics"):

    tally_launches_total{outcome,code}                    accepted / refused launches and logins
    tally_http_request_duration_seconds{route,method}     latency of Tally's own endpoints
    tally_http_requests_total{route,method,status}
    tally_lms_request_duration_seconds{platform,service}  every call to an LMS
    tally_lms_requests_total{platform,service,outcome}    outcome: 2xx 3xx 4xx 5xx timeout error
    tally_token_fetches_total{platform,outcome}           granted / refused / unreachable
    tally_delivery_outcomes_total{platform,outcome}       accepted superseded restamp retry waiting failed
    tally_maintenance_runs_total{job,outcome}             ok / failed
    tally_delivery_pairs{state}                           (database) pairs per delivery state
    tally_delivery_oldest_due_seconds                     (database) how long the oldest due score waits
    tally_worker_heartbeat_age_seconds                    (database) age of the newest worker heartbeat
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.core import GaugeMetricFamily
from requests.adapters import HTTPAdapter

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

LAUNCHES = Counter("tally_launches_total", "LTI logins and launches by outcome (accepted, refused) and code",
                   ["outcome", "code"])
HTTP_LATENCY = Histogram("tally_http_request_duration_seconds", "Time to answer a request, by route",
                         ["route", "method"], buckets=_LATENCY_BUCKETS)
HTTP_REQUESTS = Counter("tally_http_requests_total", "Requests answered, by route and status",
                        ["route", "method", "status"])
LMS_LATENCY = Histogram("tally_lms_request_duration_seconds", "Time an LMS took to answer a call",
                        ["platform", "service"], buckets=_LATENCY_BUCKETS)
LMS_REQUESTS = Counter("tally_lms_requests_total", "Calls to an LMS by outcome (status class, timeout, error)",
                       ["platform", "service", "outcome"])
TOKEN_FETCHES = Counter("tally_token_fetches_total", "Access tokens requested from an LMS, by outcome",
                        ["platform", "outcome"])
DELIVERY_OUTCOMES = Counter("tally_delivery_outcomes_total", "Score posts by what became of them",
                            ["platform", "outcome"])
MAINTENANCE_RUNS = Counter("tally_maintenance_runs_total", "Scheduled maintenance jobs run, by outcome",
                           ["job", "outcome"])


def platform_label(url_or_issuer: str | None) -> str:
    """The label of a platform: the host of its issuer or URL (a few values per installation)."""
    host = (urlsplit(url_or_issuer or "").hostname or "").lower()
    return host or "unknown"


def _service(method: str, path: str) -> str:
    p = path.lower()
    for needle, name in (("/scores", "scores"), ("/results", "results"), ("lineitem", "lineitems"),
                         ("line_item", "lineitems"), ("token", "token"), ("jwks", "jwks"), ("certs", "jwks"),
                         ("membership", "nrps"), ("names_and_roles", "nrps"), ("openid", "registration"),
                         ("regist", "registration")):
        if needle in p:
            return name
    return "other"


def _outcome(status: int) -> str:
    return f"{status // 100}xx"


class MeasuredAdapter(HTTPAdapter):
    """requests' adapter that times and counts every call to a platform (one place for all of them)."""

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: D401  (requests' signature)
        url = urlsplit(request.url or "")
        platform, service = (url.hostname or "unknown").lower(), _service(request.method or "", url.path)
        started = time.perf_counter()
        try:
            resp = super().send(request, *args, **kwargs)
        except Exception as exc:
            from requests import Timeout

            LMS_REQUESTS.labels(platform, service, "timeout" if isinstance(exc, Timeout) else "error").inc()
            LMS_LATENCY.labels(platform, service).observe(time.perf_counter() - started)
            raise
        LMS_LATENCY.labels(platform, service).observe(time.perf_counter() - started)
        LMS_REQUESTS.labels(platform, service, _outcome(resp.status_code)).inc()
        return resp


def multiprocess_dir() -> str | None:
    """The directory of gunicorn's per-process metric files, when running under it."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class DatabaseCollector:
    """Gauges read from the database at scrape time (the same whichever process is scraped)."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """One scrape's gauges (nothing when the database does not answer: /readyz says why)."""
        try:
            facts = self._read()
        except Exception:  # noqa: BLE001  (a scrape during an outage still shows the counters)
            return []
        pairs = GaugeMetricFamily("tally_delivery_pairs", "Score delivery pairs per state", labels=["state"])
        for state, n in sorted(facts.get("pairs", {}).items()):
            pairs.add_metric([state], n)
        oldest = GaugeMetricFamily("tally_delivery_oldest_due_seconds",
                                   "Seconds the oldest due score has waited (0: none due)")
        oldest.add_metric([], facts.get("oldest_due_seconds", 0.0))
        out = [pairs, oldest]
        if facts.get("heartbeat_age_seconds") is not None:
            beat = GaugeMetricFamily("tally_worker_heartbeat_age_seconds",
                                     "Seconds since the newest delivery worker heartbeat")
            beat.add_metric([], facts["heartbeat_age_seconds"])
            out.append(beat)
        return out


def render(collector: DatabaseCollector | None = None) -> tuple[bytes, str]:
    """The text exposition of this process (or of every gunicorn worker) plus the database gauges."""
    directory = multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if collector is not None:
        extra = CollectorRegistry()
        extra.register(collector)  # type: ignore[arg-type]
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST
