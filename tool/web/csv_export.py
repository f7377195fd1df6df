"""CSV files people open in a spreadsheet: safe cells, UTF-8 with BOM, two dialects.

* Formula injection (OWASP "CSV Injection"): a cell whose text starts with `=`, `+`, `-`, `@`,
  a tab or a carriage return is a formula to Excel, LibreOffice and Google Sheets
  (`=HYPERLINK(…)`, `+cmd|…`, `@SUM(…)`). Names come from the LMS, where students can often
  edit their own, so every such text cell is written with a leading single quote, which the
  spreadsheets show as text and a reader can strip. Numbers Tally itself formats (`-2.50`) are
  left as numbers.
* Encoding: UTF-8 with a byte order mark, so Excel does not read names as Windows-1252.
* Dialects: `comma` (RFC 4180, decimal point) and `semicolon` (`;` between cells and a decimal
  comma, what Excel expects where the decimal separator is a comma: German, French, …).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

from tool.errors import ValidationError

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
DIALECTS = {"comma": (",", "."), "semicolon": (";", ",")}
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class Number(str):
    """A number Tally formatted itself (exempt from escaping; gets the dialect's decimal mark)."""


def safe_cell(value: Any, *, decimal_mark: str = ".") -> str:
    """One cell's text: numbers in the dialect's form, text that a spreadsheet would run quoted."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, Number) and _NUMBER.fullmatch(value)):
        return str(value).replace(".", decimal_mark)
    text = str(value)
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


def dialect_of(name: str | None) -> str:
    """The dialect a `format` query parameter asks for (comma when absent); 422 for another."""
    name = (name or "comma").strip().lower()
    if name not in DIALECTS:
        raise ValidationError(f"format must be one of {', '.join(DIALECTS)}.", code="invalid_format",
                              details=[{"field": "format", "message": f"one of {', '.join(DIALECTS)}"}])
    return name


def render(header: Sequence[str], rows: Iterable[Sequence[Any]], *, dialect: str = "comma") -> str:
    """The whole file: BOM, header, rows; every cell through safe_cell."""
    delimiter, mark = DIALECTS[dialect]
    buf = io.StringIO()
    buf.write(BOM)
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v, decimal_mark=mark) for v in row])
    return buf.getvalue()
