"""Registering Tally with a platform: Dynamic Registration, the Canvas developer key, manual values.

LTI Dynamic Registration 1.0 (https://www.imsglobal.org/spec/lti-dr/v1p0), tool side:

1. The admin pastes Tally's registration URL into the LMS; the LMS opens it with
   `openid_configuration` (a URL) and `registration_token` (a single-use JWT, 1 h in Moodle).
2. Tally fetches the platform's OpenID configuration. Its `issuer` must be on the host of
   the configuration URL (§3.5.1): otherwise anyone could hand Tally a configuration that
   claims to be another platform.
3. Tally POSTs its client registration to the `registration_endpoint` with the token as a
   Bearer credential, and stores the registration (issuer, client_id, the platform's URLs)
   and the deployment the platform answers (Moodle: the tool type id; Canvas answers none:
   its deployment appears with the first launch after the admin installs the app).
4. The page tells the LMS it is done: `postMessage({subject: "org.imsglobal.lti.close"})`.

Every failure is a `DynamicRegistrationError` carrying the platform's status, a short word
from a fixed list when the platform's answer contains one (`token_already_used`, …) and a hint
at the cause; never the fetched body (the caller may be anyone: the URLs come from the browser).
Both URLs are fetched through tool/outbound.py (checked addresses, one total deadline, a size
cap), and the registration endpoint must be on the issuer's host. The platform is never called
inside a database transaction: fetch and POST first, then write.

Also here, because they describe the same tool to the same admins: the Canvas developer-key
JSON (`canvas_developer_key`) and the values to type into Moodle or Canvas by hand
(`manual_instructions`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests
from sqlalchemy.orm import Session

from tool import outbound

from tool.config import Settings
from tool.errors import ToolError
from tool.lti.claims import SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_NRPS, SCOPE_RESULT_READONLY, SCOPE_SCORE
from tool.lti.registry import add_registration, ensure_deployment

TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
CANVAS_PRIVACY_LEVEL = "https://canvas.instructure.com/lti/privacy_level"
CLOSE_MESSAGE = {"subject": "org.imsglobal.lti.close"}

# Moodle maps these to its settings: any AGS scope => "accept grades: delegate to teacher",
# the full lineitem scope => column management, NRPS => roster (PLATFORMS.md).
TOOL_SCOPES = (SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY, SCOPE_SCORE, SCOPE_NRPS)
# Moodle shares name and email only when the registration asks for these claims.
TOOL_CLAIMS = ("iss", "sub", "name", "given_name", "family_name", "email")

CLIENT_NAME = "Tally"
DESCRIPTION = "Grade ledger, grading schemes and score delivery to the gradebook."
RESOURCE_LINK_LABEL = "Tally"
DEEP_LINK_LABEL = "Add a graded Tally item"
CANVAS_RESOURCE_PLACEMENTS = ("course_navigation",)
CANVAS_DEEP_LINK_PLACEMENTS = ("link_selection", "assignment_selection")
# A platform configuration or registration answer is a few kB (Canvas's is the largest, ~10 kB).
MAX_ANSWER_BYTES = 1_000_000
# Words platforms answer that Tally shows as they are (never anything else of a fetched body).
KNOWN_WORDS = ("token_already_used", "missing_registration_token", "invalid_registration_token",
               "domain_targetlinkuri_mismatch", "missing_domain", "invalid_client_metadata", "invalid_redirect_uri",
               "Expired token", "Signature verification failed", "missing required attribute", "invalid_token",
               "unauthorized_client", "access_denied")


class DynamicRegistrationError(ToolError):
    """A dynamic registration failed; carries the platform's answer verbatim and a hint."""

    code = "dynamic_registration_failed"

    def __init__(self, message: str, *, code: str | None = None, hint: str = "", platform_status: int | None = None,
                 platform_words: str = "", http_status: int | None = None, details: Any = None) -> None:
        super().__init__(message, code=code, details=details)
        self.hint = hint
        self.platform_status = platform_status
        self.platform_words = platform_words  # one of KNOWN_WORDS, or ""
        # 502 when the platform failed or could not be read; None: the usual status of the error.
        self.http_status = http_status


def known_words(text: str) -> str:
    """The first of KNOWN_WORDS in a platform's answer (the only part of it anyone is shown)."""
    lowered = (text or "")[:20000].lower()
    for word in KNOWN_WORDS:
        if word.lower() in lowered:
            return word
    return ""


