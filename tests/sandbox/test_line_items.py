"""AGS line items: list, filter, page, create, read, update, delete."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.sandbox.conftest import LINEITEM_TYPE, Sandbox

CONTAINER_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"


def all_pages(sandbox: Sandbox, url: str, token: str) -> tuple[list[Any], int]:
    """Follow Link rel="next" from url; return every element and the number of pages."""
    items: list[Any] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        answer = sandbox.call("GET", next_url, token=token)
        assert answer.status_code == 200, answer.reason
        items.extend(answer.json())
        pages += 1
        next_url = answer.links.get("next", {}).get("url")
    return items, pages


def taking_link(sandbox: Sandbox) -> str:
    """A resource link line items may be created for: Moodle takes any activity; Canvas only an
    assignment's (rl-1; see test_canvas_code.py for what else Canvas does)."""
    return "rl-2" if sandbox.mode == "moodle" else "rl-1"


def test_the_seed_has_one_line_item_for_week_1(sandbox: Sandbox) -> None:
    answer = sandbox.call("GET", sandbox.platform.paths.lineitems_url)

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith(CONTAINER_TYPE)
    assert answer.json() == [{"id": sandbox.platform.paths.lineitem_url(1), "label": "Tally: Week 1",
                              "scoreMaximum": 100, "resourceLinkId": "rl-1"}]


def test_moodle_line_item_urls_carry_the_type_id_and_scores_go_before_the_query(moodle: Sandbox) -> None:
    paths = moodle.platform.paths

    assert paths.lineitem_url(4).endswith("/lineitems/4/lineitem?type_id=1")
    assert paths.scores_url(4).endswith("/lineitems/4/lineitem/scores?type_id=1")
    assert paths.results_url(4).endswith("/lineitems/4/lineitem/results?type_id=1")


def test_moodle_refuses_a_scores_url_built_by_appending_after_the_query(moodle: Sandbox) -> None:
    wrong = moodle.platform.paths.lineitem_url(1) + "/scores"

    answer = moodle.call("GET", wrong)

    assert answer.status_code == 400


def test_creating_a_line_item_answers_it_with_its_url(sandbox: Sandbox) -> None:
    answer = sandbox.create_line_item({"label": "Quiz 1", "scoreMaximum": 20, "resourceLinkId": taking_link(sandbox),
                                       "tag": "quiz", "resourceId": "q1"})

    assert answer.status_code == 201
    assert answer.headers["Content-Type"].startswith(LINEITEM_TYPE)
    item = answer.json()
    assert item["label"] == "Quiz 1"
    assert item["scoreMaximum"] == 20
    fetched = sandbox.call("GET", item["id"])
    assert fetched.json() == item


def test_moodle_names_a_created_line_item_in_the_launch_claim_of_its_link(moodle: Sandbox) -> None:
    item = moodle.create_line_item({"label": "Final", "scoreMaximum": 50, "resourceLinkId": "rl-2"}).json()

    claims = moodle.platform.id_token_claims(moodle.platform.teacher.id, nonce="n", resource_link_id="rl-2")

    assert claims["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"]["lineitem"] == item["id"]


@pytest.mark.parametrize(
    "body",
    [
        {"scoreMaximum": 10},
        {"label": "", "scoreMaximum": 10},
        {"label": "No max"},
        {"label": "Zero", "scoreMaximum": 0},
        {"label": "Negative", "scoreMaximum": -5},
        {"label": "Text", "scoreMaximum": "10"},
        {"label": "Unknown link", "scoreMaximum": 10, "resourceLinkId": "rl-404"},
        ["not", "an", "object"],
    ],
)
def test_creating_a_line_item_without_label_or_positive_maximum_is_refused(sandbox: Sandbox, body: Any) -> None:
    answer = sandbox.create_line_item(body)

    # Canvas looks the link's assignment up first: an unknown link is 404 there.
    unknown_link = isinstance(body, dict) and "resourceLinkId" in body and sandbox.mode == "canvas"
    assert answer.status_code == (404 if unknown_link else 400)


def test_creating_a_line_item_as_plain_json_answers_415(sandbox: Sandbox) -> None:
    answer = sandbox.call("POST", sandbox.platform.paths.lineitems_url, data=json.dumps({"label": "x",
                          "scoreMaximum": 1}), headers={"Content-Type": "application/json"})

    assert answer.status_code == 415


