"""The teacher's sync page and the delivery JSON API: states with the LMS's words, sync now,
retry failed, the read-back of the LMS gradebook (paged) and resend; who may do it; bad input."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin

import pytest
from sqlalchemy import select

from tool.db import make_session_factory
from tool.delivery.readback import read_back
from tool.lti.models import Person
from tests.e2e.conftest import Stack, no_cookies
from tests.e2e.delivery_kit import Klass, klass, raw  # noqa: F401  (fixtures)

D = Decimal


def page(k: Klass, query: str = "", token: str | None = None) -> Any:
    """Open the sync page as its links do: a POST carrying the token (`query`: "&readback=1")."""
    return no_cookies().post(f"{k.stack.tool_url}/offerings/{k.offering_id}/sync?{query.lstrip('&')}",
                             data={"st": token or k.teacher})


def press(k: Klass, action: str, **fields: Any) -> Any:
    """Submit one of the page's forms (the session token travels in the form, as on the page)."""
    return no_cookies().post(f"{k.stack.tool_url}/offerings/{k.offering_id}/sync/{action}",
                             data={"st": k.teacher, **fields}, allow_redirects=False)


def follow(k: Klass, r: Any) -> Any:
    """The page a form's 307 leads to (the browser POSTs the form, with its token, there again)."""
    assert r.status_code == 307, r.text[:500]
    assert "st=" not in r.headers["Location"]
    return no_cookies().post(urljoin(k.stack.tool_url, r.headers["Location"]), data={"st": k.teacher})


def row_of(text: str, delivery_id: int) -> str:
    m = re.search(rf'<tr data-delivery="{delivery_id}".*?</tr>', text, re.S)
    assert m, text[:2000]
    return html.unescape(m.group(0))


def test_the_teachers_page_links_to_the_sync_page(klass: Klass) -> None:
    landing = no_cookies().post(f"{klass.stack.tool_url}/offerings/{klass.offering_id}", data={"st": klass.teacher})
    assert landing.status_code == 200
    assert f'data-post\n     href="/offerings/{klass.offering_id}/sync"' in landing.text


def test_the_page_shows_each_students_state_with_the_lms_words(klass: Klass) -> None:
    ann, ben = klass.subs[:2]
    klass.platform.unenroll(ben)
    klass.bulk({ann: "12.5", ben: "4"})
    klass.deliver()
    rows = klass.rows()
    r = page(klass)
    assert r.status_code == 200
    ann_row, ben_row = row_of(r.text, rows[ann].id), row_of(r.text, rows[ben].id)
    assert "delivered" in ann_row and "12.50 / 100.00" in ann_row
    assert "failed" in ben_row and (rows[ben].last_error or "") in ben_row and str(rows[ben].last_status) in ben_row
    assert "Retry failed (1)" in r.text


def test_sync_now_from_the_page_delivers_and_says_what_it_did(klass: Klass) -> None:
    ann = klass.subs[0]
    klass.entry(ann, "9")
    after = follow(klass, press(klass, "now"))
    assert after.status_code == 200
    assert "Synchronised: 1 scores sent, 1 accepted" in after.text
    assert raw(klass.result(ann)) == D("9.00")
    assert 'data-state="delivered"' in after.text


def test_retry_failed_from_the_page_sends_them_again(klass: Klass) -> None:
    ann = klass.subs[0]
    klass.platform.unenroll(ann)
    klass.entry(ann, "3")
    klass.deliver()
    klass.platform.users[ann].enrolled = True
    assert "1 failed scores will be sent again" in follow(klass, press(klass, "retry")).text
    klass.deliver()
    assert raw(klass.result(ann)) == D("3.00")


