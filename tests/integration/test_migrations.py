"""Migrations: the schema they build is the models' schema; 0006 keeps every row, and removing a
person keeps what they recorded (only "who" becomes unknown)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, delete, func, select, text
from sqlalchemy.orm import Session

from tool import migrate
from tool.assessments.models import Assessment, GradeEvent, GradeScheme, Participation
from tool.config import Settings, load_settings
from tool.db import Base, make_engine, make_session_factory
from tool.delivery.models import LineItemBinding
from tool.ledger.models import GradeEntry, GradeEntryRevision
from tool.ledger.service import roster_student_ids
from tool.lti.models import Course, Deployment, Membership, Offering, Person, Registration

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)


def test_the_migrated_schema_is_the_models_schema(clean_db: Engine) -> None:
    with clean_db.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []


def _course(db: Session) -> tuple[Offering, Person, Person]:
    reg = Registration(issuer="https://lms.example", client_id="c", auth_login_url="https://lms.example/a",
                       auth_token_url="https://lms.example/t", key_set_url="https://lms.example/k")
    db.add(reg)
    db.flush()
    dep = Deployment(registration_id=reg.id, deployment_id="1")
    course = Course(registration_id=reg.id, context_id="C1", title="C1")
    teacher = Person(registration_id=reg.id, sub="t", name="Teacher")
    student = Person(registration_id=reg.id, sub="s", name="Student")
    db.add_all([dep, course, teacher, student])
    db.flush()
    offering = Offering(course_id=course.id, deployment_id=dep.id, resource_link_id="rl")
    db.add_all([offering, Membership(course_id=course.id, person_id=teacher.id, roles="TEACHER"),
                Membership(course_id=course.id, person_id=student.id, roles="STUDENT")])
    db.flush()
    return offering, teacher, student


def test_removing_a_teacher_keeps_what_they_recorded(db: Session) -> None:
    offering, teacher, student = _course(db)
    entry = GradeEntry(offering_id=offering.id, student_id=student.id, points=5, type_code="EXAM", version=2,
                       created_by=teacher.id, updated_by=teacher.id, graded_at=NOW, created_at=NOW)
    db.add(entry)
    exam = Assessment(offering_id=offering.id, title="Exam", max_points=10, created_by=teacher.id, created_at=NOW)
    db.add(exam)
    db.flush()
    scheme = GradeScheme(assessment_id=exam.id, version=1, config={}, version_hash="x", created_by=teacher.id,
                         applied_by=teacher.id, applied_at=NOW, created_at=NOW)
    part = Participation(assessment_id=exam.id, student_id=student.id, status="graded", grade_value="1.0",
                         grade_source="override", manual_override=True, override_reason="oral exam",
                         override_by=teacher.id, updated_at=NOW)
    db.add_all([scheme, part, GradeEntryRevision(entry_id=entry.id, version=1, points=4, type_code="EXAM",
                                                  graded_at=NOW, changed_by=teacher.id, changed_at=NOW)])
    db.flush()
    db.add(GradeEvent(participation_id=part.id, grade_value="1.0", source="override", actor_id=teacher.id, at=NOW))
    db.commit()

    db.execute(delete(Person).where(Person.id == teacher.id))
    db.commit()
    db.expire_all()

    kept = db.get(GradeEntry, entry.id)
    assert kept is not None and (kept.points, kept.created_by, kept.updated_by) == (5, None, None)
    assert [r.changed_by for r in db.scalars(select(GradeEntryRevision))] == [None]
    assert db.get(Assessment, exam.id).created_by is None  # type: ignore[union-attr]
    assert (db.get(GradeScheme, scheme.id).created_by, db.get(GradeScheme, scheme.id).applied_by) == (None, None)  # type: ignore[union-attr]
    assert db.get(Participation, part.id).override_by is None  # type: ignore[union-attr]
    assert db.scalar(select(GradeEvent.actor_id)) is None


def test_the_roster_is_who_is_a_student_by_role_not_by_a_substring(db: Session) -> None:
    offering, teacher, student = _course(db)
    odd = Person(registration_id=teacher.registration_id, sub="x", name="Not a student")
    db.add(odd)
    db.flush()
    db.add(Membership(course_id=offering.course_id, person_id=odd.id, roles="TEACHER,STUDENT_ADVISOR"))
    db.commit()

    assert roster_student_ids(db, course_id=offering.course_id) == {student.id}


def _old_database(tmp_path: Path, revision: str) -> tuple[Settings, str]:
    """A SQLite database at `revision` holding one offering (id 1) with a teacher (1) and a student (2)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    settings = load_settings({"TOOL_ENV": "test"}, overrides={"database_url": url})
    migrate.upgrade(settings, revision)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO registration (id, name, issuer, client_id, auth_login_url, auth_token_url, "
                          "key_set_url, source, created_at) VALUES (1, '', 'i', 'c', 'a', 't', 'k', 'cli', '2026-12-01')"))
        conn.execute(text("INSERT INTO deployment (id, registration_id, deployment_id, status, created_at) "
                          "VALUES (1, 1, '1', 'active', '2026-12-01')"))
        conn.execute(text("INSERT INTO person (id, registration_id, sub, name, given_name, family_name, email, "
                          "updated_at) VALUES (1, 1, 't', 'T', '', '', '', '2026-12-01'), "
                          "(2, 1, 's', 'S', '', '', '', '2026-12-01')"))
        conn.execute(text("INSERT INTO course (id, registration_id, context_id, title, label, updated_at) "
                          "VALUES (1, 1, 'C', 'C', '', '2026-12-01')"))
        conn.execute(text("INSERT INTO membership (id, course_id, person_id, roles, lti_roles, status, updated_at) "
                          "VALUES (1, 1, 1, 'TEACHER', '[]', 'active', '2026-12-01'), "
                          "(2, 1, 2, 'STUDENT', '[]', 'active', '2026-12-01')"))
        conn.execute(text("INSERT INTO offering (id, course_id, deployment_id, resource_link_id, title, ags_scopes, "
                          "updated_at) VALUES (1, 1, 1, 'rl', '', '[]', '2026-12-01')"))
    engine.dispose()
    return settings, url


