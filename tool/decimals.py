"""The one decimal grammar of Tally: how points, maxima, steps and band bounds are written.

    [-] digits [ . digits ]      ASCII 0-9 only, at most two decimal places

Nothing else: no '+' (a sign the writer did not need is more often a slip than an intent, and
"+5" must not pass silently), no surrounding or inner whitespace, no exponent ("1e3"), no
underscores ("1_0", which Python's Decimal accepts), no other scripts' digits ("٣", "５", which
Python's \\d and Decimal accept), no leading or trailing dot, no NaN or Infinity.

The same grammar is the OpenAPI `pattern` of every decimal string (POINTS_PATTERN and
pattern()), and the pages' scripts use it too (templates/static/api.js `Tally.decimal`, checked
against this module by tests/unit/test_decimals.py). What a teacher types on a page — "7,5",
" 7.5 " — is tidied by the page into this form before it is sent; the API takes only the form.

JSON numbers reach the API as Decimal (tool/web/requests.py parses them exactly and refuses
exponents), Python ints pass as they are; both get the same range and places checks.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

PLACES = 2
# The JSON Schema / JavaScript form (ECMA-262 regex, no Python-only syntax).
GRAMMAR = r"-?[0-9]+(\.[0-9]{1,2})?"
DECIMAL_PATTERN = "^" + GRAMMAR + "$"
POINTS_PATTERN = r"^-?[0-9]{1,4}(\.[0-9]{1,2})?$"  # a ledger entry: -9999.99 … 9999.99
_LOOSE = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)  # the grammar before the places are counted
MAX_LENGTH = 40  # characters of a decimal string: far more than any value Tally stores


WRITTEN = "with the digits 0-9, an optional leading '-' and a '.' before the decimals (no '+', spaces, exponent or separators)"


def _places(n: int) -> str:
    return {1: "one", 2: "two"}.get(n, str(n))


class DecimalRefused(ValueError):
    """A value is not a decimal of Tally's grammar; the message says what is wrong."""


def pattern(integer_digits: int) -> str:
    """The grammar with at most `integer_digits` digits before the point (for an OpenAPI pattern)."""
    return r"^-?[0-9]{1,%d}(\.[0-9]{1,2})?$" % integer_digits


def parse_decimal(value: Any, *, places: int | None = PLACES) -> Decimal:
    """`value` (a str of the grammar, an int, or a Decimal from a JSON number) as a finite Decimal.

    `places` is the most decimal places allowed (None: the caller counts them, e.g. to name the
    offending value in its own message). Range checks are the caller's.
    """
    if isinstance(value, bool) or value is None:
        raise DecimalRefused("must be a number")
    if isinstance(value, int):
        if abs(value) >= 10**MAX_LENGTH:
            raise DecimalRefused("is far too large")
        return Decimal(value)
    if isinstance(value, float):
        # Not from a JSON body (those are parsed as Decimal); from code: its shortest repr.
        value = repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise DecimalRefused("must be a finite number")
        number = value
        if number.adjusted() >= MAX_LENGTH:
            raise DecimalRefused("is far too large")
        text_places = max(0, -int(number.as_tuple().exponent))  # finite: the exponent is an int
        if places is not None and text_places > places:
            raise DecimalRefused(f"has more than {_places(places)} decimal places")
        return number
    if not isinstance(value, str):
        raise DecimalRefused("must be a number")
    if len(value) > MAX_LENGTH:
        raise DecimalRefused("is far too long for a number")
    if not _LOOSE.fullmatch(value):
        if value.strip().lstrip("+-").lower() in ("nan", "snan", "inf", "infinity"):
            raise DecimalRefused("must be a finite number")
        if any(ch.isdigit() for ch in value):  # a near miss: say what the grammar is
            raise DecimalRefused(f"must be a number written {WRITTEN}")
        raise DecimalRefused("must be a number")
    if places is not None and "." in value and len(value.split(".", 1)[1]) > places:
        raise DecimalRefused(f"has more than {_places(places)} decimal places")
    return Decimal(value)


def is_decimal(text: str) -> bool:
    """Whether `text` is a decimal string of the grammar (at most two places)."""
    return isinstance(text, str) and re.fullmatch(GRAMMAR, text, re.ASCII) is not None
