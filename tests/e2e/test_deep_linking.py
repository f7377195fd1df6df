"""Deep Linking through the sandbox LMS over real HTTP, in Moodle and Canvas modes.

A teacher adds "a graded Tally item": the platform sends an LtiDeepLinkingRequest, Tally
shows its form and answers with an auto-submitted form carrying a signed
LtiDeepLinkingResponse; the sandbox verifies it against Tally's JWKS and creates the link and
its gradebook column.
"""

from __future__ import annotations

import jwt
import pytest
import requests
from sqlalchemy import select

from tool import clock
from tool.lti.deeplink import CONTENT_ITEMS_CLAIM, DATA_CLAIM, MSG_CLAIM
from tool.lti.models import LaunchRecord, Offering
from tests.e2e.conftest import Stack, form_of, no_cookies
from tests.e2e.registration_support import deep_link_launch, deeplink_of, hidden

LTI = "https://purl.imsglobal.org/spec/lti/claim/"


def _respond(stack: Stack, page: str, **fields: str) -> requests.Response:
    data = {"dl": hidden(page, "dl"), **fields}
    return no_cookies().post(stack.tool_url + "/lti/deep-link/respond", data=data, allow_redirects=False)


def _return_to_platform(answer: requests.Response) -> tuple[str, str, requests.Response]:
    action, fields = form_of(answer.text)
    return action, fields["JWT"], no_cookies().post(action, data={"JWT": fields["JWT"]})


def test_a_teacher_adds_a_graded_item_and_the_lms_creates_its_gradebook_column(stack: Stack) -> None:
    form = deep_link_launch(stack)
    assert form.status == 200, form.response.text[:500]
    assert 'name="score_maximum"' in form.response.text and "Ledger total" in form.response.text
    answer = _respond(stack, form.response.text, action="add", title="Midterm exam", score_maximum="20",
                      source="ledger_total")
    assert answer.status_code == 200
    action, token, returned = _return_to_platform(answer)
    assert action.startswith(stack.platform.config.base_url + deeplink_of(stack).return_rule)

    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == stack.platform.client_id and claims["aud"] == stack.platform.issuer
    assert claims[LTI + "message_type"] == "LtiDeepLinkingResponse" and claims[LTI + "version"] == "1.3.0"
    assert claims[LTI + "deployment_id"] == stack.platform.deployment_id and claims["nonce"]
    assert claims[DATA_CLAIM]  # echoed
    (item,) = claims[CONTENT_ITEMS_CLAIM]
    assert item["type"] == "ltiResourceLink" and item["title"] == "Midterm exam"
    assert item["lineItem"] == {"scoreMaximum": 20, "label": "Midterm exam", "resourceId": "tally:ledger_total",
                                "tag": "tally"}

    assert returned.status_code == 200, returned.text[:500]
    (result,) = deeplink_of(stack).results
    (link,) = result.links
    (column,) = result.line_items
    assert (column.label, column.score_maximum, column.resource_link_id, column.resource_id) == (
        "Midterm exam", 20.0, link.id, "tally:ledger_total")

    # The teacher opens the new link: the launch carries exactly that line item.
    launched = stack.launch(stack.platform.teacher.id, link.id)
    assert launched.status == 200
    with stack.session() as db:
        offering = db.scalar(select(Offering).where(Offering.resource_link_id == link.id))
        assert offering.ags_lineitem_url == stack.platform.paths.lineitem_url(column.id)
        record = db.scalar(select(LaunchRecord).where(LaunchRecord.code == "deep_link"))
        assert record is not None and record.outcome == "accepted"


def test_cancel_answers_the_lms_with_no_item_and_a_message(stack: Stack) -> None:
    form = deep_link_launch(stack)
    answer = _respond(stack, form.response.text, action="cancel")
    _, token, returned = _return_to_platform(answer)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims[CONTENT_ITEMS_CLAIM] == [] and claims[MSG_CLAIM]
    assert returned.status_code == 200 and "returned no item" in returned.text
    links_before = len(stack.platform.resource_links)
    assert deeplink_of(stack).results[-1].links == [] and len(stack.platform.resource_links) == links_before


@pytest.mark.parametrize("fields, field", [
    ({"title": "", "score_maximum": "10", "source": "ledger_total"}, "title"),
    ({"title": "Quiz", "score_maximum": "0", "source": "ledger_total"}, "score_maximum"),
    ({"title": "Quiz", "score_maximum": "ten", "source": "ledger_total"}, "score_maximum"),
    ({"title": "Quiz", "score_maximum": "10.125", "source": "ledger_total"}, "score_maximum"),
    ({"title": "Quiz", "score_maximum": "10", "source": "nowhere"}, "source"),
])
def test_bad_input_shows_the_form_again_with_the_problem(moodle: Stack, fields: dict[str, str], field: str) -> None:
    form = deep_link_launch(moodle)
    answer = _respond(moodle, form.response.text, action="add", **fields)
    assert answer.status_code == 422
    error_id = {"title": "title-error", "score_maximum": "max-error", "source": "source-error"}[field]
    assert 'name="dl"' in answer.text and f'id="{error_id}"' in answer.text
    assert 'name="JWT"' not in answer.text
    assert deeplink_of(moodle).results == []


def test_a_forged_or_expired_form_is_refused(moodle: Stack) -> None:
    form = deep_link_launch(moodle)
    forged = no_cookies().post(moodle.tool_url + "/lti/deep-link/respond",
                               data={"dl": hidden(form.response.text, "dl") + "x", "action": "add", "title": "X",
                                     "score_maximum": "10", "source": "ledger_total"})
    assert forged.status_code == 401 and "deep_link_invalid" in forged.text
    clock.shift(moodle.settings.session_ttl_seconds + 1)
    expired = _respond(moodle, form.response.text, action="add", title="X", score_maximum="10", source="ledger_total")
    assert expired.status_code == 401 and "deep_link_expired" in expired.text


def test_a_student_cannot_add_items_and_the_lms_is_told_so(moodle: Stack) -> None:
    form = deep_link_launch(moodle, moodle.platform.students[0].id)
    assert form.status == 200 and "Only teachers" in form.response.text
    answer = _respond(moodle, form.response.text, action="add", title="Sneaky", score_maximum="10",
                      source="ledger_total")
    _, token, returned = _return_to_platform(answer)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims[CONTENT_ITEMS_CLAIM] == [] and "teachers" in claims["https://purl.imsglobal.org/spec/lti-dl/claim/errormsg"]
    assert deeplink_of(moodle).results[-1].links == []


def test_the_platform_refuses_a_replayed_or_tampered_response(moodle: Stack) -> None:
    form = deep_link_launch(moodle)
    answer = _respond(moodle, form.response.text, action="add", title="Quiz", score_maximum="10",
                      source="ledger_total")
    action, token, first = _return_to_platform(answer)
    assert first.status_code == 200
    replay = no_cookies().post(action, data={"JWT": token})
    assert replay.status_code == 400 and "used already" in replay.text
    head, body, sig = token.split(".")
    tampered = no_cookies().post(action, data={"JWT": f"{head}.{body}.{sig[:-4]}AAAA"})
    assert tampered.status_code == 400
