"""Ledger rules over plain values (no database): points, type codes and labels, text limits.

Points are Decimal with at most two decimal places in −9999.99 … 9999.99 (DECIMAL(6,2));
more decimals are refused, never rounded, so what the teacher typed is what is stored.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tool.decimals import DecimalRefused, parse_decimal
from tool.ledger.models import TYPE_CODES

POINTS_LIMIT = Decimal("9999.99")
DESCRIPTION_MAX = 2000
LABEL_MAX = 100
REASON_MAX = 2000


class RuleViolation(ValueError):
    """A value breaks a ledger rule; the message says which and why."""


def parse_points(value: Any) -> Decimal:
    """A points value as Decimal: tool/decimals.py's grammar (two places at most), within range."""
    try:
        points = parse_decimal(value, places=2)
    except DecimalRefused as exc:
        raise RuleViolation(str(exc)) from None
    if abs(points) > POINTS_LIMIT:
        raise RuleViolation(f"must be between -{POINTS_LIMIT} and {POINTS_LIMIT}")
    return points.quantize(Decimal("0.01"))


def check_type(code: Any, label: Any) -> tuple[str, str | None]:
    """Validate a type code and its label: CUSTOM requires a label, the other codes forbid one."""
    if code not in TYPE_CODES:
        raise RuleViolation(f"typeCode must be one of {', '.join(TYPE_CODES)}")
    if code == "CUSTOM":
        if not isinstance(label, str) or not label.strip():
            raise RuleViolation("typeLabel is required when typeCode is CUSTOM")
        label = label.strip()
        if len(label) > LABEL_MAX:
            raise RuleViolation(f"typeLabel must be at most {LABEL_MAX} characters")
        return code, label
    if label not in (None, ""):
        raise RuleViolation("typeLabel is only allowed when typeCode is CUSTOM")
    return code, None


def check_text(value: Any, *, limit: int, required: bool = False) -> str | None:
    """Optional text up to `limit` characters (blank becomes None unless required)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RuleViolation("is required")
        return None
    if not isinstance(value, str):
        raise RuleViolation("must be text")
    if len(value) > limit:
        raise RuleViolation(f"must be at most {limit} characters")
    return value
