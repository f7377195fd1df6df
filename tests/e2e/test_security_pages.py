"""Issue 11, findings 5 and 6, replayed against the running tool (tool + sandbox on loopback).

Finding 5: session tokens travelled in URLs (`?st=…` links, the sync page's redirects, the CSV
download, the admin console link), so every page load put a renewable token into the access
log of any proxy and into the browser's history. Navigation now POSTs the token in a form
body, a `?st=` URL is refused with a page that says why, and the logs of a whole browser
session hold no token. Finding 6: pages had no Content-Security-Policy, no frame-ancestors
and no `Cache-Control: no-store`.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from tool.db import make_engine
from tool.lti.models import Deployment
from tool.lti.registry import add_registration, set_deployment_status
from tool.web import create_app
from tests.conftest import make_settings
from tests.e2e.conftest import BROWSER_MISSING, NO_BROWSER, Stack, launch_from_sandbox, no_cookies

JWT_IN_TEXT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def csp_of(response: requests.Response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]}."""
    header = response.headers.get("Content-Security-Policy", "")
    assert header, f"no Content-Security-Policy on {response.url}"
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def post_page(url: str, token: str, **fields: str) -> requests.Response:
    """Open a page as Tally's links now do: a form POST carrying the token, cookies refused."""
    return no_cookies().post(url, data={"st": token, **fields}, headers={"Accept": "text/html"},
                             allow_redirects=False)


def admin_launch(stack: Stack) -> str:
    admin = stack.platform.users_of_kind("admin")[0]
    token = stack.launch(admin.id).token
    assert token
    return token


def offering_id(stack: Stack, token: str) -> int:
    return int(stack.api(token, "/api/me").json()["offeringId"])


# -- finding 6: headers ----------------------------------------------------------------------------


def test_pages_carry_a_csp_whose_nonce_is_new_each_time_and_allows_no_inline_script(moodle: Stack) -> None:
    first = moodle.launch(moodle.platform.teacher.id).response
    second = moodle.launch(moodle.platform.teacher.id).response
    nonces = []
    for r in (first, second):
        csp = csp_of(r)
        scripts = csp.get("script-src", [])
        assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
        assert csp.get("object-src") == ["'none'"] and csp.get("base-uri") in (["'none'"], ["'self'"])
        nonce = [s for s in scripts if s.startswith("'nonce-")]
        assert len(nonce) == 1, scripts
        nonces.append(nonce[0][len("'nonce-"):-1])
        # Every script of the page is a file of the tool's own, or carries this response's nonce.
        for tag in re.findall(r"<script\b[^>]*>", r.text):
            assert "src=\"/static/" in tag or f'nonce="{nonces[-1]}"' in tag, tag
        assert not re.search(r"<[^>]+\son[a-z]+\s*=", r.text), "an inline event handler"
    assert nonces[0] != nonces[1] and len(nonces[0]) >= 16


def test_the_inline_scripts_of_the_return_and_registration_pages_run_only_by_nonce() -> None:
    """The templates that must run a script inline (deep-link return, registration result) nonce it;
    the sandbox's own pages do the same under the sandbox's policy."""
    from tool.config import PROJECT_ROOT

    for path in sorted((PROJECT_ROOT / "templates").rglob("*.html")):
        body = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", body):
            assert "src=" in tag or "nonce=" in tag, f"{path.name}: {tag}"
        assert not re.search(r"<[^>]+\son[a-z]+\s*=\s*\"", body), f"{path.name}: inline event handler"


def test_frame_ancestors_are_the_origins_of_active_platforms_only(moodle: Stack) -> None:
    landing = moodle.launch(moodle.platform.teacher.id).response
    ancestors = csp_of(landing).get("frame-ancestors", [])
    assert moodle.sandbox.url in ancestors and "*" not in ancestors
    assert not any(a.startswith("https://lms.example.edu") for a in ancestors)
    with moodle.session() as db:
        add_registration(db, issuer="https://lms.example.edu", client_id="c-1", name="Example",
                         auth_login_url="https://lms.example.edu/mod/lti/auth.php",
                         auth_token_url="https://lms.example.edu/mod/lti/token.php",
                         key_set_url="https://lms.example.edu/mod/lti/certs.php", deployment_ids=["7"])
        db.commit()
    page = no_cookies().get(moodle.tool_url + "/")
    assert "https://lms.example.edu" in csp_of(page)["frame-ancestors"]
    with moodle.session() as db:
        set_deployment_status(db, issuer="https://lms.example.edu", client_id="c-1", deployment_id="7",
                              status="disabled")
        db.commit()
    page = no_cookies().get(moodle.tool_url + "/")
    assert "https://lms.example.edu" not in csp_of(page)["frame-ancestors"]
    assert moodle.sandbox.url in csp_of(page)["frame-ancestors"]


