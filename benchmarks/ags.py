"""Benchmark: deliver 1,000 scores to the sandbox LMS through Tally's AgsClient and two pylti1p3 ways, in one run.

    python benchmarks/ags.py [--scores 1000] [--latency-ms 5] [--concurrency N] [--mode moodle|canvas]
                             [--canvas-throttle] [--example-app-scores 200] [--strict]

The sandbox LMS runs in a child process on loopback (its own interpreter, so its request
handling does not compete with the clients for one GIL), served with HTTP/1.1 keep-alive as
Moodle and Canvas are, with `--latency-ms` (default 5) added to every AGS call. It counts
token requests (its token endpoint) and TCP connections (accepted sockets). The tool's
JWKS, which the sandbox fetches to verify client assertions, is served from this process.
In canvas mode the sandbox throttles as Canvas does (tool/sandbox/throttle.py), which would
refuse the pylti1p3 ways' token per grade: the benchmark measures the clients, so it switches
the throttle off unless `--canvas-throttle` is given.

Three ways to send the same scores (points 0..10 of 10, one per student, each way to its
own line item so that no score supersedes another):

* tally: `AgsClient.post_scores(reg, items)`, the call the delivery worker makes for a
  claimed batch: one pooled session, one shared access token (cold at the start: the
  token cache in the database is emptied first), at most `--concurrency` requests in
  flight (default: the `ags_concurrency` setting).
* pylti1p3 loop: pylti1p3's documented way: a real launch (the sandbox signs an id_token,
  `FlaskMessageLaunch` validates it), one `get_ags()` object, `put_grade(grade)` per
  student to the launch's line item.
* pylti1p3 example app: the pattern of pylti1p3's Flask example app (its score endpoint),
  per grade: `ToolConfJsonFile`, launch restored from a cache by launch id
  (`FlaskCacheDataStorage` on an in-memory cache like the example's `flask_caching`
  "simple" cache), `get_ags()`, `put_grade(grade, LineItem(tag="score", …))`. Run inside a
  Flask request context in this process; the browser's request to that endpoint is not
  timed. Each grade costs the same (a new requests.Session, a new token whose client
  assertion loads the private key from PEM, a line item lookup, the post), about 0.2 s on
  the benchmark machine, so by default the first `--example-app-scores` (200) of the same
  scores are sent and the time and counts are scaled to `--scores`; the table says so.
  `--example-app-scores 1000` sends them all (about 3 to 4 minutes).

Printed: a table with the time of each way, scores/s, its ratio to Tally's time, its ratio
to the floor (scores × latency ÷ concurrency cap: the time a client that always keeps the
cap busy needs), token requests and TCP connections; then ONE line of JSON (last line of
stdout). Targets (the issue): Tally ≥ 5× faster than the loop, ≥ 30× faster than the
example-app pattern, one token request. Exits 0 even when a target is missed (the table
says MISSED), unless `--strict`; 2 when a score is refused or lost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import logging
import multiprocessing
import re
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:  # there when run as a script, not when loaded another way
    sys.path.insert(0, str(BENCHMARKS))

from _support import (  # noqa: E402  (importing it puts the repository on sys.path too)
    BenchmarkError, MemoryCache, bench_settings, finish, machine, print_cells, progress, run_main)

TARGET_VS_LOOP = 5.0
TARGET_VS_EXAMPLE_APP = 30.0
TARGET_TOKEN_REQUESTS = 1
MAXIMUM = 10  # every score is n of 10 points
ITEM_MAXIMUM = 100  # the line items Tally's runs post to
WARMUP_SCORES = 50
CLIENT_ID = "tally-bench"
DEPLOYMENT_ID = "1"
RESOURCE_LINK = "rl-1"


# -- the sandbox LMS, in a child process ------------------------------------------------------------


def sandbox_process(conn: Any, config: dict[str, Any], latency_ms: int, students: int) -> None:
    """Serve a sandbox platform until told to stop; answer counters and results over `conn`."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from tool.sandbox import SandboxConfig, create_sandbox_app
    from tool.sandbox.server import SandboxServer

    throttle = bool(config.pop("throttle", False))
    app = create_sandbox_app(SandboxConfig(**config))
    platform = app.extensions["sandbox"]
    platform.throttle.configure(enabled=throttle and platform.mode == "canvas")
    added = [u.id for u in platform.add_students(students)]
    server = SandboxServer(app, port=int(config["base_url"].rsplit(":", 1)[1])).start()
    platform.connections.attach(server.server)
    platform.faults.latency_ms = latency_ms
    conn.send({"students": added, "teacher": platform.teacher.id})
    try:
        while True:
            command = conn.recv()
            if command == "stats":
                conn.send({"token_requests": platform.tokens.requests, "connections": platform.tcp_connections,
                           "cpu": time.process_time()})
            elif command == "results":
                with platform.store.lock:
                    conn.send({item.label: (item.score_maximum,
                                            {r.user_id: r.raw for r in platform.store.results_of(item.id)})
                               for item in platform.store.line_items.values()})
            elif command == "stop":
                break
    finally:
        server.stop()
        conn.close()


