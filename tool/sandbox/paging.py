"""Container paging with `Link` headers, as each platform pages.

Moodle pages with `limit` and `from` (an offset) only when `limit` is sent, and keeps every
other query parameter (its type_id) in the next URL.

Canvas pages everything (lib/api.rb: `PER_PAGE = 10`, `MAX_PER_PAGE = 100`); AGS's `limit`
is its `per_page` (app/controllers/lti/ims/concerns/gradebook_services.rb, `pagination_args`),
pages are numbered (`page`, from 1), a larger size is cut to the maximum, and the `Link`
header names the current, next, first and last pages, each with the request's own query
(filters, `limit`) plus `page` and `per_page`. NRPS pages 50 members by default and at most
(app/controllers/lti/ims/providers/memberships_provider.rb, `MAX_PAGE_SIZE`) and drops
`limit` from its links.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from tool.sandbox.errors import ServiceError

T = TypeVar("T")

CANVAS_PER_PAGE = 10
CANVAS_MAX_PER_PAGE = 100


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


@dataclass(frozen=True)
class Page:
    """One page of a container and the links to announce."""

    items: list[Any]
    links: dict[str, str]  # rel -> URL

    @property
    def next_url(self) -> str | None:
        """The next page's URL (None on the last page)."""
        return self.links.get("next")

    def headers(self) -> dict[str, str]:
        """The Link header, if there is anything to link."""
        if not self.links:
            return {}
        return {"Link": ",".join(f'<{url}>; rel="{rel}"' for rel, url in self.links.items())}


def _moodle_page(items: Sequence[T], *, url: str, args: dict[str, str]) -> Page:
    limit = _positive_int(args.get("limit"), "limit")
    if limit is None:
        return Page(list(items), {})
    start = _positive_int(args.get("from"), "from") or 0
    chunk = list(items[start:start + limit])
    if start + limit >= len(items):
        return Page(chunk, {})
    next_args = {**args, "limit": str(limit), "from": str(start + limit)}
    return Page(chunk, {"next": f"{url}?{urlencode(next_args)}"})


def _canvas_page(items: Sequence[T], *, url: str, args: dict[str, str], default: int, maximum: int,
                 drop_limit: bool) -> Page:
    wanted = _positive_int(args.get("limit"), "limit") or _positive_int(args.get("per_page"), "per_page")
    per_page = min(wanted or default, maximum)
    page = _positive_int(args.get("page"), "page") or 1
    kept = {k: v for k, v in args.items() if k not in ("page", "per_page") and not (drop_limit and k == "limit")}
    last = max(1, -(-len(items) // per_page))

    def link(n: int) -> str:
        return f"{url}?{urlencode({**kept, 'page': str(n), 'per_page': str(per_page)})}"

    links = {"current": link(page)}
    if page < last:
        links["next"] = link(page + 1)
    if page > 1:
        links["prev"] = link(page - 1)
    links["first"] = link(1)
    links["last"] = link(last)
    start = (page - 1) * per_page
    return Page(list(items[start:start + per_page]), links)


def paginate(items: Sequence[T], *, mode: str, url: str, args: dict[str, str], nrps: bool = False) -> Page:
    """One page of `items` as the mode's platform pages it (`nrps`: Canvas's 50-member pages)."""
    if mode == "moodle":
        return _moodle_page(items, url=url, args=args)
    if nrps:
        return _canvas_page(items, url=url, args=args, default=50, maximum=50, drop_limit=True)
    return _canvas_page(items, url=url, args=args, default=CANVAS_PER_PAGE, maximum=CANVAS_MAX_PER_PAGE,
                        drop_limit=False)
