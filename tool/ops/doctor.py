"""`python -m tool doctor`: every check an administrator would make, and what to fix.

It runs the production guard rails (as warnings outside production), the readiness checks,
and then, per registered platform, the three calls that fail most often in a new
installation: fetching the platform's JWKS, asking its token endpoint for an access token
(which makes the platform fetch *Tally's* JWKS), and a line-items GET for the latest
placement. Each problem comes with the fix; a Moodle that cannot reach Tally's JWKS
(private address or port blocked by Moodle's cURL security) is recognised by its words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TextIO

import requests

from tool import outbound
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from tool.config import Settings
from tool.lti.models import Course, Offering, Registration
from tool.lti.probe import probe_lineitems, probe_token
from tool.ops import guards
from tool.ops.health import readiness

# Moodle ≥ 4.1 (PHP 8) when its server could not download the tool's JWKS: the token endpoint
# fails inside fix_jwks_alg() with a TypeError. Its cause is almost always Moodle's own cURL
# security settings blocking the tool's private address or non-standard port.
MOODLE_JWKS_UNREACHABLE = re.compile(r"fix_jwks_alg\(\)|must be of type array, null given", re.IGNORECASE)
KID_INVALID = re.compile(r'\\?"kid\\?"\s+invalid|unknown kid|no matching key', re.IGNORECASE)
JWKS_MAX_AGE = 300  # what /.well-known/jwks.json tells platforms to cache it for


@dataclass(frozen=True)
class Result:
    """One check: where it belongs, its name, whether it passed (None: only information), what to fix."""

    section: str
    name: str
    ok: bool | None
    detail: str
    fix: str = ""


def moodle_curl_advice(settings: Settings) -> str:
    """What to change in Moodle when it cannot fetch Tally's JWKS."""
    jwks = settings.public_base_url + "/.well-known/jwks.json"
    return ("Moodle could not download Tally's public keys from " + jwks + ". Moodle's cURL security blocks "
            "private addresses and every port but 80 and 443 by default. In Moodle: Site administration → General "
            "→ Security → HTTP security: remove Tally's host or its network (e.g. 10.0.0.0/8, 172.16.0.0/12, "
            "192.168.0.0/16, 127.0.0.0/8) from 'cURL blocked hosts list', and add Tally's port (if not 443) to "
            "'cURL allowed ports list'. Then check on the Moodle server: curl " + jwks)


def _token_fix(settings: Settings, status: int | None, body: str, reason: str) -> str:
    words = f"{reason} {body}"
    if MOODLE_JWKS_UNREACHABLE.search(words):
        return moodle_curl_advice(settings)
    if KID_INVALID.search(words):
        return ("The platform does not know the key Tally signed with: it cached an older copy of Tally's JWKS or "
                "cannot fetch " + settings.public_base_url + "/.well-known/jwks.json. Check that the registration's "
                "public keyset URL is that URL, and that key_publish_lead_seconds is longer than the platform's "
                "cache time.")
    if status is None:
        return "Tally could not reach the token endpoint: check the registration's token URL and this machine's network."
    if status in (400, 401) and "client" in words.lower():
        return "The platform does not recognise the client ID, or the tool is not enabled there: check both."
    return "Read the platform's answer above; the admin console's Test services shows the same call."


def _jwks_check(http: requests.Session, url: str, timeout: float) -> Result:
    try:
        resp = outbound.fetch(http, "GET", url, timeout=timeout, headers={"Accept": "application/json"})
        keys = resp.json().get("keys", []) if resp.status_code == 200 else []
    except (requests.RequestException, ValueError, AttributeError) as exc:
        return Result("", "platform JWKS", False, f"{url}: {type(exc).__name__}: {exc}",
                      "Check the registration's public keyset URL and that Tally reaches the platform.")
    rsa = [k for k in keys if isinstance(k, dict) and k.get("kty") == "RSA" and k.get("kid")]
    if resp.status_code != 200 or not rsa:
        return Result("", "platform JWKS", False, f"{url}: HTTP {resp.status_code}, {len(rsa)} RSA key(s)",
                      "Check the registration's public keyset URL: it must answer a JWKS with the platform's RSA "
                      "keys (each with a kid); launches fail until it does.")
    return Result("", "platform JWKS", True, f"{url}: {len(rsa)} RSA key(s)")


def _platform(settings: Settings, db: Session, http: requests.Session, keys: Any, reg: Registration) -> list[Result]:
    section = f"platform {reg.name or reg.issuer} (issuer {reg.issuer}, client_id {reg.client_id})"
    timeout = settings.http_timeout_seconds
    jwks = _jwks_check(http, reg.key_set_url, timeout)
    out = [Result(section, jwks.name, jwks.ok, jwks.detail, jwks.fix)]
    offering = db.execute(
        select(Offering.title, Offering.ags_lineitems_url).join(Course, Course.id == Offering.course_id)
        .where(Course.registration_id == reg.id, Offering.ags_lineitems_url.is_not(None))
        .order_by(Offering.updated_at.desc()).limit(1)
    ).first()
    db.rollback()  # no transaction stays open while the platform is called
    values = {"client_id": reg.client_id, "auth_token_url": reg.auth_token_url, "auth_audience": reg.auth_audience}
    probe, token = probe_token(http, values, keys, timeout)
    answer = f"POST {probe.url}: " + (f"{probe.status} {probe.reason}" if probe.status else probe.reason)
    if token:
        out.append(Result(section, "access token", True, answer + " (granted)"))
    else:
        body = " ".join(probe.body.split())[:300]
        out.append(Result(section, "access token", False, f"{answer}: {body}",
                          _token_fix(settings, probe.status, probe.body, probe.reason)))
        return out
    if offering is None:
        out.append(Result(section, "line items", None, "no placement with grade services launched yet: nothing to GET"))
        return out
    items = probe_lineitems(http, offering.ags_lineitems_url, token, timeout)
    detail = f"GET {items.url}: " + (f"{items.status} {items.reason}" if items.status else items.reason)
    if items.ok:
        out.append(Result(section, "line items", True, detail + f" (placement {offering.title!r})"))
    else:
        out.append(Result(section, "line items", False, detail + ": " + " ".join(items.body.split())[:300],
                          "The token was granted but the line items call failed: check that the tool has the "
                          "grade services (AGS) enabled in the LMS for this course."))
    return out


