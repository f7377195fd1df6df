"""The platform itself: its key, its people and course, login initiation, id_token claims, signing.

A `Platform` is the object behind the sandbox app (`app.extensions["sandbox"]`). Tests use it
directly to craft good and bad launches and to turn the fault knobs, and to act as a teacher in
the LMS: `teacher_edits_grade`, and in canvas mode `publish`, `set_grading_period_closed`,
`conclude_course`, `add_assignment`, `student_view_user`, `tool_scopes` (the developer key's)
and `throttle` (Canvas's request throttle, tool/sandbox/throttle.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tool.lti.keys import public_jwk, thumbprint
from tool.sandbox import seed
from tool.sandbox.config import SandboxConfig
from tool.sandbox.counters import ConnectionCounter
from tool.sandbox.faults import Faults
from tool.sandbox.paths import Paths
from tool.sandbox.store import Assignment, Course, LineItem, ResourceLink, Result, SandboxUser, Store
from tool.sandbox.throttle import Throttle
from tool.sandbox.tokens import (
    SCOPE_LINEITEM,
    SCOPE_LINEITEM_READONLY,
    SCOPE_NRPS,
    SCOPE_RESULT_READONLY,
    SCOPE_SCORE,
    TokenService,
)

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
HINT_LIFETIME = 600
AGS_SCOPES = (SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY, SCOPE_SCORE)
CONCLUDED = "This course has concluded. AGS requests will no longer be accepted for this course."
# Login hints whose "resource link" starts with this are Deep Linking requests (tool/sandbox/deeplink.py).
DEEP_LINK_PREFIX = "deep-link:"

# Loading a PEM checks the RSA key (~0.1 s); tests start a sandbox per test with the same file.
_loaded_keys: dict[tuple[str, float, int], rsa.RSAPrivateKey] = {}


def load_or_create_key(path: Path | None) -> rsa.RSAPrivateKey:
    """The platform's RSA key: read from `path`, or generated (and written there when given)."""
    if path is not None and path.exists():
        stat = path.stat()
        cache_key = (str(path.resolve()), stat.st_mtime, stat.st_size)
        if cache_key not in _loaded_keys:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{path}: not an RSA private key")
            _loaded_keys[cache_key] = key
        return _loaded_keys[cache_key]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    return key


