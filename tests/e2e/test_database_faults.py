"""Database faults never answer a bare 500: a deadlock or serialisation failure is retried once
inside the request, what fails again answers 503 JSON with Retry-After, a connection the
database dropped is replaced before use (pool pre-ping)."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from tool import gradebook
from tool.delivery import schedule
from tool.ledger.models import GradeEntry
from tests.e2e.conftest import Stack, no_cookies
from tests.e2e.delivery_kit import Klass


class _PgError(Exception):
    """What psycopg raises, as far as Tally looks at it: an SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def deadlock() -> OperationalError:
    return OperationalError("UPDATE score_delivery …", {}, _PgError("40P01"))


@pytest.fixture
def k(moodle: Stack) -> Iterator[Klass]:
    klass = Klass(moodle)
    yield klass
    klass.close()


def failing(times: int, error: Callable[[], Exception], real: Callable[..., Any]) -> tuple[Callable[..., Any], list[int]]:
    """`real`, but raising `error()` the first `times` calls; and the count of calls."""
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            raise error()
        return real(*args, **kwargs)

    return wrapper, calls


def _entries(k: Klass) -> int:
    with k.stack.session() as db:
        return int(db.scalar(select(func.count()).select_from(GradeEntry)) or 0)


def _post_entry(k: Klass) -> Any:
    return k.api("POST", "/api/grades/entries", {"offeringId": k.offering_id, "studentId": k.person[k.subs[0]],
                                                 "points": "4", "typeCode": "EXAM"})


def test_a_deadlock_is_retried_once_inside_the_request(k: Klass, monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper, calls = failing(1, deadlock, gradebook.totals_changed)
    monkeypatch.setattr(gradebook, "totals_changed", wrapper)

    answer = _post_entry(k)

    assert answer.status_code == 201, answer.text
    assert calls[0] == 2 and _entries(k) == 1  # the rolled-back first run left nothing behind


def test_a_deadlock_that_happens_again_answers_503_json_with_retry_after(k: Klass,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper, calls = failing(2, deadlock, gradebook.totals_changed)
    monkeypatch.setattr(gradebook, "totals_changed", wrapper)

    answer = _post_entry(k)

    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "2"
    assert answer.json()["code"] == "database_unavailable" and "Nothing was saved" in answer.json()["message"]
    assert calls[0] == 2 and _entries(k) == 0


def test_a_lost_connection_is_not_retried_but_answers_503(k: Klass, monkeypatch: pytest.MonkeyPatch) -> None:
    lost = lambda: OperationalError("COMMIT", {}, _PgError("57P01"))  # noqa: E731  (admin shutdown)
    wrapper, calls = failing(1, lost, gradebook.totals_changed)
    monkeypatch.setattr(gradebook, "totals_changed", wrapper)

    answer = _post_entry(k)

    assert (answer.status_code, answer.json()["code"]) == (503, "database_unavailable")
    assert answer.headers["Retry-After"] and calls[0] == 1


def test_a_request_that_committed_already_is_not_run_again(k: Klass, monkeypatch: pytest.MonkeyPatch) -> None:
    from tool.delivery.worker import DeliveryWorker

    k.entry(k.subs[0], "4")
    reconcile, reconciled = failing(0, deadlock, schedule.reconcile_offering)
    monkeypatch.setattr(schedule, "reconcile_offering", reconcile)
    drain, _ = failing(5, deadlock, DeliveryWorker.drain)  # after "sync now" committed its part
    monkeypatch.setattr(DeliveryWorker, "drain", drain)

    answer = k.api("POST", f"/api/offerings/{k.offering_id}/delivery/sync")

    assert answer.status_code == 503 and reconciled[0] == 1


def test_a_page_gets_a_readable_503_too(k: Klass, monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper, _ = failing(5, deadlock, schedule.reconcile_offering)
    monkeypatch.setattr(schedule, "reconcile_offering", wrapper)
    k.entry(k.subs[0], "4")

    answer = no_cookies().post(f"{k.stack.tool_url}/offerings/{k.offering_id}/sync/now", data={"st": k.teacher},
                               allow_redirects=False)

    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert "text/html" in answer.headers["Content-Type"] and "try again" in answer.text


def test_a_broken_uniqueness_answers_409_not_500(k: Klass, monkeypatch: pytest.MonkeyPatch) -> None:
    duplicate = lambda: IntegrityError("INSERT …", {}, _PgError("23505"))  # noqa: E731
    wrapper, _ = failing(1, duplicate, gradebook.totals_changed)
    monkeypatch.setattr(gradebook, "totals_changed", wrapper)

    answer = _post_entry(k)

    assert (answer.status_code, answer.json()["code"]) == (409, "conflict") and _entries(k) == 0


@pytest.mark.postgres
def test_connections_the_database_dropped_are_replaced_before_use(k: Klass, database_url: str) -> None:
    assert _post_entry(k).status_code == 201  # the tool's pool holds connections now
    admin = create_engine(database_url)
    try:
        with admin.connect() as conn:
            dropped = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
            conn.commit()
    finally:
        admin.dispose()
    assert dropped and dropped > 0  # as after a PostgreSQL restart

    answers = [_post_entry(k).status_code for _ in range(3)]

    assert answers == [201, 201, 201]
