"""Names and Role Provisioning Services 2.0 client: read a course's roster from the platform.

Spec: https://www.imsglobal.org/spec/lti-nrps/v2p0. The membership container is paged with
`Link: <…>; rel="next"` (RFC 8288); Canvas answers 50 members a page unless told otherwise,
Moodle answers everything at once unless the tool sends `limit`.

    ToolError
    └── RosterUnavailable   the platform did not answer the roster (status and words in details)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urljoin

import requests

from tool import outbound

from tool.ags.http import platform_words
from tool.db import column_text
from tool.errors import ToolError

MEMBERSHIP_CONTAINER_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
# 1000 pages is 50 000 members at Canvas's page size: far beyond any course, so more means a loop.
MAX_PAGES = 1000


class RosterUnavailable(ToolError):
    """The platform's roster service failed or answered something unreadable."""

    code = "roster_unavailable"


class MemberStatus(str, Enum):
    """A member's NRPS status (spec §2.3: absent means Active)."""

    ACTIVE = "Active"
    INACTIVE = "Inactive"
    DELETED = "Deleted"


@dataclass(frozen=True)
class Member:
    """One member of the roster, as the platform lists it."""

    user_id: str
    status: MemberStatus = MemberStatus.ACTIVE
    name: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class RosterPage:
    """One page of the membership container and the URL of the next one."""

    url: str
    members: tuple[Member, ...]
    next_url: str | None


@dataclass(frozen=True)
class Link:
    """One link of a `Link` header: its absolute target, relation types and parameters."""

    url: str
    rel: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)


def _skip_spaces(value: str, i: int) -> int:
    while i < len(value) and value[i] in " \t":
        i += 1
    return i


def _skip_past_comma(value: str, i: int) -> int:
    """Skip a malformed link-value up to the next top-level comma (quotes respected)."""
    quoted = False
    while i < len(value):
        ch = value[i]
        if ch == "\\" and quoted:
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            return i + 1
        i += 1
    return i


