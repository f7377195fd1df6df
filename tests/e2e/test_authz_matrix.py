"""Who may call which endpoint: EVERY route of the app, read from Flask's route table.

tests/e2e/test_ledger_authz.py states the ledger's rule cell by cell (with writes checked row by
row); this module extends it to every endpoint (assessments, schemes, curves, delivery, roster,
pages, admin, LTI, operations). Each (method, route) has exactly one access rule in `ACCESS`:
a route added without one fails `test_every_route_has_an_access_rule`, as does a stale entry.

The actors, against one live tool + sandbox:

    TEACHER   staff of course A (where the targets are)
    STUDENT   a student of course A (the target student)
    PEER      another student of course A
    OUTSIDER  a teacher of course B (same registration)
    NOBODY    no credentials at all
    LOCAL     the local administrator (password sign-in, cookie)

A granted call answers anything but 401/403 (the request bodies are deliberately empty or minimal:
a 4xx for the body proves the caller got past the access check without writing anything); a
refused one answers 401, 403 or 404 (404: "not in your course" may hide that it exists), never 2xx.
Pages are checked for refusals only (how a page carries its session is the page tests' business).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from sqlalchemy import Engine, select

from tool.ledger import service as ledger
from tool.lti.claims import CONTEXT, MEMBERSHIP, ROLES
from tool.lti.models import Deployment, Registration
from tool.web import create_app
from tests.conftest import make_settings
from tests.e2e.conftest import ADMIN_PASSWORD, Stack, no_cookies, start_stack, stop_all
from tests.e2e.registration_support import admin_client, csrf_of
from tests.e2e.test_ledger_authz import empty_tables

# -- the rules ------------------------------------------------------------------------------------

# Rule → (actor → "granted" | "refused" | "-" not checked). NOBODY's refusal of a page or console
# route may be a redirect to a sign-in page (303), which is a refusal too.
G, R, N, O = "granted", "refused", "-", "open"  # open: any answer but a 5xx
RULES: dict[str, dict[str, str]] = {
    # Anyone: the protocol endpoints guard themselves (test_launch, test_dynreg, test_deep_linking,
    # test_security_state), operations and static files hold nothing secret.
    "public":        {"TEACHER": N, "STUDENT": N, "PEER": N, "OUTSIDER": N, "NOBODY": O, "LOCAL": N},
    # Loopback or the metrics token (test_operations).
    "metrics":       {"TEACHER": N, "STUDENT": N, "PEER": N, "OUTSIDER": N, "NOBODY": O, "LOCAL": N},
    # Any launch session.
    "session":       {"TEACHER": G, "STUDENT": G, "PEER": G, "OUTSIDER": G, "NOBODY": R, "LOCAL": N},
    # Students (their own grades; staff have none here).
    "students":      {"TEACHER": R, "STUDENT": G, "PEER": G, "OUTSIDER": R, "NOBODY": R, "LOCAL": N},
    # Staff of the target's course.
    "staff":         {"TEACHER": G, "STUDENT": R, "PEER": R, "OUTSIDER": R, "NOBODY": R, "LOCAL": N},
    # Staff of any course (pure computations on the request's own numbers: curves).
    "any_staff":     {"TEACHER": G, "STUDENT": R, "PEER": R, "OUTSIDER": G, "NOBODY": R, "LOCAL": N},
    # Staff of the course, and its students for what is theirs (the target student is STUDENT).
    "member":        {"TEACHER": G, "STUDENT": G, "PEER": N, "OUTSIDER": R, "NOBODY": R, "LOCAL": N},
    # Staff of the course and the target student only (not another student of the course).
    "self_or_staff": {"TEACHER": G, "STUDENT": G, "PEER": R, "OUTSIDER": R, "NOBODY": R, "LOCAL": N},
    # Pages: refusals only.
    "page_staff":    {"TEACHER": N, "STUDENT": R, "PEER": R, "OUTSIDER": R, "NOBODY": R, "LOCAL": N},
    "page_member":   {"TEACHER": N, "STUDENT": N, "PEER": N, "OUTSIDER": R, "NOBODY": R, "LOCAL": N},
    # The admin console: LMS administrators (their registration) and the local administrator.
    "admin":         {"TEACHER": R, "STUDENT": R, "PEER": R, "OUTSIDER": R, "NOBODY": R, "LOCAL": G},
    # The admin's own sign-in form.
    "admin_login":   {"TEACHER": N, "STUDENT": N, "PEER": N, "OUTSIDER": N, "NOBODY": O, "LOCAL": N},
}

ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/"): "public",
    ("GET", "/static/<path:filename>"): "public",
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/metrics"): "metrics",
    ("GET", "/.well-known/jwks.json"): "public",
    ("GET", "/lti/canvas.json"): "public",
    ("GET", "/lti/register"): "public",
    ("GET", "/lti/login"): "public",
    ("POST", "/lti/login"): "public",
    ("POST", "/lti/launch"): "public",
    ("POST", "/lti/deep-link/respond"): "public",
    ("GET", "/api/openapi.json"): "public",
    ("GET", "/api/me"): "session",
    ("POST", "/api/session/renew"): "session",
    ("GET", "/api/me/grades"): "students",
    # assessments and schemes
    ("POST", "/api/offerings/<int:offering_id>/assessments"): "staff",
    ("GET", "/api/offerings/<int:offering_id>/assessments"): "member",
    ("GET", "/api/assessments/<int:assessment_id>"): "member",
    ("GET", "/api/assessments/<int:assessment_id>/distribution"): "staff",
    ("PUT", "/api/assessments/<int:assessment_id>/points/<int:student_id>"): "staff",
    ("PUT", "/api/assessments/<int:assessment_id>/participations/<int:student_id>/status"): "staff",
    ("PUT", "/api/assessments/<int:assessment_id>/participations/<int:student_id>/override"): "staff",
    ("DELETE", "/api/assessments/<int:assessment_id>/participations/<int:student_id>/override"): "staff",
    ("GET", "/api/assessments/<int:assessment_id>/participations/<int:student_id>/history"): "self_or_staff",
    ("POST", "/api/assessments/<int:assessment_id>/schemes"): "staff",
    ("GET", "/api/assessments/<int:assessment_id>/schemes"): "staff",
    ("POST", "/api/assessments/<int:assessment_id>/scheme-check"): "staff",
    ("GET", "/api/schemes/<int:scheme_id>"): "staff",
    ("PUT", "/api/schemes/<int:scheme_id>"): "staff",
    ("POST", "/api/schemes/<int:scheme_id>/apply"): "staff",
    ("GET", "/api/schemes/<int:scheme_id>/distribution"): "staff",
    ("GET", "/api/schemes/<int:scheme_id>/preview"): "staff",
    ("POST", "/api/curves/two-point"): "any_staff",
    ("POST", "/api/curves/boundaries"): "any_staff",
    ("POST", "/api/curves/defaults"): "any_staff",
    # the ledger (cell by cell in test_ledger_authz.py)
    ("POST", "/api/grades/entries"): "staff",
    ("POST", "/api/grades/entries/bulk"): "staff",
    ("GET", "/api/grades/entries/<int:entry_id>"): "self_or_staff",
    ("PUT", "/api/grades/entries/<int:entry_id>"): "staff",
    ("DELETE", "/api/grades/entries/<int:entry_id>"): "staff",
    ("GET", "/api/grades/entries/<int:entry_id>/history"): "staff",
    ("GET", "/api/grades/students/<int:student_id>/offerings/<int:offering_id>"): "self_or_staff",
    ("GET", "/api/grades/groups/<int:group_id>/offerings/<int:offering_id>/summary"): "staff",
    ("GET", "/api/grades/groups/<int:group_id>/offerings/<int:offering_id>/summary.csv"): "staff",
    ("POST", "/api/grades/groups/<int:group_id>/offerings/<int:offering_id>/summary.csv"): "staff",
    # roster
    ("GET", "/api/groups/<int:group_id>/roster"): "staff",
    ("POST", "/api/groups/<int:group_id>/roster/sync"): "staff",
    # delivery
    ("GET", "/api/offerings/<int:offering_id>/delivery"): "staff",
    ("POST", "/api/offerings/<int:offering_id>/delivery/sync"): "staff",
    ("POST", "/api/offerings/<int:offering_id>/delivery/retry"): "staff",
    ("POST", "/api/offerings/<int:offering_id>/delivery/resend"): "staff",
    ("PUT", "/api/offerings/<int:offering_id>/delivery/settings"): "staff",
    ("GET", "/api/offerings/<int:offering_id>/delivery/readback"): "staff",
    ("PUT", "/api/offerings/<int:offering_id>/delivery/columns/<key>"): "staff",
    ("POST", "/api/offerings/<int:offering_id>/delivery/columns/<key>/release"): "staff",
    # pages
    ("GET", "/offerings/<int:offering_id>"): "page_member",
    ("POST", "/offerings/<int:offering_id>"): "page_member",
    ("GET", "/assessments/<int:assessment_id>"): "page_member",
    ("POST", "/assessments/<int:assessment_id>"): "page_member",
    ("GET", "/offerings/<int:offering_id>/sync"): "page_staff",
    ("POST", "/offerings/<int:offering_id>/sync"): "page_staff",
    ("POST", "/offerings/<int:offering_id>/sync/now"): "page_staff",
    ("POST", "/offerings/<int:offering_id>/sync/retry"): "page_staff",
    ("POST", "/offerings/<int:offering_id>/sync/resend"): "page_staff",
    ("POST", "/offerings/<int:offering_id>/sync/maximum"): "page_staff",
    ("POST", "/offerings/<int:offering_id>/sync/column"): "page_staff",
    ("POST", "/offerings/<int:offering_id>/sync/release"): "page_staff",
    # the admin console
    ("GET", "/admin/login"): "admin_login",
    ("POST", "/admin/login"): "admin_login",
    ("POST", "/admin/logout"): "admin_login",
    ("GET", "/admin"): "admin",
    ("POST", "/admin"): "admin",
    ("POST", "/admin/invitations"): "admin",
    ("POST", "/admin/deployments/<int:deployment_pk>"): "admin",
    ("POST", "/admin/registrations/<int:registration_id>/test"): "admin",
    ("GET", "/admin/register"): "admin",
    ("POST", "/admin/register"): "admin",
}

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def route_table(settings: Any) -> set[tuple[str, str]]:
    """(method, rule) of every route the app serves."""
    app = create_app(settings)
    try:
        return {(m, r.rule) for r in app.url_map.iter_rules() for m in (r.methods or set()) - IGNORED_METHODS}
    finally:
        app.extensions["tally"].close()


def test_every_route_has_an_access_rule(base_settings: Any) -> None:
    routes = route_table(base_settings)
    missing = sorted(routes - set(ACCESS))
    stale = sorted(set(ACCESS) - routes)
    assert not missing, f"routes without an access rule in ACCESS (add one, and a cell will test it): {missing}"
    assert not stale, f"ACCESS names routes the app no longer has: {stale}"
    assert set(ACCESS.values()) <= set(RULES)


# -- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    stack: Stack
    tokens: dict[str, str]
    local: requests.Session
    ids: dict[str, int]

    def path(self, rule: str) -> str:
        out = rule
        for name, value in (("offering_id", self.ids["offering"]), ("assessment_id", self.ids["assessment"]),
                            ("student_id", self.ids["student"]), ("scheme_id", self.ids["scheme"]),
                            ("entry_id", self.ids["entry"]), ("group_id", self.ids["course"]),
                            ("deployment_pk", self.ids["deployment"]), ("registration_id", self.ids["registration"])):
            out = out.replace(f"<int:{name}>", str(value))
        return out.replace("<path:filename>", "tally.css").replace("<key>", "total")


def launch(stack: Stack, sub: str, roles: list[str], context: str | None = None) -> str:
    def mutate(claims: dict[str, Any]) -> None:
        claims["sub"] = sub
        claims["name"] = claims["given_name"] = sub.title()
        claims[ROLES] = roles
        if context is not None:
            claims[CONTEXT] = {**claims[CONTEXT], "id": context, "title": "Course B", "label": "B"}

    result = stack.crafted_launch(mutate)
    assert result.status == 200 and result.token, result.response.text[:300]
    return result.token


@pytest.fixture(scope="module")
def world(engine: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator[World]:
    empty_tables(engine)
    stack, servers = start_stack(engine, database_url, keys_dir, sandbox_key_path, "moodle",
                                 admin_password=ADMIN_PASSWORD)
    try:
        tokens = {"TEACHER": launch(stack, "matrix-teacher", [MEMBERSHIP + "Instructor"]),
                  "STUDENT": launch(stack, "matrix-student", [MEMBERSHIP + "Learner"]),
                  "PEER": launch(stack, "matrix-peer", [MEMBERSHIP + "Learner"]),
                  "OUTSIDER": launch(stack, "matrix-outsider", [MEMBERSHIP + "Instructor"], context="MATRIX-B")}
        me = {a: stack.api(t, "/api/me").json() for a, t in tokens.items()}
        assert me["OUTSIDER"]["courseId"] != me["TEACHER"]["courseId"] == me["STUDENT"]["courseId"]
        offering, course = me["TEACHER"]["offeringId"], me["TEACHER"]["courseId"]
        teacher = tokens["TEACHER"]
        made = stack.api(teacher, f"/api/offerings/{offering}/assessments", "POST",
                         json={"title": "Matrix exam", "maxPoints": 10, "source": "tasks"})
        assert made.status_code == 201, made.text
        assessment = made.json()["id"]
        scheme = stack.api(teacher, f"/api/assessments/{assessment}/schemes", "POST", json={"config": {
            "unit": "points", "bands": [{"min": 5, "grade": "1.0"}, {"min": 0, "grade": "5.0"}]}})
        assert scheme.status_code == 201, scheme.text
        with stack.session() as db:
            entry = ledger.record_entry(db, offering_id=offering, student_id=me["STUDENT"]["personId"],
                                        actor_id=me["TEACHER"]["personId"],
                                        values=ledger.EntryValues(points=Decimal("3"), type_code="EXAM"))
            db.commit()
            ids = {"offering": offering, "course": course, "assessment": assessment, "scheme": scheme.json()["id"],
                   "student": me["STUDENT"]["personId"], "entry": entry.id,
                   "deployment": db.scalar(select(Deployment.id)), "registration": db.scalar(select(Registration.id))}
        yield World(stack, tokens, admin_client(stack), ids)
    finally:
        stop_all(servers)
        empty_tables(engine)


# -- the cells ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    method: str
    rule: str
    actor: str
    expect: str

    @property
    def id(self) -> str:
        return f"{self.actor}-{self.method}-{self.rule}"


def cells() -> list[Cell]:
    out = []
    for (method, rule), access in sorted(ACCESS.items()):
        for actor, expect in RULES[access].items():
            if expect != N:
                out.append(Cell(method, rule, actor, expect))
    return out


def call(world: World, cell: Cell) -> requests.Response:
    url = world.stack.tool_url + world.path(cell.rule)
    page = not cell.rule.startswith("/api/")
    client = world.local if cell.actor == "LOCAL" else no_cookies()
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    data: dict[str, str] | None = None
    token = world.tokens.get(cell.actor)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
        if page:
            params["st"] = token  # pages of this version also read the token from the query
    kwargs: dict[str, Any] = {"headers": headers, "params": params, "allow_redirects": False, "timeout": 30}
    if cell.method in ("POST", "PUT", "DELETE"):
        if cell.actor == "LOCAL":
            console = world.local.get(world.stack.tool_url + "/admin").text
            kwargs["data"] = {"csrf": csrf_of(console)}
            headers["Origin"] = world.stack.tool_url
        elif page:
            data = {"st": token} if token else {}
            kwargs["data"] = data
        else:
            kwargs["json"] = body(world, cell)
    return client.request(cell.method, url, **kwargs)


def body(world: World, cell: Cell) -> dict[str, Any]:
    """A minimal body naming the course-A targets, so a refusal comes from the access check and not from
    validation (where the target is in the body); {} elsewhere."""
    i = world.ids
    return {
        "/api/grades/entries": {"offeringId": i["offering"], "studentId": i["student"], "points": "1",
                                "typeCode": "SEMINAR"},
        "/api/grades/entries/bulk": {"offeringId": i["offering"], "typeCode": "SEMINAR",
                                     "items": [{"studentId": i["student"], "points": "1"}]},
        "/api/grades/entries/<int:entry_id>": {"reason": "matrix"} if cell.method == "DELETE" else {"points": "2"},
    }.get(cell.rule, {})


@pytest.mark.parametrize("cell", cells(), ids=lambda c: c.id)
def test_each_actor_gets_what_the_routes_rule_allows(world: World, cell: Cell) -> None:
    r = call(world, cell)
    assert r.status_code < 500, f"{cell.id}: {r.status_code} {r.text[:300]}"
    if cell.expect == O:
        return
    if cell.expect == G:
        assert r.status_code not in (401, 403), f"{cell.id}: refused ({r.status_code}) {r.text[:300]}"
        if cell.actor == "LOCAL" and cell.method == "GET":
            assert r.status_code == 200, f"{cell.id}: {r.status_code}"
    else:
        refused = (401, 403, 404) if cell.actor != "NOBODY" or cell.rule.startswith("/api/") else (401, 403, 303)
        assert r.status_code in refused, f"{cell.id}: answered {r.status_code}, must be refused: {r.text[:300]}"
        if r.status_code == 303:
            assert r.headers["Location"].endswith("/admin/login")
        if cell.rule.startswith("/api/"):
            assert r.json()["code"] in ("session_missing", "forbidden", "not_found"), r.text[:300]


def test_the_matrix_checks_every_route_for_the_anonymous_caller() -> None:
    checked = {(c.method, c.rule) for c in cells() if c.actor == "NOBODY"}
    assert checked == set(ACCESS)
