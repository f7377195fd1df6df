"""Benchmark: OIDC login + LTI 1.3 launch through Tally, against plain pylti1p3, in one run.

    python benchmarks/launch.py [--iterations 1000] [--warmup 50] [--users 200]
                                [--database-url URL | --postgres] [--profile] [--strict]

One process, no network beyond loopback. A tiny platform (an RSA key and its JWKS served
on loopback) plays the LMS for two tools:

* Tally: the real app (`tool.web.create_app`) with its database writes (login state,
  person, course, offering, membership, launch record), on a temporary SQLite file, or on
  PostgreSQL with `--database-url` / `--postgres` (a throwaway `tally_bench_<random>`
  database, dropped afterwards).
* pylti1p3: a minimal Flask app on `pylti1p3.contrib.flask` (FlaskOIDCLogin,
  FlaskMessageLaunch, cookie state, nonce in an in-memory cache through
  FlaskCacheDataStorage, JWKS cached with `set_public_key_caching`), rendering a small page.

Each iteration: login (POST) -> read state and nonce from the 302 Location -> the platform
signs an id_token (RS256, not timed) -> launch (POST id_token + state). Only the login and
launch requests are timed; their sum is the time of one launch. Both apps go through the
Flask test client (in-process WSGI; a fresh client, so a fresh cookie jar, per launch) and
iterations alternate between them, so both see the same machine. Users rotate (`--users`, default 200) so Tally's upserts do real work.

Prints a table, then ONE line of JSON with the figures (last line of stdout). Exits 0 even
when a target is missed (the table says MISSED), unless `--strict` is given.
"""

from __future__ import annotations

import argparse
import gc
import logging
import re
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:  # there when run as a script, not when loaded another way
    sys.path.insert(0, str(BENCHMARKS))

from _support import (  # noqa: E402  (importing it puts the repository on sys.path too)
    DEFAULT_SERVER, INSTRUCTOR, LEARNER, BenchmarkError, MemoryCache, bench_settings, finish, machine, percentile,
    print_cells, print_profile, run_main, workspace)
import jwt  # noqa: E402
import requests  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from flask import Flask, jsonify, render_template_string, request  # noqa: E402

TARGET_LAUNCHES_PER_S = 300.0
TARGET_MAX_RATIO = 2.0

CLIENT_ID = "bench-client"
DEPLOYMENT_ID = "1"
KID = "bench-platform-key"
LTI = "https://purl.imsglobal.org/spec/lti/claim/"


# -- the platform -------------------------------------------------------------------------


class Platform:
    """An RSA key, its JWKS on loopback (counting fetches per tool), and id_token signing."""

    def __init__(self) -> None:
        from tool.lti.keys import public_jwk
        from tool.serve import ServerThread

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwks = {"keys": [{**public_jwk(self.key.public_key()), "kid": KID, "alg": "RS256", "use": "sig"}]}
        self.fetches = {"tally": 0, "pylti1p3": 0}
        app = Flask("bench_platform")

        @app.get("/jwks/<tool>")
        def _jwks(tool: str) -> Any:
            self.fetches[tool] = self.fetches.get(tool, 0) + 1
            resp = jsonify(jwks)
            resp.headers["Cache-Control"] = "public, max-age=3600"
            return resp

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log on stderr
        self.server = ServerThread(app).start()
        self.issuer = self.server.url

    def jwks_url(self, tool: str) -> str:
        return f"{self.issuer}/jwks/{tool}"

    def id_token(self, *, nonce: str, user: int, courses: int, instructor_every: int) -> str:
        """A resource link launch id_token for user number `user`."""
        now = int(time.time())
        course = user % courses
        role = INSTRUCTOR if instructor_every and user % instructor_every == 0 else LEARNER
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": f"user-{user}",
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "name": f"Bench User {user}",
            "given_name": "Bench",
            "family_name": f"User {user}",
            "email": f"user{user}@example.edu",
            LTI + "message_type": "LtiResourceLinkRequest",
            LTI + "version": "1.3.0",
            LTI + "deployment_id": DEPLOYMENT_ID,
            LTI + "roles": [role],
            LTI + "resource_link": {"id": f"rl-{course}", "title": f"Week {course + 1}"},
            LTI + "context": {"id": f"ctx-{course}", "title": f"Course {course + 1}", "label": f"C{course + 1}"},
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})

    def stop(self) -> None:
        self.server.stop()


