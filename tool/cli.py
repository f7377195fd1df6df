"""The command line: `python -m tool <command>`.

    db upgrade | current              apply / show schema migrations
    keys generate | rotate | list | prune | import | export
    platforms add | list | remove | activate | disable | instructions | invite
    admin hash-password               a hash for the admin console's local password
    run                               tool + sandbox LMS on loopback (the embedded default)
    worker [--once]                   deliver scores and run maintenance until Ctrl-C (production: one or more)
    purge                             delete expired login states, old launch records, old heartbeats
    rosters refresh [--course ID]     read course rosters from the LMS now (the worker does it nightly)
    doctor                            check the configuration and every platform; say what to fix
    sync --offering ID                compute an offering's scores again and deliver them now
    verify --offering ID              check totals, grades and scores against what they come from (exit 1)
    serve                             the tool alone (use gunicorn `tool.web.wsgi:app` in production)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

from sqlalchemy.orm import Session

from tool.config import Settings, load_settings
from tool.errors import ToolError
from tool.logs import event

log = logging.getLogger("tool.cli")


def _settings() -> Settings:
    return load_settings()


@contextlib.contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """A session on a short-lived engine, disposed afterwards (no pooled connection left open)."""
    from tool.db import make_engine, make_session_factory

    engine = make_engine(settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as db:
            yield db
    finally:
        engine.dispose()


# -- db ----------------------------------------------------------------------------------


def cmd_db(args: argparse.Namespace) -> int:
    from tool import migrate

    settings = _settings()
    if args.action == "upgrade":
        migrate.upgrade(settings)
        print(f"database is up to date ({_redact(settings.resolved_database_url)})")
    else:
        migrate.current(settings)
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- keys --------------------------------------------------------------------------------


@contextlib.contextmanager
def _key_store(settings: Settings) -> Iterator[Any]:
    """The settings' key store (the database's on a short-lived engine, or keys_dir)."""
    from tool.db import make_engine, make_session_factory
    from tool.lti.keys import open_key_store

    if settings.key_store == "directory":
        yield open_key_store(settings)
        return
    engine = make_engine(settings.resolved_database_url)
    try:
        yield open_key_store(settings, make_session_factory(engine))
    finally:
        engine.dispose()


def generate_keys(settings: Settings) -> list[str]:
    """The session secret and a signing key, if missing (in the database, keys/ is imported first)."""
    from tool.lti.keys import KeyStore, ensure_session_secret

    said = []
    if not settings.secret_key and ensure_session_secret(settings.path(settings.secret_key_file)):
        said.append(f"created session secret {settings.secret_key_file}")
    with _key_store(settings) as store:
        directory = settings.path(settings.keys_dir)
        if settings.key_store == "database" and not store.all() and (directory / "keys.json").exists():
            # An installation that kept its keys in keys/ moves them into the database on upgrade.
            imported = store.import_keys(KeyStore(directory).all())
            said.append(f"imported {len(imported)} key(s) from {directory} into the database")
        key = store.generate()
        if key is not None:
            event(log, "keys.generated", kid=key.kid, store=settings.key_store)
        said.append(f"created signing key {key.kid}" if key else "a signing key exists already")
    return said


def cmd_keys(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.action == "generate":
        for line in generate_keys(settings):
            print(line)
        return 0
    with _key_store(settings) as store:
        return _keys_action(args, settings, store)


def _keys_action(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    from tool.clock import utcnow
    from tool.lti.keys import KeyStore

    if args.action == "import":
        source = Path(args.directory) if args.directory else settings.path(settings.keys_dir)
        added = store.import_keys(KeyStore(source).all())
        event(log, "keys.imported", kids=added, source=str(source))
        print(f"imported {len(added)} key(s) from {source}" + (": " + ", ".join(added) if added else ""))
    elif args.action == "export":
        from tool.lti.keys import DirectoryKeys

        if not args.directory:
            print("error: keys export needs --dir (a directory to write the PEM files and keys.json into)",
                  file=sys.stderr)
            return 2
        target = DirectoryKeys(Path(args.directory))
        for k in store.all():
            target.add(k, retire_current_at=None)
        print(f"exported {len(store.all())} key(s) to {args.directory} (private keys unencrypted: keep it private)")
    elif args.action == "rotate":
        lead = settings.key_publish_lead_seconds if args.lead is None else args.lead
        grace = settings.key_retire_grace_seconds if args.grace is None else args.grace
        key = store.rotate(publish_lead_seconds=lead, retire_grace_seconds=grace)
        event(log, "keys.rotated", kid=key.kid, activates_at=key.activates_at.isoformat(), lead_seconds=lead,
              grace_seconds=grace, store=settings.key_store)
        # Published now, signing only after the lead: platforms caching our JWKS learn the key first.
        print(f"published key {key.kid} in the JWKS now; it signs from "
              f"{key.activates_at.isoformat(timespec='seconds')} (in {lead} s), "
              f"older keys leave the JWKS {grace} s after that; `keys prune` then deletes them")
    elif args.action == "prune":
        gone = store.prune()
        event(log, "keys.pruned", kids=gone, store=settings.key_store)
        print("removed " + (", ".join(gone) if gone else "nothing"))
    else:
        now = utcnow()
        keys = store.all()
        if not keys:
            print("no keys; run `python -m tool keys generate`")
            return 1
        signing = store.signing_key().kid if any(k.activates_at <= now for k in keys) else None
        print(f"{'kid':<45} {'state':<40} created")
        for k in keys:
            print(f"{k.kid:<45} {k.state(now, signing):<40} {k.created_at.isoformat(timespec='seconds')}")
    return 0


# -- platforms ---------------------------------------------------------------------------


def cmd_platforms(args: argparse.Namespace) -> int:
    from tool.lti import registry

    settings = _settings()
    if args.action == "instructions":
        from tool.lti.dynreg import instructions_text

        print(instructions_text(settings))
        return 0
    if args.action == "invite":
        return _invite(settings, args)
    with _session(settings) as db:
        if args.action == "add":
            reg = registry.add_registration(
                db, issuer=args.issuer, client_id=args.client_id, auth_login_url=args.auth_login_url,
                auth_token_url=args.auth_token_url, key_set_url=args.key_set_url, auth_audience=args.auth_audience,
                name=args.name or "", deployment_ids=args.deployment_id or [], source="cli",
            )
            db.commit()
            event(log, "registration.saved", platform=reg.issuer, client_id=reg.client_id, source="cli",
                  deployment_ids=[d.deployment_id for d in reg.deployments])
            deps = ", ".join(d.deployment_id for d in reg.deployments) or "none yet"
            print(f"registered {reg.issuer} client_id={reg.client_id} (deployments: {deps})")
        elif args.action == "remove":
            registry.remove_registration(db, issuer=args.issuer, client_id=args.client_id)
            db.commit()
            event(log, "registration.removed", platform=args.issuer, client_id=args.client_id, by="cli")
            print(f"removed {args.issuer} client_id={args.client_id}")
        elif args.action in ("activate", "disable"):
            status = "active" if args.action == "activate" else "disabled"
            registry.set_deployment_status(db, issuer=args.issuer, client_id=args.client_id,
                                           deployment_id=args.deployment_id, status=status)
            db.commit()
            event(log, "deployment.status_changed", platform=args.issuer, client_id=args.client_id,
                  deployment_id=args.deployment_id, status=status, by="cli")
            print(f"deployment {args.deployment_id} of {args.issuer} client_id={args.client_id} is {status}")
        else:
            regs = registry.list_registrations(db)
            if not regs:
                print("no platforms registered")
            for reg in regs:
                print(f"{reg.name or reg.issuer}\n  issuer        {reg.issuer}\n  client_id     {reg.client_id}\n"
                      f"  login         {reg.auth_login_url}\n  token         {reg.auth_token_url}\n"
                      f"  jwks          {reg.key_set_url}\n  source        {reg.source}")
                for d in reg.deployments:
                    print(f"  deployment    {d.deployment_id} ({d.status})")
    return 0


def _invite(settings: Settings, args: argparse.Namespace) -> int:
    """Print a one-time Dynamic Registration URL (tool/lti/invitations.py)."""
    from tool.lti import invitations

    seconds = invitations.parse_expiry(args.expires) if args.expires else settings.invitation_ttl_seconds
    with _session(settings) as db:
        made = invitations.create_invitation(db, settings, name=args.name or "", expires_in_seconds=seconds,
                                             created_by="cli")
        db.commit()
    event(log, "invitation.created", invitation_id=made.id, invitation_name=made.name, expires_at=made.expires_at.isoformat(),
          by="cli")
    print("Paste this registration URL into the LMS (Moodle: Manage tools → Tool URL… → Add LTI Advantage;")
    print("Canvas: Developer Keys → + Developer Key → + LTI Registration). It registers one platform, once:")
    print()
    print(f"  {made.url}")
    print()
    named = f" as {made.name!r}" if made.name else ""
    print(f"Valid for {invitations.describe_lifetime(seconds)}{named} (expires {made.expires_at:%Y-%m-%d %H:%M} UTC). "
          "Tally keeps only a fingerprint: this is the only copy.")
    return 0


# -- admin -------------------------------------------------------------------------------


def cmd_admin(args: argparse.Namespace) -> int:
    import getpass

    from tool.web.admin_auth import hash_password

    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("Admin password: ")
    if len(password) < 12:
        print("error: use at least 12 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    print("put it in config/local.toml as admin_password_hash = \"…\" (or TOOL_ADMIN_PASSWORD_HASH)", file=sys.stderr)
    return 0


# -- delivery ----------------------------------------------------------------------------


def _stop_on_signals(stop: threading.Event) -> None:
    """Ctrl-C / SIGTERM finish the current step, then stop; a second Ctrl-C stops at once."""

    def handler(*_: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _maintenance(settings: Settings, worker: Any) -> Any:
    """The installation's maintenance jobs, run under this worker's name."""
    from tool.maintenance import Maintenance

    return Maintenance(settings=settings, sessions=worker.sessions, client=worker.client, owner=worker.name)


def cmd_worker(args: argparse.Namespace) -> int:
    from tool.delivery.reporting import describe
    from tool.delivery.worker import make_worker
    from tool.maintenance import Housekeeping, worker_heartbeat
    from tool.ops import guards

    settings = _settings()
    guards.enforce(settings)
    res = make_worker(settings)
    try:
        if args.once:
            print(f"delivered: {describe(res.worker.drain())}")
            return 0
        if settings.worker_metrics_port:
            from prometheus_client import start_http_server

            start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
        beat = worker_heartbeat(settings, res.worker.sessions, res.worker.name)
        house = Housekeeping(_maintenance(settings, res.worker)).start() if settings.maintenance_enabled else None
        stop = threading.Event()
        _stop_on_signals(stop)
        print(f"delivery worker {res.worker.name} running; Ctrl-C stops it after the current step", flush=True)
        try:
            res.worker.run(stop, heartbeat=beat.beat)
        finally:
            if house is not None:
                house.stop()
            beat.stop()
        print("stopped")
    finally:
        res.close()
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from tool.delivery.worker import make_worker

    settings = _settings()
    res = make_worker(settings, name="cli-purge")
    try:
        run = _maintenance(settings, res.worker).run("purge")
    finally:
        res.close()
    if run.outcome != "ok":
        print(f"error: purge failed: {run.detail.get('error')}", file=sys.stderr)
        return 1
    d = run.detail
    print(f"deleted {d['login_states']} expired login state(s), {d['launch_records']} launch record(s) older than "
          f"{settings.launch_record_retention_days} days, {d['heartbeats']} old worker heartbeat(s)")
    return 0


def cmd_rosters(args: argparse.Namespace) -> int:
    from tool.clock import utcnow
    from tool.delivery.worker import make_worker
    from tool.maintenance import RosterServices, refresh_rosters

    settings = _settings()
    res = make_worker(settings, name="cli-rosters")
    try:
        w = res.worker
        services = RosterServices(settings, w.sessions, w.client)
        result = refresh_rosters(services, now=utcnow(), course_ids=[args.course] if args.course else None)
    finally:
        res.close()
    print(f"refreshed the roster of {result['courses']} course(s); {result['failed']} failed (see the log)")
    return 1 if result["failed"] else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from tool.ops import doctor

    return doctor.run(_settings(), sys.stdout)


def cmd_sync(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tool.clock import utcnow
    from tool.delivery import schedule, status
    from tool.delivery.queue import due_count, force_due
    from tool.delivery.worker import StepResult, make_worker

    settings = _settings()
    res = make_worker(settings)
    try:
        with res.worker.sessions() as db:
            status.require_delivery(status.get_offering(db, args.offering))
            changed = schedule.reconcile_offering(db, offering_id=args.offering)
            if args.retry_failed:
                status.retry_failed(db, offering_id=args.offering, now=utcnow())
            force_due(db, offering_id=args.offering, now=utcnow())
            todo = due_count(db, offering_id=args.offering, now=utcnow())
            db.commit()
        print(f"offering {args.offering}: {changed} scores changed since the last sync, {todo} to send")
        with tqdm(total=todo, unit="score", desc="delivering", disable=args.quiet) as bar:
            def step(result: StepResult) -> None:
                bar.update(result.sent + result.held)

            total = res.worker.drain(offering_id=args.offering, on_step=step)
        with res.worker.sessions() as db:
            counts = status.counts_by_state(db, offering_id=args.offering)
        print(f"sent {total.sent}: accepted {total.accepted}, to retry {total.retrying}, waiting {total.waiting}, "
              f"failed {total.failed}, superseded {total.superseded}")
        print("now " + ", ".join(f"{state} {n}" for state, n in counts.items()))
        return 1 if counts["failed"] else 0
    finally:
        res.close()


def cmd_verify(args: argparse.Namespace) -> int:
    from tool.verify import verify_offering

    settings = _settings()
    worst = 0
    with _session(settings) as db:
        for offering_id in args.offering:
            report = verify_offering(db, offering_id=offering_id)
            db.rollback()
            print(report.summary())
            for difference in report.differences:
                print("  " + difference.line())
            print(f"  {len(report.differences)} differences" if report.differences else "  no difference")
            worst = max(worst, 0 if report.ok else 1)
    return worst


# -- run / serve -------------------------------------------------------------------------


def prepare(settings: Settings) -> None:
    """Migrate, make keys if missing, import static platforms: everything `run` needs first."""
    from tool import migrate
    from tool.lti.registry import import_static_platforms

    migrate.upgrade(settings)
    generate_keys(settings)
    with _session(settings) as db:
        import_static_platforms(db, settings)
        db.commit()


def cmd_run(args: argparse.Namespace) -> int:
    from tool.serve import ServerThread
    from tool.web import create_app

    settings = _settings()
    prepare(settings)
    tool_server = ServerThread(create_app(settings), host=settings.host, port=settings.port)
    servers = [tool_server]
    if settings.sandbox_enabled and not args.no_sandbox:
        from tool.stack import make_sandbox, register_platform

        sandbox = make_sandbox(settings, base_url=settings.sandbox_base_url,
                               key_path=settings.path("var/sandbox-platform.pem"))
        with _session(settings) as db:
            register_platform(db, sandbox.extensions["sandbox"])
            db.commit()
        servers.append(ServerThread(sandbox, host=settings.host, port=settings.sandbox_port))
    for s in servers:
        s.start()
    delivery = None
    house = None
    if settings.delivery_worker_in_process:
        # The embedded default delivers scores from this process; production runs `worker`s.
        from tool.delivery.worker import WorkerThread, make_worker

        from tool.maintenance import Housekeeping, worker_heartbeat

        delivery = make_worker(settings)
        beat = worker_heartbeat(settings, delivery.worker.sessions, delivery.worker.name)
        delivery_thread = WorkerThread(delivery.worker, heartbeat=beat.beat).start()
        house = Housekeeping(_maintenance(settings, delivery.worker)).start() if settings.maintenance_enabled else None
    print(f"Tally        {settings.public_base_url}")
    if len(servers) > 1:
        print(f"Sandbox LMS  {servers[1].url}   <- open this and launch as a teacher or a student")
    print("Press Ctrl-C to stop.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    print("\nstopping…", flush=True)
    if delivery is not None:
        if house is not None:
            house.stop()
        delivery_thread.stop()
        beat.stop()
        delivery.close()
    for s in reversed(servers):
        s.stop()
    print("stopped")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from tool.web import create_app

    settings = _settings()
    create_app(settings).run(host=settings.host, port=settings.port, threaded=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m tool`."""
    p = argparse.ArgumentParser(prog="python -m tool", description="Tally, an LTI 1.3 grade tool")
    sub = p.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade", "current"])
    db.set_defaults(func=cmd_db)

    keys = sub.add_parser("keys", help="the tool's RSA keys")
    keys.add_argument("action", choices=["generate", "rotate", "list", "prune", "import", "export"])
    keys.add_argument("--dir", dest="directory",
                      help="import: the directory to read (default keys_dir); export: where to write")
    keys.add_argument("--lead", type=int, help="rotate: seconds the new key is published before it signs")
    keys.add_argument("--grace", type=int, help="rotate: seconds old keys stay published after that")
    keys.set_defaults(func=cmd_keys)

    plat = sub.add_parser("platforms", help="LMS registrations and deployments")
    psub = plat.add_subparsers(dest="action", required=True)
    add = psub.add_parser("add", help="register an LMS (or update a registration)")
    add.add_argument("--issuer", required=True)
    add.add_argument("--client-id", required=True)
    add.add_argument("--auth-login-url", required=True, help="the platform's OIDC authentication URL")
    add.add_argument("--auth-token-url", required=True, help="the platform's OAuth2 token URL")
    add.add_argument("--key-set-url", required=True, help="the platform's public keyset (JWKS) URL")
    add.add_argument("--auth-audience", help="token audience when it differs from the token URL")
    add.add_argument("--deployment-id", action="append", help="an active deployment (repeatable)")
    add.add_argument("--name", help="a name for people (e.g. 'University Moodle')")
    psub.add_parser("list", help="list registrations and their deployments")
    psub.add_parser("instructions", help="what to type into Moodle and Canvas to register Tally by hand")
    invite = psub.add_parser("invite", help="print a one-time Dynamic Registration URL to paste into the LMS")
    invite.add_argument("--name", help="the registration's name (default: what the LMS calls itself)")
    invite.add_argument("--expires", help="how long it stays valid: 90m, 12h, 7d (default), 2w, or a date-time")
    for name in ("remove",):
        r = psub.add_parser(name, help="delete a registration and everything launched through it")
        r.add_argument("--issuer", required=True)
        r.add_argument("--client-id", required=True)
    for name, text in (("activate", "let launches from a deployment pass"), ("disable", "refuse a deployment")):
        a = psub.add_parser(name, help=text)
        a.add_argument("--issuer", required=True)
        a.add_argument("--client-id", required=True)
        a.add_argument("--deployment-id", required=True)
    plat.set_defaults(func=cmd_platforms)

    admin = sub.add_parser("admin", help="the admin console's local login")
    admin.add_argument("action", choices=["hash-password"])
    admin.add_argument("--stdin", action="store_true", help="read the password from standard input")
    admin.set_defaults(func=cmd_admin)

    worker = sub.add_parser("worker", help="deliver scores to the LMS until Ctrl-C")
    worker.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    worker.set_defaults(func=cmd_worker)

    purge = sub.add_parser("purge", help="delete expired login states, old launch records and heartbeats now")
    purge.set_defaults(func=cmd_purge)

    rosters = sub.add_parser("rosters", help="refresh course rosters from the LMS (NRPS) now")
    rosters.add_argument("action", choices=["refresh"])
    rosters.add_argument("--course", type=int, help="one course (default: every course launched recently)")
    rosters.set_defaults(func=cmd_rosters)

    doctor = sub.add_parser("doctor", help="check the configuration and every registered platform; say what to fix")
    doctor.set_defaults(func=cmd_doctor)

    sync = sub.add_parser("sync", help="compute an offering's scores again and deliver them now")
    sync.add_argument("--offering", type=int, required=True, help="the offering id (see its sync page)")
    sync.add_argument("--retry-failed", action="store_true", help="send failed scores again too")
    sync.add_argument("--quiet", action="store_true", help="no progress bar")
    sync.set_defaults(func=cmd_sync)

    verify = sub.add_parser("verify", help="check an offering's totals, grades and scores against what they "
                                           "come from; exit 1 on any difference")
    verify.add_argument("--offering", type=int, action="append", required=True,
                        help="the offering id (repeatable)")
    verify.set_defaults(func=cmd_verify)

    run = sub.add_parser("run", help="start the tool and the sandbox LMS (the embedded default)")
    run.add_argument("--no-sandbox", action="store_true")
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="start the tool alone (development server)")
    serve.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; ToolErrors become one readable line and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        from tool.logs import configure_from

        configure_from(load_settings())
    except ToolError:
        pass  # the command itself reports the bad setting
    try:
        return int(args.func(args) or 0)
    except ToolError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
