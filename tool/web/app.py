"""Application factory and the per-process services every request shares."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask, g, request
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from tool import logs
from tool.ags.http import make_session
from tool.config import PROJECT_ROOT, Settings, load_settings
from tool.db import is_retryable, make_engine, make_session_factory
from tool.lti.jwks import PlatformKeys
from tool.lti.keys import KeyStore, open_key_store

log = logging.getLogger("tool.web")


@dataclass
class Services:
    """Per-process singletons: settings, database, keys, HTTP. Nothing here is shared state
    another process needs (DESIGN.md: any process can serve any request)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keys: KeyStore
    platform_keys: PlatformKeys
    http: requests.Session
    session_secret: bytes = field(repr=False, default=b"")
    _ags: Any = field(repr=False, default=None)
    _ags_lock: threading.Lock = field(repr=False, default_factory=threading.Lock)

    def ags(self) -> Any:
        """The process's one AGS client (pooled connections, tokens kept in memory), made on first use."""
        with self._ags_lock:
            if self._ags is None:
                from tool.ags.client import AgsClient

                self._ags = AgsClient(settings=self.settings, session_factory=self.sessions, keys=self.keys)
            return self._ags

    def service_token(self, reg: Any, scopes: Any) -> str:
        """An access token of a registration covering `scopes`, shared like every AGS token."""
        return str(self.ags().access_token(reg, scopes))

    def close(self) -> None:
        """Release pooled database connections and HTTP sockets (tests, clean shutdown)."""
        if self._ags is not None:
            self._ags.close()
        self.engine.dispose()
        self.http.close()


def make_services(settings: Settings, *, engine: Engine | None = None) -> Services:
    """Build the services of one process from its settings."""
    engine = engine or make_engine(settings.resolved_database_url)
    http = make_session(settings, pool_size=20)  # JWKS, NRPS, registration: tool.ags.http's session
    sessions = make_session_factory(engine)
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        keys=open_key_store(settings, sessions),
        platform_keys=PlatformKeys(
            http=http,
            timeout=settings.http_timeout_seconds,
            default_max_age=settings.jwks_default_max_age,
            max_age_cap=settings.jwks_max_age_cap,
            refetch_interval=settings.jwks_refetch_interval,
        ),
        http=http,
        session_secret=settings.session_secret(),
    )


class TallyFlask(Flask):
    """Flask, plus one retry of a request whose transaction the database rolled back (deadlock,
    serialization failure) before anything of it was committed: the retry starts afresh."""

    def dispatch_request(self) -> Any:  # type: ignore[override]
        try:
            return super().dispatch_request()
        except DBAPIError as exc:
            if not is_retryable(exc) or g.get("db_committed"):
                raise
            logs.event(log, "request.retried", method=request.method, path=request.path,
                       error=type(exc.orig).__name__)
            db: Session | None = g.pop("db", None)
            if db is not None:
                db.rollback()
                db.close()
            # What failed again answers 503 with Retry-After (tool/web/errors.py).
            return super().dispatch_request()


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Flask:
    """Create the Tally web application."""
    settings = settings or (services.settings if services else load_settings())
    from tool.ops import guards

    logs.configure_from(settings)
    guards.enforce(settings)  # production refuses to start misconfigured (tool/ops/guards.py)
    services = services or make_services(settings)
    app = TallyFlask(
        "tool.web",
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "templates" / "static"),
        static_url_path="/static",
    )
    app.config.update(SECRET_KEY=services.session_secret, TEMPLATES_AUTO_RELOAD=False)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keys in the order we wrote them; cheaper too
    app.extensions["tally"] = services
    from tool.web import requests as inputs

    # Issue 11: bodies capped (413 body_too_large), ids in paths within PostgreSQL's integer (else
    # 404), no NUL or broken UTF-8 in a query or form (422): tool/web/requests.py.
    app.config["MAX_CONTENT_LENGTH"] = inputs.MAX_BODY_BYTES
    app.before_request(inputs.check_request)
    if settings.trusted_proxies:
        # Behind nginx: the client's address, scheme and host come from X-Forwarded-*, trusted
        # only from as many proxies as configured (a client could forge them otherwise).
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)  # type: ignore[method-assign]

    from tool.web import api, assessment_pages, assessments_api, errors, ledger_api, lti_views, openapi, pages, roster_api
    from tool.web import admin_views, deeplink_views, registration_views
    from tool.web import ops_views, sync_views

    app.register_blueprint(lti_views.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(roster_api.bp)
    app.register_blueprint(ledger_api.bp)
    app.register_blueprint(assessments_api.bp)
    app.register_blueprint(assessment_pages.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(registration_views.bp)
    app.register_blueprint(deeplink_views.bp)
    app.register_blueprint(admin_views.bp)
    app.register_blueprint(sync_views.bp)
    errors.register(app)
    from tool.web import security

    security.register(app)  # CSP with nonces, frame-ancestors, no-store, HSTS; `?st=` refused
    ops_views.register(app)  # request ids, request metrics, /healthz, /readyz, /metrics

    if settings.platforms:
        # Static registrations from config/*.toml are (re)imported at every start.
        from tool.lti.registry import import_static_platforms

        with services.sessions() as db:
            import_static_platforms(db, settings)
            db.commit()

    @app.teardown_request
    def _close_db(exc: BaseException | None) -> None:
        db: Session | None = g.pop("db", None)
        if db is not None:
            if exc is not None:
                db.rollback()
            db.close()

    @app.after_request
    def _security_headers(resp: Any) -> Any:
        # Nothing of a page (addresses, ids) leaks to other sites through Referer.
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        return resp

    return app


def get_services() -> Services:
    """The Services of the current app."""
    from flask import current_app

    return current_app.extensions["tally"]


def get_db() -> Session:
    """The request's database session (opened on first use, closed at teardown)."""
    db = g.get("db")
    if db is None:
        db = get_services().sessions()
        g.db = db
        # A request that committed once is not run again after a later deadlock (TallyFlask).
        event.listen(db, "after_commit", _committed)
    return db


def _committed(_session: Session) -> None:
    g.db_committed = True