def test_frame_ancestors_add_canvas_cloud_and_the_setting_and_never_take_a_policy_from_a_registration(
        new_stack: Any) -> None:
    stack = new_stack("moodle", frame_ancestors=("https://canvas.example.edu", "https://*.example.org/"))
    with stack.session() as db:
        for issuer, client in (("https://canvas.instructure.com", "10000000000001"),
                               ("https://evil.example; script-src *", "e"), ("javascript:alert(1)", "j")):
            add_registration(db, issuer=issuer, client_id=client, name="x", auth_login_url=(issuer if issuer.startswith("https") else "https://j.example") + "/login",
                             auth_token_url="https://t.example/token", key_set_url="https://t.example/jwks",
                             deployment_ids=["1"])
        db.commit()
    r = no_cookies().get(stack.tool_url + "/")
    csp = csp_of(r)
    ancestors = csp["frame-ancestors"]
    for origin in ("https://canvas.instructure.com", "https://*.instructure.com", "https://canvas.example.edu",
                   "https://*.example.org", "'self'", stack.sandbox.url):
        assert origin in ancestors, (origin, ancestors)
    # The hostile issuer adds no directive: its host is taken apart like any URL's, nothing more.
    assert csp["script-src"][0] == "'self'" and "*" not in csp["script-src"]
    assert not any("javascript" in a or ";" in a for a in ancestors)
    assert r.headers["Content-Security-Policy"].count("script-src") == 1


def test_a_frame_ancestors_setting_that_is_not_an_origin_stops_start_up(database_url: str, keys_dir: Any) -> None:
    with pytest.raises(Exception, match="frame_ancestors"):
        make_settings(database_url, keys_dir, frame_ancestors=("https://x.example; script-src *",))


def test_a_refused_launch_is_still_shown_inside_the_lms_that_sent_it(new_stack: Any) -> None:
    """The refusal page (here: a disabled deployment) explains to the LMS's admin what to change: it
    must show in the LMS's frame although that platform is not active. It holds no token, no action."""
    stack = new_stack("moodle", sandbox_enabled=False)
    with stack.session() as db:
        set_deployment_status(db, issuer=stack.platform.issuer, client_id=stack.platform.client_id,
                              deployment_id=stack.platform.deployment_id, status="disabled")
        db.commit()
    refused = stack.launch(stack.platform.teacher.id)
    assert refused.status == 403 and refused.token is None
    ancestors = csp_of(refused.response)["frame-ancestors"]
    assert "*" in ancestors or stack.sandbox.url in ancestors
    # An ordinary page of Tally is not framed by that platform any more.
    assert stack.sandbox.url not in csp_of(no_cookies().get(stack.tool_url + "/"))["frame-ancestors"]


def test_pages_and_api_answers_with_tokens_or_grades_are_never_stored(moodle: Stack) -> None:
    token = admin_launch(moodle)
    landing = moodle.launch(moodle.platform.teacher.id).response
    me = moodle.api(token, "/api/me").json()
    oid, cid = me["offeringId"], me["courseId"]
    answers = [
        landing,
        moodle.api(token, "/api/me"),
        moodle.api(token, "/api/session/renew", method="POST"),
        moodle.api(token, f"/api/grades/groups/{cid}/offerings/{oid}/summary"),
        post_page(f"{moodle.tool_url}/api/grades/groups/{cid}/offerings/{oid}/summary.csv", token),
        post_page(f"{moodle.tool_url}/offerings/{oid}", token),
        post_page(f"{moodle.tool_url}/offerings/{oid}/sync", token),
        post_page(f"{moodle.tool_url}/admin", token),
        moodle.api("forged", "/api/me"),
    ]
    for r in answers:
        assert r.status_code in (200, 401), (r.url, r.status_code, r.text[:300])
        assert "no-store" in r.headers.get("Cache-Control", ""), (r.url, r.headers.get("Cache-Control"))
    # Static files and public keys may be cached; they carry nothing of anyone.
    assert "no-store" not in no_cookies().get(moodle.tool_url + "/.well-known/jwks.json").headers["Cache-Control"]


