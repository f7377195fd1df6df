"""The shipped deployment: gunicorn with config/gunicorn.conf.py behind deploy/nginx/tally.conf over
TLS (a self-signed certificate made here), in production mode with keys in the database; a teacher
launches from the sandbox LMS through it. And the guard rails stop gunicorn before any worker starts."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine

from tool.config import PROJECT_ROOT
from tool.db import make_session_factory
from tool.serve import ServerThread, reserve_port
from tool.stack import make_sandbox, register_platform
from tests.conftest import make_settings
from tests.e2e.conftest import META, form_of

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
GUNICORN = Path(sys.executable).parent / "gunicorn"
MISSING = NGINX is None and os.environ.get("TALLY_REQUIRE_NGINX") != "1"
pytestmark = pytest.mark.skipif(MISSING, reason="nginx is not installed (apt-get install nginx)")
SECRET = "deploy-test-secret-0123456789-abcdefghijklmnop"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def nginx_conf(directory: Path, *, port: int, upstream: int, cert: Path, key: Path) -> Path:
    """deploy/nginx/tally.conf with the test's ports, certificate and paths, inside a minimal nginx.conf."""
    site = (PROJECT_ROOT / "deploy" / "nginx" / "tally.conf").read_text()
    site = site[: site.index("server {\n    listen 80;")]  # the http → https redirect needs port 80: not here
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;")
    site = re.sub(r"\n\s*listen \[::\]:443 ssl http2;", "", site)
    site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};")
    site = site.replace("/etc/ssl/tally/fullchain.pem", str(cert)).replace("/etc/ssl/tally/privkey.pem", str(key))
    site = site.replace("/var/log/nginx/tally.access.log", str(directory / "access.log"))
    (directory / "tally.conf").write_text(site)
    temp = "".join(f"    {kind}_temp_path {directory / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = directory / "nginx.conf"
    main.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 1;\nerror_log {directory / 'error.log'};\npid {directory / 'nginx.pid'};\n"
        f"events {{ worker_connections 64; }}\nhttp {{\n{temp}    access_log off;\n    include {directory / 'tally.conf'};\n}}\n"
    )
    return main