# -- the two tools --------------------------------------------------------------------------


@dataclass
class Tool:
    """A tool under test: its Flask app, its URLs, and how to recognise a good landing page."""

    name: str
    app: Flask
    login_path: str
    launch_path: str
    target_link_uri: str
    landed: Callable[[str], bool]
    login_ms: list[float] = field(default_factory=list)
    launch_ms: list[float] = field(default_factory=list)


_TALLY_SESSION = re.compile(r'<meta name="tally-session" content="[^"]+">')


def make_tally(platform: Platform, database_url: str, workdir: Path) -> Tool:
    """The real Tally app on a migrated database, with the platform registered."""
    from tool import migrate
    from tool.lti.keys import KeyStore
    from tool.lti.registry import add_registration
    from tool.web import create_app
    from tool.web.app import get_db

    settings = bench_settings(database_url, workdir)
    KeyStore(settings.path(settings.keys_dir)).generate()
    migrate.upgrade(settings)
    app = create_app(settings)
    with app.app_context():
        db = get_db()
        add_registration(
            db,
            issuer=platform.issuer,
            client_id=CLIENT_ID,
            auth_login_url=platform.issuer + "/auth",
            auth_token_url=platform.issuer + "/token",
            key_set_url=platform.jwks_url("tally"),
            name="Benchmark platform",
            deployment_ids=[DEPLOYMENT_ID],
        )
        db.commit()
    return Tool(
        name="tally",
        app=app,
        login_path="/lti/login",
        launch_path="/lti/launch",
        target_link_uri=settings.public_base_url + "/lti/launch",
        landed=lambda body: _TALLY_SESSION.search(body) is not None,
    )


_PLAIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Launched</title></head>
<body><h1>Hello {{ name }}</h1><p>{{ course }} · {{ link }}</p><p id="launch">{{ launch_id }}</p></body></html>"""


def make_pylti1p3(platform: Platform) -> Tool:
    """A minimal Flask tool on pylti1p3's Flask adapter, as its documentation builds one."""
    from pylti1p3.contrib.flask import (
        FlaskCacheDataStorage,
        FlaskMessageLaunch,
        FlaskOIDCLogin,
        FlaskRequest,
    )
    from pylti1p3.tool_config import ToolConfDict

    tool_conf = ToolConfDict(
        {
            platform.issuer: [
                {
                    "default": True,
                    "client_id": CLIENT_ID,
                    "auth_login_url": platform.issuer + "/auth",
                    "auth_token_url": platform.issuer + "/token",
                    "auth_audience": None,
                    "key_set_url": platform.jwks_url("pylti1p3"),
                    "key_set": None,
                    "deployment_ids": [DEPLOYMENT_ID],
                }
            ]
        }
    )
    cache = MemoryCache()
    http = requests.Session()  # shared, so the baseline does not build a Session per launch
    app = Flask("bench_pylti1p3")
    app.config.update(SECRET_KEY=secrets.token_urlsafe(32))
    launch_url = "http://localhost/launch"

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        oidc = FlaskOIDCLogin(FlaskRequest(), tool_conf, launch_data_storage=FlaskCacheDataStorage(cache))
        return oidc.redirect(request.values.get("target_link_uri") or launch_url)

    @app.post("/launch")
    def launch() -> Any:
        storage = FlaskCacheDataStorage(cache)
        message_launch = FlaskMessageLaunch(
            FlaskRequest(), tool_conf, launch_data_storage=storage, requests_session=http
        )
        message_launch.set_public_key_caching(storage, cache_lifetime=7200)
        data = message_launch.get_launch_data()
        return render_template_string(
            _PLAIN_PAGE,
            name=data.get("name", ""),
            course=data.get(LTI + "context", {}).get("title", ""),
            link=data.get(LTI + "resource_link", {}).get("title", ""),
            launch_id=message_launch.get_launch_id(),
        )

    return Tool(
        name="pylti1p3",
        app=app,
        login_path="/login",
        launch_path="/launch",
        target_link_uri=launch_url,
        landed=lambda body: '<p id="launch">lti1p3-launch-' in body,
    )


