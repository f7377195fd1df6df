"""Container paging with `Link: <...>; rel="next"`.

Moodle pages with `limit` and `from` (an offset); Canvas with `limit` (or `per_page`) and
`page` (1-based). Both keep every other query parameter (Moodle's type_id) in the next URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar
from urllib.parse import urlencode

from tool.sandbox.errors import ServiceError

T = TypeVar("T")


def _positive_int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise ServiceError(400, f"{name} must be a positive integer") from None
    if number < 1 and name != "from":
        raise ServiceError(400, f"{name} must be a positive integer")
    if number < 0:
        raise ServiceError(400, f"{name} must not be negative")
    return number


def paginate(
    items: Sequence[T], *, mode: str, url: str, args: dict[str, str], default_limit: int | None = None
) -> tuple[list[T], str | None]:
    """One page of `items` and the URL of the next page (None on the last page)."""
    limit = _positive_int(args.get("limit") or args.get("per_page"), "limit") or default_limit
    if limit is None:
        return list(items), None
    if mode == "moodle":
        start = _positive_int(args.get("from"), "from") or 0
        next_args = {**args, "limit": str(limit), "from": str(start + limit)}
    else:
        page = _positive_int(args.get("page"), "page") or 1
        start = (page - 1) * limit
        next_args = {**args, "page": str(page + 1)}
        if "per_page" not in args:
            next_args["limit"] = str(limit)
    chunk = list(items[start:start + limit])
    next_url = f"{url}?{urlencode(next_args)}" if start + limit < len(items) else None
    return chunk, next_url


def link_header(next_url: str | None) -> dict[str, str]:
    """The Link header announcing the next page, if any."""
    return {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