def wait_until_up(url: str, cert: Path, procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Poll `url` until it answers 200; fail with the processes' logs if one of them exits."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for p, log in zip(procs, logs):
            if p.poll() is not None:
                pytest.fail(f"{p.args[0]} exited with {p.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, verify=str(cert), timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        try:
            procs[0].wait(timeout=0.1)  # a wait on the process, which also notices an early exit
        except subprocess.TimeoutExpired:
            pass
    pytest.fail("the stack did not come up:\n" + "\n".join(log.read_text()[-2000:] for log in logs))


def tool_env(database_url: str, tmp: Path, *, public: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOL_")}
    env.update({"TOOL_ENV": "production", "TOOL_DATABASE_URL": database_url, "TOOL_PUBLIC_BASE_URL": public,
                "TOOL_SECRET_KEY": SECRET, "TOOL_HOST": "127.0.0.1", "TOOL_PORT": str(port),
                "TOOL_KEY_STORE": "database", "TOOL_KEYS_DIR": str(tmp / "no-keys-here"),
                "TOOL_TRUSTED_PROXIES": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics")})
    if database_url.startswith("sqlite"):
        env["TOOL_PRODUCTION_ALLOW_SQLITE"] = "true"
    env.update(extra)
    return env


@pytest.fixture
def deployed(clean_db: Engine, database_url: str, keys_dir: Path, tmp_path: Path) -> Iterator[dict[str, object]]:
    nginx_port, gunicorn_port, sandbox_port = reserve_port(), reserve_port(), reserve_port()
    public = f"https://127.0.0.1:{nginx_port}"
    cert, key = self_signed(tmp_path)
    # Production refuses loopback platforms (tool/outbound.py): the sandbox stands in for a public LMS.
    env = tool_env(database_url, tmp_path, public=public, port=gunicorn_port,
                   TOOL_OUTBOUND_ALLOWED_HOSTS=f"127.0.0.1:{sandbox_port}")
    keys = subprocess.run([sys.executable, "-m", "tool", "keys", "generate"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert keys.returncode == 0, keys.stderr
    settings = make_settings(database_url, keys_dir, public_base_url=public, port=gunicorn_port, sandbox_port=sandbox_port)
    sandbox_app = make_sandbox(settings, base_url=f"http://127.0.0.1:{sandbox_port}", mode="moodle")
    platform = sandbox_app.extensions["sandbox"]
    with make_session_factory(clean_db)() as db:
        register_platform(db, platform)
        db.commit()
    sandbox = ServerThread(sandbox_app, port=sandbox_port).start()
    web_log, nginx_log, worker_log = tmp_path / "gunicorn.log", tmp_path / "error.log", tmp_path / "worker.log"
    nginx_log.touch()
    conf = nginx_conf(tmp_path, port=nginx_port, upstream=gunicorn_port, cert=cert, key=key)
    with web_log.open("wb") as web_out, nginx_log.open("ab") as nginx_out, worker_log.open("wb") as worker_out:
        web = subprocess.Popen([str(GUNICORN), "-c", "config/gunicorn.conf.py", "--workers", "2", "tool.web.wsgi:app"],
                               env=env, cwd=PROJECT_ROOT, stdout=web_out, stderr=subprocess.STDOUT)
        proxy = subprocess.Popen([str(NGINX), "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                                 cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=nginx_out)
        # Production expects a delivery worker (/readyz waits for its heartbeat), as deploy/tally-worker.service runs it.
        worker = subprocess.Popen([sys.executable, "-m", "tool", "worker"], env=env, cwd=PROJECT_ROOT,
                                  stdout=worker_out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(public + "/readyz", cert, [web, proxy, worker], [web_log, nginx_log, worker_log])
        yield {"public": public, "cert": cert, "platform": platform, "web_log": web_log,
               "access_log": tmp_path / "access.log", "web": web, "worker_log": worker_log}
    finally:
        proxy.send_signal(signal.SIGQUIT)
        web.send_signal(signal.SIGTERM)  # graceful: requests in flight finish
        worker.send_signal(signal.SIGTERM)  # finishes its step, removes its heartbeat
        for p in (proxy, web, worker):
            try:
                p.wait(timeout=45)
            except subprocess.TimeoutExpired:
                p.kill()
        sandbox.stop()


def test_a_launch_through_nginx_and_gunicorn_over_tls(deployed: dict[str, object]) -> None:
    public, cert, platform = str(deployed["public"]), str(deployed["cert"]), deployed["platform"]
    browser = requests.Session()
    browser.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment would replace `verify`
    browser.verify = cert
    login = browser.post(public + "/lti/login", data=platform.login_params(platform.teacher.id),  # type: ignore[attr-defined]
                         allow_redirects=False)
    assert login.status_code == 302, login.text[:500]
    auth = browser.get(login.headers["Location"], allow_redirects=False)
    action, fields = form_of(auth.text)
    assert action == public + "/lti/launch"
    page = browser.post(action, data=fields, allow_redirects=False)
    assert page.status_code == 200, page.text[:800]
    token = META.search(page.text)
    assert token, page.text[:800]
    me = browser.get(public + "/api/me", headers={"Authorization": f"Bearer {token.group(1)}"})
    assert me.status_code == 200 and "TEACHER" in me.json()["roles"]
    # nginx's $request_id reached Tally, which answered it.
    assert re.fullmatch(r"[0-9a-f]{32}", me.headers["X-Request-ID"])

    # The service call path too: the sandbox fetched Tally's JWKS (in the database) over https.
    ready = browser.get(public + "/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["workers"]["ok"], ready.text

    # /metrics adds up both gunicorn workers' counters (multiprocess mode), via nginx from loopback.
    scraped = browser.get(public + "/metrics").text
    assert re.search(r'tally_launches_total\{code="ok",outcome="accepted"\} 1\.0', scraped), scraped[:2000]

    # Logs: JSON lines, the access log without the token; nginx's without query strings.
    lines = [json.loads(line) for line in Path(str(deployed["web_log"])).read_text().splitlines()
             if line.startswith("{")]
    access = [e for e in lines if e["event"] == "http.access"]
    assert {"/lti/login", "/lti/launch", "/api/me"} <= {e["path"] for e in access}
    assert me.headers["X-Request-ID"] in {e.get("request_id") for e in access}  # one id from nginx to the log
    worker_lines = [json.loads(line) for line in Path(str(deployed["worker_log"])).read_text().splitlines()
                    if line.startswith("{")]
    assert any(e["event"] == "worker.started" for e in worker_lines)
    assert any(e["event"] == "launch.accepted" and e.get("person") for e in lines)
    text = Path(str(deployed["web_log"])).read_text()
    assert token.group(1) not in text
    assert "?" not in Path(str(deployed["access_log"])).read_text().split("rid=")[0]


def test_gunicorn_refuses_to_start_a_misconfigured_production(database_url: str, tmp_path: Path) -> None:
    env = tool_env("sqlite:///" + str(tmp_path / "x.db"), tmp_path, public="http://tally.example.edu",
                   port=reserve_port(), TOOL_PRODUCTION_ALLOW_SQLITE="false", TOOL_SANDBOX_ENABLED="true")
    done = subprocess.run([str(GUNICORN), "-c", "config/gunicorn.conf.py", "tool.web.wsgi:app"], env=env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 4
    for words in ("refuses to start in production", "SQLite", "not https", "sandbox LMS is on",
                  "production_allow_sqlite"):
        assert words in done.stderr + done.stdout
    assert "Booting worker" not in done.stderr + done.stdout