def test_upgrading_to_0006_keeps_every_row_on_sqlite(tmp_path: Path) -> None:
    settings, url = _old_database(tmp_path, "0005")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO grade_entry (id, offering_id, student_id, points, type_code, graded_at, "
                          "status, version, created_by, created_at) VALUES (1, 1, 2, 500, 'EXAM', '2026-12-01', "
                          "'ACTIVE', 2, 1, '2026-12-01')"))
        conn.execute(text("INSERT INTO grade_entry_revision (id, entry_id, version, points, type_code, graded_at, "
                          "changed_by, changed_at) VALUES (1, 1, 1, 400, 'EXAM', '2026-12-01', 1, '2026-12-01')"))
    engine.dispose()

    migrate.upgrade(settings)

    engine = make_engine(url)
    with make_session_factory(engine)() as db:
        assert db.scalar(select(func.count()).select_from(GradeEntryRevision)) == 1  # not cascaded away by the copy
        assert db.scalar(select(func.count()).select_from(GradeEntry)) == 1
        assert dict(db.execute(select(Membership.person_id, Membership.is_student)).all()) == {1: False, 2: True}
    engine.dispose()


def test_upgrading_to_0010_unbinds_all_but_the_oldest_binding_of_a_shared_line_item(tmp_path: Path) -> None:
    settings, url = _old_database(tmp_path, "0006")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO offering (id, course_id, deployment_id, resource_link_id, title, ags_scopes, "
                          "updated_at) VALUES (2, 1, 1, 'nav', '', '[]', '2026-12-01')"))
        for binding_id, offering_id, url_ in ((1, 1, "https://lms/li/7"), (2, 2, "https://lms/li/7"),
                                              (3, 2, "https://lms/li/8")):
            conn.execute(text(
                "INSERT INTO line_item_binding (id, offering_id, target, label, score_maximum, maximum_source, "
                "resource_id, tag, lineitem_url, bound_via, bound_at, needs_update, attempts, updated_at) VALUES "
                f"({binding_id}, {offering_id}, 'total{binding_id}', 'T', 100, 'default', 'tally-total', "
                f"'tally-total', '{url_}', 'found', '2026-12-01', 0, 0, '2026-12-01')"))
    engine.dispose()

    migrate.upgrade(settings)

    engine = make_engine(url)
    with make_session_factory(engine)() as db:
        bound = dict(db.execute(select(LineItemBinding.id, LineItemBinding.lineitem_url)).all())
    engine.dispose()
    assert bound == {1: "https://lms/li/7", 2: None, 3: "https://lms/li/8"}  # 2 is bound again by the worker
