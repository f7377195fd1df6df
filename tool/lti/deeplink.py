"""Deep Linking 2.0, tool side: a teacher adds "a graded Tally item" from the LMS.

https://www.imsglobal.org/spec/lti-dl/v2p0. The platform launches Tally with an
`LtiDeepLinkingRequest` (validated like every launch, tool/lti/launch.py); its
`deep_linking_settings` claim says where to send the answer (`deep_link_return_url`),
what may be returned and an opaque `data` value that must come back unchanged.

Tally shows the teacher a small form (title, maximum points, which source) and answers
with an auto-submitted form that POSTs `JWT` to the return URL: an `LtiDeepLinkingResponse`
signed with the tool's key (the platform checks it against our JWKS) carrying one
`ltiResourceLink` content item with a `lineItem {label, scoreMaximum, resourceId, tag}`, so
the LMS creates the gradebook column together with the link. Cancel answers too, with no
content items and a message: the spec wants a response either way, and Moodle otherwise
leaves its selection dialog open.

Between the launch and the teacher's submit, the request travels in a short-lived token
signed with the session secret (no cookie, as everywhere in Tally). The content items are
built with pylti1p3's `DeepLinkResource` and `LineItem`; the message is ours, because
pylti1p3 signs with a key of its own registration object, sends `data: null` when the
platform sent none, and reads the wall clock instead of `tool.clock`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
import re
from decimal import Decimal
from typing import Any, Mapping

import jwt
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.lineitem import LineItem
from sqlalchemy import insert
from sqlalchemy.orm import Session

from tool.clock import epoch, utcnow
from tool.decimals import DecimalRefused, parse_decimal
from tool.errors import LaunchError, SessionError, ValidationError
from tool.lti import claims as c
from tool.lti.claims import Role
from tool.lti.keys import KeyStore
from tool.lti.launch import Launch
from tool.lti.models import LaunchRecord

DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"
DEEP_LINKING_RESPONSE = "LtiDeepLinkingResponse"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
SETTINGS_CLAIM = DL + "deep_linking_settings"
CONTENT_ITEMS_CLAIM = DL + "content_items"
DATA_CLAIM = DL + "data"
MSG_CLAIM = DL + "msg"
ERRORMSG_CLAIM = DL + "errormsg"
TOKEN_AUDIENCE = "tally-deep-link"
RESPONSE_LIFETIME = 600
RESOURCE_TAG = "tally"
MAX_POINTS = Decimal("9999.99")

# What a placed item's grade comes from. The resourceId tells Tally's score delivery, and a
# teacher reading the LMS's line item, which Tally total the column holds.
SOURCES: dict[str, str] = {
    "ledger_total": "Ledger total: the sum of the ledger entries of each student",
    "assessment": "An exam or course grade, set up in Tally after placing it",
}


@dataclass(frozen=True)
class DeepLinkRequest:
    """What a deep linking launch asked for, and who asked."""

    registration_id: int
    deployment_pk: int
    issuer: str
    client_id: str
    deployment_id: str
    return_url: str
    data: Any
    accept_multiple: bool
    accept_lineitem: bool
    title: str
    sub: str
    person_name: str
    context_title: str
    roles: tuple[Role, ...]

    @property
    def may_add(self) -> bool:
        """Teachers, moderators and admins may place graded items."""
        return c.is_staff(self.roles)


def _flag(value: Any, default: bool) -> bool:
    # The spec says boolean; some platforms send "true"/"false".
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def deep_link_request(launch: Launch) -> DeepLinkRequest:
    """The deep linking request of a validated launch; LaunchError when it cannot be answered."""
    settings = launch.claims.get(SETTINGS_CLAIM)
    if launch.message_type != DEEP_LINKING_REQUEST or not isinstance(settings, dict):
        raise LaunchError("This launch is not a deep linking request.", code="not_deep_linking")
    return_url = settings.get("deep_link_return_url")
    if not isinstance(return_url, str) or not return_url.startswith(("http://", "https://")):
        raise LaunchError("The deep linking request has no usable deep_link_return_url.",
                          code="deep_link_return_url_missing",
                          hint="The platform must send deep_linking_settings.deep_link_return_url.")
    accept = settings.get("accept_types")
    if not isinstance(accept, list) or "ltiResourceLink" not in accept:
        raise LaunchError("The platform does not accept ltiResourceLink items here.", code="deep_link_type_refused",
                          hint="Tally places resource links; use the LMS's Link/Assignment Selection placement.")
    return DeepLinkRequest(
        registration_id=launch.registration_id, deployment_pk=launch.deployment_pk, issuer=launch.issuer,
        client_id=launch.client_id, deployment_id=launch.deployment_id, return_url=return_url,
        data=settings.get("data"), accept_multiple=_flag(settings.get("accept_multiple"), True),
        accept_lineitem=_flag(settings.get("accept_lineitem"), True),
        title=settings.get("title") if isinstance(settings.get("title"), str) else "",
        sub=launch.sub, person_name=launch.name, context_title=launch.context_title, roles=launch.roles,
    )


def record_deep_link_launch(db: Session, launch: Launch) -> None:
    """Keep the deep linking launch in the launch records (the admin console lists them)."""
    db.connection().execute(
        insert(LaunchRecord.__table__),
        {"at": utcnow(), "outcome": "accepted", "code": "deep_link", "reason": "", "issuer": launch.issuer,
         "client_id": launch.client_id, "deployment_id": launch.deployment_id, "sub": launch.sub,
         "extra": {"message_type": DEEP_LINKING_REQUEST, "roles": [r.value for r in launch.roles]}},
    )


# -- the request between launch and submit ------------------------------------------------------


def request_token(secret: bytes, req: DeepLinkRequest, *, ttl: int) -> str:
    """Sign the request for the teacher's form (HS256, short-lived)."""
    now = int(epoch())
    claims = {
        "aud": TOKEN_AUDIENCE, "iat": now, "exp": now + ttl, "reg": req.registration_id, "dep": req.deployment_pk,
        "iss_": req.issuer, "cid": req.client_id, "did": req.deployment_id, "ret": req.return_url, "data": req.data,
        "multi": req.accept_multiple, "li": req.accept_lineitem, "title": req.title, "sub": req.sub,
        "name": req.person_name, "ctx": req.context_title, "roles": [r.value for r in req.roles],
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def read_request_token(secret: bytes, token: str) -> DeepLinkRequest:
    """Verify a request token; SessionError saying why it is refused."""
    try:
        d = jwt.decode(token, secret, algorithms=["HS256"], audience=TOKEN_AUDIENCE,
                       options={"require": ["exp", "iat"], "verify_exp": False})
        if int(d["exp"]) <= epoch():  # against tool.clock, so tests can move time
            raise SessionError("This 'add a Tally item' form has expired. Start again from the LMS.",
                               code="deep_link_expired")
        return DeepLinkRequest(
            registration_id=int(d["reg"]), deployment_pk=int(d["dep"]), issuer=str(d["iss_"]),
            client_id=str(d["cid"]), deployment_id=str(d["did"]), return_url=str(d["ret"]), data=d.get("data"),
            accept_multiple=bool(d["multi"]), accept_lineitem=bool(d["li"]), title=str(d.get("title") or ""),
            sub=str(d["sub"]), person_name=str(d.get("name") or ""), context_title=str(d.get("ctx") or ""),
            roles=tuple(Role(r) for r in d.get("roles", [])),
        )
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
        raise SessionError("This 'add a Tally item' form is not valid. Start again from the LMS.",
                           code="deep_link_invalid") from None


# -- the teacher's choice -------------------------------------------------------------------


@dataclass(frozen=True)
class ItemChoice:
    """The graded item the teacher wants in the course."""

    title: str
    score_maximum: Decimal
    source: str


def validate_choice(form: Mapping[str, str]) -> ItemChoice:
    """Check the form: a title, a maximum above 0 (two decimals at most), a known source."""
    problems: dict[str, str] = {}
    title = " ".join((form.get("title") or "").split())
    if not title:
        problems["title"] = "Give the item a title; the LMS shows it in the course and the gradebook."
    elif len(title) > 200:
        problems["title"] = "At most 200 characters."
    raw = (form.get("score_maximum") or "").strip()
    if re.fullmatch(r"[0-9]*,[0-9]*", raw):
        raw = raw.replace(",", ".")  # a decimal comma, as the pages' scripts accept it
    maximum = Decimal(0)
    try:
        maximum = parse_decimal(raw)  # tool/decimals.py: the grammar of every decimal Tally reads
        if maximum <= 0:
            problems["score_maximum"] = "The maximum must be a number above 0."
        elif maximum > MAX_POINTS:
            problems["score_maximum"] = f"At most {MAX_POINTS} points."
    except DecimalRefused as exc:
        problems["score_maximum"] = ("At most two decimals (e.g. 12.5)." if "decimal places" in str(exc)
                                     else "The maximum must be a number, e.g. 100 or 12.5.")
    source = form.get("source") or ""
    if source not in SOURCES:
        problems["source"] = "Choose where the grade comes from."
    if problems:
        raise ValidationError("Please correct the marked fields.", details=problems)
    return ItemChoice(title=title, score_maximum=maximum, source=source)


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def content_item(launch_url: str, req: DeepLinkRequest, choice: ItemChoice) -> dict[str, Any]:
    """One ltiResourceLink with its lineItem, so the LMS creates the gradebook column."""
    resource = (
        DeepLinkResource()
        .set_type("ltiResourceLink")
        .set_title(choice.title)
        .set_url(launch_url)
        .set_custom_params({c.TALLY_SOURCE: choice.source})
    )
    if req.accept_lineitem:
        resource.set_lineitem(
            LineItem()
            .set_label(choice.title)
            .set_score_maximum(_json_number(choice.score_maximum))  # type: ignore[arg-type]
            .set_resource_id(f"tally:{choice.source}")
            .set_tag(RESOURCE_TAG)
        )
    item = resource.to_dict()
    item.pop("icon", None)
    return item


def response_claims(req: DeepLinkRequest, items: list[dict[str, Any]], *, msg: str | None = None,
                    errormsg: str | None = None) -> dict[str, Any]:
    """The LtiDeepLinkingResponse: iss = our client_id, aud = the platform, data echoed."""
    now = int(epoch())
    claims: dict[str, Any] = {
        "iss": req.client_id,
        "aud": req.issuer,
        "iat": now,
        "exp": now + RESPONSE_LIFETIME,
        "nonce": secrets.token_urlsafe(16),
        c.DEPLOYMENT_ID: req.deployment_id,
        c.MESSAGE_TYPE: DEEP_LINKING_RESPONSE,
        c.VERSION: "1.3.0",
        CONTENT_ITEMS_CLAIM: items,
    }
    if req.data is not None:  # must come back exactly as sent; absent when the platform sent none
        claims[DATA_CLAIM] = req.data
    if msg:
        claims[MSG_CLAIM] = msg
    if errormsg:
        claims[ERRORMSG_CLAIM] = errormsg
    return claims


def response_jwt(keys: KeyStore, req: DeepLinkRequest, items: list[dict[str, Any]], *, msg: str | None = None,
                 errormsg: str | None = None) -> str:
    """Sign the response with the tool's current key (its kid is in our JWKS)."""
    return keys.sign(response_claims(req, items, msg=msg, errormsg=errormsg))
