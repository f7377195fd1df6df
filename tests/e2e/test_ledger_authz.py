"""Who may call which ledger endpoint, as a full matrix: role × endpoint × own/other course.

The rule (ledger_api.py, the seed's "Access"): TEACHER, MODERATOR, ADMIN and SUPER_ADMIN of
*that* course create, update, void and view; a STUDENT reads only their own entries, total
and breakdown; nobody reaches another course.

The world is arranged once for the module (launching eight people costs more than the ~170
calls together): one course the actors launched into, and a second course of the same
registration, with its own student and entry, created directly in the database. Every cell
is its own test, named `ACTOR-endpoint-target`, so a failing cell reports itself. Every
answer that is not a 2xx must leave the ledger exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
from sqlalchemy import Engine, select

from tool.db import Base
from tool.ledger import service as ledger
from tool.ledger.models import GradeEntry
from tool.lti.claims import MEMBERSHIP, MEMBERSHIP_SUB, ROLES, SYSTEM
from tool.lti.models import Course, Membership, Offering, Person
from tests.e2e.conftest import Stack, start_stack, stop_all

# -- the actors ----------------------------------------------------------------------------

# Actor → the LTI roles of their launch (None: no session at all).
ACTORS: dict[str, list[str] | None] = {
    "TEACHER": [MEMBERSHIP + "Instructor"],
    "MODERATOR": [MEMBERSHIP_SUB + "Instructor#TeachingAssistant"],
    "ADMIN": [MEMBERSHIP + "Administrator"],
    # Only the system role, so the cell proves SUPER_ADMIN alone is enough.
    "SUPER_ADMIN": [SYSTEM + "Administrator"],
    "OWNER": [MEMBERSHIP + "Learner"],  # the student whose entry is the target
    "PEER": [MEMBERSHIP + "Learner"],  # another student of the same course
    "MENTOR": [MEMBERSHIP + "Mentor"],  # launches fine, but has no Tally role
    "NOBODY": None,  # no Authorization header
}
STAFF = ("TEACHER", "MODERATOR", "ADMIN", "SUPER_ADMIN")

# -- the matrix ----------------------------------------------------------------------------
#
# Targets:
#   own           the launch's course and offering, the OWNER's entry
#   other         the second course and its offering, its student's entry
#   self          the caller's own person id in the launch's offering (NOBODY has none)
#   own/stranger  the launch's offering with the other course's student, whom this course
#                 has never seen (person ids are per registration, not per course)
#   own/other     group = the launch's course, offering = the other course's (and
#   other/own     the reverse): pairs that mix the two courses
#   missing       an id that does not exist
# "-" = not a meaningful cell.
#
# Two cells state the rule where the code is looser (they fail until it is fixed):
#   MENTOR student_view self  a Mentor has no Tally role, so no "own grades" either
#                             (claims.py: "no ledger access of their own").
#   staff student_view own/stranger  staff read students *of their course*; answering
#                             200 hands out the name of anyone in the registration.
#
# PUT and DELETE on "own" hit a fresh ACTIVE entry of the OWNER for every cell (a void
# by one cell must not turn the next cell into a 409).

MATRIX = """
endpoint      target         TEACHER MODERATOR ADMIN SUPER_ADMIN OWNER PEER MENTOR NOBODY
create        own            201     201       201   201         403   403  403    401
bulk          own            201     201       201   201         403   403  403    401
update        own            200     200       200   200         403   403  403    401
void          own            200     200       200   200         403   403  403    401
read          own            200     200       200   200         200   403  403    401
history       own            200     200       200   200         403   403  403    401
student_view  own            200     200       200   200         200   403  403    401
summary       own            200     200       200   200         403   403  403    401
summary_csv   own            200     200       200   200         403   403  403    401
student_view  self           -       -         -     -           200   200  403    -
create        other          403     403       403   403         403   403  403    401
bulk          other          403     403       403   403         403   403  403    401
update        other          403     403       403   403         403   403  403    401
void          other          403     403       403   403         403   403  403    401
read          other          403     403       403   403         403   403  403    401
history       other          403     403       403   403         403   403  403    401
student_view  other          403     403       403   403         403   403  403    401
summary       other          403     403       403   403         403   403  403    401
summary_csv   other          403     403       403   403         403   403  403    401
summary       own/other      403     403       403   403         403   403  403    401
summary       other/own      403     403       403   403         403   403  403    401
summary_csv   own/other      403     403       403   403         403   403  403    401
summary_csv   other/own      403     403       403   403         403   403  403    401
create        own/stranger   422     422       422   422         403   403  403    401
bulk          own/stranger   422     422       422   422         403   403  403    401
student_view  own/stranger   403     403       403   403         403   403  403    401
create        missing        404     404       404   404         403   403  403    401
read          missing        404     404       404   404         404   404  404    401
history       missing        404     404       404   404         403   403  403    401
update        missing        404     404       404   404         403   403  403    401
void          missing        404     404       404   404         403   403  403    401
"""


@dataclass(frozen=True)
class Cell:
    actor: str
    endpoint: str
    target: str
    status: int

    @property
    def id(self) -> str:
        return f"{self.actor}-{self.endpoint}-{self.target}"


def cells(table: str) -> list[Cell]:
    """The matrix as one cell per (actor, endpoint, target)."""
    header, *rows = [line.split() for line in table.strip().splitlines()]
    actors = header[2:]
    assert actors == list(ACTORS), "the matrix columns must be the actors, in order"
    out = [Cell(actor, row[0], row[1], int(status))
           for row in rows for actor, status in zip(actors, row[2:], strict=True) if status != "-"]
    assert len({c.id for c in out}) == len(out), "a cell appears twice"
    return out


# The error code each refusal must carry (errors.py).
ERROR_CODES = {401: "session_missing", 403: "forbidden", 404: "not_found"}

# -- the world ------------------------------------------------------------------------------


@dataclass
class World:
    """One course with its people launched in, and a second course reachable only by id."""

    stack: Stack
    tokens: dict[str, str | None]
    people: dict[str, int]
    course_id: int
    offering_id: int
    owner_entry: int
    other_course_id: int
    other_offering_id: int
    stranger_id: int  # the other course's student
    other_entry: int

    def call(self, actor: str, method: str, path: str, body: Any = None) -> requests.Response:
        """Call the API as `actor` (no Authorization header at all for NOBODY)."""
        token = self.tokens[actor]
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.stack.api("", path, method, json=body, headers=headers)

    def add_entry(self, *, offering_id: int, student_id: int, points: str = "7") -> int:
        """An ACTIVE EXAM entry written straight to the ledger (by the teacher)."""
        with self.stack.session() as db:
            entry = ledger.record_entry(db, offering_id=offering_id, student_id=student_id,
                                        actor_id=self.people["TEACHER"],
                                        values=ledger.EntryValues(points=Decimal(points), type_code="EXAM"))
            db.commit()
            return entry.id

    def ledger_state(self) -> list[tuple[Any, ...]]:
        """Every entry with every column that a write could touch."""
        cols = [c for c in GradeEntry.__table__.columns]
        with self.stack.session() as db:
            return [tuple(r) for r in db.execute(select(*cols).order_by(GradeEntry.id))]

    def entry(self, entry_id: int) -> GradeEntry:
        with self.stack.session() as db:
            entry = db.get(GradeEntry, entry_id)
            assert entry is not None
            db.expunge(entry)
            return entry


def empty_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


def launch_as(stack: Stack, actor: str, roles: list[str]) -> str:
    """A launch into the sandbox course with these LTI roles and a `sub` of the actor's own."""

    def mutate(claims: dict[str, Any]) -> None:
        claims["sub"] = f"authz-{actor.lower()}"
        claims["name"] = claims["given_name"] = actor.title()
        claims["family_name"] = "Matrix"
        claims["email"] = f"{actor.lower()}@example.test"
        claims[ROLES] = roles

    launch = stack.crafted_launch(mutate)
    assert launch.status == 200 and launch.token, (actor, launch.status, launch.response.text[:300])
    return launch.token


