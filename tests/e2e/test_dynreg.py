"""Dynamic Registration through the sandbox LMS over real HTTP, shaped as Moodle 4.5 and Canvas do it.

The admin pastes Tally's registration URL into the sandbox; the sandbox opens it with
`openid_configuration` and a one-time `registration_token`; Tally fetches the configuration,
POSTs its client registration and stores registration and deployment.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
import requests
from sqlalchemy import select

from tool.lti.claims import SCOPE_LINEITEM, SCOPE_NRPS
from tool.lti.dynreg import TOOL_CONFIGURATION, canvas_developer_key
from tool.lti.models import Deployment, Registration
from tests.e2e.conftest import NewStack, Stack, no_cookies
from tests.e2e.registration_support import admin_client, dynreg_of, paste_registration_url, set_deployment

AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"


@pytest.fixture
def canvas(new_stack: NewStack) -> Stack:
    """Tool + sandbox in canvas mode only."""
    return new_stack("canvas")


def _dynamic_registrations(stack: Stack) -> list[Registration]:
    with stack.session() as db:
        regs = list(db.scalars(select(Registration).where(Registration.source == "dynamic")))
        for r in regs:
            list(r.deployments)
        return regs


def test_one_paste_registers_tally_then_the_admin_activates_and_a_teacher_launches(admin_stack: Stack) -> None:
    stack = admin_stack
    dynreg = dynreg_of(stack)
    start_url, page = paste_registration_url(stack)
    assert page.status_code == 200, page.text[:800]
    assert "org.imsglobal.lti.close" in page.text and "postMessage" in page.text

    # What the platform received: the fields Moodle requires, the scopes, claims and messages.
    (tool,) = dynreg.tools.values()
    sent = dynreg.requests[-1]
    assert sent["application_type"] == "web" and sent["response_types"] == ["id_token"]
    assert set(sent["grant_types"]) == {"implicit", "client_credentials"}
    assert sent["token_endpoint_auth_method"] == "private_key_jwt"
    assert tool.initiate_login_uri == stack.tool_url + "/lti/login"
    assert tool.redirect_uris == [stack.tool_url + "/lti/launch"]
    assert tool.jwks_uri == stack.tool_url + "/.well-known/jwks.json"
    assert set(sent["scope"].split()) >= {SCOPE_LINEITEM, AGS + "lineitem.readonly", AGS + "result.readonly",
                                          AGS + "score", SCOPE_NRPS}
    conf = sent[TOOL_CONFIGURATION]
    assert conf["domain"] == stack.tool_url.split("://")[1]  # host:port, as Moodle compares it
    assert {"name", "email"} <= set(conf["claims"])
    assert {m["type"] for m in conf["messages"]} == {"LtiResourceLinkRequest", "LtiDeepLinkingRequest"}
    if stack.platform.mode == "canvas":
        assert conf["https://canvas.instructure.com/lti/privacy_level"] == "public"
        assert set(tool.placements) == {"course_navigation", "link_selection", "assignment_selection"}
    else:
        assert "placements" not in json.dumps(conf)

    # What Tally stored: the platform's URLs, and the deployment it answered (Canvas answers none).
    (reg,) = _dynamic_registrations(stack)
    assert (reg.issuer, reg.client_id) == (stack.platform.issuer, tool.client_id)
    assert reg.auth_token_url == stack.platform.paths.token_url and reg.key_set_url == stack.platform.paths.jwks_url
    if stack.platform.mode == "moodle":
        assert [(d.deployment_id, d.status) for d in reg.deployments] == [(tool.deployment_id, "pending")]
        assert 'id="deployment-status">pending' in page.text
    else:
        assert reg.deployments == []

    # The LMS admin activates (Moodle) / installs (Canvas) the tool; the sandbox now launches it.
    r = no_cookies().post(stack.platform.config.base_url + f"/admin/tools/{tool.client_id}/activate",
                          allow_redirects=False)
    assert r.status_code == 303 and stack.platform.client_id == tool.client_id
    assert stack.platform.tool_scopes == frozenset(tool.scopes)  # the key's scopes are what it granted
    teacher = stack.platform.teacher.id
    refused = stack.launch(teacher)
    assert refused.status == 403 and refused.refusal_code == "deployment_not_active"

    # Tally's admin activates the deployment; the teacher launches.
    (reg,) = _dynamic_registrations(stack)
    (dep,) = reg.deployments
    assert dep.deployment_id == stack.platform.deployment_id and dep.status == "pending"
    admin = admin_client(stack)
    assert set_deployment(stack, admin, dep.id, "activate").status_code == 303
    launched = stack.launch(teacher)
    assert launched.status == 200 and launched.token
    with stack.session() as db:
        assert db.get(Deployment, dep.id).status == "active"


def test_a_service_token_works_for_the_dynamically_registered_client(moodle: Stack) -> None:
    paste_registration_url(moodle)
    (tool,) = dynreg_of(moodle).tools.values()
    dynreg_of(moodle).activate(tool.client_id)
    from tool.lti.assertion import request_access_token
    from tool.lti.keys import KeyStore
    from tool.ags.http import make_session

    token = request_access_token(make_session(moodle.settings), KeyStore(moodle.settings.path(moodle.settings.keys_dir)),
                                 client_id=tool.client_id, token_url=moodle.platform.paths.token_url, audience=None,
                                 scopes=[AGS + "score"])
    assert AGS + "score" in token.scopes


def test_active_policy_lets_the_registered_deployment_launch_at_once(new_stack: NewStack) -> None:
    stack = new_stack("moodle", dynamic_registration="active")
    paste_registration_url(stack)
    (tool,) = dynreg_of(stack).tools.values()
    (reg,) = _dynamic_registrations(stack)
    assert [d.status for d in reg.deployments] == ["active"]
    dynreg_of(stack).activate(tool.client_id)
    assert stack.launch(stack.platform.teacher.id).status == 200


def test_a_used_registration_token_is_refused_with_the_platforms_words_and_a_hint(stack: Stack) -> None:
    dynreg = dynreg_of(stack)
    start_url, first = paste_registration_url(stack)
    assert first.status_code == 200
    again = no_cookies().get(start_url)  # the same link, pasted twice
    assert again.status_code == 400
    assert "token_already_used" in again.text  # verbatim: Moodle's plain words, Canvas's JSON
    assert "works once" in again.text
    assert len(dynreg.tools) == 1 and len(_dynamic_registrations(stack)) == 1


def test_a_registration_without_token_is_refused_as_moodle_does(moodle: Stack) -> None:
    url = moodle.tool_url + "/lti/register"
    r = no_cookies().get(url, params={"openid_configuration": dynreg_of(moodle).configuration_url})
    assert r.status_code == 400
    assert 'id="platform-status">401' in r.text and "missing_registration_token" in r.text
    assert _dynamic_registrations(moodle) == []


def test_canvas_serves_its_configuration_only_with_the_registration_token(canvas: Stack) -> None:
    url = dynreg_of(canvas).configuration_url
    assert requests.get(url).status_code == 401
    token = dynreg_of(canvas).new_token()
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}).json()["registration_endpoint"]


def test_an_expired_registration_token_is_refused_with_a_hint(moodle: Stack) -> None:
    dynreg = dynreg_of(moodle)
    token = dynreg.new_token(lifetime=-10)
    start_url = dynreg.start_url(moodle.tool_url + "/lti/register", token=token)
    r = no_cookies().get(start_url)
    assert r.status_code == 400 and "Expired token" in r.text and "expired" in r.text.lower()
    assert dynreg.tools == {}


def test_an_issuer_on_another_host_is_refused_before_anything_is_posted(moodle: Stack) -> None:
    dynreg = dynreg_of(moodle)
    # The same sandbox, reached as localhost: the configuration's issuer names 127.0.0.1.
    foreign = dynreg.configuration_url.replace("127.0.0.1", "localhost")
    r = no_cookies().get(moodle.tool_url + "/lti/register",
                         params={"openid_configuration": foreign, "registration_token": dynreg.new_token()})
    assert r.status_code == 400 and "issuer_mismatch" in r.text and "another host" in r.text
    assert dynreg.requests == [] and _dynamic_registrations(moodle) == []


@pytest.mark.parametrize("params, code", [
    ({}, "openid_configuration_missing"),
    ({"openid_configuration": "not a url", "registration_token": "x"}, "openid_configuration_invalid"),
])
def test_bad_registration_requests_get_a_readable_page(moodle: Stack, params: dict[str, str], code: str) -> None:
    r = no_cookies().get(moodle.tool_url + "/lti/register", params=params)
    assert r.status_code == 400 and f"<code>{code}</code>" in r.text
    assert "Traceback" not in r.text


def test_switched_off_dynamic_registration_refuses_and_fetches_nothing(new_stack: NewStack) -> None:
    stack = new_stack("moodle", dynamic_registration="off")
    start_url, page = paste_registration_url(stack)
    assert page.status_code == 400 and "dynamic_registration_off" in page.text
    assert dynreg_of(stack).requests == []


# -- the sandbox's registration endpoint, as Moodle answers ----------------------------------------


def _post_registration(stack: Stack, payload: Any, token: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(dynreg_of(stack).registration_url, data=json.dumps(payload), headers=headers)


def _valid_payload(stack: Stack) -> dict[str, Any]:
    from tool.lti.dynreg import client_registration

    return client_registration(stack.settings)


@pytest.mark.parametrize("mutate, words", [
    (lambda p: p[TOOL_CONFIGURATION].update(domain="elsewhere.example:9"), "domain_targetlinkuri_mismatch"),
    (lambda p: p.update(response_types=["code"]), "invalid_response_types"),
    (lambda p: p.update(token_endpoint_auth_method="client_secret_basic"), "invalid_token_endpoint_auth_method"),
    (lambda p: p.pop("jwks_uri"), "missing required attribute jwks_uri"),
    (lambda p: p.update(application_type="native"), "invalid_application_type"),
])
def test_moodles_registration_endpoint_refuses_bad_fields_in_plain_words(moodle: Stack, mutate: Any, words: str) -> None:
    payload = _valid_payload(moodle)
    mutate(payload)
    r = _post_registration(moodle, payload, dynreg_of(moodle).new_token())
    assert (r.status_code, r.text) == (400, words)


def test_moodles_registration_answer_echoes_client_and_deployment(moodle: Stack) -> None:
    token = dynreg_of(moodle).new_token()
    r = _post_registration(moodle, _valid_payload(moodle), token)
    assert r.status_code == 200
    body = r.json()
    assert body["client_id"] == jwt.decode(token, options={"verify_signature": False})["sub"]
    assert body[TOOL_CONFIGURATION]["deployment_id"] == "2"  # the next tool type id
    assert SCOPE_LINEITEM in body["scope"].split() and SCOPE_NRPS in body["scope"].split()
    assert _post_registration(moodle, _valid_payload(moodle), token).text == "token_already_used"


def test_canvas_answers_json_errors_and_no_deployment(canvas: Stack) -> None:
    r = _post_registration(canvas, _valid_payload(canvas), None)
    assert r.status_code == 401 and r.json()["errors"][0]["message"] == "missing_registration_token"
    ok = _post_registration(canvas, _valid_payload(canvas), dynreg_of(canvas).new_token())
    assert ok.status_code == 200 and "deployment_id" not in ok.json()[TOOL_CONFIGURATION]


# -- Canvas developer key JSON -------------------------------------------------------------------


def test_canvas_json_describes_placements_privacy_and_scopes(moodle: Stack) -> None:
    r = requests.get(moodle.tool_url + "/lti/canvas.json")
    assert r.status_code == 200
    body = r.json()
    base = moodle.tool_url
    assert (body["oidc_initiation_url"], body["target_link_uri"], body["public_jwk_url"]) == (
        base + "/lti/login", base + "/lti/launch", base + "/.well-known/jwks.json")
    assert set(body["scopes"]) >= {SCOPE_LINEITEM, AGS + "score", AGS + "result.readonly", SCOPE_NRPS}
    (ext,) = body["extensions"]
    assert ext["platform"] == "canvas.instructure.com" and ext["privacy_level"] == "public"
    placements = {p["placement"]: p for p in ext["settings"]["placements"]}
    assert set(placements) == {"course_navigation", "link_selection", "assignment_selection"}
    assert placements["assignment_selection"]["message_type"] == "LtiDeepLinkingRequest"
    assert placements["link_selection"]["message_type"] == "LtiDeepLinkingRequest"
    assert body == canvas_developer_key(moodle.settings)
    assert body["custom_fields"]


def test_canvas_json_shows_course_navigation_to_every_member_not_only_admins(base_settings) -> None:  # type: ignore[no-untyped-def]
    # "admins" would hide Tally from the students it is for; README says how to limit it.
    placements = {p["placement"]: p for p in canvas_developer_key(base_settings)["extensions"][0]["settings"]["placements"]}

    navigation = placements["course_navigation"]
    assert navigation["visibility"] == "members" and navigation["default"] == "enabled"


def test_canvas_json_follows_the_public_base_url(base_settings) -> None:  # type: ignore[no-untyped-def]
    settings = base_settings.model_copy(update={"public_base_url": "https://tally.example.edu"})
    body = canvas_developer_key(settings)
    assert body["target_link_uri"] == "https://tally.example.edu/lti/launch"
    assert body["extensions"][0]["domain"] == "tally.example.edu"
