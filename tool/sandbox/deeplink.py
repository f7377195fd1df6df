"""Deep Linking 2.0, platform side: "Add a Tally item" and the return endpoint that takes its answer.

    POST /deep-link/start                                   a teacher starts a Deep Linking launch
    POST /mod/lti/contentitem_return.php | /courses/<ctx>/deep_linking_response   the tool's answer (form field JWT)

The request carries `deep_linking_settings` shaped as the mode's platform sends them (Moodle:
accept_multiple, frame/iframe/window targets, a sesskey in the return URL; Canvas:
accept_lineitem, a single item for assignment selection). The answer is a JWT signed by the
tool: it is verified against the tool's JWKS (fetched over HTTP), its `iss` must be the
client_id, its `aud` the platform, its deployment the one launched, and `data` must come back
unchanged and only once. Each `ltiResourceLink` becomes a resource link of the course, whose
launches carry the item's `custom` parameters; its `lineItem` becomes the link's gradebook
column, which launches of the link name as their `lineitem` while it is the link's only one.
"""

from __future__ import annotations

import secrets
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from flask import Flask, Response, render_template, request

from tool.sandbox.platform import AGS_CLAIM, DEEP_LINK_PREFIX, LTI, Platform
from tool.sandbox.store import LineItem, ResourceLink

DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
SETTINGS_CLAIM = DL + "deep_linking_settings"
CONTENT_ITEMS_CLAIM = DL + "content_items"
DATA_CLAIM = DL + "data"


class DeepLinkRefused(Exception):
    """The platform refuses a deep linking response; the message says why."""


@dataclass
class DeepLinkResult:
    """What a deep linking response did to the course."""

    links: list[ResourceLink] = field(default_factory=list)
    line_items: list[LineItem] = field(default_factory=list)
    msg: str | None = None
    errormsg: str | None = None