@pytest.mark.parametrize("base, hsts", [("https://tally.example.edu", True), ("http://127.0.0.1:8000", False)])
def test_hsts_is_sent_when_the_public_url_is_https(database_url: str, keys_dir: Any, clean_db: Any,
                                                     base: str, hsts: bool) -> None:
    app = create_app(make_settings(database_url, keys_dir, public_base_url=base))
    try:
        r = app.test_client().get("/", base_url=base)
        header = r.headers.get("Strict-Transport-Security")
        if hsts:
            assert header and int(re.search(r"max-age=(\d+)", header).group(1)) >= 15552000  # type: ignore[union-attr]
        else:
            assert header is None
    finally:
        app.extensions["tally"].close()


# -- finding 5: no token in a URL --------------------------------------------------------------------


def test_no_link_form_action_or_redirect_carries_the_session_token(moodle: Stack) -> None:
    token = admin_launch(moodle)
    me = moodle.api(token, "/api/me").json()
    oid = me["offeringId"]
    pages = {
        "landing": post_page(f"{moodle.tool_url}/offerings/{oid}", token),
        "sync": post_page(f"{moodle.tool_url}/offerings/{oid}/sync", token),
        "readback": post_page(f"{moodle.tool_url}/offerings/{oid}/sync", token, readback="1"),
        "admin": post_page(f"{moodle.tool_url}/admin", token),
        "register": post_page(f"{moodle.tool_url}/admin/register", token, nav="1"),
    }
    for name, r in pages.items():
        assert r.status_code == 200, (name, r.status_code, r.text[:300])
        for url in re.findall(r'(?:href|action|src)="([^"]*)"', r.text):
            assert "st=" not in url and token not in url, (name, url)
    # The sync page's buttons answer with a redirect back to the page: without the token in it.
    for action in ("retry", "now"):
        r = post_page(f"{moodle.tool_url}/offerings/{oid}/sync/{action}", token)
        assert r.status_code in (303, 307), r.text[:300]
        assert "st=" not in r.headers["Location"] and token not in r.headers["Location"]
    dep = None
    with moodle.session() as db:
        dep = db.scalar(select(Deployment.id).where(Deployment.deployment_id == moodle.platform.deployment_id))
    r = post_page(f"{moodle.tool_url}/admin/deployments/{dep}", token, action="activate")
    assert r.status_code in (303, 307) and token not in r.headers["Location"] and "st=" not in r.headers["Location"]


def test_a_session_token_in_the_query_string_is_refused_with_a_page_that_says_why(moodle: Stack) -> None:
    token = admin_launch(moodle)
    oid = offering_id(moodle, token)
    for path in (f"/offerings/{oid}", f"/offerings/{oid}/sync", "/admin", f"/offerings/{oid}?readback=1"):
        r = no_cookies().get(moodle.tool_url + path, params={"st": token}, headers={"Accept": "text/html"})
        assert r.status_code == 401, (path, r.status_code)
        assert "token_in_url" in r.text and "address" in r.text
        assert token not in r.text
    api = no_cookies().get(moodle.tool_url + "/api/me", params={"st": token})
    assert api.status_code == 401 and api.json()["code"] == "token_in_url"