def configuration(settings: Settings) -> list[Result]:
    """The guard rails and the settings that only make sense together."""
    section = f"configuration (TOOL_ENV={settings.env}, public URL {settings.public_base_url})"
    out = []
    production = settings.env == "production"
    allowed = {f.code for f in guards.findings(settings)} - {f.code for f in guards.refusals(settings)}
    for f in guards.findings(settings):
        if production and f.code in allowed:
            out.append(Result(section, f.code, None, f"{f.problem} (allowed by {f.override})"))
        else:
            label = "refused in production" if production else "fine for development, refused in production"
            out.append(Result(section, f.code, False if production else None, f"{f.problem} ({label})", f.fix))
    if not guards.findings(settings):
        out.append(Result(section, "guard rails", True, "none tripped"))
    needed = JWKS_MAX_AGE + settings.key_reload_seconds
    if settings.key_publish_lead_seconds <= needed:
        out.append(Result(section, "key rotation", False,
                          f"key_publish_lead_seconds ({settings.key_publish_lead_seconds}) is not longer than the "
                          f"JWKS cache time plus key_reload_seconds ({needed:g})",
                          "Raise key_publish_lead_seconds, or platforms refuse the new key for a while after a rotation."))
    return out


def diagnose(settings: Settings, sessions: sessionmaker[Session], keys: Any, http: requests.Session) -> list[Result]:
    """Every check, in order."""
    results = configuration(settings)
    section = "installation"
    checks = readiness(sessions, settings, keys)
    fixes = {"database": "Check database_url and that the database server is running and reachable.",
             "migrations": "Run `python -m tool db upgrade` once per release.",
             "signing_key": "Run `python -m tool keys generate`.",
             "workers": "Start `python -m tool worker` (see deploy/tally-worker.service)."}
    for c in checks:
        results.append(Result(section, c.name, c.ok, c.detail, "" if c.ok else fixes.get(c.name, "")))
    if not checks[0].ok:
        return results
    own = settings.public_base_url + "/.well-known/jwks.json"
    try:
        # Tally's own URL (a setting, not a URL someone handed us): a plain request, not the guarded
        # session, which would refuse it when the proxy in front sits on a private address.
        resp = requests.get(own, timeout=settings.http_timeout_seconds)
        ok = resp.status_code == 200 and bool(resp.json().get("keys"))
        results.append(Result(section, "own JWKS", ok, f"{own}: HTTP {resp.status_code}",
                              "" if ok else "Tally's public URL does not serve its keys: check public_base_url and the proxy."))
    except (requests.RequestException, ValueError) as exc:
        results.append(Result(section, "own JWKS", None, f"{own} is not reachable from this machine ({type(exc).__name__}); "
                              "platforms must reach it: check from the LMS server"))
    try:
        with sessions() as db:
            regs = list(db.execute(select(Registration).order_by(Registration.id)).scalars())
            db.rollback()
            if not regs:
                results.append(Result(section, "platforms", None, "no platform registered yet (see README: Registering Tally)"))
            for reg in regs:
                results.extend(_platform(settings, db, http, keys, reg))
    except SQLAlchemyError as exc:
        results.append(Result(section, "platforms", False, f"could not list registrations: {type(exc).__name__}"))
    return results


def report(results: list[Result], out: TextIO) -> int:
    """Print the results grouped by section; 1 when any check failed, else 0."""
    section = None
    for r in results:
        if r.section != section:
            section = r.section
            print(f"\n{section}", file=out)
        mark = {True: "ok  ", False: "FAIL", None: "info"}[r.ok]
        print(f"  [{mark}] {r.name}: {r.detail}", file=out)
        if r.fix and r.ok is not True:
            print(f"         fix: {r.fix}", file=out)
    failed = [r for r in results if r.ok is False]
    print(f"\n{len(failed)} problem(s) found." if failed else "\nNo problems found.", file=out)
    return 1 if failed else 0


def run(settings: Settings, out: TextIO) -> int:
    """The whole doctor on the settings' database, keys and network; its exit code."""
    from tool.ags.http import make_session
    from tool.db import make_engine, make_session_factory
    from tool.lti.keys import open_key_store

    engine = make_engine(settings.resolved_database_url)
    http = make_session(settings)
    try:
        sessions = make_session_factory(engine)
        try:
            keys = open_key_store(settings, sessions)
        except Exception as exc:  # noqa: BLE001  (a missing secret: the guard rails say so, go on)
            from tool.lti.keys import KeyStore

            keys = KeyStore(settings.path(settings.keys_dir))
            print(f"(key store unavailable: {exc}; reading {settings.keys_dir})", file=out)
        return report(diagnose(settings, sessions, keys, http), out)
    finally:
        http.close()
        engine.dispose()
