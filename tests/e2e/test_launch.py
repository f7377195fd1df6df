"""Login → launch through the sandbox LMS over real HTTP, in Moodle and Canvas modes.

Bad launches follow the 1EdTech LTI 1.3 certification list; each must be refused with a
readable page and a reference code, and each valid variant must be accepted.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from tool.lti.models import Course, Deployment, LaunchRecord, Membership, Offering, Person
from tests.e2e.conftest import Stack, no_cookies, start_stack, stop_all

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
M = "http://purl.imsglobal.org/vocab/lis/v2/membership#"


def test_a_teacher_launches_and_gets_a_session_without_any_cookie(stack: Stack) -> None:
    client = no_cookies()
    result = stack.launch(stack.platform.teacher.id, client=client)
    assert result.status == 200
    assert "Students (" in result.response.text
    assert not client.cookies, "Tally must not need cookies"
    me = stack.api(result.token or "", "/api/me")
    assert me.status_code == 200
    body = me.json()
    assert body["roles"] == ["TEACHER"]
    assert set(body) >= {"personId", "courseId", "offeringId", "roles"}


def test_a_student_launches_into_their_own_view(stack: Stack) -> None:
    student = stack.platform.students[0]
    result = stack.launch(student.id)
    assert result.status == 200
    assert "My grades" in result.response.text
    assert stack.api(result.token or "", "/api/me").json()["roles"] == ["STUDENT"]


def test_login_initiation_by_get_works_too(stack: Stack) -> None:
    result = stack.launch(stack.platform.teacher.id, method="GET")
    assert result.status == 200 and result.token


def test_a_launch_records_person_course_offering_roles_and_service_endpoints(stack: Stack) -> None:
    teacher = stack.platform.teacher
    result = stack.launch(teacher.id)
    me = stack.api(result.token or "", "/api/me").json()
    with stack.session() as db:
        person = db.get(Person, me["personId"])
        course = db.get(Course, me["courseId"])
        offering = db.get(Offering, me["offeringId"])
        membership = db.scalar(select(Membership).where(Membership.person_id == person.id))
        assert (person.sub, person.name, person.email) == (teacher.id, teacher.name, teacher.email)
        assert (course.context_id, course.title) == (stack.platform.course.id, stack.platform.course.title)
        assert offering.resource_link_id == "rl-1" and offering.course_id == course.id
        assert offering.ags_lineitems_url == stack.platform.paths.lineitems_url
        assert offering.ags_lineitem_url is not None  # rl-1 has exactly one line item
        assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in offering.ags_scopes
        assert offering.nrps_url == stack.platform.paths.memberships_url
        assert membership.roles == "TEACHER" and membership.course_id == course.id


def test_the_latest_launch_wins(moodle: Stack) -> None:
    teacher = moodle.platform.teacher
    moodle.launch(teacher.id)
    teacher.name = "Dr. Tina Renamed"
    teacher.email = "renamed@example.edu"
    result = moodle.launch(teacher.id)
    with moodle.session() as db:
        assert db.scalar(select(func.count()).select_from(Person)) == 1
        person = db.get(Person, moodle.api(result.token or "", "/api/me").json()["personId"])
        assert (person.name, person.email) == ("Dr. Tina Renamed", "renamed@example.edu")


def test_two_resource_links_are_two_offerings_of_one_course(moodle: Stack) -> None:
    teacher = moodle.platform.teacher.id
    a = moodle.api(moodle.launch(teacher, "rl-1").token or "", "/api/me").json()
    b = moodle.api(moodle.launch(teacher, "rl-2").token or "", "/api/me").json()
    assert a["courseId"] == b["courseId"] and a["offeringId"] != b["offeringId"]


def test_a_session_reopens_its_offering_page_but_not_another(moodle: Stack) -> None:
    token = moodle.launch(moodle.platform.teacher.id).token or ""
    me = moodle.api(token, "/api/me").json()
    ok = no_cookies().post(f"{moodle.tool_url}/offerings/{me['offeringId']}", data={"st": token})
    assert ok.status_code == 200 and token in ok.text
    other = no_cookies().post(f"{moodle.tool_url}/offerings/{me['offeringId'] + 1}", data={"st": token})
    assert other.status_code == 403


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "session_missing"), ({"Authorization": "Bearer not-a-token"}, "session_invalid")],
)
def test_the_api_refuses_requests_without_a_valid_session(moodle: Stack, headers: dict[str, str], code: str) -> None:
    r = no_cookies().get(moodle.tool_url + "/api/me", headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == code and r.json()["message"]


# -- the certification list of bad launches ----------------------------------------------


def _drop(claim: str):  # type: ignore[no-untyped-def]
    def mutate(c: dict[str, Any]) -> None:
        c.pop(claim, None)
    return mutate


def _set(claim: str, value: Any):  # type: ignore[no-untyped-def]
    def mutate(c: dict[str, Any]) -> None:
        c[claim] = value
    return mutate


BAD_CLAIMS = [
    ("wrong LTI version", _set(LTI + "version", "1.2.0"), "message_invalid"),
    ("missing LTI version", _drop(LTI + "version"), "message_invalid"),
    ("missing message_type", _drop(LTI + "message_type"), "message_invalid"),
    ("unknown message_type", _set(LTI + "message_type", "LtiSomethingElse"), "message_invalid"),
    ("missing roles claim", _drop(LTI + "roles"), "message_invalid"),
    ("missing deployment_id", _drop(LTI + "deployment_id"), "missing_deployment_id"),
    ("missing resource_link id", _set(LTI + "resource_link", {"title": "no id"}), "message_invalid"),
    ("missing sub", _drop("sub"), "message_invalid"),
    ("iat in the future", lambda c: c.update(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200), "id_token_not_yet_valid"),
    ("expired", lambda c: c.update(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), "id_token_expired"),
    ("missing exp", _drop("exp"), "id_token_claim_missing"),
    ("wrong aud", _set("aud", "somebody-else"), "bad_audience"),
    ("azp not our client", _set("azp", "somebody-else"), "bad_audience"),
    ("several audiences without azp", lambda c: (c.update(aud=[c["aud"], "other"]), c.pop("azp")), "missing_azp"),
    ("wrong issuer", _set("iss", "https://evil.example"), "unknown_registration"),
    ("unknown deployment", _set(LTI + "deployment_id", "999"), "deployment_not_active"),
    ("wrong nonce", _set("nonce", "not-the-login-nonce"), "nonce_invalid"),
]


@pytest.mark.parametrize(("case", "mutate", "code"), BAD_CLAIMS, ids=[b[0] for b in BAD_CLAIMS])
def test_a_bad_launch_is_refused_with_a_readable_page(stack: Stack, case: str, mutate: Any, code: str) -> None:
    result = stack.crafted_launch(mutate)
    assert result.status in (400, 403), case
    assert result.refusal_code == code, result.response.text[:800]
    assert "Tally could not open from your course" in result.response.text
    assert "Traceback" not in result.response.text
    assert result.token is None


def test_a_token_without_kid_is_refused(moodle: Stack) -> None:
    state, nonce = moodle.state_and_nonce(moodle.platform.teacher.id)
    claims = moodle.platform.id_token_claims(moodle.platform.teacher.id, nonce=nonce)
    token = jwt.encode(claims, moodle.platform.private_key, algorithm="RS256")  # no kid header
    assert moodle.post_id_token(token, state).refusal_code == "missing_kid"


def test_a_token_with_an_unknown_kid_is_refused(moodle: Stack) -> None:
    assert moodle.crafted_launch(headers={"kid": "not-a-platform-key"}).refusal_code == "unknown_kid"


def test_a_token_signed_by_another_key_under_the_platform_kid_is_refused(moodle: Stack) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    result = moodle.crafted_launch(key=other, headers={"kid": moodle.platform.kid})
    assert result.refusal_code == "id_token_invalid"


@pytest.mark.parametrize("algorithm", ["none", "HS256"])
def test_tokens_not_signed_with_rs256_are_refused(moodle: Stack, algorithm: str) -> None:
    key = "" if algorithm == "none" else "a-shared-secret-that-is-long-enough-123"
    result = moodle.crafted_launch(key=key, algorithm=algorithm, headers={"kid": moodle.platform.kid})
    assert result.refusal_code == "bad_algorithm"


def test_a_replayed_launch_is_refused(moodle: Stack) -> None:
    teacher = moodle.platform.teacher.id
    state, nonce = moodle.state_and_nonce(teacher)
    token = moodle.platform.sign(moodle.platform.id_token_claims(teacher, nonce=nonce))
    assert moodle.post_id_token(token, state).status == 200
    again = moodle.post_id_token(token, state)
    assert again.refusal_code == "state_invalid"
    # The same id_token with a fresh login's state: its nonce belongs to the old login.
    fresh_state, _ = moodle.state_and_nonce(teacher)
    assert moodle.post_id_token(token, fresh_state).refusal_code == "nonce_invalid"


def test_a_launch_without_a_login_is_refused(moodle: Stack) -> None:
    token = moodle.platform.sign(moodle.platform.id_token_claims(moodle.platform.teacher.id, nonce="n"))
    assert moodle.post_id_token(token, "state-never-issued").refusal_code == "state_invalid"


def test_a_login_from_an_unknown_platform_is_refused(moodle: Stack) -> None:
    params = moodle.platform.login_params(moodle.platform.teacher.id)
    params["iss"] = "https://unknown.example"
    r = moodle.login("x", params=params)
    assert r.status_code == 400 and "unknown_registration" in r.text


def test_a_login_for_a_foreign_target_link_uri_is_refused(moodle: Stack) -> None:
    params = moodle.platform.login_params(moodle.platform.teacher.id)
    params["target_link_uri"] = "https://elsewhere.example/launch"
    r = moodle.login("x", params=params)
    assert r.status_code == 400 and "target_link_uri_foreign" in r.text


def test_refusals_are_recorded_with_their_reason(moodle: Stack) -> None:
    moodle.crafted_launch(_set("aud", "nobody"))
    with moodle.session() as db:
        rec = db.scalars(select(LaunchRecord).where(LaunchRecord.outcome == "refused")).one()
        assert rec.code == "bad_audience" and "audience" in rec.reason


def test_an_unknown_deployment_waits_for_an_admin_then_passes(moodle: Stack) -> None:
    admin = moodle.platform.users_of_kind("admin")[0].id
    result = moodle.crafted_launch(_set(LTI + "deployment_id", "42"), user_id=admin)
    assert result.status == 403 and result.refusal_code == "deployment_not_active"
    assert "platforms activate" in result.response.text  # the administrator sees what to run
    with moodle.session() as db:
        dep = db.scalar(select(Deployment).where(Deployment.deployment_id == "42"))
        assert dep is not None and dep.status == "pending"
        dep.status = "active"
        db.commit()
    assert moodle.crafted_launch(_set(LTI + "deployment_id", "42")).status == 200


def test_auto_activation_lets_a_new_deployment_pass(clean_db, database_url, keys_dir, sandbox_key_path) -> None:  # type: ignore[no-untyped-def]
    stack, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, "moodle",
                                 auto_activate_deployments=True)
    try:
        assert stack.crafted_launch(_set(LTI + "deployment_id", "7")).status == 200
    finally:
        stop_all(servers)


def test_clock_skew_within_the_leeway_is_accepted(moodle: Stack) -> None:
    # Canvas's clock may run ahead of ours: iat 3 s in the future, leeway 5 s.
    result = moodle.crafted_launch(lambda c: c.update(iat=int(time.time()) + 3))
    assert result.status == 200


# -- valid variants ----------------------------------------------------------------------


VALID = [
    ("several roles", [M + "Instructor", M + "Learner", "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"],
     ["ADMIN", "TEACHER", "STUDENT"]),
    ("short role names", ["Instructor"], ["TEACHER"]),
    ("unknown role", ["http://example.com/roles#Wizard"], []),
    ("no role", [], []),
]


@pytest.mark.parametrize(("case", "roles", "expected"), VALID, ids=[v[0] for v in VALID])
def test_valid_role_variants_are_accepted(stack: Stack, case: str, roles: list[str], expected: list[str]) -> None:
    result = stack.crafted_launch(_set(LTI + "roles", roles))
    assert result.status == 200, result.response.text[:500]
    assert stack.api(result.token or "", "/api/me").json()["roles"] == expected


def test_a_launch_without_name_or_email_is_accepted(stack: Stack) -> None:
    def anonymous(c: dict[str, Any]) -> None:
        for k in ("name", "given_name", "family_name", "email"):
            c.pop(k, None)
    result = stack.crafted_launch(anonymous)
    assert result.status == 200
    with stack.session() as db:
        person = db.get(Person, stack.api(result.token or "", "/api/me").json()["personId"])
        assert (person.name, person.email) == ("", "")


def test_an_unknown_role_sees_a_page_explaining_there_is_nothing_for_them(moodle: Stack) -> None:
    result = moodle.crafted_launch(_set(LTI + "roles", [M + "Mentor"]))
    assert result.status == 200 and "nothing to show for your role" in result.response.text


@pytest.mark.parametrize(("kind", "says", "never"), [
    ("student", "tell your teacher", ["platforms activate", "What failed", "LMS administrator"]),
    ("teacher", "send the reference code below to your LMS administrator", ["platforms activate", "What failed"]),
    ("admin", "platforms activate", []),
])
def test_the_refusal_page_speaks_to_each_reader_in_their_words(moodle: Stack, kind: str, says: str,
                                                                never: list[str]) -> None:
    user = moodle.platform.users_of_kind(kind)[0].id
    result = moodle.crafted_launch(_set(LTI + "deployment_id", "77"), user_id=user)
    assert result.status == 403 and result.refusal_code == "deployment_not_active"
    assert says in result.response.text
    for words in never:
        assert words not in result.response.text
    assert result.response.headers["X-Request-ID"] in result.response.text  # the reference the admin greps for
