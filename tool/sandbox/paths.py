"""The URL layout of each mode, as Flask rules and as absolute URLs handed to the tool.

Moodle 4.5:  /mod/lti/auth.php, /mod/lti/token.php, /mod/lti/certs.php,
             /mod/lti/services.php/<ctx>/lineitems?type_id=1,
             /mod/lti/services.php/<ctx>/lineitems/<id>/lineitem?type_id=1 (+ /scores, /results
             inserted *before* the query string),
             /mod/lti/services.php/CourseSection/<ctx>/bindings/<type_id>/memberships
Canvas:      /api/lti/authorize_redirect, /login/oauth2/token, /api/lti/security/jwks,
             /api/lti/courses/<ctx>/line_items[/<id>[/scores|/results]],
             /api/lti/courses/<ctx>/names_and_roles
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


def insert_path(url: str, suffix: str) -> str:
    """Append a path segment before the query string (how AGS says to build /scores URLs)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + suffix, parts.query, parts.fragment))


@dataclass(frozen=True)
class Paths:
    """Rules and URLs of one mode."""

    base_url: str
    mode: str
    context_id: str
    deployment_id: str

    # -- Flask rules -----------------------------------------------------------------------

    @property
    def auth_rule(self) -> str:
        """OIDC authorization endpoint."""
        return "/mod/lti/auth.php" if self.mode == "moodle" else "/api/lti/authorize_redirect"

    @property
    def token_rule(self) -> str:
        """OAuth 2 token endpoint."""
        return "/mod/lti/token.php" if self.mode == "moodle" else "/login/oauth2/token"

    @property
    def jwks_rule(self) -> str:
        """Platform JWKS."""
        return "/mod/lti/certs.php" if self.mode == "moodle" else "/api/lti/security/jwks"

    @property
    def lineitems_rule(self) -> str:
        """AGS line item container."""
        if self.mode == "moodle":
            return "/mod/lti/services.php/<context_id>/lineitems"
        return "/api/lti/courses/<context_id>/line_items"

    @property
    def lineitem_rule(self) -> str:
        """One AGS line item."""
        if self.mode == "moodle":
            return "/mod/lti/services.php/<context_id>/lineitems/<int:item_id>/lineitem"
        return "/api/lti/courses/<context_id>/line_items/<int:item_id>"

    @property
    def memberships_rule(self) -> str:
        """NRPS membership container."""
        if self.mode == "moodle":
            return "/mod/lti/services.php/CourseSection/<context_id>/bindings/<type_id>/memberships"
        return "/api/lti/courses/<context_id>/names_and_roles"

    # -- URLs ------------------------------------------------------------------------------

    def _query(self) -> str:
        # Moodle identifies the tool type on every service URL.
        return f"?type_id={self.deployment_id}" if self.mode == "moodle" else ""

    @property
    def auth_url(self) -> str:
        """Absolute OIDC authorization URL."""
        return self.base_url + self.auth_rule

    @property
    def token_url(self) -> str:
        """Absolute token URL (the `aud` of client assertions)."""
        return self.base_url + self.token_rule

    @property
    def jwks_url(self) -> str:
        """Absolute platform JWKS URL."""
        return self.base_url + self.jwks_rule

    @property
    def lineitems_url(self) -> str:
        """Absolute line item container URL."""
        return self.base_url + self.lineitems_rule.replace("<context_id>", self.context_id) + self._query()

    def lineitem_url(self, item_id: int) -> str:
        """Absolute URL (and AGS `id`) of one line item."""
        rule = self.lineitem_rule.replace("<context_id>", self.context_id).replace("<int:item_id>", str(item_id))
        return self.base_url + rule + self._query()

    def scores_url(self, item_id: int) -> str:
        """Absolute scores URL of a line item."""
        return insert_path(self.lineitem_url(item_id), "/scores")

    def results_url(self, item_id: int) -> str:
        """Absolute results URL of a line item."""
        return insert_path(self.lineitem_url(item_id), "/results")

    def result_id(self, item_id: int, user_id: str) -> str:
        """The `id` of a result (Moodle adds user_id to the query; Canvas uses a path)."""
        if self.mode == "moodle":
            return self.results_url(item_id) + f"&user_id={user_id}"
        return self.results_url(item_id) + f"/{user_id}"

    @property
    def memberships_url(self) -> str:
        """Absolute NRPS membership URL."""
        rule = self.memberships_rule.replace("<context_id>", self.context_id).replace("<type_id>", self.deployment_id)
        return self.base_url + rule