def test_the_read_back_shows_a_grade_changed_in_the_lms_and_resend_puts_tallys_back(klass: Klass) -> None:
    ann, ben = klass.subs[:2]
    klass.bulk({ann: "40", ben: "50"})
    klass.deliver()
    r = page(klass, "&readback=1")
    assert "The LMS holds exactly what Tally delivered." in r.text
    klass.platform.teacher_edits_grade(klass.item().id, ann, 45.0)  # a teacher changes Ann's grade in the LMS
    r = page(klass, "&readback=1")
    table = html.unescape(re.search(r'<table id="readback-table">.*?</table>', r.text, re.S).group(0))  # type: ignore[union-attr]
    assert "changed" in table and "40.00 / 100.00" in table and "45.00 / 100.00" in table
    assert klass.rows()[ann].state == "delivered"
    klass.deliver()
    assert raw(klass.result(ann)) == D("45.00")  # never overwritten on Tally's own initiative
    klass.later(2)
    r = press(klass, "resend", delivery_id=str(klass.rows()[ann].id))
    assert r.status_code == 307
    klass.deliver()
    assert raw(klass.result(ann)) == D("40.00")
    assert raw(klass.result(ben)) == D("50.00") and len(klass.accepted_posts(ben)) == 1


def test_the_read_back_follows_every_page_of_results(klass: Klass) -> None:
    klass.bulk({sub: str(10 + i) for i, sub in enumerate(klass.subs)})
    klass.deliver()
    last = sorted(klass.subs)[-1]  # results are paged in user order: the last one is on the last page
    klass.platform.teacher_edits_grade(klass.item().id, last, 1.0)
    worker = klass.worker()
    rb = read_back(make_session_factory(klass.stack.engine), worker.client, offering_id=klass.offering_id, page_size=3)
    assert rb.results == len(klass.subs) > 3
    assert [(d.user_id, d.kind) for d in rb.differences] == [(last, "changed")]


def test_the_read_back_api_tells_moodles_clamping_from_an_edit(klass: Klass) -> None:
    ann = klass.subs[0]
    klass.entry(ann, "130")
    klass.deliver()
    r = klass.api("GET", f"/api/offerings/{klass.offering_id}/delivery/readback")
    assert r.status_code == 200, r.text
    body = r.json()
    if klass.platform.mode == "moodle":
        assert [(d["kind"], d["tally"], d["lms"], d["resendable"]) for d in body["differences"]] == [
            ("clamped", "130.00 / 100.00", "100.00 / 100.00", False)]
    else:
        assert body["differences"] == []
    assert body["errors"] == [] and body["results"] == 1


def test_the_status_api_lists_columns_and_deliveries(klass: Klass) -> None:
    ann = klass.subs[0]
    klass.entry(ann, "5")
    klass.deliver()
    body = klass.status()
    assert body["connected"] is True and body["platform"] == klass.platform.mode
    assert [(c["target"], c["boundVia"], c["scoreMaximum"]) for c in body["lineItems"]] == [("total", "launch", "100.00")]
    d = body["deliveries"][0]
    assert (d["studentId"], d["state"], d["desired"]["scoreGiven"], d["accepted"]["gradingProgress"]) == (
        klass.person[ann], "delivered", "5.00", "FullyGraded")
    assert body["counts"]["delivered"] == 1


def test_students_may_not_see_or_touch_delivery(klass: Klass) -> None:
    student = klass.stack.launch(klass.subs[0]).token or ""
    for method, path in (("GET", ""), ("POST", "/sync"), ("POST", "/retry"), ("GET", "/readback")):
        r = klass.api(method, f"/api/offerings/{klass.offering_id}/delivery{path}", token=student)
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert page(klass, token=student).status_code == 403


def test_another_courses_teacher_is_refused(klass: Klass) -> None:
    def other_course(claims: dict[str, Any]) -> None:
        claims["https://purl.imsglobal.org/spec/lti/claim/context"]["id"] = "OTHER-202"

    other = klass.stack.crafted_launch(other_course).token or ""
    r = klass.api("GET", f"/api/offerings/{klass.offering_id}/delivery", token=other)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/sync", token=other)
    assert r.status_code == 403


def test_no_session_and_unknown_offerings(klass: Klass) -> None:
    r = no_cookies().get(f"{klass.stack.tool_url}/api/offerings/{klass.offering_id}/delivery")
    assert r.status_code == 401 and r.json()["code"] == "session_missing"
    r = klass.api("GET", "/api/offerings/999999/delivery")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