def _read_quoted(value: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting at the opening quote; return its text and the index after it."""
    out: list[str] = []
    i += 1
    while i < len(value) and value[i] != '"':
        if value[i] == "\\" and i + 1 < len(value):
            i += 1
        out.append(value[i])
        i += 1
    return "".join(out), i + 1


def parse_link_header(value: str | None, *, base_url: str = "") -> list[Link]:
    """Parse an RFC 8288 `Link` header (several links, quoted or bare params, relative targets)."""
    links: list[Link] = []
    if not value:
        return links
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        if i >= n:
            break
        if value[i] != "<":
            i = _skip_past_comma(value, i)
            continue
        end = value.find(">", i)
        if end < 0:
            break
        target = value[i + 1 : end].strip()
        i = end + 1
        params: dict[str, str] = {}
        while True:
            i = _skip_spaces(value, i)
            if i >= n or value[i] == ",":
                break
            if value[i] != ";":
                i = _skip_past_comma(value, i) - 1
                break
            i = _skip_spaces(value, i + 1)
            start = i
            while i < n and value[i] not in "=;, \t":
                i += 1
            name = value[start:i].lower()
            i = _skip_spaces(value, i)
            param = ""
            if i < n and value[i] == "=":
                i = _skip_spaces(value, i + 1)
                if i < n and value[i] == '"':
                    param, i = _read_quoted(value, i)
                else:
                    start = i
                    while i < n and value[i] not in ";,":
                        i += 1
                    param = value[start:i].strip()
            # RFC 8288 §3: a parameter given twice counts once, the first time.
            if name and name not in params:
                params[name] = param
        # Relation types are case-insensitive and a rel may hold several ("next last").
        rel = tuple(r.lower() for r in params.get("rel", "").split())
        links.append(Link(url=urljoin(base_url, target), rel=rel, params=params))
    return links


def next_page_url(value: str | None, *, base_url: str) -> str | None:
    """The absolute URL of the first `rel="next"` link, or None on the last page."""
    for link in parse_link_header(value, base_url=base_url):
        if "next" in link.rel:
            return link.url
    return None


def parse_status(value: object) -> MemberStatus:
    """A member's status; absent means Active (spec), and case is forgiven."""
    if value is None or value == "":
        return MemberStatus.ACTIVE
    text = str(value).strip().lower()
    for status in MemberStatus:
        if status.value.lower() == text:
            return status
    # An unknown word is a platform bug: a tolerant reader keeps the member rather than
    # dropping a whole class from Tally because of one odd value.
    return MemberStatus.ACTIVE


# Column widths of person (tool/lti/models.py): what a platform sends beyond them is cut, not a
# database error that stops the whole roster sync on PostgreSQL (SQLite would store it whole).
NAME_MAX, PART_MAX, EMAIL_MAX, USER_ID_MAX = 300, 200, 320, 255


def _text(value: object, limit: int) -> str:
    return column_text(value.strip(), limit) if isinstance(value, str) else ""


def parse_member(data: object) -> Member | None:
    """One member of a membership container; None when it has no user_id to key it by."""
    if not isinstance(data, dict):
        return None
    raw_id = data.get("user_id")
    user_id = str(raw_id).strip() if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else ""
    if not user_id or len(user_id) > USER_ID_MAX or "\x00" in user_id:
        # No key, or one Tally cannot store (and would not match a launch's `sub`, which is
        # refused past 255 characters too): the member is skipped, the rest of the roster syncs.
        return None
    roles = data.get("roles")
    return Member(
        user_id=user_id,
        status=parse_status(data.get("status")),
        name=_text(data.get("name"), NAME_MAX),
        given_name=_text(data.get("given_name"), PART_MAX),
        family_name=_text(data.get("family_name"), PART_MAX),
        email=_text(data.get("email"), EMAIL_MAX),
        roles=tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else (),
    )


def fetch_page(http: requests.Session, *, url: str, access_token: str, timeout: float) -> RosterPage:
    """GET one page of the membership container."""
    headers = {"Accept": MEMBERSHIP_CONTAINER_TYPE, "Authorization": f"Bearer {access_token}"}
    try:
        resp = outbound.fetch(http, "GET", url, headers=headers, timeout=timeout)  # guarded: tool/outbound.py
    except requests.RequestException as exc:
        raise RosterUnavailable(
            f"The LMS roster service could not be reached: {exc}", details={"url": url, "status": None}
        ) from exc
    if resp.status_code != 200:
        words = platform_words(resp)  # one line; an HTML error page as its title, never its markup
        raise RosterUnavailable(
            f"The LMS roster service answered {resp.status_code}: {words}",
            details={"url": url, "status": resp.status_code, "reason": resp.reason, "body": words},
        )
    try:
        body = resp.json()
    except ValueError as exc:
        raise RosterUnavailable(
            "The LMS roster service answered something that is not JSON.",
            details={"url": url, "status": resp.status_code, "body": resp.text[:500]},
        ) from exc
    if not isinstance(body, dict) or not isinstance(body.get("members"), list):
        raise RosterUnavailable(
            "The LMS roster service answered without a members list.",
            details={"url": url, "status": resp.status_code, "body": resp.text[:500]},
        )
    members = tuple(m for m in (parse_member(d) for d in body["members"]) if m is not None)
    # Relative targets resolve against the URL that answered (after any redirect).
    return RosterPage(url=url, members=members, next_url=next_page_url(resp.headers.get("Link"), base_url=resp.url))


def iter_pages(
    http: requests.Session, *, url: str, access_token: str, timeout: float, max_pages: int = MAX_PAGES
) -> Iterator[RosterPage]:
    """Yield every page of the roster, following `rel="next"` until the last page."""
    seen: set[str] = set()
    next_url: str | None = url
    while next_url is not None:
        if next_url in seen:
            raise RosterUnavailable(
                "The LMS roster pages loop: a next link points back to a page already read.",
                details={"url": next_url, "pages": len(seen)},
            )
        if len(seen) >= max_pages:
            raise RosterUnavailable(
                f"The LMS roster has more than {max_pages} pages; Tally stopped reading it.",
                details={"url": next_url, "pages": len(seen)},
            )
        seen.add(next_url)
        page = fetch_page(http, url=next_url, access_token=access_token, timeout=timeout)
        yield page
        next_url = page.next_url


def fetch_members(
    http: requests.Session, *, url: str, access_token: str, timeout: float, max_pages: int = MAX_PAGES
) -> list[Member]:
    """Every member of the roster, all pages read; RosterUnavailable if any page fails."""
    members: list[Member] = []
    for page in iter_pages(http, url=url, access_token=access_token, timeout=timeout, max_pages=max_pages):
        members.extend(page.members)
    return members