class DeepLinking:
    """Pending deep linking requests of one platform and what their answers created."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._pending: dict[str, str] = {}  # data -> user_id
        self._lock = threading.Lock()
        self.results: list[DeepLinkResult] = []

    @property
    def return_rule(self) -> str:
        """Where the tool POSTs its answer."""
        if self.platform.mode == "moodle":
            return "/mod/lti/contentitem_return.php"
        return f"/courses/{self.platform.course.id}/deep_linking_response"

    def login_params(self, user_id: str) -> dict[str, str]:
        """The login initiation of a Deep Linking launch (its target is the tool's deep linking URL)."""
        return self.platform.login_params(user_id, DEEP_LINK_PREFIX + secrets.token_hex(6))

    def settings(self, user_id: str) -> dict[str, Any]:
        """deep_linking_settings as the mode's platform sends them, with a fresh one-time `data`."""
        base = self.platform.config.base_url
        data = secrets.token_urlsafe(16)
        with self._lock:
            self._pending[data] = user_id
        if self.platform.mode == "moodle":
            return {
                "deep_link_return_url": f"{base}{self.return_rule}?course={self.platform.course.id}"
                f"&id={self.platform.deployment_id}&sesskey={secrets.token_hex(5)}",
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["frame", "iframe", "window"],
                "accept_copy_advice": False, "accept_multiple": True, "accept_unsigned": False,
                "auto_create": False, "can_confirm": False, "copy_advice": False, "title": "", "text": "",
                "data": data,
            }
        return {
            "deep_link_return_url": f"{base}{self.return_rule}?modal=true",
            "accept_types": ["ltiResourceLink"],
            "accept_presentation_document_targets": ["iframe", "window"],
            "accept_media_types": "application/vnd.ims.lti.v1.ltilink",
            "accept_multiple": False,  # assignment selection takes one item
            "accept_lineitem": True,
            "auto_create": True,
            "data": data,
        }

    def claims(self, user_id: str, *, nonce: str) -> dict[str, Any]:
        """The id_token claims of a Deep Linking request: a launch's, without a resource link."""
        first_link = next(iter(self.platform.resource_links))
        claims = self.platform.id_token_claims(user_id, nonce=nonce, resource_link_id=first_link)
        claims.pop(LTI + "resource_link", None)
        claims[LTI + "message_type"] = "LtiDeepLinkingRequest"
        claims[LTI + "target_link_uri"] = self.platform.config.tool_deep_link_url or self.platform.config.tool_launch_url
        ags = dict(claims.get(AGS_CLAIM) or {})
        ags.pop("lineitem", None)  # no link yet, so no line item of its own
        claims[AGS_CLAIM] = ags
        claims[SETTINGS_CLAIM] = self.settings(user_id)
        return claims

    # -- the answer --------------------------------------------------------------------------

    def _tool_key(self, kid: str) -> Any:
        try:
            answer = requests.get(self.platform.config.tool_jwks_url, timeout=5, headers={"Accept": "application/json"})
            answer.raise_for_status()
            keys = answer.json().get("keys", [])
        except (requests.RequestException, ValueError, AttributeError) as exc:
            raise DeepLinkRefused(f"could not fetch the tool JWKS: {exc}") from exc
        jwk = next((k for k in keys if isinstance(k, dict) and k.get("kid") == kid), None)
        if jwk is None:
            raise DeepLinkRefused('"kid" invalid')
        return jwt.PyJWK(jwk).key

    def verify(self, token: str) -> dict[str, Any]:
        """Check the response JWT as the platform does; return its claims."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise DeepLinkRefused(f"JWT is not a JWT: {exc}") from exc
        if header.get("alg") != "RS256" or not header.get("kid"):
            raise DeepLinkRefused("the response must be signed with RS256 and name its kid")
        try:
            claims = jwt.decode(token, self._tool_key(str(header["kid"])), algorithms=["RS256"],
                                audience=self.platform.issuer, issuer=self.platform.client_id, leeway=5,
                                options={"require": ["iss", "aud", "exp", "iat", "nonce"]})
        except jwt.PyJWTError as exc:
            raise DeepLinkRefused(f"JWT refused: {exc}") from exc
        if claims.get(LTI + "message_type") != "LtiDeepLinkingResponse":
            raise DeepLinkRefused("message_type must be LtiDeepLinkingResponse")
        if claims.get(LTI + "version") != "1.3.0":
            raise DeepLinkRefused("version must be 1.3.0")
        if claims.get(LTI + "deployment_id") != self.platform.deployment_id:
            raise DeepLinkRefused("deployment_id does not match the launch")
        with self._lock:
            user_id = self._pending.pop(str(claims.get(DATA_CLAIM)), None)
        if user_id is None:
            raise DeepLinkRefused("data is missing, altered or was used already")
        return claims

    def accept(self, token: str) -> DeepLinkResult:
        """Verify the answer and create its links and gradebook columns."""
        claims = self.verify(token)
        items = claims.get(CONTENT_ITEMS_CLAIM, [])
        if not isinstance(items, list):
            raise DeepLinkRefused("content_items must be an array")
        if len(items) > 1 and self.platform.mode == "canvas":
            raise DeepLinkRefused("this placement accepts one item")
        for item in items:
            self._check_item(item)
        result = DeepLinkResult(msg=claims.get(DL + "msg"), errormsg=claims.get(DL + "errormsg"))
        with self.platform.store.lock:
            for item in items:
                custom = item.get("custom") if isinstance(item.get("custom"), dict) else {}
                line = item.get("lineItem")
                # Canvas makes an item with a lineItem an external-tool assignment (its column);
                # one without is a plain module link.
                kind = "assignment" if isinstance(line, dict) or self.platform.mode == "moodle" else "link"
                link = ResourceLink(id=f"rl-{len(self.platform.resource_links) + 1}", title=str(item.get("title") or "Tally"),
                                    description=str(item.get("text") or ""), kind=kind,
                                    custom=tuple(sorted((str(k), str(v)) for k, v in custom.items())))
                self.platform.resource_links[link.id] = link
                result.links.append(link)
                if isinstance(line, dict):
                    label = str(line.get("label") or link.title)
                    assignment = self.platform.store.add_assignment(
                        title=label, points_possible=float(line["scoreMaximum"]), resource_link_id=link.id,
                    ) if self.platform.mode == "canvas" else None
                    result.line_items.append(self.platform.store.add_line_item(
                        label=label, score_maximum=float(line["scoreMaximum"]),
                        resource_link_id=link.id, resource_id=line.get("resourceId"), tag=line.get("tag"),
                        created_by_tool=False,  # the activity's own grade item (Moodle), the assignment's (Canvas)
                        assignment_id=assignment.id if assignment is not None else None,
                    ))
        with self._lock:
            self.results.append(result)
        return result

    @staticmethod
    def _check_item(item: Any) -> None:
        if not isinstance(item, dict) or item.get("type") != "ltiResourceLink":
            raise DeepLinkRefused("only ltiResourceLink items are accepted here")
        line = item.get("lineItem")
        if line is None:
            return
        score_max = line.get("scoreMaximum") if isinstance(line, dict) else None
        if isinstance(score_max, bool) or not isinstance(score_max, (int, float)) or score_max <= 0:
            raise DeepLinkRefused("lineItem.scoreMaximum must be a number above 0")


_services: "weakref.WeakKeyDictionary[Platform, DeepLinking]" = weakref.WeakKeyDictionary()


def deep_linking_claims(platform: Platform, user_id: str, *, nonce: str, request_id: str) -> dict[str, Any]:
    """The claims of a Deep Linking request of `platform` (called by Platform.id_token_claims)."""
    return service_of(platform).claims(user_id, nonce=nonce)


def service_of(platform: Platform) -> DeepLinking:
    """The platform's Deep Linking service (created on first use)."""
    service = _services.get(platform)
    if service is None:
        service = DeepLinking(platform)
        _services[platform] = service
    return service


def register(app: Flask, platform: Platform) -> DeepLinking:
    """Add the Deep Linking routes to the sandbox app."""
    service = service_of(platform)
    app.extensions["sandbox_deeplink"] = service

    def start() -> Response | tuple[str, int]:
        user_id = request.form.get("user_id", "")
        if user_id not in platform.users:
            return render_template("sandbox/error.html", platform=platform, problem="Unknown user"), 400
        html = render_template("sandbox/autopost.html", platform=platform, title="Adding a Tally item",
                               action=platform.config.tool_login_url,
                               method="post" if platform.mode == "moodle" else "get",
                               fields=service.login_params(user_id))
        return Response(html, content_type="text/html; charset=utf-8")

    def returned() -> Response | tuple[str, int]:
        token = request.form.get("JWT", "")
        if not token:
            return render_template("sandbox/error.html", platform=platform, problem="JWT is missing"), 400
        try:
            result = service.accept(token)
        except DeepLinkRefused as exc:
            return render_template("sandbox/error.html", platform=platform, problem=str(exc)), 400
        return Response(render_template("sandbox/deep_link_result.html", platform=platform, result=result),
                        content_type="text/html; charset=utf-8")

    app.add_url_rule("/deep-link/start", "deeplink_start", start, methods=["POST"])
    app.add_url_rule(service.return_rule, "deeplink_return", returned, methods=["POST"])
    return service
