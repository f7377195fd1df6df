"""Log lines: JSON or readable, with the request's context, and never a secret or an SQL parameter."""

from __future__ import annotations

import io
import json
import logging

import pytest
from sqlalchemy import Column, MetaData, String, Table, insert
from sqlalchemy.exc import IntegrityError

from tool import logs
from tool.db import make_engine

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.fixture
def captured() -> tuple[io.StringIO, io.StringIO]:
    js, text = io.StringIO(), io.StringIO()
    log = logging.getLogger("tool.test_logs")
    log.setLevel(logging.DEBUG)
    handlers = []
    for stream, formatter in ((js, logs.JsonFormatter()), (text, logs.TextFormatter())):
        h = logging.StreamHandler(stream)
        h.setFormatter(formatter)
        log.addHandler(h)
        handlers.append(h)
    yield js, text
    for h in handlers:
        log.removeHandler(h)
    logs.clear()


@pytest.mark.parametrize("name", ["token", "access_token", "client_assertion", "password", "secret_key",
                                  "Authorization", "id_token"])
def test_a_field_named_like_a_secret_is_never_printed(captured: tuple[io.StringIO, io.StringIO], name: str) -> None:
    logs.event(logging.getLogger("tool.test_logs"), "x.happened", **{name: "hunter2-very-secret"})
    for stream in captured:
        assert "hunter2-very-secret" not in stream.getvalue() and logs.REDACTED in stream.getvalue()


@pytest.mark.parametrize("text", [f"the id_token {JWT} was refused", f"Authorization: Bearer {JWT[:30]}abc",
                                  f"GET /offerings/1?st={JWT} HTTP/1.1", "POST /x?registration_token=abcdef123456"])
def test_tokens_inside_any_text_are_scrubbed(captured: tuple[io.StringIO, io.StringIO], text: str) -> None:
    log = logging.getLogger("tool.test_logs")
    logs.event(log, "x.failed", reason=text)
    log.warning("a library said: %s", text)
    for stream in captured:
        out = stream.getvalue()
        assert JWT not in out and "abcdef123456" not in out and JWT[:30] not in out


def test_json_lines_carry_the_event_its_fields_and_the_context(captured: tuple[io.StringIO, io.StringIO]) -> None:
    js, text = captured
    with logs.scope(request_id="rid-1", platform="https://moodle.example.edu", offering=7, person=42):
        logs.event(logging.getLogger("tool.test_logs"), "launch.accepted", level=logging.INFO, roles=["TEACHER"],
                   token_url="https://moodle.example.edu/mod/lti/token.php")
    logs.event(logging.getLogger("tool.test_logs"), "after.scope")
    first, second = (json.loads(line) for line in js.getvalue().splitlines())
    assert first["event"] == "launch.accepted" and first["level"] == "info" and first["logger"] == "tool.test_logs"
    assert (first["request_id"], first["offering"], first["person"]) == ("rid-1", 7, 42)
    assert first["platform"] == "https://moodle.example.edu" and first["roles"] == ["TEACHER"]
    assert first["token_url"].endswith("token.php")  # a URL named token_url is not a secret
    assert first["time"].endswith("+00:00") and "request_id" not in second
    assert "launch.accepted  request_id=rid-1" in text.getvalue()


def test_production_logs_json_and_development_readable_lines() -> None:
    assert logs.wants_json("production", "auto") and not logs.wants_json("development", "auto")
    assert logs.wants_json("development", "json") and not logs.wants_json("production", "text")


def test_an_exception_is_one_json_line(captured: tuple[io.StringIO, io.StringIO]) -> None:
    js, _ = captured
    try:
        raise RuntimeError(f"boom with {JWT}")
    except RuntimeError:
        logs.event(logging.getLogger("tool.test_logs"), "worker.step_failed", level=logging.ERROR, exc_info=True)
    (line,) = js.getvalue().splitlines()
    assert "RuntimeError: boom" in json.loads(line)["exception"] and JWT not in line


def test_a_failed_statement_does_not_quote_its_parameters() -> None:
    engine = make_engine("sqlite://")
    table = Table("t", MetaData(), Column("k", String, primary_key=True))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(insert(table), {"k": "grade-of-a-student-and-a-token"})
    with pytest.raises(IntegrityError) as failed, engine.begin() as conn:
        conn.execute(insert(table), {"k": "grade-of-a-student-and-a-token"})
    assert "grade-of-a-student-and-a-token" not in str(failed.value)
    engine.dispose()