@pytest.mark.parametrize("body, field", [({"deliveryIds": []}, "deliveryIds"), ({"deliveryIds": ["x"]}, "deliveryIds.0"),
                                         ({}, "deliveryIds"), ({"deliveryIds": [1], "x": 1}, "x")])
def test_a_bad_resend_is_refused_and_changes_nothing(klass: Klass, body: dict[str, Any], field: str) -> None:
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/resend", body)
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    assert field in [d["field"] for d in r.json()["details"]]


def test_resending_ids_of_another_offering_is_refused_as_a_whole(klass: Klass) -> None:
    ann = klass.subs[0]
    klass.entry(ann, "5")
    klass.deliver()
    own = klass.rows()[ann].id
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/resend", {"deliveryIds": [own, 987654]})
    assert r.status_code == 422
    assert r.json()["details"] == [{"field": "deliveryIds", "message": "unknown id 987654"}]
    assert klass.rows()[ann].state == "delivered"  # nothing was queued
    r = klass.stack.api(klass.teacher, f"/api/offerings/{klass.offering_id}/delivery/resend", "POST", data="nope",
                        headers={"Authorization": f"Bearer {klass.teacher}", "Content-Type": "text/plain"})
    assert r.status_code in (400, 422) and r.json()["code"] == "invalid_json"


def test_a_bad_maximum_on_the_page_is_a_readable_page(stack: Stack) -> None:
    k = Klass(stack, "rl-2")
    try:
        k.entry(k.subs[0], "1")
        r = press(k, "maximum", total_maximum="lots")
        assert r.status_code == 422 and "text/html" in r.headers["Content-Type"]
        assert "Reference code: <code>validation_error</code>" in r.text
        assert "maximum is now 20.50" in follow(k, press(k, "maximum", total_maximum="20,5")).text
    finally:
        k.close()


def test_the_openapi_document_describes_delivery(klass: Klass) -> None:
    from openapi_spec_validator import validate

    doc = no_cookies().get(klass.stack.tool_url + "/api/openapi.json").json()
    validate(doc)
    for path in ("/api/offerings/{offeringId}/delivery", "/api/offerings/{offeringId}/delivery/sync",
                 "/api/offerings/{offeringId}/delivery/retry", "/api/offerings/{offeringId}/delivery/resend",
                 "/api/offerings/{offeringId}/delivery/settings", "/api/offerings/{offeringId}/delivery/readback"):
        assert path in doc["paths"], path
    schemas = doc["components"]["schemas"]
    assert {"ResendIn", "DeliverySettingsIn", "Delivery", "SyncResult", "ReadBack"} <= set(schemas)


def test_a_placement_without_grade_service_queues_nothing_and_says_why(stack: Stack) -> None:
    def no_ags(claims: dict[str, Any]) -> None:
        del claims["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"]

    token = stack.crafted_launch(no_ags).token or ""
    me = stack.api(token, "/api/me").json()
    assert stack.api(token, f"/api/groups/{me['courseId']}/roster/sync", "POST").status_code == 200
    student = stack.platform.students[0].id
    with stack.session() as db:
        pid = db.scalar(select(Person.id).where(Person.sub == student))
    r = stack.api(token, "/api/grades/entries", "POST",
                  json={"offeringId": me["offeringId"], "studentId": pid, "points": "5", "typeCode": "EXAM"})
    assert r.status_code == 201
    status = stack.api(token, f"/api/offerings/{me['offeringId']}/delivery").json()
    assert status["connected"] is False and status["deliveries"] == [] and status["lineItems"] == []
    r = stack.api(token, f"/api/offerings/{me['offeringId']}/delivery/sync", "POST")
    assert r.status_code == 422 and r.json()["code"] == "delivery_not_offered"
    sync_page = no_cookies().post(f"{stack.tool_url}/offerings/{me['offeringId']}/sync", data={"st": token})
    assert sync_page.status_code == 200 and "does not accept grades from this placement" in sync_page.text
