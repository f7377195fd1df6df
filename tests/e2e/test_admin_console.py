"""The admin console over real HTTP: who gets in, deployments, launches and refusals, service tests,
manual registration; and the command line's registration instructions and password hash."""

from __future__ import annotations

import io
import re

import pytest
import requests
from sqlalchemy import select

from tool import cli
from tool.lti.models import Deployment, Registration
from tool.lti.registry import add_registration
from tool.web.admin_auth import check_password, hash_password
from tests.e2e.conftest import ADMIN_PASSWORD, NewStack, Stack, no_cookies
from tests.e2e.registration_support import admin_client, csrf_of, set_deployment

LTI = "https://purl.imsglobal.org/spec/lti/claim/"


@pytest.fixture
def moodle_console(new_stack: NewStack) -> Stack:
    """Moodle mode only, with a local admin password."""
    return new_stack("moodle", admin_password=ADMIN_PASSWORD)


def _deployment_pk(stack: Stack) -> int:
    with stack.session() as db:
        return db.scalar(select(Deployment.id).where(Deployment.deployment_id == stack.platform.deployment_id))


# -- who gets in ---------------------------------------------------------------------------------


def test_without_credentials_the_console_sends_the_browser_to_sign_in(moodle_console: Stack) -> None:
    r = no_cookies().get(moodle_console.tool_url + "/admin", allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/login")


def test_a_wrong_password_is_refused_and_sets_no_cookie(moodle_console: Stack) -> None:
    client = requests.Session()
    form = client.get(moodle_console.tool_url + "/admin/login").text
    r = client.post(moodle_console.tool_url + "/admin/login", data={"password": "guess", "csrf": csrf_of(form)},
                    allow_redirects=False)
    assert r.status_code == 403 and "Wrong password" in r.text and "tally_admin" not in client.cookies
    assert client.get(moodle_console.tool_url + "/admin", allow_redirects=False).status_code == 303


def test_without_a_configured_password_there_is_no_local_login(moodle: Stack) -> None:
    page = no_cookies().get(moodle.tool_url + "/admin/login")
    assert page.status_code == 200 and 'id="login-disabled"' in page.text
    r = requests.Session().post(moodle.tool_url + "/admin/login", data={"password": ""}, allow_redirects=False)
    assert r.status_code == 200 and "Set-Cookie" not in r.headers


def test_the_admin_cookie_is_httponly_and_strict(moodle_console: Stack) -> None:
    client = requests.Session()
    form = client.get(moodle_console.tool_url + "/admin/login").text
    r = client.post(moodle_console.tool_url + "/admin/login", data={"password": ADMIN_PASSWORD, "csrf": csrf_of(form)},
                    allow_redirects=False)
    cookie = [c for c in r.raw.headers.getlist("Set-Cookie") if c.startswith("tally_admin=")][0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie


def test_a_teacher_session_is_not_an_admin(admin_stack: Stack) -> None:
    landing = admin_stack.launch(admin_stack.platform.teacher.id)
    assert 'id="admin-link"' not in landing.response.text
    r = no_cookies().post(admin_stack.tool_url + "/admin", data={"st": landing.token})
    assert r.status_code == 403 and "administrator" in r.text


def test_an_lti_administrator_sees_only_their_own_registration(admin_stack: Stack) -> None:
    stack = admin_stack
    with stack.session() as db:
        other = add_registration(db, issuer="https://other.example.edu", client_id="other", name="Other LMS",
                                 auth_login_url="https://other.example.edu/auth", key_set_url="https://other.example.edu/jwks",
                                 auth_token_url="https://other.example.edu/token", deployment_ids=["9"])
        db.commit()
        other_dep = other.deployments[0].id
    admin = stack.platform.users_of_kind("admin")[0]
    landing = stack.launch(admin.id)
    token = landing.token
    assert 'id="admin-link" data-post href="/admin"' in landing.response.text  # how they get there
    page = no_cookies().post(stack.tool_url + "/admin", data={"st": token})
    assert page.status_code == 200
    assert stack.platform.issuer in page.text and "other.example.edu" not in page.text
    # Forms carry the session token: no cookie is involved in the LTI path.
    assert f'<input type="hidden" name="st" value="{token}">' in page.text
    r = no_cookies().post(stack.tool_url + f"/admin/deployments/{other_dep}", data={"st": token, "action": "disable"})
    assert r.status_code == 404
    with stack.session() as db:
        assert db.get(Deployment, other_dep).status == "active"


# -- deployments ---------------------------------------------------------------------------------


def test_disabling_and_activating_a_deployment_decides_whether_launches_pass(admin_stack: Stack) -> None:
    stack = admin_stack
    client = admin_client(stack)
    teacher = stack.platform.teacher.id
    assert set_deployment(stack, client, _deployment_pk(stack), "disable").status_code == 303
    refused = stack.launch(teacher)
    assert refused.status == 403 and refused.refusal_code == "deployment_not_active"
    r = set_deployment(stack, client, _deployment_pk(stack), "activate")
    assert r.status_code == 303
    assert "now active" in client.get(stack.tool_url + r.headers["Location"]).text
    assert stack.launch(teacher).status == 200


def test_a_console_post_without_the_csrf_token_is_refused(moodle_console: Stack) -> None:
    client = admin_client(moodle_console)
    r = client.post(moodle_console.tool_url + f"/admin/deployments/{_deployment_pk(moodle_console)}",
                    data={"action": "disable"}, allow_redirects=False)
    assert r.status_code == 403 and "csrf_invalid" in r.text
    with moodle_console.session() as db:
        assert db.get(Deployment, _deployment_pk(moodle_console)).status == "active"


def test_a_new_deployment_waits_in_the_console_until_activated(moodle_console: Stack) -> None:
    stack = moodle_console
    refused = stack.crafted_launch(lambda claims: claims.update({LTI + "deployment_id": "77"}))
    assert refused.status == 403
    client = admin_client(stack)
    page = client.get(stack.tool_url + "/admin").text
    row = re.search(r'<tr id="deployment-(\d+)">\s*<th scope="row"><code>77</code></th>\s*'
                    r'<td class="deployment-status">pending</td>', page)
    assert row, page[:3000]
    assert set_deployment(stack, client, int(row.group(1)), "activate").status_code == 303
    assert stack.crafted_launch(lambda claims: claims.update({LTI + "deployment_id": "77"})).status == 200


def test_recent_launches_and_refusals_are_listed_with_their_reasons(admin_stack: Stack) -> None:
    stack = admin_stack
    stack.launch(stack.platform.teacher.id)
    stack.crafted_launch(lambda claims: claims.update({"nonce": "forged"}))
    page = admin_client(stack).get(stack.tool_url + "/admin").text
    assert page.count('class="launch-accepted"') >= 1 and 'class="launch-refused"' in page
    assert "nonce_invalid" in page and "replayed id_token" in page


# -- test services -------------------------------------------------------------------------------


def _test_services(stack: Stack, client: requests.Session) -> requests.Response:
    page = client.get(stack.tool_url + "/admin").text
    reg_id = re.search(r'action="/admin/registrations/(\d+)/test"', page)
    assert reg_id, page[:2000]
    return client.post(stack.tool_url + f"/admin/registrations/{reg_id.group(1)}/test", data={"csrf": csrf_of(page)})


def test_test_services_shows_the_token_answer_and_the_line_items(admin_stack: Stack) -> None:
    stack = admin_stack
    stack.launch(stack.platform.teacher.id)  # an offering with a line items URL
    r = _test_services(stack, admin_client(stack))
    assert r.status_code == 200
    assert r.text.count('<span class="ok">200') == 2
    assert "Tally: Week 1" in r.text  # the platform's line item, verbatim
    assert "(redacted)" in r.text  # the token itself is not shown


def test_test_services_shows_a_refusal_verbatim(moodle_console: Stack) -> None:
    stack = moodle_console
    stack.platform.faults.fail_next(1, 400, reason='"kid" invalid', where="token")
    r = _test_services(stack, admin_client(stack))
    assert r.status_code == 200
    assert "400 &#34;kid&#34; invalid" in r.text or '400 "kid" invalid' in r.text
    assert "Line items" not in r.text  # no token, no second call


def test_test_services_without_any_launch_says_what_to_do(moodle_console: Stack) -> None:
    r = _test_services(moodle_console, admin_client(moodle_console))
    assert 'id="no-offering"' in r.text


# -- manual registration -------------------------------------------------------------------------


def test_the_register_page_shows_what_to_type_into_moodle_and_canvas(moodle_console: Stack) -> None:
    page = admin_client(moodle_console).get(moodle_console.tool_url + "/admin/register").text
    base = moodle_console.tool_url
    for url in (base + "/lti/launch", base + "/lti/login", base + "/.well-known/jwks.json", base + "/lti/register",
                base + "/lti/canvas.json"):
        assert url in page
    assert "Redirection URI(s)" in page and "Public JWK URL" in page and "Deployment ID" in page


def test_the_form_takes_the_platforms_values_back(moodle_console: Stack) -> None:
    client = admin_client(moodle_console)
    page = client.get(moodle_console.tool_url + "/admin/register").text
    values = {"name": "University Moodle", "issuer": "https://moodle.example.edu", "client_id": "AbC123",
              "deployment_id": "3", "auth_login_url": "https://moodle.example.edu/mod/lti/auth.php",
              "auth_token_url": "https://moodle.example.edu/mod/lti/token.php",
              "key_set_url": "https://moodle.example.edu/mod/lti/certs.php", "csrf": csrf_of(page)}
    r = client.post(moodle_console.tool_url + "/admin/register", data=values, allow_redirects=False)
    assert r.status_code == 303
    with moodle_console.session() as db:
        reg = db.scalar(select(Registration).where(Registration.client_id == "AbC123"))
        assert reg is not None and reg.source == "admin"
        assert [(d.deployment_id, d.status) for d in reg.deployments] == [("3", "active")]


@pytest.mark.parametrize("change, field", [({"issuer": ""}, "issuer"), ({"key_set_url": "certs.php"}, "key_set_url")])
def test_bad_values_are_shown_again_and_nothing_is_stored(moodle_console: Stack, change: dict[str, str],
                                                          field: str) -> None:
    client = admin_client(moodle_console)
    page = client.get(moodle_console.tool_url + "/admin/register").text
    values = {"issuer": "https://m.example.edu", "client_id": "X1", "auth_login_url": "https://m.example.edu/a",
              "auth_token_url": "https://m.example.edu/t", "key_set_url": "https://m.example.edu/k", "csrf": csrf_of(page)}
    values.update(change)
    r = client.post(moodle_console.tool_url + "/admin/register", data=values)
    assert r.status_code in (400, 422) and f'id="{field}-error"' in r.text
    with moodle_console.session() as db:
        assert db.scalar(select(Registration).where(Registration.client_id == "X1")) is None


def test_an_lti_administrator_cannot_add_registrations(moodle_console: Stack) -> None:
    admin = moodle_console.platform.users_of_kind("admin")[0]
    token = moodle_console.launch(admin.id).token
    r = no_cookies().post(moodle_console.tool_url + "/admin/register",
                          data={"st": token, "issuer": "https://evil.example", "client_id": "e"})
    assert r.status_code == 403


# -- command line --------------------------------------------------------------------------------


def test_platforms_instructions_prints_the_values_to_type(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOL_PUBLIC_BASE_URL", "https://tally.example.edu")
    assert cli.main(["platforms", "instructions"]) == 0
    out = capsys.readouterr().out
    for text in ("https://tally.example.edu/lti/register", "Initiate login URL", "https://tally.example.edu/lti/login",
                 "Redirection URI(s)", "https://tally.example.edu/.well-known/jwks.json", "Content Selection URL",
                 "Public JWK URL", "Deployment ID"):
        assert text in out


def test_admin_hash_password_makes_a_hash_the_console_accepts(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              base_settings) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert cli.main(["admin", "hash-password", "--stdin"]) == 0
    hashed = capsys.readouterr().out.strip()
    settings = base_settings.model_copy(update={"admin_password_hash": hashed})
    assert check_password(settings, "a long enough password")
    assert not check_password(settings, "a long enough passwort")
    assert hashed != hash_password("a long enough password")  # salted
