"""Operating Tally against the sandbox LMS: JSON logs without secrets, /metrics after launches and
deliveries, /readyz, request ids, trusted proxies, and the doctor."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
from typing import Any, Iterator

import pytest
import requests
from sqlalchemy import Engine, delete

from tool import clock, logs
from tool.db import make_session_factory
from tool.ops import doctor
from tool.ops.health import Heartbeat
from tool.ops.models import WorkerHeartbeat
from tool.web import create_app
from tests.conftest import make_settings
from tests.e2e.conftest import NewStack, Stack
from tests.e2e.delivery_kit import Klass

LTI = "https://purl.imsglobal.org/spec/lti/claim/"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Everything logged (every logger, DEBUG and up) as production's JSON lines, into a buffer."""
    buf = io.StringIO()
    handler = logs.configure(env="production", level="DEBUG", stream=buf)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    yield buf
    root.setLevel(level)
    root.removeHandler(handler)
    logging.getLogger("tool").setLevel(logging.WARNING)


@pytest.fixture
def app_of() -> Iterator[Any]:
    """`app_of(settings)`: a Flask app whose services (pooled connections) are closed after the test."""
    made: list[Any] = []

    def make(settings: Any) -> Any:
        app = create_app(settings)
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["tally"].close()


def events(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_a_sessions_logs_are_json_events_with_context_and_no_secret(moodle: Stack, json_logs: io.StringIO,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assertions: list[str] = []
    tokens = moodle.platform.tokens
    verify = tokens._verify_assertion

    def recording(assertion: str) -> dict[str, Any]:
        assertions.append(assertion)  # every client assertion the tool sent (web roster sync, worker scores)
        return verify(assertion)

    monkeypatch.setattr(tokens, "_verify_assertion", recording)
    k = Klass(moodle)
    try:
        refused = moodle.crafted_launch(lambda c: c.__setitem__(LTI + "deployment_id", "99"))
        assert refused.status == 403, refused.refusal_code
        k.entry(k.subs[0], "8")
        k.deliver()  # binds the column, delivers
        k.entry(k.subs[1], "6")
        moodle.platform.faults.fail_next(1, status=503, body="Moodle is under maintenance", where="services")
        k.deliver()
        k.later(60)
        k.deliver()
        access_tokens = [t.value for c in k._clients for t in c.tokens._memory.values()]
    finally:
        k.close()

    lines = events(json_logs)
    assert lines and all({"time", "level", "logger", "event"} <= set(e) for e in lines)
    accepted = [e for e in lines if e["event"] == "launch.accepted"]
    assert accepted and accepted[0]["person"] == k.teacher_id and accepted[0]["offering"] == k.offering_id
    assert accepted[0]["platform"] == moodle.platform.issuer and re.fullmatch(r"[0-9a-f]{32}", accepted[0]["request_id"])
    outcomes = {e["outcome"]: e for e in lines if e["event"] == "delivery.outcome"}
    assert outcomes["retry"]["lms_words"] == "Moodle is under maintenance" and outcomes["retry"]["status"] == 503
    assert outcomes["accepted"]["platform"] == moodle.platform.issuer
    assert any(e["event"] == "worker.step" and "accepted" in e["summary"] for e in lines)
    refusal = next(e for e in lines if e["event"] == "launch.refused")
    assert refusal["code"] == "deployment_not_active" and refusal["level"] == "warning" and refusal["request_id"]

    text = json_logs.getvalue()
    secrets = [k.teacher, *assertions, *access_tokens]
    assert assertions and access_tokens and all(s and s not in text for s in secrets)
    assert "INSERT INTO" not in text or "parameters" not in text  # statements never carry their values


def test_a_request_id_is_taken_from_the_proxy_and_answered(moodle: Stack) -> None:
    mine = requests.get(moodle.tool_url + "/healthz", headers={"X-Request-ID": "lb-1234.abc"})
    assert mine.headers["X-Request-ID"] == "lb-1234.abc"
    forged = requests.get(moodle.tool_url + "/healthz", headers={"X-Request-ID": "x" * 300 + "<script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_after_launches_and_deliveries(moodle: Stack) -> None:
    before = requests.get(moodle.tool_url + "/metrics").text
    k = Klass(moodle)
    try:
        k.entry(k.subs[0], "5")
        k.deliver()  # binds the column and delivers one score
        k.bulk({sub: "5" for sub in k.subs[1:3]})
        moodle.platform.faults.fail_next(1, status=422, body="User is not enrolled in this course")
        k.deliver()
        moodle.crafted_launch(lambda c: c.__setitem__("aud", "nobody"))
    finally:
        k.close()
    answer = requests.get(moodle.tool_url + "/metrics")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    text = answer.text
    host = "127.0.0.1"

    def grew(name: str, **labels: str) -> float:
        return _metric(text, name, **labels) - _metric(before, name, **labels)

    assert grew("tally_launches_total", outcome="accepted", code="ok") == 1
    assert grew("tally_launches_total", outcome="refused", code="bad_audience") == 1
    assert grew("tally_http_request_duration_seconds_count", route="/api/grades/entries/bulk", method="POST") == 1
    assert grew("tally_delivery_outcomes_total", platform=host, outcome="accepted") == 2
    assert grew("tally_delivery_outcomes_total", platform=host, outcome="failed") == 1
    assert grew("tally_lms_requests_total", platform=host, service="scores", outcome="2xx") == 2
    assert grew("tally_lms_requests_total", platform=host, service="scores", outcome="4xx") == 1
    assert grew("tally_lms_request_duration_seconds_count", platform=host, service="nrps") >= 1
    # One token for every scope the registration was granted, shared by the roster (web) and the
    # worker through the token store (one token per registration, issue 12).
    assert grew("tally_token_fetches_total", platform=host, outcome="granted") == 1
    # From the database, whoever is scraped: the pairs by state and the queue's age.
    assert _metric(text, "tally_delivery_pairs", state="delivered") == 2
    assert _metric(text, "tally_delivery_pairs", state="failed") == 1
    assert _metric(text, "tally_delivery_oldest_due_seconds") == 0


def test_metrics_answer_only_allowed_networks_or_the_token(new_stack: NewStack) -> None:
    stack = new_stack("moodle", metrics_allowed_networks=("10.0.0.0/8",), metrics_token="scrape-token-123")
    assert requests.get(stack.tool_url + "/metrics").status_code == 403
    assert requests.get(stack.tool_url + "/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    ok = requests.get(stack.tool_url + "/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert ok.status_code == 200 and "tally_launches_total" in ok.text


def test_trusted_proxies_decide_whose_address_counts(clean_db: Engine, database_url: str, keys_dir: Any,
                                                    app_of: Any) -> None:
    # Behind one trusted proxy, the client's address is X-Forwarded-For's: a scraper from outside is refused.
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    direct = app_of(make_settings(database_url, keys_dir)).test_client()
    assert direct.get("/metrics", headers=forwarded).status_code == 200  # the header is ignored: loopback
    proxied = app_of(make_settings(database_url, keys_dir, trusted_proxies=1)).test_client()
    assert proxied.get("/metrics", headers=forwarded).status_code == 403
    assert proxied.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


# -- readiness ---------------------------------------------------------------------------------


def test_readyz_is_ready_with_a_database_migrations_and_a_key(moodle: Stack) -> None:
    r = requests.get(moodle.tool_url + "/readyz")
    assert r.status_code == 200, r.text
    assert set(r.json()["checks"]) == {"database", "migrations", "signing_key"}
    assert requests.get(moodle.tool_url + "/healthz").json() == {"status": "ok"}


def test_readyz_fails_with_the_database_down(tmp_path: Any, keys_dir: Any, app_of: Any) -> None:
    # A database that cannot be opened (its directory does not exist), as after a crash of the server.
    settings = make_settings(f"sqlite:///{tmp_path}/gone/tally.db", keys_dir)
    client = app_of(settings).test_client()
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json["checks"]["database"]["ok"] is False
    assert client.get("/healthz").status_code == 200  # alive, but not ready


def test_readyz_fails_with_a_stale_worker_heartbeat_and_passes_with_a_fresh_one(clean_db: Engine, database_url: str,
                                                                               keys_dir: Any, app_of: Any) -> None:
    settings = make_settings(database_url, keys_dir, expect_workers=True, worker_heartbeat_max_age_seconds=60)
    client = app_of(settings).test_client()
    r = client.get("/readyz")
    assert r.status_code == 503 and "no delivery worker" in r.json["checks"]["workers"]["detail"]
    now = clock.utcnow()
    beat = Heartbeat(make_session_factory(clean_db), name="host:1:abc", every=15, clock=lambda: now)
    assert beat.beat()
    assert not beat.beat()  # at most once per `every` seconds
    clock.shift(30)  # 30 s after the beat
    assert client.get("/readyz").status_code == 200
    clock.shift(60)  # 90 s: stale
    r = client.get("/readyz")
    assert r.status_code == 503 and "90 s old" in r.json["checks"]["workers"]["detail"]
    beat.stop()
    with make_session_factory(clean_db)() as db:
        assert db.query(WorkerHeartbeat).count() == 0
        db.execute(delete(WorkerHeartbeat))
        db.commit()


# -- the doctor --------------------------------------------------------------------------------


def _doctor(stack: Stack) -> tuple[int, str]:
    out = io.StringIO()
    code = doctor.run(stack.settings, out)
    return code, out.getvalue()


def test_the_doctor_finds_nothing_wrong_with_the_sandbox(moodle: Stack) -> None:
    k = Klass(moodle)  # a placement with grade services, so the line-items GET has a URL
    k.close()
    code, text = _doctor(moodle)
    assert code == 0, text
    assert "[ok  ] platform JWKS" in text and "[ok  ] access token" in text and "[ok  ] line items: GET" in text
    assert "No problems found." in text


def test_the_doctor_recognises_moodles_blocked_jwks_fetch(moodle: Stack) -> None:
    moodle.platform.faults.fail_next(1, status=500, where="token", body=(
        "Exception - fix_jwks_alg(): Argument #1 ($jwks) must be of type array, null given, called in "
        "/var/www/moodle/mod/lti/token.php on line 70"))
    code, text = _doctor(moodle)
    assert code == 1
    assert "[FAIL] access token" in text and "fix_jwks_alg" in text
    assert "cURL blocked hosts list" in text and "cURL allowed ports list" in text
    assert moodle.settings.public_base_url + "/.well-known/jwks.json" in text


def test_the_doctor_says_what_to_fix_for_an_unreachable_platform_jwks(moodle: Stack) -> None:
    with moodle.session() as db:
        from tool.lti.models import Registration

        reg = db.query(Registration).one()
        reg.key_set_url = moodle.platform.issuer + "/no-such-jwks"
        db.commit()
    code, text = _doctor(moodle)
    assert code == 1 and "[FAIL] platform JWKS" in text and "public keyset URL" in text, text
