"""Discovery, the platform JWKS, login initiation, the OIDC authorization endpoint and the id_token."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import jwt
import pytest

from tests.sandbox.conftest import Sandbox

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"


def auth_params(sandbox: Sandbox, user_id: str, resource_link_id: str = "rl-1") -> dict[str, str]:
    """A correct authorization request for a login the platform just initiated."""
    login = sandbox.platform.login_params(user_id, resource_link_id)
    return {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": login["client_id"],
        "redirect_uri": login["target_link_uri"],
        "login_hint": login["login_hint"],
        "lti_message_hint": login["lti_message_hint"],
        "state": "state-123",
        "nonce": "nonce-456",
    }


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields of an auto-submitting form."""
    return {html.unescape(n): html.unescape(v)
            for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)}


def verify(sandbox: Sandbox, token: str) -> dict[str, Any]:
    """Verify an id_token against the JWKS the platform publishes over HTTP."""
    keys = jwt.PyJWKSet.from_dict(sandbox.http.get(sandbox.platform.paths.jwks_url).json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=sandbox.platform.client_id,
                      issuer=sandbox.platform.issuer)


def test_discovery_lists_only_endpoints_that_exist(sandbox: Sandbox) -> None:
    config = sandbox.http.get(sandbox.url + "/.well-known/openid-configuration").json()

    assert config["issuer"] == sandbox.platform.issuer
    assert config["token_endpoint"] == sandbox.platform.paths.token_url
    assert config["jwks_uri"] == sandbox.platform.paths.jwks_url
    assert "registration_endpoint" not in config
    platform_config = config["https://purl.imsglobal.org/spec/lti-platform-configuration"]
    assert platform_config["product_family_code"] == sandbox.mode
    for url in (config["authorization_endpoint"], config["jwks_uri"]):
        assert sandbox.http.get(url).status_code != 404


def test_moodle_serves_its_jwks_at_certs_php(moodle: Sandbox) -> None:
    answer = moodle.http.get(moodle.url + "/mod/lti/certs.php")

    assert answer.status_code == 200
    assert answer.json()["keys"][0]["kid"] == moodle.platform.kid


def test_moodle_login_initiation_has_no_storage_target_and_a_json_hint(moodle: Sandbox) -> None:
    params = moodle.platform.login_params(moodle.platform.teacher.id)

    assert set(params) == {"iss", "login_hint", "target_link_uri", "lti_message_hint", "client_id",
                           "lti_deployment_id"}
    assert params["login_hint"].isdigit()
    assert "launchid" in json.loads(params["lti_message_hint"])


def test_canvas_login_initiation_adds_the_storage_target_and_opaque_subs(canvas: Sandbox) -> None:
    params = canvas.platform.login_params(canvas.platform.teacher.id)

    assert params["lti_storage_target"] == "post_message_forwarding"
    assert not params["login_hint"].isdigit()
    assert len(params["login_hint"]) == 36


def test_auth_endpoint_posts_a_signed_id_token_and_the_state_to_the_redirect_uri(sandbox: Sandbox) -> None:
    student = sandbox.platform.students[0]
    params = auth_params(sandbox, student.id)

    answer = sandbox.http.post(sandbox.platform.paths.auth_url, data=params)

    assert answer.status_code == 200
    assert f'action="{params["redirect_uri"]}"' in answer.text
    fields = form_fields(answer.text)
    assert fields["state"] == "state-123"
    claims = verify(sandbox, fields["id_token"])
    assert claims["sub"] == student.id
    assert claims["nonce"] == "nonce-456"
    assert claims[LTI + "roles"] == student.roles


def test_auth_endpoint_accepts_a_get_request_too(sandbox: Sandbox) -> None:
    params = auth_params(sandbox, sandbox.platform.teacher.id)

    answer = sandbox.http.get(sandbox.platform.paths.auth_url, params=params)

    assert answer.status_code == 200
    assert "id_token" in form_fields(answer.text)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("scope", "openid profile"),
        ("response_type", "code"),
        ("response_mode", "query"),
        ("prompt", "login"),
        ("client_id", "someone-else"),
        ("redirect_uri", "http://evil.example/launch"),
        ("state", None),
        ("nonce", None),
        ("login_hint", None),
        ("lti_message_hint", None),
        ("lti_message_hint", "not-a-hint-the-platform-gave"),
        ("login_hint", "999"),
    ],
)
def test_moodle_auth_endpoint_refuses_each_bad_field_with_a_page_naming_it(
    moodle: Sandbox, field: str, value: str | None
) -> None:
    # Canvas posts most of these back to the tool instead (test_canvas_code.py).
    params = auth_params(moodle, moodle.platform.teacher.id)
    if value is None:
        del params[field]
    else:
        params[field] = value

    answer = moodle.http.post(moodle.platform.paths.auth_url, data=params)

    assert answer.status_code == 400
    assert field in answer.text
    assert "id_token" not in form_fields(answer.text)


