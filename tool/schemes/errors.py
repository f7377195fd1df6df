"""The one error of the scheme maths: a scheme, scale or curve that cannot be used as given."""

from __future__ import annotations

from typing import Any

from tool.errors import ValidationError


class SchemeInvalid(ValidationError):
    """A scheme (code `scheme_invalid`) or curve (code `curve_invalid`) was refused.

    `details` lists every problem as `{"band": index | None, "grade": grade | None,
    "field": name, "message": reason}`, so a form can mark each band at once.
    """

    code = "scheme_invalid"

    def __init__(self, problems: list[dict[str, Any]], *, code: str | None = None,
                 what: str = "grading scheme") -> None:
        lines = "; ".join(_describe(p) for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"The {what} has {len(problems)} {noun}: {lines}", code=code, details=problems)


def problem(field: str, message: str, *, band: int | None = None, grade: str | None = None) -> dict[str, Any]:
    """One entry of `SchemeInvalid.details`: `band` is the index in the bands list (from 0);
    messages name bands as people count them, from 1 (band 1 is the highest)."""
    return {"band": band, "grade": grade, "field": field, "message": message}


def _describe(p: dict[str, Any]) -> str:
    where = "" if p["band"] is None else f"band {p['band'] + 1}" + (f" ({p['grade']})" if p["grade"] else "") + " "
    return f"{where}{p['field']}: {p['message']}"