def test_pages_open_by_a_post_that_carries_the_token(moodle: Stack) -> None:
    token = admin_launch(moodle)
    me = moodle.api(token, "/api/me").json()
    oid, cid = me["offeringId"], me["courseId"]
    landing = post_page(f"{moodle.tool_url}/offerings/{oid}", token)
    assert landing.status_code == 200 and 'id="ledger"' in landing.text
    csv = post_page(f"{moodle.tool_url}/api/grades/groups/{cid}/offerings/{oid}/summary.csv", token)
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in csv.headers["Content-Disposition"]
    console = post_page(f"{moodle.tool_url}/admin", token)
    assert console.status_code == 200 and "Admin console" in console.text
    # Without the token, the same pages say to open Tally from the course.
    assert no_cookies().post(f"{moodle.tool_url}/offerings/{oid}", headers={"Accept": "text/html"}).status_code == 401


def test_sql_errors_are_logged_without_their_parameters_or_values(clean_db: Any) -> None:
    """A failed statement's parameters (SQLAlchemy's hide_parameters) and the values PostgreSQL quotes
    back in its DETAIL line ("Key (…)=(ada@…) already exists") reach no log line."""
    from tool import logs

    secret = "ada.lovelace@example.org"
    insert = text("INSERT INTO registration (name, issuer, client_id, auth_login_url, auth_token_url, key_set_url, "
                  "source, created_at) VALUES ('x', :iss, :cid, 'u', 'u', 'u', 'cli', CURRENT_TIMESTAMP)")
    for fmt in ("json", "text"):
        stream = io.StringIO()
        handler = logs.configure(env="test", level="INFO", log_format=fmt, stream=stream)
        try:
            with clean_db.connect() as conn:
                conn.execute(insert, {"iss": f"https://{secret}", "cid": secret})
                with pytest.raises(DBAPIError) as failed:
                    conn.execute(insert, {"iss": f"https://{secret}", "cid": secret})
                conn.rollback()
            # As tool/web/errors.py logs a conflict, and as an unexpected error is logged.
            logging.getLogger("tool.web").warning("integrity error on %s %s: %s", "POST", "/x", failed.value.orig)
            logging.getLogger("tool.web").error("unhandled error", exc_info=failed.value)
            handler.flush()
        finally:
            logging.getLogger().removeHandler(handler)
        assert secret not in str(failed.value).split("DETAIL")[0]  # hide_parameters
        out = stream.getvalue()
        assert "integrity error" in out and "unhandled error" in out
        assert secret not in out, out


@pytest.mark.parametrize("message", [
    'invalid input syntax for type integer: "ada@example.org"',
    'invalid input value for enum role: "ada@example.org"',
    "DETAIL:  Failing row contains (1, ada@example.org, null).",
    "[parameters: {'email': 'ada@example.org'}]",
])
def test_what_a_database_error_quotes_of_the_data_is_scrubbed(message: str) -> None:
    from tool.logs import scrub

    assert "ada@example.org" not in scrub("statement failed\n" + message + "\n(Background on this error)")


def test_the_access_log_redacts_tokens_in_the_url_and_headers(capsys: pytest.CaptureFixture[str]) -> None:
    """gunicorn's access line (tool/ops/access_log.py) as a proxy in front would see the request."""
    import datetime as dt
    from types import SimpleNamespace

    from tool.ops.access_log import AccessLogger

    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    logger = AccessLogger.__new__(AccessLogger)
    logger.cfg = SimpleNamespace(accesslog="-", logconfig=None, logconfig_dict=None, syslog=False)
    stream = io.StringIO()
    from tool import logs

    handler = logs.configure(env="production", level="INFO", log_format="json", stream=stream)
    try:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/offerings/1/{token}", "QUERY_STRING": f"st={token}",
                   "RAW_URI": f"/offerings/1/{token}?st={token}", "HTTP_AUTHORIZATION": f"Bearer {token}",
                   "HTTP_REFERER": f"https://lms.example.edu/x?st={token}", "REMOTE_ADDR": "127.0.0.1"}
        resp = SimpleNamespace(status="200 OK", headers=[("X-Request-ID", "r-1")], sent=10)
        logger.access(resp, SimpleNamespace(), environ, dt.timedelta(milliseconds=3))
        handler.flush()
    finally:
        logging.getLogger().removeHandler(handler)
    line = stream.getvalue()
    assert "http.access" in line and "/offerings/1/" in line
    assert token not in line and "c2lnbmF0dXJl" not in line


