"""Optimistic concurrency on ledger entries: every answer carries the version and an ETag; a write
with a stale If-Match or `version` is refused with 409 entry_changed and the entry as it is now."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.delivery_kit import Klass


@pytest.fixture
def k(moodle: Stack) -> Iterator[Klass]:
    klass = Klass(moodle)
    yield klass
    klass.close()


def _put(k: Klass, entry_id: int, body: dict[str, Any], **headers: str) -> Any:
    return k.stack.api(k.teacher, f"/api/grades/entries/{entry_id}", "PUT", json=body,
                       headers={"Authorization": f"Bearer {k.teacher}", **headers})


def test_every_entry_answer_carries_its_version_as_an_etag(k: Klass) -> None:
    created = k.api("POST", "/api/grades/entries", {"offeringId": k.offering_id, "studentId": k.person[k.subs[0]],
                                                    "points": "4", "typeCode": "EXAM"})
    entry_id = created.json()["id"]
    corrected = _put(k, entry_id, {"points": "5"})
    voided = k.api("DELETE", f"/api/grades/entries/{entry_id}", {"reason": "twice"})

    assert (created.headers["ETag"], created.json()["version"]) == ('"1"', 1)
    assert (corrected.headers["ETag"], corrected.json()["version"]) == ('"2"', 2)
    assert voided.headers["ETag"] == '"2-voided"'
    assert k.api("GET", f"/api/grades/entries/{entry_id}").headers["ETag"] == '"2-voided"'


def test_a_write_with_the_current_etag_or_version_is_saved(k: Klass) -> None:
    entry = k.entry(k.subs[0], "4")

    by_header = _put(k, entry["id"], {"points": "5"}, **{"If-Match": '"1"'})
    by_field = _put(k, entry["id"], {"points": "6", "version": 2})
    by_star = _put(k, entry["id"], {"points": "7"}, **{"If-Match": "*"})

    assert [r.status_code for r in (by_header, by_field, by_star)] == [200, 200, 200]
    assert by_star.json()["version"] == 4


@pytest.mark.parametrize("how", ["if-match", "version"])
def test_a_stale_write_is_refused_with_the_entry_as_it_is_now(k: Klass, how: str) -> None:
    entry = k.entry(k.subs[0], "4")
    assert _put(k, entry["id"], {"points": "5"}).status_code == 200  # another teacher's correction

    if how == "if-match":
        stale = _put(k, entry["id"], {"points": "9"}, **{"If-Match": '"1"'})
    else:
        stale = _put(k, entry["id"], {"points": "9", "version": 1})

    assert stale.status_code == 409
    body = stale.json()
    assert body["code"] == "entry_changed"
    assert body["details"]["current"]["points"] == "5.00" and body["details"]["current"]["version"] == 2
    assert body["details"]["currentVersion"] == 2
    now = k.api("GET", f"/api/grades/entries/{entry['id']}").json()
    assert (now["points"], now["version"]) == ("5.00", 2)  # nothing saved
    history = k.api("GET", f"/api/grades/entries/{entry['id']}/history").json()["revisions"]
    assert [r["version"] for r in history] == [1]


def test_a_stale_void_is_refused_and_a_second_void_is_told_who_voided(k: Klass) -> None:
    entry = k.entry(k.subs[0], "4")
    assert _put(k, entry["id"], {"points": "5"}).status_code == 200

    stale = k.api("DELETE", f"/api/grades/entries/{entry['id']}", {"reason": "wrong", "version": 1})
    first = k.api("DELETE", f"/api/grades/entries/{entry['id']}", {"reason": "wrong", "version": 2})
    second = k.api("DELETE", f"/api/grades/entries/{entry['id']}", {"reason": "also wrong"})

    assert (stale.status_code, stale.json()["code"]) == (409, "entry_changed")
    assert first.status_code == 200
    assert (second.status_code, second.json()["code"]) == (409, "entry_voided")
    assert second.json()["details"]["current"]["voidReason"] == "wrong"


def test_a_foreign_etag_is_stale(k: Klass) -> None:
    entry = k.entry(k.subs[0], "4")

    answer = _put(k, entry["id"], {"points": "5"}, **{"If-Match": 'W/"1", "abc"'})

    assert answer.status_code == 409 and answer.json()["code"] == "entry_changed"