def test_moodle_auth_endpoint_refuses_a_message_hint_used_twice(moodle: Sandbox) -> None:
    params = auth_params(moodle, moodle.platform.teacher.id)
    first = moodle.http.post(moodle.platform.paths.auth_url, data=params)

    second = moodle.http.post(moodle.platform.paths.auth_url, data=params)

    assert first.status_code == 200
    assert second.status_code == 400
    assert "already used" in second.text


def test_id_token_carries_every_lti_claim(sandbox: Sandbox) -> None:
    platform = sandbox.platform
    teacher = platform.teacher

    claims = verify(sandbox, platform.sign(platform.id_token_claims(teacher.id, nonce="n")))

    assert claims["aud"] == platform.client_id == claims["azp"]
    assert claims["exp"] - claims["iat"] == 60
    assert (claims["name"], claims["email"]) == (teacher.name, teacher.email)
    assert claims[LTI + "message_type"] == "LtiResourceLinkRequest"
    assert claims[LTI + "version"] == "1.3.0"
    assert claims[LTI + "deployment_id"] == platform.deployment_id
    assert claims[LTI + "target_link_uri"] == platform.config.tool_launch_url
    assert claims[LTI + "resource_link"]["id"] == "rl-1"
    assert claims[LTI + "context"]["id"] == "SANDBOX-101"
    assert claims[LTI + "tool_platform"]["product_family_code"] == sandbox.mode
    assert {"locale", "return_url"} <= set(claims[LTI + "launch_presentation"])
    assert claims[LTI + "custom"] == {}
    assert claims[NRPS_CLAIM] == {"context_memberships_url": platform.paths.memberships_url,
                                  "service_versions": ["2.0"]}
    ags = claims[AGS_CLAIM]
    assert ags["lineitems"] == platform.paths.lineitems_url
    assert ags["lineitem"] == platform.paths.lineitem_url(1)
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in ags["scope"]


def test_a_resource_link_without_a_line_item_gets_no_lineitem_claim(sandbox: Sandbox) -> None:
    claims = sandbox.platform.id_token_claims(sandbox.platform.teacher.id, nonce="n", resource_link_id="rl-2")

    assert "lineitem" not in claims[AGS_CLAIM]
    assert claims[LTI + "resource_link"]["title"] == "Tally: Final exam"


def test_moodle_sends_admin_roles_and_instructor_for_a_site_admin(moodle: Sandbox) -> None:
    admin = moodle.platform.users_of_kind("admin")[0]

    roles = moodle.platform.id_token_claims(admin.id, nonce="n")[LTI + "roles"]

    assert set(roles) == {
        "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator",
        "http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator",
        "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor",
    }
    assert admin.id == "2"


def test_canvas_adds_institution_roles_for_students(canvas: Sandbox) -> None:
    student = canvas.platform.students[0]

    assert "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student" in student.roles
    assert "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner" in student.roles


def test_sign_with_another_key_keeps_the_given_headers(sandbox: Sandbox, tool_key: Any) -> None:
    token = sandbox.platform.sign({"a": 1}, headers={"kid": "stranger"}, key=tool_key.private_key)

    assert jwt.get_unverified_header(token)["kid"] == "stranger"
    with pytest.raises(StopIteration):
        verify(sandbox, token)


def test_a_key_path_keeps_the_platform_key_across_restarts(start_sandbox: Any, tmp_path: Any) -> None:
    path = tmp_path / "platform.pem"

    first = start_sandbox("moodle", key_path=path)
    second = start_sandbox("moodle", key_path=path)

    assert path.exists()
    assert first.platform.kid == second.platform.kid
