"""The token endpoint (client assertions verified against the tool's JWKS over HTTP) and bearer checks."""

from __future__ import annotations

import time

from tests.sandbox.conftest import Sandbox, ToolSite, new_tool_key

SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"


def test_a_good_assertion_gets_a_bearer_token_for_the_requested_scopes(sandbox: Sandbox) -> None:
    answer = sandbox.request_token([SCORE, NRPS])

    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"].split() == [SCORE, NRPS]
    assert body["access_token"]


def test_moodle_grants_only_service_scopes(moodle: Sandbox) -> None:
    answer = moodle.request_token([SCORE, "openid", "https://example.com/admin"])

    assert answer.json()["scope"] == SCORE


def test_canvas_refuses_a_request_with_any_scope_the_key_lacks(canvas: Sandbox) -> None:
    # All or nothing (lib/canvas/oauth/provider.rb `valid_scopes?`).
    answer = canvas.request_token([SCORE, "openid", "https://example.com/admin"])

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_scope"
    assert "openid and https://example.com/admin" in answer.json()["error_description"]


def test_a_request_without_any_service_scope_is_refused(sandbox: Sandbox) -> None:
    answer = sandbox.request_token(["openid"])

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_scope"


def test_an_assertion_signed_with_a_kid_the_tool_jwks_does_not_serve_gets_kid_invalid(sandbox: Sandbox) -> None:
    stranger = new_tool_key()

    answer = sandbox.request_token(client_assertion=sandbox.assertion(key=stranger))

    assert answer.status_code == 400
    assert answer.json()["error_description"] == '"kid" invalid'
    if sandbox.mode == "moodle":
        assert answer.reason == '"kid" invalid'


def test_a_rotated_tool_key_is_found_by_refetching_the_jwks(sandbox: Sandbox, tool_site: ToolSite) -> None:
    sandbox.token()  # the JWKS is now cached
    fetches = sandbox.platform.tokens.jwks_fetches
    rotated = new_tool_key()
    tool_site.keys.append(rotated)
    try:
        answer = sandbox.request_token(client_assertion=sandbox.assertion(key=rotated))
    finally:
        tool_site.keys.remove(rotated)

    assert answer.status_code == 200
    assert sandbox.platform.tokens.jwks_fetches == fetches + 1


def test_the_tool_jwks_is_cached_between_token_requests(sandbox: Sandbox) -> None:
    sandbox.token()
    fetches = sandbox.platform.tokens.jwks_fetches

    sandbox.token()

    assert sandbox.platform.tokens.jwks_fetches == fetches


def test_a_replayed_jti_is_refused(sandbox: Sandbox) -> None:
    assertion = sandbox.assertion()
    first = sandbox.request_token(client_assertion=assertion)

    second = sandbox.request_token(client_assertion=assertion)

    assert first.status_code == 200
    assert second.status_code == 400
    assert "jti" in second.json()["error_description"]


def test_an_assertion_for_another_audience_is_refused(sandbox: Sandbox) -> None:
    answer = sandbox.request_token(client_assertion=sandbox.assertion(aud="https://elsewhere.example/token"))

    assert answer.status_code == 400
    assert "aud" in answer.json()["error_description"]


def test_the_issuer_is_accepted_as_audience_too(sandbox: Sandbox) -> None:
    answer = sandbox.request_token(client_assertion=sandbox.assertion(aud=sandbox.platform.issuer))

    assert answer.status_code == 200


def test_an_assertion_from_another_client_is_refused(sandbox: Sandbox) -> None:
    answer = sandbox.request_token(client_assertion=sandbox.assertion(iss="other", sub="other"))

    assert answer.status_code == 400


def test_an_expired_assertion_is_refused(sandbox: Sandbox) -> None:
    past = int(time.time()) - 600

    answer = sandbox.request_token(client_assertion=sandbox.assertion(iat=past, exp=past + 60))

    assert answer.status_code == 400


def test_an_assertion_without_jti_is_refused(sandbox: Sandbox) -> None:
    answer = sandbox.request_token(client_assertion=sandbox.assertion(jti=None))

    assert answer.status_code == 400


def test_a_wrong_grant_type_is_refused(sandbox: Sandbox) -> None:
    answer = sandbox.request_token(grant_type="password")

    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"


def test_a_wrong_assertion_type_is_refused(sandbox: Sandbox) -> None:
    answer = sandbox.request_token(client_assertion_type="urn:something-else")

    assert answer.status_code == 400


def test_the_platform_counts_token_requests(sandbox: Sandbox) -> None:
    sandbox.token()
    sandbox.request_token(grant_type="password")

    assert sandbox.platform.token_requests == 2
    assert sandbox.platform.tokens.issued == 1


def test_a_service_call_without_a_token_answers_401(sandbox: Sandbox) -> None:
    answer = sandbox.http.get(sandbox.platform.paths.lineitems_url)

    assert answer.status_code == 401


def test_a_service_call_with_an_unknown_token_answers_401(sandbox: Sandbox) -> None:
    answer = sandbox.call("GET", sandbox.platform.paths.lineitems_url, token="made-up")

    assert answer.status_code == 401


def test_an_expired_token_answers_401(sandbox: Sandbox) -> None:
    token = sandbox.token()
    sandbox.platform.shift_clock(3601)

    answer = sandbox.call("GET", sandbox.platform.paths.lineitems_url, token=token)

    assert answer.status_code == 401


def test_a_token_without_the_needed_scope_is_refused(sandbox: Sandbox) -> None:
    token = sandbox.token(LINEITEM_READONLY)

    answer = sandbox.post_score(1, {"userId": "x"}, token=token)

    # Canvas: 401 "Insufficient permissions" (concerns/lti_services.rb `verify_access_scope`).
    assert answer.status_code == (403 if sandbox.mode == "moodle" else 401)


def test_a_readonly_token_may_list_line_items(sandbox: Sandbox) -> None:
    token = sandbox.token(LINEITEM_READONLY)

    answer = sandbox.call("GET", sandbox.platform.paths.lineitems_url, token=token)

    assert answer.status_code == 200