# -- running ----------------------------------------------------------------------------------


def one_launch(tool: Tool, platform: Platform, user: int, args: argparse.Namespace, *,
               record: bool, profiler: Any = None) -> None:
    """Login, sign, launch; records the login and launch request times when `record`."""
    form = {
        "iss": platform.issuer,
        "login_hint": f"user-{user}",
        "target_link_uri": tool.target_link_uri,
        "client_id": CLIENT_ID,
        "lti_message_hint": f"rl-{user % args.courses}",
    }
    # A fresh browser per launch: pylti1p3's state cookies (5 min each) would otherwise pile
    # up in one cookie jar and every later request would carry hundreds of them.
    client = tool.app.test_client()
    if profiler is not None:
        profiler.enable()
    t0 = time.perf_counter()
    resp = client.post(tool.login_path, data=form)
    t1 = time.perf_counter()
    if profiler is not None:
        profiler.disable()
    if resp.status_code != 302:
        raise BenchmarkError(f"{tool.name}: login answered {resp.status_code}: {resp.get_data(as_text=True)[:500]}")
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    state, nonce = query["state"][0], query["nonce"][0]
    token = platform.id_token(nonce=nonce, user=user, courses=args.courses, instructor_every=args.instructor_every)
    launch_form = {"id_token": token, "state": state}
    if profiler is not None:
        profiler.enable()
    t2 = time.perf_counter()
    resp = client.post(tool.launch_path, data=launch_form)
    t3 = time.perf_counter()
    if profiler is not None:
        profiler.disable()
    body = resp.get_data(as_text=True)
    if resp.status_code != 200 or not tool.landed(body):
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))
        raise BenchmarkError(f"{tool.name}: launch answered {resp.status_code}: {text[:500]}")
    if record:
        tool.login_ms.append((t1 - t0) * 1000.0)
        tool.launch_ms.append((t3 - t2) * 1000.0)


def figures(tool: Tool) -> dict[str, float]:
    totals = [a + b for a, b in zip(tool.login_ms, tool.launch_ms)]
    total_s = sum(totals) / 1000.0
    return {
        "launches_per_s": round(len(totals) / total_s, 1),
        "mean_ms": round(statistics.fmean(totals), 3),
        "p50_ms": round(percentile(totals, 50), 3),
        "p95_ms": round(percentile(totals, 95), 3),
        "login_p50_ms": round(percentile(tool.login_ms, 50), 3),
        "launch_p50_ms": round(percentile(tool.launch_ms, 50), 3),
    }


def print_table(rows: list[tuple[str, dict[str, float]]]) -> None:
    headers = ["", "launches/s", "mean ms", "p50 ms", "p95 ms", "login p50", "launch p50"]
    keys = ["launches_per_s", "mean_ms", "p50_ms", "p95_ms", "login_p50_ms", "launch_p50_ms"]
    cells = [headers] + [[name] + [f"{f[k]:.1f}" if k == "launches_per_s" else f"{f[k]:.3f}" for k in keys]
                         for name, f in rows]
    print_cells(cells)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=1000, help="measured launches per tool (default 1000)")
    p.add_argument("--warmup", type=int, default=50, help="unmeasured launches per tool first (default 50)")
    p.add_argument("--users", type=int, default=200, help="distinct users, launched round robin (default 200)")
    p.add_argument("--courses", type=int, default=4, help="distinct courses / resource links (default 4)")
    p.add_argument("--instructor-every", type=int, default=20,
                   help="every Nth user is an Instructor (teacher page with roster), the rest Learners; 0: none (default 20)")
    db = p.add_mutually_exclusive_group()
    db.add_argument("--database-url", help="Tally's database (default: a temporary SQLite file); must exist")
    db.add_argument("--postgres", nargs="?", const=DEFAULT_SERVER, metavar="SERVER_URL",
                    help=f"create a throwaway tally_bench_<random> database on this server (default "
                    f"{DEFAULT_SERVER}) and drop it afterwards")
    p.add_argument("--profile", nargs="?", type=int, const=300, default=0, metavar="N",
                   help="after the benchmark, cProfile N more Tally launches (only the timed requests; "
                   "default 300) and print the top 25 by cumulative time")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.users < 1 or args.courses < 1:
        p.error("--iterations, --users and --courses must be positive, --warmup not negative")
    return args


