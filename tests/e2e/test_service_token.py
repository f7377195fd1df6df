"""Service calls authenticate with a client assertion signed by a key the tool's JWKS serves."""

import jwt
import pytest

from tool.lti.assertion import TokenRequestError, client_assertion, request_access_token
from tool.lti.keys import KeyStore
from tool.ags.http import make_session
from tests.e2e.conftest import Stack

SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"


def test_the_platform_grants_a_token_for_our_signed_assertion(stack: Stack) -> None:
    keys = KeyStore(stack.settings.path(stack.settings.keys_dir))
    token = request_access_token(
        make_session(stack.settings), keys, client_id=stack.platform.client_id, token_url=stack.platform.paths.token_url,
        audience=None, scopes=[SCORE],
    )
    assert token.token and SCORE in token.scopes
    # The kid it was signed with is one our JWKS serves (Moodle refuses others with '"kid" invalid').
    served = {k["kid"] for k in make_session(stack.settings).get(stack.tool_url + "/.well-known/jwks.json").json()["keys"]}
    assert jwt.get_unverified_header(client_assertion(keys, client_id="x", audience="y"))["kid"] in served


def test_an_assertion_signed_by_an_unpublished_key_is_refused_with_the_platforms_words(moodle: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stranger = KeyStore(tmp_path)
    stranger.generate()
    with pytest.raises(TokenRequestError) as err:
        request_access_token(make_session(moodle.settings), stranger, client_id=moodle.platform.client_id,
                             token_url=moodle.platform.paths.token_url, audience=None, scopes=[SCORE])
    assert '"kid" invalid' in err.value.message