def test_line_items_filter_by_resource_link_resource_id_and_tag(sandbox: Sandbox) -> None:
    link = taking_link(sandbox)
    sandbox.create_line_item({"label": "A", "scoreMaximum": 10, "resourceLinkId": link, "tag": "quiz"})
    sandbox.create_line_item({"label": "B", "scoreMaximum": 10, "resourceLinkId": link, "resourceId": "b"})
    url = sandbox.platform.paths.lineitems_url

    by_link = sandbox.call("GET", url, params={"resource_link_id": link}).json()
    by_tag = sandbox.call("GET", url, params={"tag": "quiz"}).json()
    by_resource = sandbox.call("GET", url, params={"resource_id": "b"}).json()

    # Canvas lists every line item of the link's assignment, its own (Week 1) first.
    assert [i["label"] for i in by_link] == (["A", "B"] if sandbox.mode == "moodle" else ["Tally: Week 1", "A", "B"])
    assert [i["label"] for i in by_tag] == ["A"]
    assert [i["label"] for i in by_resource] == ["B"]


def test_line_items_page_with_a_link_to_the_next_page(sandbox: Sandbox) -> None:
    token = sandbox.token()
    for n in range(6):
        sandbox.create_line_item({"label": f"Item {n}", "scoreMaximum": 10}, token=token)
    url = sandbox.platform.paths.lineitems_url
    url += ("&" if "?" in url else "?") + "limit=3"

    items, pages = all_pages(sandbox, url, token)

    assert pages == 3
    assert [i["label"] for i in items] == ["Tally: Week 1"] + [f"Item {n}" for n in range(6)]


def test_a_line_item_can_be_updated_with_put(sandbox: Sandbox) -> None:
    item = sandbox.create_line_item({"label": "Draft", "scoreMaximum": 10,
                                     "resourceLinkId": taking_link(sandbox)}).json()

    answer = sandbox.call("PUT", item["id"], data=json.dumps({**item, "label": "Quiz", "scoreMaximum": 25}),
                          headers={"Content-Type": LINEITEM_TYPE})

    assert answer.status_code == 200
    assert answer.json()["label"] == "Quiz"
    assert sandbox.call("GET", item["id"]).json()["scoreMaximum"] == 25


def test_a_put_without_a_label_is_refused(sandbox: Sandbox) -> None:
    item = sandbox.create_line_item({"label": "Draft", "scoreMaximum": 10}).json()

    answer = sandbox.call("PUT", item["id"], data=json.dumps({"scoreMaximum": 5}),
                          headers={"Content-Type": LINEITEM_TYPE})

    assert answer.status_code == 400


def test_a_tool_created_line_item_can_be_deleted(sandbox: Sandbox) -> None:
    item = sandbox.create_line_item({"label": "Gone", "scoreMaximum": 10}).json()

    answer = sandbox.call("DELETE", item["id"])

    assert answer.status_code == 204
    assert sandbox.call("GET", item["id"]).status_code == 404


def test_the_line_item_the_platform_made_for_a_link_cannot_be_deleted(sandbox: Sandbox) -> None:
    answer = sandbox.call("DELETE", sandbox.platform.paths.lineitem_url(1))

    assert answer.status_code == (403 if sandbox.mode == "moodle" else 401)
    assert 1 in sandbox.platform.store.line_items


def test_an_unknown_line_item_answers_404(sandbox: Sandbox) -> None:
    answer = sandbox.call("GET", sandbox.platform.paths.lineitem_url(99))

    assert answer.status_code == 404


def test_moodle_puts_the_error_in_the_reason_phrase_and_answers_an_empty_list(moodle: Sandbox) -> None:
    answer = moodle.create_line_item({"label": "No max"})

    assert answer.status_code == 400
    assert "scoreMaximum" in answer.reason
    assert answer.json() == []


def test_canvas_answers_errors_as_json(canvas: Sandbox) -> None:
    answer = canvas.create_line_item({"label": "No max"})

    assert answer.status_code == 400
    assert answer.json()["errors"]["type"] == "bad_request"
    assert "scoreMaximum" in answer.json()["errors"]["message"]