# -- the whole thing in a browser, logs grepped ------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(BROWSER_MISSING, reason=NO_BROWSER)
def test_a_browser_session_puts_no_session_token_in_any_url_or_log_line(
        moodle: Stack, page: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    urls: list[str] = []
    referers: list[str] = []
    tokens: set[str] = set()

    def seen(request: Any) -> None:
        urls.append(request.url)
        referers.append(request.headers.get("referer", ""))

    def answered(response: Any) -> None:
        if response.url.startswith(moodle.tool_url) and "text/html" in response.headers.get("content-type", ""):
            try:
                tokens.update(re.findall(r'<meta name="tally-session" content="([^"]+)">', response.text()))
            except Exception:  # noqa: BLE001  (a body the browser already dropped: a redirect)
                pass

    page.on("request", seen)
    page.on("response", answered)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    admin = moodle.platform.users_of_kind("admin")[0]
    frame = launch_from_sandbox(page, moodle, admin.name)
    frame.locator("#ledger").wait_for()
    # A column, so that the offering page lists an assessment to open.
    token = frame.locator('meta[name="tally-session"]').get_attribute("content") or ""
    tokens.add(token)
    me = moodle.api(token, "/api/me").json()
    created = moodle.api(token, f"/api/offerings/{me['offeringId']}/assessments", method="POST",
                         json={"title": "Essay", "maxPoints": 10, "source": "tasks", "tasks": []})
    assert created.status_code == 201, created.text

    frame.get_by_role("link", name="Grades in the LMS").click()
    frame.get_by_role("heading", name="Grades in the LMS").wait_for()
    frame.get_by_role("button", name=re.compile("Retry failed")).wait_for()
    # A button's form answers 307: the browser POSTs the form (and its token) to the page again.
    frame.get_by_role("button", name="Sync now").click()
    frame.locator("#sync-message").wait_for()
    assert "Synchronised" in (frame.locator("#sync-message").text_content() or "")
    frame.get_by_role("link", name="Check the LMS gradebook").click()
    frame.locator("#readback-table, #readback").first.wait_for()
    frame.get_by_role("link", name=re.compile("Back to")).click()
    frame.locator("#ledger").wait_for()
    with page.expect_download() as download:
        frame.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename.endswith(".csv")
    assert "student_id" in Path(download.value.path()).read_text(encoding="utf-8-sig")
    frame.get_by_role("link", name="Essay").click()
    frame.get_by_role("heading", name="Essay").wait_for()
    frame.locator(".crumbs a").click()
    frame.locator("#ledger").wait_for()
    frame.get_by_role("link", name="Admin console").click()
    frame.get_by_role("heading", name="Admin console").wait_for()
    frame.get_by_role("link", name=re.compile("Register a platform")).click()
    frame.get_by_role("link", name="Back to the admin console").click()
    frame.get_by_role("heading", name="Admin console").wait_for()
    frame.get_by_role("button", name=re.compile("Test services")).click()
    frame.get_by_role("heading", name=re.compile("Services of")).wait_for()
    frame.get_by_role("link", name="Back to the admin console").click()
    frame.get_by_role("heading", name="Admin console").wait_for()
    # And a student's page.
    frame = launch_from_sandbox(page, moodle, moodle.platform.students[0].name)
    frame.locator('meta[name="tally-session"]').wait_for(state="attached")
    tokens.add(frame.locator('meta[name="tally-session"]').get_attribute("content") or "")

    # The policy blocked nothing Tally or the sandbox needs (Chromium reports each refusal on the console).
    assert not [m for m in console if "Content Security Policy" in m or "Refused to" in m], console
    assert len(tokens) >= 1 and all(len(t) > 40 for t in tokens)
    tool_urls = [u for u in urls if u.startswith(moodle.tool_url)]
    assert len(tool_urls) >= 8
    for u in urls + referers:
        assert "st=" not in u and not JWT_IN_TEXT.search(u), u
    out, err = capfd.readouterr()
    logged = out + err + "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert logged.strip(), "the stack logged nothing: the grep would prove nothing"
    for t in tokens:
        assert t not in logged
        assert t.rsplit(".", 1)[-1] not in logged  # not even the signature