def _fetch_failed(what: str, url: str, exc: requests.RequestException, code: str) -> DynamicRegistrationError:
    """A fetch that brought no answer: the same words for refused, reset, DNS, blocked (no port scan)."""
    return DynamicRegistrationError(
        f"Tally could not read {what} at {url}: it {outbound.describe(exc)}.", code=code, http_status=502,
        hint="Tally must reach the LMS over the network, and reads only public addresses unless its administrator "
        "allows another (outbound_allowed_hosts). Start the registration again from the LMS; if it keeps failing, "
        "register Tally by hand.",
    )


# -- the tool as platforms see it ---------------------------------------------------------


@dataclass(frozen=True)
class ToolUrls:
    """Every URL of Tally an LMS admin types or a platform calls."""

    base: str
    login: str
    launch: str
    deep_link: str
    jwks: str
    register: str
    canvas_json: str
    domain: str


def tool_urls(settings: Settings) -> ToolUrls:
    """Tally's URLs from its public base URL."""
    base = settings.public_base_url
    # Moodle compares `domain` with the host of target_link_uri, port included when the URL
    # names one (domain_targetlinkuri_mismatch otherwise): the netloc is exactly that.
    domain = urlsplit(base).netloc.rsplit("@", 1)[-1].lower()
    launch = base + "/lti/launch"
    return ToolUrls(
        base=base, login=base + "/lti/login", launch=launch,
        # One redirect URI for both messages: the launch endpoint dispatches on message_type.
        deep_link=launch, jwks=base + "/.well-known/jwks.json", register=base + "/lti/register",
        canvas_json=base + "/lti/canvas.json", domain=domain,
    )


# -- the platform's OpenID configuration --------------------------------------------------


@dataclass(frozen=True)
class PlatformConfiguration:
    """What Tally needs from a platform's OpenID configuration."""

    url: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    registration_endpoint: str
    authorization_server: str | None
    product_family_code: str
    version: str
    scopes_supported: tuple[str, ...]
    messages_supported: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def is_canvas(self) -> bool:
        """True when the platform says it is Canvas (placements and privacy level apply)."""
        return self.product_family_code.lower() == "canvas"

    @property
    def display_name(self) -> str:
        """A name for people: the product and the host, e.g. "Moodle (moodle.example.edu)"."""
        family = self.product_family_code or "LMS"
        account = self.raw.get("https://canvas.instructure.com/lti/account_name")
        host = urlsplit(self.url).hostname or self.issuer
        label = {"moodle": "Moodle", "canvas": "Canvas"}.get(family.lower(), family)
        return f"{label} ({account or host})"


def _absolute(value: Any) -> bool:
    parts = urlsplit(value if isinstance(value, str) else "")
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_configuration_url(settings: Settings, url: str) -> None:
    """Refuse a configuration URL that is not an absolute http(s) URL (https when Tally is)."""
    if not _absolute(url):
        raise DynamicRegistrationError(
            f"openid_configuration {url!r} is not an absolute URL.", code="openid_configuration_invalid",
            hint="Start the registration from the LMS: it adds openid_configuration and registration_token "
            "to Tally's registration URL.",
        )
    if settings.public_base_url.startswith("https://") and not url.startswith("https://"):
        raise DynamicRegistrationError(
            f"openid_configuration {url!r} is not https.", code="openid_configuration_insecure",
            hint="A production LMS serves its configuration over https; check the LMS's site URL (wwwroot).",
        )


