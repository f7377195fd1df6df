"""From a sandbox launch: a teacher enters ledger points and task points, applies a scheme and
presses "Sync now"; the sandbox's own gradebook page shows the right scores, comments and progress."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

from tests.e2e.conftest import Stack, no_cookies
from tests.e2e.delivery_kit import Klass, klass  # noqa: F401  (fixtures)

BANDS = {"bands": [{"min_points": 54, "max_points": 60, "grade": "1.0"},
                   {"min_points": 48, "max_points": 53.99, "grade": "1.3"},
                   {"min_points": 30, "max_points": 47.99, "grade": "3.0"},
                   {"min_points": 0, "max_points": 29.99, "grade": "5.0"}]}
ROW = re.compile(r'<th scope="row">(?P<name>[^<]+)</th>\s*<td>(?P<raw>.*?)</td><td>(?P<final>.*?)</td>\s*'
                 r'<td>(?P<comment>.*?)</td>\s*<td>(?P<activity>[^<]*)</td><td>(?P<grading>[^<]*)', re.S)


def gradebook(stack: Stack) -> dict[str, dict[str, dict[str, str]]]:
    """The sandbox's gradebook page as {column label: {student: {raw, final, comment, activity, grading}}}."""
    text = no_cookies().get(stack.sandbox.url + "/gradebook").text
    columns: dict[str, dict[str, dict[str, str]]] = {}
    for section in re.findall(r'<section aria-labelledby="item-\d+">.*?</section>', text, re.S):
        label = html.unescape(re.search(r'<h2 id="item-\d+">(.*?) <span', section, re.S).group(1))  # type: ignore[union-attr]
        columns[label] = {}
        for name, row in re.findall(r'<tr>\s*<th scope="row">([^<]+)</th>(.*?)</tr>', section, re.S):
            m = ROW.search(f'<th scope="row">{name}</th>{row}')
            cells = ({k: html.unescape(re.sub(r"<[^>]+>", " ", v)).strip() for k, v in m.groupdict().items()}
                     if m else {"name": name, "raw": "no score"})
            columns[label][html.unescape(cells.pop("name"))] = cells
    return columns


def test_points_and_an_applied_scheme_arrive_in_the_lms_gradebook(klass: Klass) -> None:
    ann, ben, cem, dan = klass.subs[:4]
    names = {sub: klass.platform.users[sub].name for sub in klass.subs}
    # Ledger points for the week: the offering's total.
    klass.bulk({ann: "42.5", ben: "61", cem: "-2"})
    # An exam with two tasks, a scheme applied.
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/assessments",
                  {"title": "Final exam", "maxPoints": 60, "tasks": [{"title": "Proofs", "maxPoints": 30},
                                                                     {"title": "Problems", "maxPoints": 30}]})
    assert r.status_code == 201, r.text
    exam, tasks = r.json()["id"], [t["id"] for t in r.json()["tasks"]]
    for sub, points in ((ann, ("25", "24.5")), (ben, ("30", "25")), (cem, ("10", "5")), (dan, ("20", None))):
        r = klass.api("PUT", f"/api/assessments/{exam}/points/{klass.person[sub]}",
                      {"tasks": {str(t): p for t, p in zip(tasks, points)}})
        assert r.status_code == 200, r.text
    scheme = klass.api("POST", f"/api/assessments/{exam}/schemes", {"config": BANDS}).json()
    assert klass.api("POST", f"/api/schemes/{scheme['id']}/apply").status_code == 200
    # An exam with a scheme is released by hand (issue 15): the teacher releases its grades.
    r = klass.api("POST", f"/api/offerings/{klass.offering_id}/delivery/columns/assessment-{exam}/release")
    assert r.status_code == 200 and r.json()["released"] == 4, r.text

    # The teacher opens "Grades in the LMS" and presses "Sync now".
    sync_page = no_cookies().post(f"{klass.stack.tool_url}/offerings/{klass.offering_id}/sync", data={"st": klass.teacher})
    assert sync_page.status_code == 200 and "Sync now" in sync_page.text
    r = no_cookies().post(f"{klass.stack.tool_url}/offerings/{klass.offering_id}/sync/now",
                          data={"st": klass.teacher}, allow_redirects=False)
    assert r.status_code == 307 and "st=" not in r.headers["Location"]  # the browser POSTs its form there again
    after = no_cookies().post(urljoin(klass.stack.tool_url, r.headers["Location"]), data={"st": klass.teacher})
    assert "failed: 0" in after.text and "retrying: 0" in after.text and "pending: 0" in after.text

    book = gradebook(klass.stack)
    total = book["Tally: Week 1"]  # the placement's own column, from the launch
    assert (total[names[ann]]["raw"], total[names[ann]]["activity"], total[names[ann]]["grading"]) == (
        "42.5", "Completed", "FullyGraded")
    assert total[names[ben]]["raw"] == "61"
    assert total[names[cem]]["raw"] == "0" and "-2.00 points in Tally, sent as 0" in total[names[cem]]["comment"]
    assert total[names[dan]]["raw"] == "no score"  # nothing in the ledger: no total sent

    final = book["Final exam"]  # the column Tally created for the exam
    expected = {ann: ("49.5", "Grade 1.3"), ben: ("55", "Grade 1.0"), cem: ("15", "Grade 5.0")}
    for sub, (points, comment) in expected.items():
        cell = final[names[sub]]
        assert (cell["raw"], cell["comment"], cell["activity"], cell["grading"]) == (
            points, comment, "Completed", "FullyGraded"), names[sub]
    # One task of two for Dan: in progress, no grade yet.
    assert (final[names[dan]]["raw"], final[names[dan]]["activity"], final[names[dan]]["grading"]) == (
        "–", "InProgress", "Pending")
    # Nothing entered for the others: Initialized, NotReady.
    others = [s for s in klass.subs if s not in (ann, ben, cem, dan)]
    assert {(final[names[s]]["activity"], final[names[s]]["grading"]) for s in others} == {("Initialized", "NotReady")}
