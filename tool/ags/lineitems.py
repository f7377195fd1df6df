"""Line items and results over HTTP (AGS 2.0 §3.2, §3.3): list, find, create, update, read back.

Everything here is HTTP-level: which line item an offering or assessment uses is decided by
the delivery layer. Containers are paged with `Link: <…>; rel="next"` (Moodle with
`limit`/`from`, Canvas with `limit`/`page`); every page is followed.

URLs keep their query string: Moodle's line item URL is
`…/lineitems/4/lineitem?type_id=1`, and `/scores`, `/results` go before the `?`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from tool.ags.http import AgsRefused, raise_for_answer
from tool.ags.score import json_number
from tool.ags.tokens import PlatformRegistration
from tool.lti.claims import SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY
from tool.lti.nrps import next_page_url

LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEM_CONTAINER_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
RESULT_CONTAINER_TYPE = "application/vnd.ims.lis.v2.resultcontainer+json"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"

READ_SCOPES = (SCOPE_LINEITEM_READONLY,)
WRITE_SCOPES = (SCOPE_LINEITEM,)
RESULT_SCOPES = (SCOPE_RESULT_READONLY,)
# 1000 pages of line items or results is far beyond any course: more means a loop.
MAX_PAGES = 1000


@dataclass(frozen=True)
class LineItem:
    """A gradebook column. `id` is its URL (None before it is created)."""

    id: str | None
    label: str
    score_maximum: Decimal
    resource_id: str | None = None
    tag: str | None = None
    resource_link_id: str | None = None


class ServiceCaller(Protocol):
    """One authorised AGS request (the AgsClient: token, 401 refetch, User-Agent, timeouts, cap)."""

    def call(self, reg: PlatformRegistration, method: str, url: str, *, scopes: tuple[str, ...], accept: str,
             body: Any = None, content_type: str | None = None) -> requests.Response:
        """Send the request; transport failures raise AgsUnavailable."""


def service_url(lineitem_url: str, suffix: str) -> str:
    """`/scores` or `/results` of a line item, inserted before its query string (AGS §3.2.3)."""
    parts = urlsplit(lineitem_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + suffix, parts.query, parts.fragment))


def with_query(url: str, params: Mapping[str, str | None]) -> str:
    """The URL with these query parameters added (or replaced); the existing ones stay."""
    given = {k: v for k, v in params.items() if v is not None}
    if not given:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in given]
    query.extend(given.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def parse_lineitem(data: Any, *, url: str = "") -> LineItem:
    """A LineItem from its AGS JSON; AgsRefused when it is not one."""
    if not isinstance(data, dict):
        raise AgsRefused(f"The LMS answered something that is not a line item from {url}", words=str(data)[:200])
    maximum = _number(data.get("scoreMaximum"))
    return LineItem(
        id=_text(data.get("id")),
        label=str(data.get("label") or ""),
        score_maximum=maximum if maximum is not None else Decimal(0),
        resource_id=_text(data.get("resourceId")),
        tag=_text(data.get("tag")),
        resource_link_id=_text(data.get("resourceLinkId")),
    )


def lineitem_json(item: LineItem) -> dict[str, Any]:
    """The AGS JSON of a line item to create (without `id`)."""
    data: dict[str, Any] = {"label": item.label, "scoreMaximum": json_number(item.score_maximum)}
    for key, value in (("resourceId", item.resource_id), ("tag", item.tag), ("resourceLinkId", item.resource_link_id)):
        if value is not None:
            data[key] = value
    return data


def _json(resp: requests.Response, what: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise AgsRefused(f"The LMS answered {what} with something that is not JSON", status=resp.status_code,
                         words=resp.text[:200]) from None


def _pages(caller: ServiceCaller, reg: PlatformRegistration, url: str, *, scopes: tuple[str, ...], accept: str,
           what: str) -> Iterator[list[Any]]:
    seen: set[str] = set()
    next_url: str | None = url
    while next_url is not None:
        if next_url in seen or len(seen) >= MAX_PAGES:
            raise AgsRefused(f"The LMS pages of {what} loop or never end (stopped at {next_url})")
        seen.add(next_url)
        resp = caller.call(reg, "GET", next_url, scopes=scopes, accept=accept)
        raise_for_answer(resp, what)
        body = _json(resp, what)
        if not isinstance(body, list):
            raise AgsRefused(f"The LMS answered {what} without a list", status=resp.status_code, words=resp.text[:200])
        yield body
        next_url = next_page_url(resp.headers.get("Link"), base_url=resp.url)


def list_lineitems(caller: ServiceCaller, reg: PlatformRegistration, lineitems_url: str, *,
                   resource_id: str | None = None, tag: str | None = None, resource_link_id: str | None = None,
                   limit: int | None = None, scopes: tuple[str, ...] = READ_SCOPES) -> list[LineItem]:
    """Every line item of the container matching the filters, all pages read.

    The filters go to the platform (AGS §3.2.4 query parameters) and are applied again
    here, for a platform that ignores one.
    """
    url = with_query(lineitems_url, {"resource_id": resource_id, "tag": tag, "resource_link_id": resource_link_id,
                                     "limit": str(limit) if limit else None})
    wanted = {"resource_id": resource_id, "tag": tag, "resource_link_id": resource_link_id}
    items: list[LineItem] = []
    for page in _pages(caller, reg, url, scopes=scopes, accept=LINEITEM_CONTAINER_TYPE, what="the line items"):
        for data in page:
            item = parse_lineitem(data, url=url)
            if all(v is None or getattr(item, k) == v for k, v in wanted.items()):
                items.append(item)
    return items


def get_lineitem(caller: ServiceCaller, reg: PlatformRegistration, lineitem_url: str, *,
                 scopes: tuple[str, ...] = READ_SCOPES) -> LineItem:
    """One line item."""
    return parse_lineitem(_get_raw(caller, reg, lineitem_url, scopes=scopes), url=lineitem_url)


def _get_raw(caller: ServiceCaller, reg: PlatformRegistration, lineitem_url: str, *,
             scopes: tuple[str, ...]) -> dict[str, Any]:
    resp = caller.call(reg, "GET", lineitem_url, scopes=scopes, accept=LINEITEM_TYPE)
    raise_for_answer(resp, "reading a line item")
    data = _json(resp, "reading a line item")
    if not isinstance(data, dict):
        raise AgsRefused("The LMS answered a line item that is not an object", status=resp.status_code,
                         words=resp.text[:200])
    return data


def create_lineitem(caller: ServiceCaller, reg: PlatformRegistration, lineitems_url: str, item: LineItem) -> LineItem:
    """POST a new line item to the container; the platform's answer (with its `id`)."""
    resp = caller.call(reg, "POST", lineitems_url, scopes=WRITE_SCOPES, accept=LINEITEM_TYPE,
                       body=lineitem_json(item), content_type=LINEITEM_TYPE)
    raise_for_answer(resp, "creating a line item")
    created = parse_lineitem(_json(resp, "creating a line item"), url=lineitems_url)
    if created.id is None:
        raise AgsRefused("The LMS created a line item but answered without its id", status=resp.status_code)
    return created