def parse_platform_configuration(url: str, body: Any) -> PlatformConfiguration:
    """Validate an OpenID configuration document; its issuer must be on the host of `url`."""
    if not isinstance(body, dict):
        raise DynamicRegistrationError("The platform's OpenID configuration is not a JSON object.",
                                       code="openid_configuration_invalid",
                                       hint="Check that the LMS passed its own configuration URL.")
    required = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "registration_endpoint")
    bad = {name: "missing or not an absolute URL" for name in required if not _absolute(body.get(name))}
    if bad:
        raise DynamicRegistrationError(
            "The platform's OpenID configuration lacks " + ", ".join(sorted(bad)) + ".",
            code="openid_configuration_invalid", details=bad,
            hint="The LMS must support LTI Dynamic Registration (Moodle 3.10 or later, Canvas); "
            "otherwise register Tally by hand.",
        )
    issuer = str(body["issuer"])
    if not outbound.same_host(issuer, url):
        raise DynamicRegistrationError(
            f"The configuration at {url} names the issuer {issuer!r}, which is on another host.",
            code="issuer_mismatch",
            hint="The issuer must be on the host that serves the configuration (LTI Dynamic Registration §3.5.1). "
            "If the LMS's site URL changed, fix it in the LMS; otherwise this link did not come from that LMS.",
        )
    if not outbound.same_host(str(body["registration_endpoint"]), issuer):
        raise DynamicRegistrationError(
            f"The configuration at {url} names a registration endpoint on another host than its issuer.",
            code="registration_endpoint_mismatch",
            hint="The LMS's registration endpoint must be on the issuer's host; this link did not come from that LMS.",
        )
    methods = body.get("token_endpoint_auth_methods_supported")
    if isinstance(methods, list) and methods and "private_key_jwt" not in methods:
        raise DynamicRegistrationError(
            "The platform does not accept private_key_jwt at its token endpoint.", code="openid_configuration_invalid",
            hint="LTI 1.3 service calls need private_key_jwt; check the LMS's LTI 1.3 support.",
        )
    plat = body.get(PLATFORM_CONFIGURATION) if isinstance(body.get(PLATFORM_CONFIGURATION), dict) else {}
    messages = tuple(str(m.get("type")) for m in plat.get("messages_supported") or [] if isinstance(m, dict))
    scopes = tuple(str(s) for s in body.get("scopes_supported") or [] if isinstance(s, str))
    server = body.get("authorization_server")
    return PlatformConfiguration(
        url=url, issuer=issuer, authorization_endpoint=str(body["authorization_endpoint"]),
        token_endpoint=str(body["token_endpoint"]), jwks_uri=str(body["jwks_uri"]),
        registration_endpoint=str(body["registration_endpoint"]),
        authorization_server=str(server) if isinstance(server, str) and server else None,
        product_family_code=str(plat.get("product_family_code") or ""), version=str(plat.get("version") or ""),
        scopes_supported=scopes, messages_supported=messages, raw=body,
    )


def _timeouts(settings: Settings) -> tuple[float, float]:
    return (settings.http_connect_timeout_seconds, settings.http_timeout_seconds)


def fetch_platform_configuration(http: requests.Session, settings: Settings, url: str,
                                 registration_token: str) -> PlatformConfiguration:
    """GET the platform's OpenID configuration (Canvas wants the registration token on it too)."""
    check_configuration_url(settings, url)
    headers = {"Accept": "application/json"}
    if registration_token:
        headers["Authorization"] = f"Bearer {registration_token}"
    try:
        resp = outbound.fetch(http, "GET", url, headers=headers, timeout=_timeouts(settings), follow_redirects=0,
                              max_bytes=min(MAX_ANSWER_BYTES, settings.outbound_max_bytes))
    except requests.RequestException as exc:
        raise _fetch_failed("the platform's OpenID configuration", url, exc, "openid_configuration_unreachable") from exc
    if resp.status_code != 200:
        words = known_words(resp.text)
        raise DynamicRegistrationError(
            f"The platform answered {resp.status_code} for its OpenID configuration.",
            code="openid_configuration_unavailable", platform_status=resp.status_code, platform_words=words,
            hint=refusal_hint(resp.status_code, resp.text), http_status=502 if resp.status_code >= 500 else None,
        )
    try:
        body = resp.json()
    except ValueError:
        # Not echoed: the URL came from the browser and may point anywhere.
        raise DynamicRegistrationError(f"The document at {url} is not JSON.", code="openid_configuration_invalid",
                                       hint="Start the registration from the LMS again.") from None
    return parse_platform_configuration(url, body)


# -- the client registration ---------------------------------------------------------------


