"""Issue 15 item 8: the scheme workspace's defaults always give a valid, savable scheme.

The page asks POST /api/curves/defaults for its starting curve and for "Reset to 50 % and 90 %"
(templates/static/schemes.js); these tests ask the same endpoint, build the config the page
saves from its answer, and check it with the validation every save runs, for every maximum
from 1 to 1,000 points; a few are saved for real.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterator

import pytest
import requests

from tool.schemes import bands as scheme_bands
from tool.schemes.scale import GERMAN
from tests.e2e.conftest import Stack

D = Decimal


class Teacher:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.token = stack.launch(stack.platform.teacher.id).token or ""
        self.http = requests.Session()  # one keep-alive connection for the thousand requests
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.offering_id = self.call("GET", "/api/me").json()["offeringId"]

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.http.request(method, self.stack.tool_url + path, json=body, timeout=30)

    def defaults(self, max_points: Any, **extra: Any) -> dict[str, Any]:
        r = self.call("POST", "/api/curves/defaults", {"maxPoints": max_points, **extra})
        assert r.status_code == 200, r.text
        return r.json()


def page_config(answer: dict[str, Any], scale: Any = "german") -> dict[str, Any]:
    """The config the workspace saves from the curve it shows (schemes.js configOf)."""
    return {"unit": answer["unit"], "scale": scale, "step": answer["step"], "rounding": "none",
            "bands": answer["bands"]}


@pytest.fixture
def teacher(moodle: Stack) -> Iterator[Teacher]:
    t = Teacher(moodle)
    yield t
    t.http.close()


def test_the_defaults_are_savable_for_every_maximum_from_1_to_1000_points(teacher: Teacher) -> None:
    unsavable, steps = [], {}
    for maximum in range(1, 1001):
        answer = teacher.defaults(maximum)
        config = page_config(answer)
        try:
            parsed = scheme_bands.parse_config(config, max_points=D(maximum))
        except scheme_bands.SchemeInvalid as exc:
            unsavable.append((maximum, exc.details))
            continue
        # Every grade of the scale has its band, the anchors sit at 50 % and 90 % (to the step).
        assert [b.grade for b in parsed.bands] == list(GERMAN.grades), maximum
        step = D(answer["step"])
        assert abs(D(answer["passing"]) - D(maximum) / 2) <= step / 2, maximum
        assert abs(D(answer["excellence"]) - D(maximum) * D("0.9")) <= step / 2, maximum
        assert answer["stepChanged"] is (step != 1), maximum
        steps[maximum] = step
    assert unsavable == []
    # The step is only as fine as it must be: whole points from 22 points up (9 whole steps between
    # 50 % and 90 %), half points on 20.
    assert steps[20] == D("0.5") and steps[60] == D(1) and steps[1] == D("0.01")
    assert all(steps[m] == 1 for m in range(22, 1001))


@pytest.mark.parametrize("step", ["1", "2", "5", "0.5"])
def test_reset_to_50_and_90_percent_keeps_the_teachers_step_where_it_fits_and_is_always_savable(
        teacher: Teacher, step: str) -> None:
    for maximum in (1, 7, 20, 23, 60, 100, 999, 1000):
        answer = teacher.defaults(maximum, step=step)
        scheme_bands.parse_config(page_config(answer), max_points=D(maximum))  # raises when unsavable
        if not answer["stepChanged"]:
            assert D(answer["step"]) == D(step)
        else:
            assert D(answer["step"]) < D(step)


def test_the_defaults_fit_percent_and_the_other_built_in_scales(teacher: Teacher) -> None:
    for maximum in (1, 20, 1000):
        for scale in ("german", "letters", "pass_fail"):
            for unit in ("points", "percent"):
                answer = teacher.defaults(maximum, scale=scale, unit=unit)
                scheme_bands.parse_config(page_config(answer, scale), max_points=D(maximum))


@pytest.mark.parametrize("maximum", ["1", "20", "20.5", "999"])
def test_the_defaults_are_saved_and_applied(teacher: Teacher, maximum: str) -> None:
    r = teacher.call("POST", f"/api/offerings/{teacher.offering_id}/assessments",
                     {"title": "Quiz", "maxPoints": maximum})
    assert r.status_code == 201, r.text
    assessment = r.json()["id"]
    answer = teacher.defaults(maximum)
    r = teacher.call("POST", f"/api/assessments/{assessment}/scheme-check", {"config": page_config(answer)})
    assert r.status_code == 200 and r.json()["valid"] is True, r.text
    r = teacher.call("POST", f"/api/assessments/{assessment}/schemes", {"config": page_config(answer)})
    assert r.status_code == 201, r.text
    assert teacher.call("POST", f"/api/schemes/{r.json()['id']}/apply").status_code == 200


def test_what_the_old_page_computed_for_20_points_is_what_the_issue_reports(teacher: Teacher) -> None:
    """The page used to start from 10 and 18 at step 1 on a 20-point assessment: not a curve."""
    r = teacher.call("POST", "/api/curves/two-point",
                     {"passing": 10, "excellence": 18, "step": 1, "maxPoints": 20, "scale": "german"})
    assert r.status_code == 422
    assert "holds only 9 thresholds at step 1, but 10 passing grades need 10" in r.text
    assert teacher.defaults(20) == {
        "unit": "points", "step": "0.5", "passing": "10", "excellence": "18", "stepChanged": True,
        "bands": [{"min": m, "grade": g} for m, g in zip(
            ["18", "17", "16", "15.5", "14.5", "13.5", "12.5", "12", "11", "10", "0"], GERMAN.grades)]}
