"""Helpers of the score-delivery tests: a class launched from the sandbox, a worker, what the LMS holds."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import Engine, select

from tool import clock
from tool.ags.client import AgsClient
from tool.db import make_session_factory
from tool.delivery.models import LineItemBinding, ScoreDelivery
from tool.delivery.worker import DeliveryWorker, StepResult
from tool.lti.keys import KeyStore
from tool.lti.models import Person
from tool.sandbox.store import LineItem, Result, ScorePost
from tests.e2e.conftest import Stack, start_stack, stop_all

_ITEM_ID = re.compile(r"/line_?items/(\d+)")


def item_id(lineitem_url: str) -> int:
    """The sandbox's numeric id of a line item URL (Moodle and Canvas layouts)."""
    m = _ITEM_ID.search(lineitem_url)
    assert m, lineitem_url
    return int(m.group(1))


class Klass:
    """A teacher who launched a placement, the course roster synchronised from the LMS (NRPS)."""

    def __init__(self, stack: Stack, link: str = "rl-1") -> None:
        self.stack = stack
        self.platform = stack.platform
        self.link = link
        self.teacher = stack.launch(stack.platform.teacher.id, link).token or ""
        me = stack.api(self.teacher, "/api/me").json()
        self.course_id, self.offering_id, self.teacher_id = me["courseId"], me["offeringId"], me["personId"]
        r = stack.api(self.teacher, f"/api/groups/{self.course_id}/roster/sync", "POST")
        assert r.status_code == 200, r.text
        self.subs = [u.id for u in stack.platform.students if u.is_student]
        with stack.session() as db:
            rows = db.execute(select(Person.sub, Person.id).where(Person.sub.in_(self.subs))).all()
        self.person = {sub: pid for sub, pid in rows}
        self.sub_of = {pid: sub for sub, pid in rows}
        self._clients: list[AgsClient] = []

    # -- the tool's API ---------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        return self.stack.api(token or self.teacher, path, method, json=body)

    def entry(self, sub: str, points: Any, **extra: Any) -> dict[str, Any]:
        body = {"offeringId": self.offering_id, "studentId": self.person[sub], "points": points,
                "typeCode": "EXAM", **extra}
        r = self.api("POST", "/api/grades/entries", body)
        assert r.status_code == 201, r.text
        return r.json()

    def bulk(self, points: dict[str, Any]) -> None:
        r = self.api("POST", "/api/grades/entries/bulk", {
            "offeringId": self.offering_id, "typeCode": "HOMEWORK",
            "items": [{"studentId": self.person[sub], "points": p} for sub, p in points.items()]})
        assert r.status_code == 201, r.text

    def void(self, entry_id: int) -> None:
        r = self.api("DELETE", f"/api/grades/entries/{entry_id}", {"reason": "entered by mistake"})
        assert r.status_code == 200, r.text

    def correct(self, entry_id: int, points: Any) -> None:
        r = self.api("PUT", f"/api/grades/entries/{entry_id}", {"points": points})
        assert r.status_code == 200, r.text

    def status(self) -> dict[str, Any]:
        r = self.api("GET", f"/api/offerings/{self.offering_id}/delivery")
        assert r.status_code == 200, r.text
        return r.json()

    # -- delivery ---------------------------------------------------------------------------

    def worker(self, name: str | None = None) -> DeliveryWorker:
        settings = self.stack.settings
        sessions = make_session_factory(self.stack.engine)
        client = AgsClient(settings=settings, session_factory=sessions, keys=KeyStore(settings.path(settings.keys_dir)))
        self._clients.append(client)
        return DeliveryWorker(settings=settings, sessions=sessions, client=client, name=name)

    def deliver(self, worker: DeliveryWorker | None = None) -> StepResult:
        return (worker or self.worker()).drain()

    def close(self) -> None:
        for c in self._clients:
            c.close()

    def later(self, seconds: float) -> None:
        """Let time pass for Tally and the LMS alike (backoffs, claims; Canvas refuses future timestamps)."""
        clock.shift(seconds)
        self.platform.shift_clock(seconds)

    def bindings(self) -> dict[str, LineItemBinding]:
        with self.stack.session() as db:
            return {b.target: b for b in db.scalars(select(LineItemBinding).where(
                LineItemBinding.offering_id == self.offering_id))}

    def binding(self, target: str = "total") -> LineItemBinding:
        return self.bindings()[target]

    def rows(self, target: str = "total") -> dict[str, ScoreDelivery]:
        b = self.binding(target)
        with self.stack.session() as db:
            return {r.user_id: r for r in db.scalars(select(ScoreDelivery).where(ScoreDelivery.binding_id == b.id))}

    # -- what the LMS holds -----------------------------------------------------------------

    def item(self, target: str = "total") -> LineItem:
        url = self.binding(target).lineitem_url
        assert url, f"{target} is not bound"
        return self.platform.store.line_items[item_id(url)]

    def result(self, sub: str, target: str = "total") -> Result | None:
        return self.platform.store.result(self.item(target).id, sub)

    def posts(self, sub: str | None = None, target: str = "total") -> list[ScorePost]:
        return self.platform.store.posts_for(self.item(target).id, sub)

    def accepted_posts(self, sub: str | None = None, target: str = "total") -> list[ScorePost]:
        return [p for p in self.posts(sub, target) if p.accepted]


def raw(result: Result | None) -> Decimal | None:
    """The grade the LMS stored, on the line item's scale, as an exact decimal."""
    return None if result is None or result.raw is None else Decimal(str(result.raw)).quantize(Decimal("0.01"))


# -- fixtures (imported by the delivery test modules) ------------------------------------------


@pytest.fixture
def klass(stack: Stack) -> Iterator["Klass"]:
    """A class launched from the sandbox, in each mode."""
    k = Klass(stack)
    yield k
    k.close()


@pytest.fixture
def canvas(clean_db: Engine, database_url: str, keys_dir: Path, sandbox_key_path: Path) -> Iterator["Klass"]:
    """A class on the sandbox in Canvas mode only."""
    s, servers = start_stack(clean_db, database_url, keys_dir, sandbox_key_path, "canvas")
    k = Klass(s)
    yield k
    k.close()
    stop_all(servers)