def run(args: argparse.Namespace) -> int:
    platform = Platform()
    try:
        with workspace(args.postgres, database_url=args.database_url) as ws:
            tally = make_tally(platform, ws.database_url, ws.workdir)
            try:
                db_kind = "postgresql" if ws.database_url.startswith("postgresql") else "sqlite"
                return compare(tally, make_pylti1p3(platform), platform, db_kind, args)
            finally:
                tally.app.extensions["tally"].engine.dispose()
    finally:
        platform.stop()


def compare(tally: Tool, plain: Tool, platform: Platform, db_kind: str, args: argparse.Namespace) -> int:
    """Launch through both tools, print the table and the JSON line; the exit status."""
    tools = [tally, plain]
    for i in range(args.warmup):
        for tool in tools:
            one_launch(tool, platform, i % args.users, args, record=False)
    gc.collect()
    # Alternate the two tools launch by launch: both see the same machine state.
    for i in range(args.iterations):
        user = (args.warmup + i) % args.users
        for tool in tools:
            one_launch(tool, platform, user, args, record=True)

    ft, fp = figures(tally), figures(plain)
    ratio_p50 = ft["p50_ms"] / fp["p50_ms"]
    ratio_mean = ft["mean_ms"] / fp["mean_ms"]
    rate_ok = ft["launches_per_s"] >= TARGET_LAUNCHES_PER_S
    ratio_ok = ratio_p50 <= TARGET_MAX_RATIO
    met = rate_ok and ratio_ok

    print(f"launch benchmark: {args.iterations} login+launch per tool after {args.warmup} warm-up, "
          f"{args.users} users, {args.courses} courses, Tally on {db_kind}, {machine(load_average=False)}")
    print(f"platform JWKS fetches: tally {platform.fetches.get('tally', 0)}, "
          f"pylti1p3 {platform.fetches.get('pylti1p3', 0)} (cached after the first)")
    print()
    print_table([("tally", ft), ("pylti1p3", fp)])
    print()
    print(f"ratio tally/pylti1p3: p50 {ratio_p50:.2f}x, mean {ratio_mean:.2f}x")
    print(f"target launches/s >= {TARGET_LAUNCHES_PER_S:.0f}: {ft['launches_per_s']:.1f}  "
          f"{'met' if rate_ok else 'MISSED'}")
    print(f"target p50 ratio <= {TARGET_MAX_RATIO:.1f}x: {ratio_p50:.2f}x  {'met' if ratio_ok else 'MISSED'}")

    if args.profile:
        print()
        profile_tally(tally, platform, args)

    result = {
        "benchmark": "launch",
        "iterations": args.iterations,
        "warmup": args.warmup,
        "users": args.users,
        "database": db_kind,
        "tally": ft,
        "pylti1p3": fp,
        "ratio_p50": round(ratio_p50, 3),
        "ratio_mean": round(ratio_mean, 3),
        "targets": {"launches_per_s": TARGET_LAUNCHES_PER_S, "max_ratio": TARGET_MAX_RATIO},
        "met": met,
    }
    return finish(result, strict=args.strict)


def profile_tally(tally: Tool, platform: Platform, args: argparse.Namespace) -> None:
    """cProfile `args.profile` Tally launches (login + launch requests only), top 25 cumulative."""
    import cProfile

    profiler = cProfile.Profile()
    for i in range(args.profile):
        one_launch(tally, platform, i % args.users, args, record=False, profiler=profiler)
    print_profile(profiler, f"cProfile of {args.profile} Tally launches (timed requests only), "
                            "top 25 by cumulative time:")


if __name__ == "__main__":
    sys.exit(run_main(parse_args, run))
