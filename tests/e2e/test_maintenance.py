"""Maintenance: purge by age, key pruning and the nightly roster refresh, on a schedule with jitter,
one runner at a time across machines (a lease in the database); each also a command."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from tool import cli, clock
from tool.ags.client import AgsClient
from tool.db import make_session_factory
from tool.lti.keys import KeyStore
from tool.lti.models import LaunchRecord, LoginState, Membership, Registration
from tool.maintenance import JOBS, Maintenance, first_run, next_run
from tool.ops.models import MaintenanceLease, RateLimit, WorkerHeartbeat
from tests.conftest import make_settings
from tests.e2e.conftest import Stack
from tests.e2e.delivery_kit import Klass

UTC = dt.timezone.utc


def maintenance(stack: Stack, *, owner: str = "host:1:aaa", keys: KeyStore | None = None,
                now: dt.datetime | None = None, rand: float = 0.5, **settings: Any) -> Maintenance:
    s = stack.settings.model_copy(update=settings) if settings else stack.settings
    sessions = make_session_factory(stack.engine)
    client = AgsClient(settings=s, session_factory=sessions, keys=keys or KeyStore(s.path(s.keys_dir)))
    return Maintenance(settings=s, sessions=sessions, client=client, owner=owner,
                       clock=(lambda: now) if now else clock.utcnow, rand=lambda: rand)


@pytest.mark.parametrize(("job", "now", "expected"), [
    ("purge", dt.datetime(2026, 12, 1, 10, 0, tzinfo=UTC), dt.datetime(2026, 12, 1, 11, 2, 30, tzinfo=UTC)),
    ("prune_keys", dt.datetime(2026, 12, 1, 23, 59, tzinfo=UTC), dt.datetime(2026, 12, 2, 1, 1, 30, tzinfo=UTC)),
    # The roster refresh: the next 03:00 UTC, plus the jitter.
    ("refresh_rosters", dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC), dt.datetime(2026, 12, 1, 3, 2, 30, tzinfo=UTC)),
    ("refresh_rosters", dt.datetime(2026, 12, 1, 3, 0, tzinfo=UTC), dt.datetime(2026, 12, 2, 3, 2, 30, tzinfo=UTC)),
    ("refresh_rosters", dt.datetime(2026, 12, 1, 22, 0, tzinfo=UTC), dt.datetime(2026, 12, 2, 3, 2, 30, tzinfo=UTC)),
])
def test_the_next_run_is_the_interval_or_the_roster_hour_plus_jitter(base_settings: Any, job: str,
                                                                     now: dt.datetime, expected: dt.datetime) -> None:
    settings = base_settings.model_copy(update={"maintenance_interval_seconds": 3600, "maintenance_jitter_seconds": 300,
                                                "roster_refresh_hour": 3})
    assert next_run(job, settings, now, lambda: 0.5) == expected


def test_a_new_installation_purges_soon_but_refreshes_rosters_only_at_night(base_settings: Any) -> None:
    now = dt.datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert first_run("purge", base_settings, now, lambda: 0.0) == now
    assert first_run("refresh_rosters", base_settings, now, lambda: 0.0).hour == base_settings.roster_refresh_hour


def test_purge_deletes_expired_states_old_launch_records_and_gone_workers_only(moodle: Stack) -> None:
    now = clock.utcnow()
    with moodle.session() as db:
        reg_id = db.scalar(select(Registration.id))
        db.add_all([LoginState(state="old", nonce="n", registration_id=reg_id, expires_at=now - dt.timedelta(seconds=1)),
                    LoginState(state="live", nonce="n", registration_id=reg_id, expires_at=now + dt.timedelta(minutes=5))])
        db.execute(insert(LaunchRecord), [
            {"at": now - dt.timedelta(days=91), "outcome": "refused", "code": "x", "reason": "", "extra": {}},
            {"at": now - dt.timedelta(days=89), "outcome": "accepted", "code": "ok", "reason": "", "extra": {}}])
        db.add_all([WorkerHeartbeat(name="gone", seen_at=now - dt.timedelta(days=2)),
                    WorkerHeartbeat(name="alive", seen_at=now)])
        db.add_all([RateLimit(key="lti_login:192.0.2.1", count=3, window_start=now - dt.timedelta(days=3), lockouts=0),
                    RateLimit(key="lti_login:192.0.2.2", count=3, window_start=now - dt.timedelta(hours=1), lockouts=0)])
        db.commit()
    run = maintenance(moodle).run("purge")
    assert run.outcome == "ok" and run.detail == {"login_states": 1, "launch_records": 1, "heartbeats": 1,
                                                  "rate_limits": 1}
    with moodle.session() as db:
        assert db.scalars(select(LoginState.state)).all() == ["live"]
        assert db.scalar(select(func.count()).select_from(LaunchRecord)) == 1
        assert db.scalars(select(WorkerHeartbeat.name)).all() == ["alive"]
        assert db.scalars(select(RateLimit.key)).all() == ["lti_login:192.0.2.2"]


def test_a_due_job_runs_on_one_machine_only(moodle: Stack) -> None:
    now = clock.utcnow()
    machines = [maintenance(moodle, owner=f"host{i}:1:x", now=now, rand=0.0) for i in range(4)]
    ran: list[list[str]] = [[] for _ in machines]
    barrier = threading.Barrier(len(machines))

    def tick(i: int) -> None:
        barrier.wait()
        ran[i] = [r.job for r in machines[i].tick()]

    threads = [threading.Thread(target=tick, args=(i,)) for i in range(len(machines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job in ("purge", "prune_keys"):
        assert sum(job in r for r in ran) == 1, ran
    assert not any("refresh_rosters" in r for r in ran)  # not before tonight's roster hour
    with moodle.session() as db:
        leases = {lease.job: lease for lease in db.scalars(select(MaintenanceLease))}
    assert set(leases) == set(JOBS)
    assert leases["purge"].owner is None and leases["purge"].last_outcome.startswith("ok")
    assert leases["purge"].next_run_at == now + dt.timedelta(seconds=moodle.settings.maintenance_interval_seconds)
    # Nothing is due again until then, on any machine.
    assert machines[0].tick() == [] and machines[1].tick() == []


def test_a_crashed_runners_lease_runs_out(moodle: Stack) -> None:
    now = clock.utcnow()
    crashed = maintenance(moodle, owner="dead:1:x", now=now, rand=0.0)
    assert crashed._claim("purge", now)  # took the job, then died before releasing it
    other = maintenance(moodle, owner="live:1:x", now=now, rand=0.0)
    assert [r.job for r in other.tick()] == ["prune_keys"]
    later = maintenance(moodle, owner="live:1:x", now=now + dt.timedelta(seconds=901), rand=0.0)
    assert "purge" in [r.job for r in later.tick()]


def test_key_pruning_removes_keys_past_their_grace(moodle: Stack, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys", reload_seconds=0)
    old = keys.generate()
    keys.rotate(publish_lead_seconds=0, retire_grace_seconds=60)
    clock.shift(61)
    run = maintenance(moodle, keys=keys).run("prune_keys")
    assert old is not None and run.detail == {"pruned": [old.kid]}


def test_the_nightly_refresh_syncs_the_roster_of_each_recently_launched_course(moodle: Stack) -> None:
    k = Klass(moodle)
    k.close()
    moodle.platform.add_students(2)  # enrolled in the LMS after the teacher's last sync
    with moodle.session() as db:
        before = db.scalar(select(func.count()).select_from(Membership))
    run = maintenance(moodle).run("refresh_rosters")
    assert run.outcome == "ok" and run.detail == {"courses": 1, "failed": 0}
    with moodle.session() as db:
        after = db.scalar(select(func.count()).select_from(Membership))
    assert after == before + 2
    # A course nobody launched within roster_refresh_active_days is left alone.
    idle = maintenance(moodle, now=clock.utcnow() + dt.timedelta(days=31))
    assert idle.run("refresh_rosters").detail == {"courses": 0, "failed": 0}


def test_a_failing_lms_fails_one_course_not_the_refresh(moodle: Stack) -> None:
    k = Klass(moodle)
    k.close()
    moodle.platform.faults.fail_next(1, status=500, body="Moodle database error", where="any")
    run = maintenance(moodle).run("refresh_rosters")
    assert run.outcome == "ok" and run.detail == {"courses": 0, "failed": 1}


def test_purge_is_a_command(moodle: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TOOL_DATABASE_URL", moodle.settings.database_url)
    monkeypatch.setenv("TOOL_KEYS_DIR", moodle.settings.keys_dir)
    with moodle.session() as db:
        reg_id = db.scalar(select(Registration.id))
        db.add(LoginState(state="old", nonce="n", registration_id=reg_id,
                          expires_at=clock.utcnow() - dt.timedelta(seconds=1)))
        db.commit()
    assert cli.main(["purge"]) == 0
    assert "deleted 1 expired login state(s)" in capsys.readouterr().out


def test_rosters_refresh_is_a_command(moodle: Stack, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    k = Klass(moodle)
    k.close()
    monkeypatch.setenv("TOOL_DATABASE_URL", moodle.settings.database_url)
    monkeypatch.setenv("TOOL_KEYS_DIR", moodle.settings.keys_dir)
    assert cli.main(["rosters", "refresh", "--course", str(k.course_id)]) == 0
    assert "refreshed the roster of 1 course(s); 0 failed" in capsys.readouterr().out


def test_maintenance_settings_are_validated(database_url: str, keys_dir: Path) -> None:
    from tool.errors import ConfigError

    with pytest.raises(ConfigError, match="roster_refresh_hour"):
        make_settings(database_url, keys_dir, roster_refresh_hour=24)