def client_registration(settings: Settings, platform: PlatformConfiguration | None = None) -> dict[str, Any]:
    """The client registration Tally POSTs: what Moodle requires, plus Canvas's placements."""
    urls = tool_urls(settings)
    resource: dict[str, Any] = {"type": "LtiResourceLinkRequest", "target_link_uri": urls.launch,
                                "label": RESOURCE_LINK_LABEL}
    deep: dict[str, Any] = {"type": "LtiDeepLinkingRequest", "target_link_uri": urls.deep_link,
                            "label": DEEP_LINK_LABEL}
    tool_conf: dict[str, Any] = {
        "domain": urls.domain,
        "target_link_uri": urls.launch,
        "description": DESCRIPTION,
        "claims": list(TOOL_CLAIMS),
        "messages": [resource, deep],
    }
    if platform is not None and platform.is_canvas:
        resource["placements"] = list(CANVAS_RESOURCE_PLACEMENTS)
        deep["placements"] = list(CANVAS_DEEP_LINK_PLACEMENTS)
        tool_conf[CANVAS_PRIVACY_LEVEL] = "public"  # names and emails: the ledger lists students
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": urls.login,
        "redirect_uris": [urls.launch],
        "client_name": CLIENT_NAME,
        "jwks_uri": urls.jwks,
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(TOOL_SCOPES),
        TOOL_CONFIGURATION: tool_conf,
    }


def refusal_hint(status: int, body: str) -> str:
    """A likely cause of a platform's refusal, from its status and words."""
    text = (body or "").lower()
    if "already_used" in text or "already used" in text:
        return ("Each registration link works once, and this one was used already. Start the registration "
                "again from the LMS (Moodle: Manage tools → Tool URL… → Add LTI Advantage).")
    if "expired" in text:
        return "The registration token expired (Moodle's live 1 hour). Start the registration again from the LMS."
    if "domain_targetlinkuri_mismatch" in text or "missing_domain" in text:
        return ("The LMS compares the tool's domain with the host of its tool URL. Set TOOL_PUBLIC_BASE_URL to "
                "the URL the LMS reaches Tally at, restart Tally and start again.")
    if "registration_token" in text or "signature" in text or status == 401:
        return ("The LMS did not accept the registration token (missing, forged or for another site). "
                "Start the registration again from the LMS's admin pages; do not reuse an old link.")
    if "missing required attribute" in text or "invalid_" in text or status in (400, 422):
        return ("The LMS refused a field of Tally's registration request (named in its answer). Check that the "
                "LMS is up to date; you can always register Tally by hand (admin page /admin/register).")
    if status == 403:
        return "The LMS says the account that started the registration may not add tools: use a site administrator."
    if status == 404:
        return "The LMS's registration endpoint was not found: it may not support Dynamic Registration; register by hand."
    if status >= 500:
        return "The LMS failed while registering. Try again in a few minutes; its error log says more."
    return "Start the registration again from the LMS; if it keeps failing, register Tally by hand."


