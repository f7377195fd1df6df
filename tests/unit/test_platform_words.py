"""What Tally repeats of a platform's answer: its words, never its HTML."""

from __future__ import annotations

import pytest
import requests

from tool.ags.http import platform_words

MOODLE_ERROR_PAGE = ("<!DOCTYPE html>\n<html dir=\"ltr\"><head><title>Error | University &amp; Moodle</title>"
                     "<script>alert(1)</script></head><body><p class=\"errormessage\">Exception - Call to a member "
                     "function out() on null</p></body></html>")


def answer(status: int, body: str, content_type: str, reason: str = "") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = body.encode()
    resp.headers["Content-Type"] = content_type
    resp.reason = reason
    return resp


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "text/plain", "application/json"])
def test_an_html_page_becomes_one_line_with_its_title(content_type: str) -> None:
    words = platform_words(answer(404, MOODLE_ERROR_PAGE, content_type))

    assert words == "an HTML page instead of an AGS answer (Error | University & Moodle)"
    assert "<" not in words and "\n" not in words


def test_an_html_page_without_a_title_still_says_what_it_was() -> None:
    assert platform_words(answer(500, "<html><body>oops</body></html>", "text/html")) == \
        "an HTML page instead of an AGS answer"


def test_json_errors_and_moodles_reason_phrase_stay_as_they_were() -> None:
    assert platform_words(answer(400, '{"errors": [{"message": "User not found"}]}', "application/json")) == \
        "User not found"
    assert platform_words(answer(409, "[]", "application/json", reason="Refusing score with an earlier timestamp")) == \
        "Refusing score with an earlier timestamp"