@dataclass
class Sandbox:
    """The child process and what it told us."""

    process: Any
    conn: Any
    base_url: str
    students: list[str]
    teacher: str

    def stats(self) -> dict[str, int]:
        self.conn.send("stats")
        return self.conn.recv()

    def results(self) -> dict[str, tuple[float, dict[str, float | None]]]:
        self.conn.send("results")
        return self.conn.recv()

    def stop(self) -> None:
        try:
            self.conn.send("stop")
        except OSError:
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()


def start_sandbox(config: dict[str, Any], latency_ms: int, students: int) -> Sandbox:
    ctx = multiprocessing.get_context("spawn")  # no fork of a process with server threads
    parent, child = ctx.Pipe()
    process = ctx.Process(target=sandbox_process, args=(child, config, latency_ms, students), daemon=True)
    process.start()
    if not parent.poll(60):
        process.terminate()
        raise BenchmarkError("the sandbox did not start within 60 s")
    ready = parent.recv()
    return Sandbox(process, parent, config["base_url"], ready["students"], ready["teacher"])


# -- the tool side: JWKS over HTTP, pylti1p3 login and launch ------------------------------------


@dataclass
class ToolSide:
    """The tool's keys, its JWKS server, pylti1p3's configuration and Flask app."""

    workdir: Path
    keys: Any
    jwks_server: Any
    flask_app: Any
    conf_path: Path
    cache: MemoryCache
    launches: dict[str, Any]