def post_client_registration(http: requests.Session, settings: Settings, platform: PlatformConfiguration,
                             registration_token: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """POST the client registration; return the platform's answer or raise with its words."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if registration_token:
        headers["Authorization"] = f"Bearer {registration_token}"
    try:
        resp = outbound.fetch(http, "POST", platform.registration_endpoint, data=json.dumps(payload), headers=headers,
                              timeout=_timeouts(settings), follow_redirects=0,
                              max_bytes=min(MAX_ANSWER_BYTES, settings.outbound_max_bytes))
    except requests.RequestException as exc:
        raise _fetch_failed("the platform's registration endpoint", platform.registration_endpoint, exc,
                            "registration_unreachable") from exc
    if resp.status_code not in (200, 201):
        # Moodle answers plain words (token_already_used, domain_targetlinkuri_mismatch, …),
        # Canvas a JSON body: the admin sees the status, a known word and a hint; the log the rest.
        raise DynamicRegistrationError(
            f"The platform refused the registration: {resp.status_code}.",
            code="registration_refused", platform_status=resp.status_code, platform_words=known_words(resp.text),
            hint=refusal_hint(resp.status_code, resp.text), http_status=502 if resp.status_code >= 500 else None,
        )
    try:
        answer = resp.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("client_id"), (str, int)) or answer["client_id"] == "":
        raise DynamicRegistrationError(
            "The platform accepted the registration but its answer names no client_id.",
            code="registration_answer_invalid", platform_status=resp.status_code,
            hint="Look for the new tool in the LMS and register its values by hand (admin page /admin/register).",
        )
    return answer


@dataclass(frozen=True)
class RegistrationOutcome:
    """A registration Tally stored after the platform accepted it."""

    registration_id: int
    name: str
    issuer: str
    client_id: str
    deployment_id: str | None
    deployment_status: str | None
    granted_scopes: tuple[str, ...]
    product_family_code: str


def store_registration(db: Session, settings: Settings, platform: PlatformConfiguration,
                       answer: Mapping[str, Any], *, name: str = "") -> RegistrationOutcome:
    """Store the registration and the deployment the platform answered (never commits)."""
    client_id = str(answer["client_id"])
    tool_conf = answer.get(TOOL_CONFIGURATION) if isinstance(answer.get(TOOL_CONFIGURATION), dict) else {}
    raw_dep = tool_conf.get("deployment_id")
    deployment_id = str(raw_dep) if isinstance(raw_dep, (str, int)) and str(raw_dep) else None
    reg = add_registration(
        db, issuer=platform.issuer, client_id=client_id, auth_login_url=platform.authorization_endpoint,
        auth_token_url=platform.token_endpoint, key_set_url=platform.jwks_uri,
        auth_audience=platform.authorization_server, name=name or platform.display_name, source="dynamic",
    )
    status = None
    if deployment_id is not None:
        wanted = "active" if settings.dynamic_registration == "active" else "pending"
        status = ensure_deployment(db, registration_id=reg.id, deployment_id=deployment_id, status=wanted).status
    scope = answer.get("scope")
    granted = tuple(scope.split()) if isinstance(scope, str) else ()
    return RegistrationOutcome(
        registration_id=reg.id, name=reg.name, issuer=reg.issuer, client_id=client_id,
        deployment_id=deployment_id, deployment_status=status, granted_scopes=granted,
        product_family_code=platform.product_family_code,
    )


def register_dynamically(db: Session, settings: Settings, http: requests.Session, *, openid_configuration: str,
                         registration_token: str, name: str = "") -> RegistrationOutcome:
    """The whole tool side of Dynamic Registration: fetch, check, POST, store (never commits)."""
    if settings.dynamic_registration == "off":
        raise DynamicRegistrationError(
            "Dynamic Registration is switched off on this Tally.", code="dynamic_registration_off",
            hint="Register Tally by hand (admin page /admin/register), or set dynamic_registration = \"pending\".",
        )
    platform = fetch_platform_configuration(http, settings, openid_configuration, registration_token)
    answer = post_client_registration(http, settings, platform, registration_token,
                                      client_registration(settings, platform))
    return store_registration(db, settings, platform, answer, name=name)


# -- Canvas developer key JSON ---------------------------------------------------------------


def canvas_developer_key(settings: Settings) -> dict[str, Any]:
    """The JSON a Canvas admin pastes into Developer Keys → + LTI Key → Paste JSON (or enters by URL)."""
    urls = tool_urls(settings)
    host = urlsplit(urls.base).hostname or urls.domain
    placements = [
        {"placement": "course_navigation", "message_type": "LtiResourceLinkRequest", "target_link_uri": urls.launch,
         "text": RESOURCE_LINK_LABEL, "default": "enabled", "visibility": "members"},
        {"placement": "link_selection", "message_type": "LtiDeepLinkingRequest", "target_link_uri": urls.deep_link,
         "text": DEEP_LINK_LABEL},
        {"placement": "assignment_selection", "message_type": "LtiDeepLinkingRequest",
         "target_link_uri": urls.deep_link, "text": DEEP_LINK_LABEL},
    ]
    return {
        "title": CLIENT_NAME,
        "description": DESCRIPTION,
        "oidc_initiation_url": urls.login,
        "target_link_uri": urls.launch,
        "public_jwk_url": urls.jwks,
        "scopes": list(TOOL_SCOPES),
        "extensions": [
            {
                "platform": "canvas.instructure.com",
                "domain": host,
                "tool_id": "tally",
                "privacy_level": "public",
                "settings": {"text": CLIENT_NAME, "placements": placements},
            }
        ],
        # Canvas substitutes these when it launches; Tally reads them for display only.
        "custom_fields": {"canvas_course_id": "$Canvas.course.id", "canvas_user_login": "$Canvas.user.loginId"},
    }


# -- manual registration ------------------------------------------------------------------------


@dataclass(frozen=True)
class InstructionField:
    """One value an admin types into an LMS form."""

    label: str
    value: str


@dataclass(frozen=True)
class PlatformInstructions:
    """Where to click in one LMS and what to type there, and what to bring back."""

    platform: str
    where: str
    fields: tuple[InstructionField, ...]
    then: str
    bring_back: tuple[str, ...]


def manual_instructions(settings: Settings) -> tuple[PlatformInstructions, ...]:
    """The values to type into Moodle and Canvas by hand, and the values to give Tally back."""
    u = tool_urls(settings)
    moodle = PlatformInstructions(
        platform="Moodle 4.x",
        where="Site administration → Plugins → Activity modules → External tool → Manage tools → "
        "configure a tool manually",
        fields=(
            InstructionField("Tool name", CLIENT_NAME),
            InstructionField("Tool URL", u.launch),
            InstructionField("LTI version", "LTI 1.3"),
            InstructionField("Public key type", "Keyset URL"),
            InstructionField("Public keyset", u.jwks),
            InstructionField("Initiate login URL", u.login),
            InstructionField("Redirection URI(s)", u.launch),
            InstructionField("Supports Deep Linking (Content-Item Message)", "ticked"),
            InstructionField("Content Selection URL", u.deep_link),
            InstructionField("IMS LTI Assignment and Grade Services", "Use this service for grade sync and column management"),
            InstructionField("IMS LTI Names and Role Provisioning", "Use this service to retrieve members' information as per "
                   "privacy settings"),
            InstructionField("Share launcher's name with tool", "Always"),
            InstructionField("Share launcher's email with tool", "Always"),
            InstructionField("Accept grades from the tool", "Delegate to teacher (or Always)"),
        ),
        then="Save, then open the tool's 'View configuration details' (list icon) for the values below.",
        bring_back=("Platform ID (issuer)", "Client ID", "Deployment ID", "Public keyset URL",
                    "Access token URL", "Authentication request URL"),
    )
    canvas = PlatformInstructions(
        platform="Canvas",
        where="Admin → Developer Keys → + Developer Key → + LTI Key (or 'Enter URL' with " + u.canvas_json + ")",
        fields=(
            InstructionField("Key Name / Title", CLIENT_NAME),
            InstructionField("Redirect URIs", u.launch),
            InstructionField("Target Link URI", u.launch),
            InstructionField("OpenID Connect Initiation Url", u.login),
            InstructionField("JWK Method", "Public JWK URL"),
            InstructionField("Public JWK URL", u.jwks),
            InstructionField("LTI Advantage Services", "line items (create/update and read), results, scores, "
                   "'retrieve user data associated with the context'"),
            InstructionField("Privacy level", "Public"),
            InstructionField("Placements", "Course Navigation; Link Selection and Assignment Selection with message "
                   "type LtiDeepLinkingRequest"),
        ),
        then="Save, switch the key ON (its number in the Details column is the client ID), then install it: "
        "Settings → Apps → View App Configurations → + App → By Client ID; the app's menu shows its Deployment ID.",
        bring_back=("Client ID (the developer key's number)", "Deployment ID",
                    "Issuer: https://canvas.instructure.com (cloud) or your Canvas URL (self-hosted)",
                    "Authentication URL: https://sso.canvaslms.com/api/lti/authorize_redirect",
                    "Token URL: https://sso.canvaslms.com/login/oauth2/token",
                    "Key set URL: https://sso.canvaslms.com/api/lti/security/jwks"),
    )
    return moodle, canvas


def instructions_text(settings: Settings) -> str:
    """`manual_instructions` as plain text for the command line."""
    u = tool_urls(settings)
    lines = [f"Tally at {u.base}", "",
             "Dynamic Registration (one paste): give the LMS this registration URL:", f"  {u.register}", ""]
    for p in manual_instructions(settings):
        lines.append(f"== {p.platform} by hand")
        lines.append(f"Where: {p.where}")
        width = max(len(f.label) for f in p.fields)
        lines.extend(f"  {f.label:<{width}}  {f.value}" for f in p.fields)
        lines.append(p.then)
        lines.append("Then give Tally: " + "; ".join(p.bring_back))
        lines.append("")
    lines.append("python -m tool platforms add --name … --issuer … --client-id … --deployment-id … "
                 "--auth-login-url … --auth-token-url … --key-set-url …")
    lines.append("(or the form on the admin page " + u.base + "/admin/register)")
    return "\n".join(lines)