def add_second_course(stack: Stack, *, course_id: int, offering_id: int) -> tuple[int, int, int]:
    """Another course of the same registration with an offering and one student (no launch)."""
    with stack.session() as db:
        course = db.get(Course, course_id)
        offering = db.get(Offering, offering_id)
        assert course is not None and offering is not None
        other = Course(registration_id=course.registration_id, context_id="AUTHZ-OTHER", title="Elsewhere 101")
        stranger = Person(registration_id=course.registration_id, sub="authz-stranger", name="Stranger Elsewhere",
                          given_name="Stranger", family_name="Elsewhere", email="stranger@example.test")
        db.add_all([other, stranger])
        db.flush()
        other_offering = Offering(course_id=other.id, deployment_id=offering.deployment_id,
                                  resource_link_id="authz-other-link", title="Elsewhere grades")
        db.add_all([other_offering, Membership(course_id=other.id, person_id=stranger.id, roles="STUDENT",
                                               lti_roles=[MEMBERSHIP + "Learner"])])
        db.commit()
        return other.id, other_offering.id, stranger.id


@pytest.fixture(scope="module")
def world(engine: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator[World]:
    empty_tables(engine)
    stack, servers = start_stack(engine, database_url, keys_dir, sandbox_key_path, "moodle")
    try:
        tokens: dict[str, str | None] = {a: launch_as(stack, a, r) for a, r in ACTORS.items() if r is not None}
        tokens["NOBODY"] = None
        me = {a: stack.api(t, "/api/me").json() for a, t in tokens.items() if t is not None}
        assert len({m["courseId"] for m in me.values()}) == 1, me
        assert {a: m["roles"] for a, m in me.items()} == {
            "TEACHER": ["TEACHER"], "MODERATOR": ["MODERATOR"], "ADMIN": ["ADMIN"], "SUPER_ADMIN": ["SUPER_ADMIN"],
            "OWNER": ["STUDENT"], "PEER": ["STUDENT"], "MENTOR": [],
        }
        course_id, offering_id = me["TEACHER"]["courseId"], me["TEACHER"]["offeringId"]
        other_course, other_offering, stranger = add_second_course(stack, course_id=course_id, offering_id=offering_id)
        w = World(stack=stack, tokens=tokens, people={a: m["personId"] for a, m in me.items()},
                  course_id=course_id, offering_id=offering_id, owner_entry=0, other_course_id=other_course,
                  other_offering_id=other_offering, stranger_id=stranger, other_entry=0)
        w.owner_entry = w.add_entry(offering_id=offering_id, student_id=w.people["OWNER"])
        w.other_entry = w.add_entry(offering_id=other_offering, student_id=stranger, points="9")
        yield w
    finally:
        stop_all(servers)
        empty_tables(engine)


# -- the requests ----------------------------------------------------------------------------

MISSING = 987654321


@dataclass(frozen=True)
class Where:
    """The ids a cell's request names."""

    course: int
    offering: int
    student: int
    entry: int


def where(w: World, cell: Cell) -> Where:
    """Resolve a cell's target to ids (a fresh OWNER entry for writes in the own course)."""
    own_student = w.people["OWNER"]
    if cell.target == "own":
        entry = w.owner_entry
        if cell.endpoint in ("update", "void"):
            entry = w.add_entry(offering_id=w.offering_id, student_id=own_student)
        return Where(w.course_id, w.offering_id, own_student, entry)
    if cell.target == "self":
        return Where(w.course_id, w.offering_id, w.people[cell.actor], w.owner_entry)
    if cell.target == "other":
        return Where(w.other_course_id, w.other_offering_id, w.stranger_id, w.other_entry)
    if cell.target == "own/other":
        return Where(w.course_id, w.other_offering_id, w.stranger_id, w.other_entry)
    if cell.target == "other/own":
        return Where(w.other_course_id, w.offering_id, own_student, w.owner_entry)
    if cell.target == "own/stranger":
        return Where(w.course_id, w.offering_id, w.stranger_id, w.owner_entry)
    if cell.target == "missing":
        return Where(w.course_id, MISSING, own_student, MISSING)
    raise AssertionError(f"unknown target {cell.target}")


ENDPOINTS: dict[str, Callable[[Where], tuple[str, str, Any]]] = {
    "create": lambda t: ("POST", "/api/grades/entries",
                         {"offeringId": t.offering, "studentId": t.student, "points": "1.5", "typeCode": "SEMINAR"}),
    "bulk": lambda t: ("POST", "/api/grades/entries/bulk",
                       {"offeringId": t.offering, "typeCode": "SEMINAR", "items": [{"studentId": t.student, "points": "2"}]}),
    "update": lambda t: ("PUT", f"/api/grades/entries/{t.entry}", {"points": "0.5", "description": "changed"}),
    "void": lambda t: ("DELETE", f"/api/grades/entries/{t.entry}", {"reason": "authz matrix"}),
    "read": lambda t: ("GET", f"/api/grades/entries/{t.entry}", None),
    "history": lambda t: ("GET", f"/api/grades/entries/{t.entry}/history", None),
    "student_view": lambda t: ("GET", f"/api/grades/students/{t.student}/offerings/{t.offering}", None),
    "summary": lambda t: ("GET", f"/api/grades/groups/{t.course}/offerings/{t.offering}/summary", None),
    "summary_csv": lambda t: ("GET", f"/api/grades/groups/{t.course}/offerings/{t.offering}/summary.csv", None),
}
WRITES = {"create", "bulk", "update", "void"}


def check_granted(w: World, cell: Cell, t: Where, r: requests.Response, before: list[tuple[Any, ...]]) -> None:
    """A granted call did what it says, to the entry and student it names."""
    after = w.ledger_state()
    if cell.endpoint in ("create", "bulk"):
        assert len(after) == len(before) + 1, "one new entry"
        new = w.entry(r.json()["id"] if cell.endpoint == "create" else r.json()["ids"][0])
        assert (new.offering_id, new.student_id, new.created_by) == (t.offering, t.student, w.people[cell.actor])
    elif cell.endpoint == "update":
        e = w.entry(t.entry)
        assert (e.version, e.points, e.updated_by) == (2, Decimal("0.50"), w.people[cell.actor])
    elif cell.endpoint == "void":
        e = w.entry(t.entry)
        assert (e.status, e.voided_by) == ("VOIDED", w.people[cell.actor])
    else:
        assert after == before, "a read wrote something"
        if cell.endpoint == "read":
            assert r.json()["id"] == t.entry
        elif cell.endpoint == "history":
            assert r.json()["entry"]["id"] == t.entry
        elif cell.endpoint == "student_view":
            body = r.json()
            assert body["studentId"] == t.student and {e["studentId"] for e in body["entries"]} <= {t.student}
        elif cell.endpoint == "summary":
            assert r.json()["groupId"] == t.course
        elif cell.endpoint == "summary_csv":
            assert r.headers["Content-Type"].startswith("text/csv")


def check_refused(w: World, cell: Cell, r: requests.Response, before: list[tuple[Any, ...]]) -> None:
    """A refused call is a JSON error with its stable code, names no other data, and changed nothing."""
    body = r.json()
    assert set(body) == {"code", "message", "details"}, body
    if cell.status in ERROR_CODES:
        assert body["code"] == ERROR_CODES[cell.status], body
    assert w.ledger_state() == before, "a refused call changed the ledger"


@pytest.mark.parametrize("cell", cells(MATRIX), ids=lambda c: c.id)
def test_each_actor_gets_exactly_what_the_rule_allows(world: World, cell: Cell) -> None:
    target = where(world, cell)
    method, path, body = ENDPOINTS[cell.endpoint](target)
    before = world.ledger_state()

    r = world.call(cell.actor, method, path, body)

    assert r.status_code == cell.status, (
        f"{cell.id}: {method} {path} answered {r.status_code}, the rule says {cell.status}: {r.text[:300]}")
    if 200 <= cell.status < 300:
        check_granted(world, cell, target, r, before)
    else:
        check_refused(world, cell, r, before)


def test_the_matrix_covers_every_actor_endpoint_and_course() -> None:
    grid = {(c.actor, c.endpoint, c.target) for c in cells(MATRIX)}
    for actor in ACTORS:
        for endpoint in ENDPOINTS:
            for target in ("own", "other"):
                assert (actor, endpoint, target) in grid, (actor, endpoint, target)