def make_tool_side(workdir: Path, sandbox_paths: Any, issuer: str) -> ToolSide:
    from cryptography.hazmat.primitives import serialization
    from flask import Flask, jsonify
    from pylti1p3.contrib.flask import FlaskCacheDataStorage, FlaskMessageLaunch, FlaskOIDCLogin, FlaskRequest
    from pylti1p3.tool_config import ToolConfJsonFile

    from tool.lti.keys import KeyStore
    from tool.serve import ServerThread

    keys = KeyStore(workdir / "keys")
    keys.generate()
    signing = keys.signing_key()
    (workdir / "private.key").write_bytes(signing.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (workdir / "public.key").write_bytes(signing.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    conf_path = workdir / "pylti1p3.json"
    conf_path.write_text(json.dumps({issuer: [{
        "default": True, "client_id": CLIENT_ID, "auth_login_url": sandbox_paths.auth_url,
        "auth_token_url": sandbox_paths.token_url, "auth_audience": None, "key_set_url": sandbox_paths.jwks_url,
        "key_set": None, "private_key_file": "private.key", "public_key_file": "public.key",
        "deployment_ids": [DEPLOYMENT_ID]}]}))

    jwks_app = Flask("bench_tool_jwks")
    jwks_app.add_url_rule("/.well-known/jwks.json", "jwks", lambda: jsonify(keys.jwks()))
    jwks_server = ServerThread(jwks_app).start()

    cache = MemoryCache()
    launches: dict[str, Any] = {}
    app = Flask("bench_pylti1p3")
    app.config.update(SECRET_KEY=secrets.token_urlsafe(32))

    @app.route("/lti/login", methods=["GET", "POST"])
    def login() -> Any:
        tool_conf = ToolConfJsonFile(str(conf_path))
        oidc = FlaskOIDCLogin(FlaskRequest(), tool_conf, launch_data_storage=FlaskCacheDataStorage(cache))
        return oidc.redirect(FlaskRequest().get_param("target_link_uri"))

    @app.post("/lti/launch")
    def launch() -> Any:
        tool_conf = ToolConfJsonFile(str(conf_path))
        message_launch = FlaskMessageLaunch(FlaskRequest(), tool_conf, launch_data_storage=FlaskCacheDataStorage(cache))
        message_launch.get_launch_data()
        launches[message_launch.get_launch_id()] = message_launch
        return message_launch.get_launch_id()

    return ToolSide(workdir, keys, jwks_server, app, conf_path, cache, launches)


_FORM_ACTION = re.compile(r'<form[^>]*method="([^"]+)"[^>]*action="([^"]+)"')
_FORM_FIELD = re.compile(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"')


def autopost_form(page: str) -> tuple[str, str, dict[str, str]]:
    """The method, action and fields of the sandbox's auto-submitting form."""
    match = _FORM_ACTION.search(page)
    if match is None:
        raise BenchmarkError(f"no auto-submitting form in the sandbox's page: {page[:300]}")
    fields = {k: html.unescape(v) for k, v in _FORM_FIELD.findall(page)}
    return match.group(1).lower(), html.unescape(match.group(2)), fields


def real_launch(tool: ToolSide, sandbox: Sandbox) -> Any:
    """A teacher's launch of rl-1 through the sandbox; pylti1p3 validates it. Its MessageLaunch."""
    import requests

    browser = requests.Session()
    client = tool.flask_app.test_client()
    page = browser.post(sandbox.base_url + "/launch", data={"user_id": sandbox.teacher, "resource_link_id": RESOURCE_LINK})
    method, _, fields = autopost_form(page.text)
    login = client.post("/lti/login", data=fields) if method == "post" else client.get("/lti/login", query_string=fields)
    if login.status_code != 302:
        raise BenchmarkError(f"pylti1p3 login answered {login.status_code}: {login.get_data(as_text=True)[:300]}")
    auth = browser.get(login.headers["Location"])
    if auth.status_code != 200:
        raise BenchmarkError(f"the sandbox refused the authorization request: {auth.text[:300]}")
    _, _, fields = autopost_form(auth.text)
    launched = client.post("/lti/launch", data=fields)
    if launched.status_code != 200:
        raise BenchmarkError(f"pylti1p3 refused the launch: {launched.get_data(as_text=True)[:500]}")
    browser.close()
    return tool.launches[launched.get_data(as_text=True)]


# -- the three ways -----------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    label: str  # the line item it posts to
    measured_scores: int = 0  # scores sent; `seconds` and the counts are scaled to the run's scores when fewer
    seconds: float = 0.0
    token_requests: int = 0
    connections: int = 0
    client_cpu: float = 0.0  # CPU seconds of this process (the client) during the run
    sandbox_cpu: float = 0.0  # CPU seconds of the sandbox's process during the run


def measured(sandbox: Sandbox, run: Run, send: Callable[[], None], *, sent: int, scores: int) -> Run:
    """Time `send` (which sends `sent` scores) and count; scale to `scores` when fewer were sent."""
    before = sandbox.stats()
    cpu = time.process_time()
    t0 = time.perf_counter()
    send()
    seconds = time.perf_counter() - t0
    client_cpu = time.process_time() - cpu
    after = sandbox.stats()
    scale = scores / sent
    run.measured_scores = sent
    run.seconds = seconds * scale
    run.client_cpu = client_cpu * scale
    run.sandbox_cpu = (after["cpu"] - before["cpu"]) * scale
    run.token_requests = round((after["token_requests"] - before["token_requests"]) * scale)
    run.connections = round((after["connections"] - before["connections"]) * scale)
    return run


@dataclass(frozen=True)
class BenchRegistration:
    """What the AgsClient needs of a registration."""

    issuer: str
    client_id: str
    auth_login_url: str
    auth_token_url: str
    auth_audience: str | None = None


def points_of(n: int) -> int:
    return n % (MAXIMUM + 1)


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def pylti1p3_grade(user_id: str, points: int) -> Any:
    from pylti1p3.grade import Grade

    return (Grade().set_score_given(points).set_score_maximum(MAXIMUM).set_timestamp(now_iso())
            .set_activity_progress("Completed").set_grading_progress("FullyGraded").set_user_id(user_id))


def run_tally(settings: Any, sessions: Any, keys: Any, reg: BenchRegistration, lineitem_url: str,
              students: list[str]) -> Callable[[], None]:
    from tool.ags.client import AgsClient
    from tool.ags.http import make_session
    from tool.ags.score import ActivityProgress, GradingProgress, Score

    client = AgsClient(settings=settings, session_factory=sessions, keys=keys, http=make_session(settings))
    items = [(lineitem_url, Score(user_id=u, activity_progress=ActivityProgress.COMPLETED,
                                  grading_progress=GradingProgress.FULLY_GRADED, score_given=Decimal(points_of(n)),
                                  score_maximum=Decimal(MAXIMUM)))
             for n, u in enumerate(students)]

    def send() -> None:
        try:
            outcomes = client.post_scores(reg, items)
        finally:
            client.close()
            client.http.close()
        refused = [o for o in outcomes if o.kind != "accepted"]
        if refused:
            raise BenchmarkError(f"tally: {len(refused)} scores not accepted, e.g. {refused[0]}")

    return send


def run_pylti1p3_loop(message_launch: Any, students: list[str]) -> Callable[[], None]:
    def send() -> None:
        ags = message_launch.get_ags()
        for n, user in enumerate(students):
            ags.put_grade(pylti1p3_grade(user, points_of(n)))

    return send


def run_pylti1p3_example_app(tool: ToolSide, launch_id: str, students: list[str]) -> Callable[[], None]:
    from pylti1p3.contrib.flask import FlaskCacheDataStorage, FlaskMessageLaunch, FlaskRequest
    from pylti1p3.lineitem import LineItem
    from pylti1p3.tool_config import ToolConfJsonFile

    def score(user: str, points: int) -> None:
        # The example app's score endpoint, step by step, for one grade.
        tool_conf = ToolConfJsonFile(str(tool.conf_path))
        flask_request = FlaskRequest()
        launch_data_storage = FlaskCacheDataStorage(tool.cache)
        message_launch = FlaskMessageLaunch.from_cache(launch_id, flask_request, tool_conf,
                                                       launch_data_storage=launch_data_storage)
        resource_link_id = message_launch.get_launch_data().get(
            "https://purl.imsglobal.org/spec/lti/claim/resource_link", {}).get("id")
        if not message_launch.has_ags():
            raise BenchmarkError("the launch has no AGS claim")
        grades = message_launch.get_ags()
        line_item = LineItem().set_tag("score").set_score_maximum(MAXIMUM).set_label("Score")
        if resource_link_id:
            line_item.set_resource_id(resource_link_id)
        grades.put_grade(pylti1p3_grade(user, points), line_item)

    def send() -> None:
        for n, user in enumerate(students):
            with tool.flask_app.test_request_context(f"/api/score/{launch_id}/{points_of(n)}/", method="POST"):
                score(user, points_of(n))

    return send


# -- report ---------------------------------------------------------------------------------------------


def check_delivered(sandbox: Sandbox, runs: list[Run], students: list[str]) -> None:
    """Every way delivered every score with the right points (the sandbox stores them rescaled)."""
    results = sandbox.results()
    for run in runs:
        maximum, got = results.get(run.label, (1.0, {}))
        wrong = [u for n, u in enumerate(students) if got.get(u) is None or
                 abs(float(got[u]) / maximum - points_of(n) / MAXIMUM) > 1e-9]
        if wrong:
            raise BenchmarkError(f"{run.name}: {len(wrong)} of {len(students)} scores missing or wrong "
                                 f"in line item {run.label!r}")


def print_table(runs: list[Run], tally: Run, floor: float, scores: int) -> None:
    headers = ["", "seconds", "scores/s", "x tally", "x floor", "token requests", "TCP connections",
               "client CPU ms/score", "sandbox CPU ms/score"]
    cells = [headers]
    for run in runs:
        cells.append([run.name, f"{run.seconds:.3f}", f"{scores / run.seconds:.0f}",
                      f"{run.seconds / tally.seconds:.1f}", f"{run.seconds / floor:.1f}",
                      str(run.token_requests), str(run.connections),
                      f"{run.client_cpu / scores * 1000:.2f}", f"{run.sandbox_cpu / scores * 1000:.2f}"])
    print_cells(cells)


def figures(run: Run, tally: Run, floor: float, scores: int) -> dict[str, Any]:
    return {"seconds": round(run.seconds, 3), "measured_scores": run.measured_scores,
            "scores_per_s": round(scores / run.seconds, 1),
            "ratio_to_tally": round(run.seconds / tally.seconds, 2), "ratio_to_floor": round(run.seconds / floor, 2),
            "token_requests": run.token_requests, "tcp_connections": run.connections,
            "client_cpu_ms_per_score": round(run.client_cpu / scores * 1000, 3),
            "sandbox_cpu_ms_per_score": round(run.sandbox_cpu / scores * 1000, 3)}


# -- main -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scores", type=int, default=1000, help="scores per way (default 1000)")
    p.add_argument("--latency-ms", type=int, default=5, help="added to every AGS call by the sandbox (default 5)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="Tally's per-platform cap (default: the ags_concurrency setting)")
    p.add_argument("--mode", choices=("moodle", "canvas"), default="moodle", help="sandbox mode (default moodle)")
    p.add_argument("--canvas-throttle", action="store_true",
                   help="keep the canvas sandbox's request throttle on (off by default: the clients are measured)")
    p.add_argument("--example-app-scores", type=int, default=200, metavar="N",
                   help="scores sent the example app's way: the first N of the same students, its time scaled "
                   "to --scores (each of its grades costs the same: a new session, token and key load; "
                   "default 200, about 40 s; 0 leaves it out; give --scores for the full run)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.scores < 1 or args.latency_ms < 0 or (args.concurrency is not None and args.concurrency < 1):
        p.error("--scores and --concurrency must be positive, --latency-ms not negative")
    if not 0 <= args.example_app_scores <= args.scores:
        p.error("--example-app-scores must be between 0 and --scores")
    return args


def run(args: argparse.Namespace) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from sqlalchemy import delete

    from tool import migrate
    from tool.ags.client import AgsClient
    from tool.ags.lineitems import LineItem
    from tool.ags.models import ServiceToken
    from tool.db import make_engine, make_session_factory
    from tool.sandbox import seed
    from tool.sandbox.paths import Paths
    from tool.serve import reserve_port

    tmp = tempfile.TemporaryDirectory(prefix="tally-bench-ags-")
    workdir = Path(tmp.name)
    sandbox_port = reserve_port()
    base_url = f"http://127.0.0.1:{sandbox_port}"
    paths = Paths(base_url, args.mode, seed.COURSE.id, DEPLOYMENT_ID)
    tool = make_tool_side(workdir, paths, base_url)
    sandbox: Sandbox | None = None
    engine = None
    try:
        settings = bench_settings(f"sqlite:///{workdir / 'bench.db'}", workdir, http_timeout_seconds=60,
                                  **({"ags_concurrency": args.concurrency} if args.concurrency else {}))
        migrate.upgrade(settings)
        engine = make_engine(settings.resolved_database_url)
        sessions = make_session_factory(engine)
        cap = settings.ags_concurrency
        floor = args.scores * args.latency_ms / 1000 / cap if args.latency_ms else float("nan")

        sandbox = start_sandbox({
            # Login and launch go through pylti1p3's Flask app in this process (test client);
            # only the JWKS must be reachable over HTTP (the sandbox verifies client assertions).
            "base_url": base_url, "tool_login_url": tool.jwks_server.url + "/lti/login",
            "tool_launch_url": tool.jwks_server.url + "/lti/launch",
            "tool_jwks_url": tool.jwks_server.url + "/.well-known/jwks.json", "mode": args.mode,
            "client_id": CLIENT_ID, "deployment_id": DEPLOYMENT_ID, "key_path": workdir / "platform.pem",
            "throttle": args.canvas_throttle,
        }, args.latency_ms, args.scores + WARMUP_SCORES)
        students, warmup_students = sandbox.students[:args.scores], sandbox.students[args.scores:]
        reg = BenchRegistration(base_url, CLIENT_ID, paths.auth_url, paths.token_url)

        # The launch first, while rl-1 has exactly one line item (so the claim names it).
        message_launch = real_launch(tool, sandbox)
        launch_id = message_launch.get_launch_id()

        setup = AgsClient(settings=settings, session_factory=sessions, keys=tool.keys)
        try:
            tally_item = setup.create_lineitem(reg, paths.lineitems_url,
                                               LineItem(None, "Tally post_scores", Decimal(ITEM_MAXIMUM)))
            warmup_item = setup.create_lineitem(reg, paths.lineitems_url, LineItem(None, "warm-up", Decimal(ITEM_MAXIMUM)))
            # Warm-up: imports, the sandbox's fetch of the tool's JWKS, both processes' code paths.
            run_tally(settings, sessions, tool.keys, reg, warmup_item.id or "", warmup_students)()
        finally:
            setup.close()
        with sessions() as db, db.begin():
            db.execute(delete(ServiceToken))  # Tally starts cold, like pylti1p3: its token fetch is timed

        print(f"ags benchmark: {args.scores} scores per way, sandbox LMS ({args.mode} mode) in a child process with "
              f"{args.latency_ms} ms added per AGS call, Tally's cap {cap} per platform, {machine()}", flush=True)
        n = args.scores
        tally = measured(sandbox, Run("tally post_scores", "Tally post_scores"),
                         run_tally(settings, sessions, tool.keys, reg, tally_item.id or "", students), sent=n, scores=n)
        progress(f"  tally done in {tally.seconds:.2f} s")
        loop = measured(sandbox, Run("pylti1p3 loop", seed.SEED_LINE_ITEM["label"]),
                        run_pylti1p3_loop(message_launch, students), sent=n, scores=n)
        progress(f"  pylti1p3 loop done in {loop.seconds:.2f} s")
        check_delivered(sandbox, [tally, loop], students)
        runs = [tally, loop]
        example: Run | None = None
        if args.example_app_scores:
            sample = students[:args.example_app_scores]
            example = measured(sandbox, Run("pylti1p3 example app", "Score"),
                               run_pylti1p3_example_app(tool, launch_id, sample), sent=len(sample), scores=n)
            if len(sample) < n:
                example.name += f" ({len(sample)} sent, x{n / len(sample):g})"
            progress(f"  pylti1p3 example app done ({example.seconds:.2f} s for {n})")
            check_delivered(sandbox, [example], sample)
            runs.append(example)

        vs_loop = loop.seconds / tally.seconds
        vs_example = example.seconds / tally.seconds if example else None
        loop_ok = vs_loop >= TARGET_VS_LOOP
        example_ok = vs_example is None or vs_example >= TARGET_VS_EXAMPLE_APP
        tokens_ok = tally.token_requests == TARGET_TOKEN_REQUESTS
        met = loop_ok and example_ok and tokens_ok and example is not None

        print(f"floor: {args.scores} x {args.latency_ms} ms / {cap} = {floor:.3f} s "
              "(every way is checked: all scores stored with the right points)")
        print()
        print_table(runs, tally, floor, args.scores)
        if loop.connections == 0:
            print("(the pylti1p3 loop opened no connection while timed: it reuses the keep-alive connection its "
                  "launch opened to fetch the platform's JWKS)")
        print()
        print(f"target tally >= {TARGET_VS_LOOP:.0f}x faster than the pylti1p3 loop: {vs_loop:.1f}x  "
              f"{'met' if loop_ok else 'MISSED'}")
        if vs_example is not None:
            print(f"target tally >= {TARGET_VS_EXAMPLE_APP:.0f}x faster than the example-app pattern: {vs_example:.1f}x  "
                  f"{'met' if example_ok else 'MISSED'}")
        print(f"target one token request: {tally.token_requests}  {'met' if tokens_ok else 'MISSED'}")

        result = {
            "benchmark": "ags", "scores": args.scores, "latency_ms": args.latency_ms, "concurrency": cap,
            "mode": args.mode, "floor_s": round(floor, 4),
            "tally": figures(tally, tally, floor, args.scores),
            "pylti1p3_loop": figures(loop, tally, floor, args.scores),
            "pylti1p3_example_app": figures(example, tally, floor, args.scores) if example else None,
            "speedup_vs_loop": round(vs_loop, 2),
            "speedup_vs_example_app": round(vs_example, 2) if vs_example is not None else None,
            "targets": {"vs_loop": TARGET_VS_LOOP, "vs_example_app": TARGET_VS_EXAMPLE_APP,
                        "token_requests": TARGET_TOKEN_REQUESTS},
            "met": met,
        }
        return finish(result, strict=args.strict)
    finally:
        if sandbox is not None:
            sandbox.stop()
        tool.jwks_server.stop()
        if engine is not None:
            engine.dispose()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(run_main(parse_args, run))