def reset(connection: socket.socket) -> None:
    """Close a TCP connection with a reset (SO_LINGER 0): the client sees ECONNRESET, no answer."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        connection.close()


@dataclass(frozen=True)
class MessageHint:
    """A login initiation in flight: who launches which link; usable once."""

    value: str
    user_id: str
    resource_link_id: str
    expires_at: float


@dataclass(frozen=True)
class Launch:
    """An id_token the platform handed to the tool (shown on the launch page)."""

    user_id: str
    resource_link_id: str
    at: dt.datetime


class Platform:
    """One sandbox LTI 1.3 platform in `moodle` or `canvas` mode."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.mode = config.mode
        self.issuer = config.effective_issuer
        self.client_id = config.client_id
        self.deployment_id = config.deployment_id
        self.private_key = load_or_create_key(config.key_path)
        self.kid = thumbprint(self.private_key.public_key())
        self.course: Course = seed.COURSE
        self.resource_links: dict[str, ResourceLink] = {rl.id: rl for rl in seed.RESOURCE_LINKS}
        self.users: dict[str, SandboxUser] = seed.seed_users(self.mode)
        self._user_count = len(self.users)
        self.store = Store()
        if self.mode == "canvas":
            # Canvas: rl-1 is an external-tool assignment, whose line item Canvas made with it;
            # the course menu is a placement too, launched with the course's opaque id.
            nav = seed.course_navigation_link(self.course)
            self.resource_links[nav.id] = nav
            week_1 = self.store.add_assignment(title=str(seed.SEED_LINE_ITEM["label"]),
                                               points_possible=float(seed.SEED_LINE_ITEM["score_maximum"]),
                                               resource_link_id="rl-1")
            self.store.add_line_item(**seed.SEED_LINE_ITEM, created_by_tool=False, assignment_id=week_1.id)
        else:
            self.store.add_line_item(**seed.SEED_LINE_ITEM, created_by_tool=False)
        # Canvas: None, or the status every AGS call of a concluded course gets (422 with the
        # ags_improved_course_concluded_response_codes flag, 404 without it).
        self.course_concluded: int | None = None
        self.faults = Faults()
        self.connections = ConnectionCounter()  # counts once attached to the serving server
        self.paths = Paths(config.base_url, self.mode, self.course.id, self.deployment_id)
        self.clock_offset = 0.0
        self.tokens = TokenService(
            client_id=self.client_id,
            audiences=[self.paths.token_url, self.issuer],
            tool_jwks_url=config.tool_jwks_url,
            clock=self.epoch,
            mode=self.mode,
        )
        self.throttle = Throttle(clock=self.epoch, enabled=self.mode == "canvas")
        self.launches: list[Launch] = []
        self._hints: dict[str, MessageHint] = {}
        self._lock = threading.Lock()

    # -- time ------------------------------------------------------------------------------

    def epoch(self) -> float:
        """Seconds since the epoch on the platform's clock."""
        return time.time() + self.clock_offset

    def now(self) -> dt.datetime:
        """The platform's current time (aware UTC)."""
        return dt.datetime.fromtimestamp(self.epoch(), dt.timezone.utc)

    def shift_clock(self, seconds: float) -> None:
        """Move the platform's clock (tests of expiry and of future-dated scores)."""
        self.clock_offset += seconds

    # -- keys ------------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The platform's JSON Web Key Set."""
        jwk = {**public_jwk(self.private_key.public_key()), "kid": self.kid, "alg": "RS256", "use": "sig"}
        return {"keys": [jwk]}

    def sign(
        self,
        claims: dict[str, Any],
        *,
        headers: dict[str, Any] | None = None,
        key: Any = None,
        algorithm: str = "RS256",
    ) -> str:
        """Sign claims as a JWT (default: the platform key and its kid)."""
        merged = {"kid": self.kid, **(headers or {})} if key is None else dict(headers or {})
        return jwt.encode(claims, key if key is not None else self.private_key, algorithm=algorithm, headers=merged)

    # -- people ----------------------------------------------------------------------------

    def user(self, user_id: str) -> SandboxUser:
        """A user by `sub`; KeyError when unknown."""
        return self.users[user_id]

    def users_of_kind(self, kind: str) -> list[SandboxUser]:
        """The users of one kind ("teacher", "ta", "student", "admin"), in seed order."""
        return [u for u in self.users.values() if u.kind == kind]

    @property
    def teacher(self) -> SandboxUser:
        """The seeded teacher."""
        return self.users_of_kind("teacher")[0]

    @property
    def students(self) -> list[SandboxUser]:
        """Every student, enrolled or not."""
        return self.users_of_kind("student")

    def add_students(self, n: int) -> list[SandboxUser]:
        """Enrol `n` generated students (roster and paging tests)."""
        added = []
        with self._lock:
            for _ in range(n):
                user = seed.extra_student(self._user_count, self.mode)
                self._user_count += 1
                self.users[user.id] = user
                added.append(user)
        return added

    def unenroll(self, user_id: str) -> None:
        """Take a user out of the course: no longer in NRPS, scores refused."""
        self.users[user_id].enrolled = False

    def set_kind(self, user_id: str, kind: str) -> None:
        """Change what a user is in the course (e.g. a student who became a TA)."""
        user = self.users[user_id]
        user.kind = kind
        user.roles = seed.roles_for(kind, self.mode)

    def set_member_status(self, user_id: str, status: str) -> None:
        """Set a member's NRPS status: Active, Inactive or Deleted."""
        if status not in ("Active", "Inactive", "Deleted"):
            raise ValueError("status must be Active, Inactive or Deleted")
        self.users[user_id].status = status

    def mark_deleted(self, user_id: str) -> None:
        """Show a member as Deleted in NRPS (and refuse their scores)."""
        self.set_member_status(user_id, "Deleted")

    # -- launches --------------------------------------------------------------------------

    def login_params(self, user_id: str, resource_link_id: str = "rl-1") -> dict[str, str]:
        """The login-initiation fields exactly as the mode sends them, with a fresh one-time hint."""
        user = self.users[user_id]
        deep_link = resource_link_id.startswith(DEEP_LINK_PREFIX)
        link_id = resource_link_id if deep_link else self.resource_links[resource_link_id].id
        expires_at = self.epoch() + HINT_LIFETIME
        if self.mode == "moodle":
            # Moodle 4.x: JSON with the course module id and a launch id kept in the session.
            value = json.dumps({"cmid": link_id, "launchid": "ltilaunch_" + secrets.token_hex(8)})
        else:
            # Canvas: a signed, opaque JWT.
            value = self.sign({"verifier": secrets.token_hex(16), "canvas_domain": self.config.base_url,
                               "context_type": "Course", "context_id": self.course.id,
                               "exp": int(expires_at)})
        with self._lock:
            self._hints = {k: h for k, h in self._hints.items() if h.expires_at > self.epoch()}
            self._hints[value] = MessageHint(value, user.id, link_id, expires_at)
        params = {
            "iss": self.issuer,
            "login_hint": user.id,
            "target_link_uri": (self.config.tool_deep_link_url or self.config.tool_launch_url) if deep_link
            else self.config.tool_launch_url,
            "lti_message_hint": value,
            "client_id": self.client_id,
            "lti_deployment_id": self.deployment_id,
        }
        if self.mode == "canvas" and self.config.platform_storage:
            # Canvas offers platform storage (postMessage) for tools that cannot set cookies.
            params["lti_storage_target"] = "post_message_forwarding"
        return params

    def consume_hint(self, value: str) -> MessageHint | None:
        """Use a message hint once; None when unknown, expired or already used."""
        with self._lock:
            hint = self._hints.pop(value, None)
        if hint is None or hint.expires_at <= self.epoch():
            return None
        return hint

    def redirect_uris(self) -> list[str]:
        """The tool's registered redirect URIs."""
        uris = [self.config.tool_launch_url]
        if self.config.tool_deep_link_url:
            uris.append(self.config.tool_deep_link_url)
        return uris

    def id_token_claims(self, user_id: str, *, nonce: str, resource_link_id: str = "rl-1") -> dict[str, Any]:
        """The full claim set of a resource link launch (or of a Deep Linking request)."""
        if resource_link_id.startswith(DEEP_LINK_PREFIX):
            from tool.sandbox.deeplink import deep_linking_claims

            return deep_linking_claims(self, user_id, nonce=nonce, request_id=resource_link_id)
        user = self.users[user_id]
        link = self.resource_links[resource_link_id]
        now = int(self.epoch())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "azp": self.client_id,
            "sub": user.id,
            "iat": now,
            "exp": now + self.config.id_token_lifetime,
            "nonce": nonce,
            "name": user.name,
            "given_name": user.given_name,
            "family_name": user.family_name,
            "email": user.email,
            LTI + "message_type": "LtiResourceLinkRequest",
            LTI + "version": "1.3.0",
            LTI + "deployment_id": self.deployment_id,
            LTI + "target_link_uri": self.config.tool_launch_url,
            # Canvas leaves the description out where it has none (Course Navigation).
            LTI + "resource_link": {"id": link.id, "title": link.title, "description": link.description}
            if link.description or self.mode == "moodle" else {"id": link.id, "title": link.title},
            LTI + "roles": list(user.roles),
            LTI + "context": {"id": self.course.id, "label": self.course.label, "title": self.course.title,
                              "type": [self.course.type]},
            LTI + "tool_platform": {
                "guid": self.issuer,
                "name": "Tally sandbox (%s)" % self.mode,
                "product_family_code": self.mode,
                "version": "4.5.6" if self.mode == "moodle" else "cloud",
            },
            LTI + "launch_presentation": {
                "locale": "en",
                "document_target": "iframe",
                "return_url": self.config.base_url + "/",
            },
            LTI + "custom": dict(link.custom),  # what the link was made with (deep linking)
        }
        ags = self.ags_claim(resource_link_id)
        if ags is not None:
            claims[AGS_CLAIM] = ags
        if SCOPE_NRPS in self.tool_scopes:
            claims[NRPS_CLAIM] = {"context_memberships_url": self.paths.memberships_url, "service_versions": ["2.0"]}
        return claims

    def ags_claim(self, resource_link_id: str) -> dict[str, Any] | None:
        """The AGS endpoint claim of a launch, with the `lineitem` the platform names.

        Moodle names `lineitem` when the link has exactly one line item. Canvas names it only
        for an assignment launch, and then it is the assignment's own line item (its first),
        however many others are attached (lib/lti/messages/resource_link_request.rb,
        `add_line_item_url_to_ags_claim!`); a Course Navigation launch has none. Canvas sends
        the claim only when the developer key has an AGS scope, listing those scopes
        (lib/lti/messages/jwt_message.rb, `include_assignment_and_grade_service_claims?`).
        """
        scopes = [s for s in AGS_SCOPES if s in self.tool_scopes]
        if self.mode == "canvas" and not scopes:
            return None
        claim: dict[str, Any] = {"scope": scopes, "lineitems": self.paths.lineitems_url}
        if self.mode == "canvas":
            assignment = self.assignment_of_link(resource_link_id)
            item = self.store.assignment_line_item(assignment.id) if assignment is not None else None
            if item is not None:
                claim["lineitem"] = self.paths.lineitem_url(item.id)
            return claim
        items = self.store.line_items_of(resource_link_id)
        if len(items) == 1:
            claim["lineitem"] = self.paths.lineitem_url(items[0].id)
        return claim

    def id_token(self, user_id: str, *, nonce: str, resource_link_id: str = "rl-1") -> str:
        """A signed id_token for a launch (and remember the launch)."""
        token = self.sign(self.id_token_claims(user_id, nonce=nonce, resource_link_id=resource_link_id))
        with self._lock:
            self.launches.append(Launch(user_id, resource_link_id, self.now()))
        return token

    # -- the gradebook, by hand ---------------------------------------------------------------

    # -- the server ----------------------------------------------------------------------------

    def serve_on(self, server: Any) -> None:
        """Let `faults.refuse_connections` reach a socketserver-style server (werkzeug's or ours):
        while it is set, every accepted connection is reset before a byte is read."""
        accept = server.get_request

        def guarded_accept() -> Any:
            connection, address = accept()
            if self.faults.refuse_connections:
                reset(connection)
                raise OSError("the sandbox LMS refuses connections (outage)")
            return connection, address

        server.get_request = guarded_accept
        if hasattr(server, "refusing"):
            server.refusing = lambda: self.faults.refuse_connections  # kept-alive connections too

    # -- the tool ----------------------------------------------------------------------------

    def use_tool(self, *, client_id: str, deployment_id: str, login_url: str, launch_url: str, jwks_url: str,
                 deep_link_url: str | None = None) -> None:
        """Launch another tool from now on: one an admin registered dynamically (tool/sandbox/dynreg.py)."""
        from dataclasses import replace

        with self._lock:
            self.config = replace(self.config, client_id=client_id, deployment_id=deployment_id,
                                  tool_login_url=login_url, tool_launch_url=launch_url, tool_jwks_url=jwks_url,
                                  tool_deep_link_url=deep_link_url)
            self.client_id, self.deployment_id = client_id, deployment_id
            # Moodle's service URLs carry the tool type id (= deployment id): they change with it.
            self.paths = Paths(self.config.base_url, self.mode, self.course.id, deployment_id)
            self.tokens.use_client(client_id, jwks_url)

    # -- scopes ------------------------------------------------------------------------------

    @property
    def tool_scopes(self) -> frozenset[str]:
        """The service scopes the tool may use: the developer key's (Canvas), the tool type's (Moodle)."""
        return self.tokens.allowed_scopes

    @tool_scopes.setter
    def tool_scopes(self, scopes: Any) -> None:
        self.tokens.allowed_scopes = frozenset(scopes)

    # -- Canvas's course: assignments, publishing, grading periods, conclusion -----------------

    @property
    def course_navigation_link(self) -> ResourceLink:
        """Canvas's Course Navigation placement (ValueError in Moodle mode, which has none)."""
        for link in self.resource_links.values():
            if link.kind == "course_navigation":
                return link
        raise ValueError("only Canvas has a Course Navigation placement")

    def assignment_of_link(self, resource_link_id: str) -> Assignment | None:
        """The assignment a resource link launches (Canvas: `Assignment.find_by(lti_context_id:)`)."""
        with self.store.lock:
            for assignment in self.store.assignments.values():
                if assignment.resource_link_id == resource_link_id:
                    return assignment
        return None

    def add_assignment(self, title: str, points_possible: float = 100.0, *, published: bool = True) -> ResourceLink:
        """A teacher adds Tally as an external-tool assignment: its link, and the line item Canvas makes.

        Canvas only; returns the new resource link (launch it like any other).
        """
        if self.mode != "canvas":
            raise ValueError("assignments are a Canvas concept; Moodle mode has activities (rl-1, rl-2)")
        with self._lock:
            link = ResourceLink(id=f"rl-{len(self.resource_links) + 1}", title=title, kind="assignment")
            self.resource_links[link.id] = link
        assignment = self.store.add_assignment(title=title, points_possible=float(points_possible),
                                               resource_link_id=link.id, published=published)
        self.store.add_line_item(label=title, score_maximum=float(points_possible), resource_link_id=link.id,
                                 created_by_tool=False, assignment_id=assignment.id)
        return link

    def assignment(self, *, line_item_id: int | None = None, assignment_id: int | None = None) -> Assignment:
        """A Canvas assignment, by its id or by one of its line items (KeyError when none)."""
        with self.store.lock:
            if line_item_id is not None:
                found = self.store.assignment_of(self.store.line_items[line_item_id])
                if found is None:
                    raise KeyError(f"line item {line_item_id} has no assignment")
                return found
            return self.store.assignments[assignment_id]  # type: ignore[index]

    def publish(self, assignment_id: int, published: bool = True) -> Assignment:
        """Publish (or unpublish) an assignment: an unpublished one refuses every grade with 422."""
        with self.store.lock:
            assignment = self.store.assignments[assignment_id]
            assignment.published = published
            return assignment

    def set_grading_period_closed(self, assignment_id: int, closed: bool = True) -> Assignment:
        """Close (or reopen) the grading period an assignment falls in: grades are refused with 422."""
        with self.store.lock:
            assignment = self.store.assignments[assignment_id]
            assignment.grading_period_closed = closed
            return assignment

    def conclude_course(self, status: int | None = 422) -> None:
        """Conclude the course: every AGS call answers `status` (422, or 404 as older Canvas); None reopens."""
        if status not in (None, 404, 422):
            raise ValueError("a concluded course answers 422 or 404")
        self.course_concluded = status

    def student_view_user(self) -> SandboxUser:
        """Canvas's Student View user ("Test Student"), enrolled as a student; made on first use."""
        for user in self.users.values():
            if user.test_student:
                return user
        with self._lock:
            user = seed.student_view_user(self._user_count)
            self._user_count += 1
            self.users[user.id] = user
        return user

    # -- the teacher's gradebook ---------------------------------------------------------------

    def teacher_edits_grade(self, line_item_id: int, user_id: str, score: float | None,
                            comment: str | None = None) -> Result:
        """A teacher sets a grade in the LMS gradebook: `score` on the line item's scale (None clears it).

        Moodle (grader report): the grade is stored with the time of the edit, so a tool's
        later score with an older timestamp is refused with 409 (measured on Moodle 4.5).
        Canvas: the submission's score changes and its LTI result follows *without* moving its
        `updated_at` (app/models/submission.rb `update_line_item_result`, app/models/lti/result.rb
        `update_score_for_submission` writes with raw SQL): any later tool score overwrites it.
        KeyError for an unknown line item or user.
        """
        with self.store.lock:
            item = self.store.line_items[line_item_id]
            if user_id not in self.users:
                raise KeyError(user_id)
            if self.mode == "canvas":
                return self._canvas_teacher_edit(item, user_id, score, comment)
            result = self.store.results.get((item.id, user_id)) or Result(line_item_id=item.id, user_id=user_id)
            result.raw = score
            result.final = None if score is None else min(max(score, 0.0), item.score_maximum)
            if comment is not None:
                result.comment = comment
            now = self.now()
            result.timestamp, result.timestamp_text = now, now.isoformat(timespec="seconds")
            result.edited_by_teacher = True
            self.store.results[(item.id, user_id)] = result
            return result

    def _canvas_teacher_edit(self, item: LineItem, user_id: str, score: float | None,
                             comment: str | None) -> Result:
        # A grade belongs to the assignment's submission, which only its first line item's
        # result is tied to; a result made by the edit gets `updated_at` now.
        assignment = self.store.assignment_of(item)
        graded = self.store.assignment_line_item(assignment.id) if assignment is not None else item
        assert graded is not None
        result = self.store.results.get((graded.id, user_id))
        if result is None:
            now = self.now()
            result = Result(line_item_id=graded.id, user_id=user_id, timestamp=now,
                            timestamp_text=now.isoformat(timespec="milliseconds"))
            self.store.results[(graded.id, user_id)] = result
        result.raw = result.final = score
        result.result_score = score
        if result.result_maximum is None:
            result.result_maximum = assignment.points_possible if assignment is not None else graded.score_maximum
        result.edited_by_teacher = True
        if comment:
            result.comments.append(comment)
        return result

    # -- counters --------------------------------------------------------------------------

    @property
    def token_requests(self) -> int:
        """How many times the token endpoint was called."""
        return self.tokens.requests

    @property
    def tcp_connections(self) -> int:
        """How many TCP connections the server accepted (after `connections.attach(server)`)."""
        return self.connections.accepted