def update_lineitem(caller: ServiceCaller, reg: PlatformRegistration, item: LineItem) -> LineItem:
    """Change label and maximum (and resourceId, tag when given): GET, then PUT it back.

    The PUT sends the platform's own JSON with our fields replaced, so whatever the platform
    or a teacher added (dates, Canvas's extensions, gradesReleased) survives the update.
    """
    if item.id is None:
        raise ValueError("update_lineitem needs the line item's id (its URL)")
    current = _get_raw(caller, reg, item.id, scopes=WRITE_SCOPES)
    current["label"] = item.label
    current["scoreMaximum"] = json_number(item.score_maximum)
    for key, value in (("resourceId", item.resource_id), ("tag", item.tag)):
        if value is not None:
            current[key] = value
    resp = caller.call(reg, "PUT", item.id, scopes=WRITE_SCOPES, accept=LINEITEM_TYPE, body=current,
                       content_type=LINEITEM_TYPE)
    raise_for_answer(resp, "updating a line item")
    updated = parse_lineitem(_json(resp, "updating a line item"), url=item.id)
    return updated if updated.id is not None else LineItem(item.id, updated.label, updated.score_maximum,
                                                           updated.resource_id, updated.tag, updated.resource_link_id)


def parse_result(data: Any) -> dict[str, Any] | None:
    """One result as {userId, resultScore, resultMaximum, comment, timestamp?}; numbers as Decimal."""
    if not isinstance(data, dict) or not _text(data.get("userId")):
        return None
    result: dict[str, Any] = {
        "userId": data["userId"],
        "resultScore": _number(data.get("resultScore")),
        "resultMaximum": _number(data.get("resultMaximum")),
        "comment": data.get("comment") if isinstance(data.get("comment"), str) else None,
    }
    if isinstance(data.get("timestamp"), str):
        result["timestamp"] = data["timestamp"]
    return result


def iter_results(caller: ServiceCaller, reg: PlatformRegistration, lineitem_url: str, *,
                 user_id: str | None = None, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Every result of a line item (what the gradebook holds now), all pages read.

    Moodle 4.5.6 answers a results request with `limit` by a 404 HTML page (its results.php
    builds the paging link only without `type_id`, which Moodle's own URLs always carry);
    without `limit` it answers every result at once. So a first page refused with 404 is asked
    again without `limit`.
    """
    base = with_query(service_url(lineitem_url, "/results"), {"user_id": user_id})
    pages = _pages(caller, reg, with_query(base, {"limit": str(limit) if limit else None}), scopes=RESULT_SCOPES,
                   accept=RESULT_CONTAINER_TYPE, what="the results")
    try:
        first = next(pages, [])
    except AgsRefused as exc:
        if not limit or exc.status != 404:
            raise
        pages = _pages(caller, reg, base, scopes=RESULT_SCOPES, accept=RESULT_CONTAINER_TYPE, what="the results")
        first = next(pages, [])
    for page in itertools.chain([first], pages):
        for data in page:
            result = parse_result(data)
            if result is not None:
                yield result
