"""Session tokens: bound to person, course, offering and roles; short-lived; unforgeable."""

import jwt
import pytest

from tool import clock
from tool.errors import SessionError
from tool.lti.claims import Role
from tool.lti.service import LaunchContext
from tool.web.auth import issue_token, read_token

SECRET = b"s" * 40
CTX = LaunchContext(registration_id=1, person_id=2, course_id=3, offering_id=4, roles=(Role.TEACHER,))


def test_a_token_reads_back_as_the_context_it_was_issued_for() -> None:
    claims = read_token(SECRET, issue_token(SECRET, CTX, ttl=600))
    assert claims.to_context() == CTX and claims.is_staff


def test_an_expired_token_is_refused() -> None:
    token = issue_token(SECRET, CTX, ttl=60)
    clock.shift(61)
    with pytest.raises(SessionError) as err:
        read_token(SECRET, token)
    assert err.value.code == "session_expired"


def test_a_token_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(SessionError):
        read_token(SECRET, issue_token(b"x" * 40, CTX, ttl=600))


def test_a_token_whose_roles_were_edited_is_refused() -> None:
    token = issue_token(SECRET, CTX, ttl=600)
    body = jwt.decode(token, options={"verify_signature": False})
    body["roles"] = ["SUPER_ADMIN"]
    forged = jwt.encode(body, b"guess" * 8, algorithm="HS256")
    with pytest.raises(SessionError):
        read_token(SECRET, forged)


def test_an_id_token_is_not_a_session_token() -> None:
    with pytest.raises(SessionError):
        read_token(SECRET, jwt.encode({"sub": "1", "exp": 9999999999, "iat": 1}, SECRET, algorithm="HS256"))
