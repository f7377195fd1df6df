"""Access tokens: one per (platform, scopes) for the whole installation, renewed before expiry,
fetched once at a time, fetched again once when the platform answers 401. Against the sandbox
LMS over real HTTP; the token requests are counted by the sandbox's token endpoint."""

from __future__ import annotations

import secrets
import threading
from typing import Iterator

import pytest
from sqlalchemy import func, select

from tool import clock
from tool.ags.models import ServiceToken
from tool.ags.tokens import (
    DatabaseTokenStore,
    RedisTokenStore,
    TokenKey,
    make_token_store,
)
from tool.lti.claims import SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_SCORE
from tests.e2e.ags_support import Ags, graded
from tests.e2e.conftest import NewStack, Stack


@pytest.fixture(params=["moodle", "canvas"])
def stack(request: pytest.FixtureRequest, new_stack: NewStack) -> Stack:
    """Tool + sandbox in each mode; the sandbox keeps connections alive (the `ags` fixture uses it)."""
    return new_stack(request.param, keepalive=True)


def post(ags: Ags, client=None, *, student: int = 0, points: int = 5) -> str:  # type: ignore[no-untyped-def]
    """Post one score (no explicit timestamp: these tests are about tokens, not Moodle's seconds)."""
    outcome = (client or ags.client).post_score(ags.reg, ags.lineitem_url(), graded(ags.student(student), points))
    return outcome.kind


def shift(ags: Ags, seconds: float) -> None:
    """Move the tool's clock and the platform's together (the platform checks assertion times too)."""
    clock.shift(seconds)
    ags.platform.shift_clock(seconds)


def test_one_token_serves_every_score_of_a_process(ags: Ags) -> None:
    for n in range(8):
        assert post(ags, student=n) == "accepted"

    assert ags.platform.token_requests == 1
    assert ags.client.token_requests == 1


def test_tokens_for_other_scopes_are_other_tokens(ags: Ags) -> None:
    post(ags)
    ags.client.list_lineitems(ags.reg, ags.platform.paths.lineitems_url)
    ags.client.list_lineitems(ags.reg, ags.platform.paths.lineitems_url)

    assert ags.platform.token_requests == 2


def test_the_key_is_issuer_client_token_url_and_sorted_scopes(ags: Ags) -> None:
    one = TokenKey.of(ags.reg, [SCOPE_SCORE, SCOPE_LINEITEM, SCOPE_SCORE])
    same = TokenKey.of(ags.reg, [SCOPE_LINEITEM, SCOPE_SCORE])
    other = TokenKey.of(ags.reg, [SCOPE_LINEITEM_READONLY])

    assert one == same and one.digest == same.digest
    assert one.scopes == tuple(sorted([SCOPE_SCORE, SCOPE_LINEITEM]))
    assert other.digest != one.digest
    assert (one.issuer, one.client_id, one.token_url) == (ags.reg.issuer, ags.reg.client_id, ags.reg.auth_token_url)


def test_a_second_process_uses_the_token_the_first_stored_in_the_database(ags: Ags) -> None:
    post(ags)
    second = ags.another_client()

    assert post(ags, second, student=1) == "accepted"

    assert ags.platform.token_requests == 1
    assert second.token_requests == 0
    with ags.stack.session() as db:
        assert db.scalar(select(func.count()).select_from(ServiceToken)) == 1


def test_a_token_is_renewed_shortly_before_it_expires_not_earlier(ags: Ags) -> None:
    post(ags)
    shift(ags, 3600 - 120)  # two minutes left of the sandbox's hour

    assert post(ags, student=1) == "accepted"
    assert ags.platform.token_requests == 1

    shift(ags, 90)  # thirty seconds left: renew now rather than fail mid-batch
    assert post(ags, student=2) == "accepted"
    assert ags.platform.token_requests == 2
    assert ags.platform.tokens.issued == 2


def test_a_second_process_renews_a_stale_stored_token_and_the_first_then_uses_that_one(ags: Ags) -> None:
    post(ags)
    shift(ags, 3600 - 30)
    second = ags.another_client()

    assert post(ags, second, student=1) == "accepted"  # the stored token is due for renewal: one fetch
    assert post(ags, student=2) == "accepted"  # this process's memory is stale too; the database has the new one

    assert ags.platform.token_requests == 2
    assert second.token_requests == 1 and ags.client.token_requests == 1


def test_a_401_fetches_a_new_token_once_and_the_post_goes_through(ags: Ags) -> None:
    post(ags)
    ags.platform.tokens.expire_all()  # the platform forgets tokens before their time (a restart)

    assert post(ags, student=1) == "accepted"

    assert ags.platform.token_requests == 2


def test_a_second_401_in_a_row_is_a_failure_not_a_loop(ags: Ags) -> None:
    post(ags)
    ags.platform.faults.fail_next(2, 401, reason="Invalid access token")

    outcome = ags.client.post_score(ags.reg, ags.lineitem_url(), graded(ags.student(1), 5))

    assert (outcome.kind, outcome.status) == ("failed", 401)
    assert outcome.message == "Invalid access token"
    assert ags.platform.token_requests == 2


def test_other_processes_use_the_token_renewed_after_a_401(ags: Ags) -> None:
    post(ags)
    second = ags.another_client()
    post(ags, second, student=1)
    ags.platform.tokens.expire_all()

    post(ags, student=2)  # 401, renew
    post(ags, second, student=3)  # 401 with the old token; the database already has the new one

    assert ags.platform.token_requests == 2


def test_threads_of_one_process_wait_for_one_fetch(ags: Ags) -> None:
    key = TokenKey.of(ags.reg, [SCOPE_SCORE])
    ags.client._key(ags.reg, key.scopes)  # the client learns which registration the key belongs to
    barrier = threading.Barrier(12)
    tokens: list[str] = []

    def grab() -> None:
        barrier.wait()
        tokens.append(ags.client.tokens.get(key))

    threads = [threading.Thread(target=grab) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(tokens) == 12 and len(set(tokens)) == 1
    assert ags.platform.token_requests == 1


def test_processes_wait_for_one_fetch_through_the_database_lease(ags: Ags) -> None:
    clients = [ags.client, *(ags.another_client() for _ in range(3))]
    barrier = threading.Barrier(len(clients) * 3)
    kinds: list[str] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        client = clients[n % len(clients)]
        barrier.wait()
        kind = post(ags, client, student=n % 8)
        with lock:
            kinds.append(kind)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(clients) * 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert ags.platform.token_requests == 1
    assert sum(c.token_requests for c in clients) == 1
    assert all(k in ("accepted", "superseded") for k in kinds)


def test_a_failed_fetch_frees_the_lease_for_the_next_try(ags: Ags) -> None:
    ags.platform.faults.fail_next(1, 503, where="token")
    assert post(ags) == "retry"

    assert post(ags, student=1) == "accepted"  # no waiting for a lease nobody holds

    assert ags.platform.token_requests == 2
    with ags.stack.session() as db:
        row = db.scalars(select(ServiceToken)).one()
        assert row.lease_owner is None and row.access_token


def test_the_database_is_the_default_store(ags: Ags) -> None:
    assert isinstance(make_token_store(ags.stack.settings, ags.client.tokens.store.sessions), DatabaseTokenStore)  # type: ignore[attr-defined]


# -- Redis ---------------------------------------------------------------------------------------


@pytest.fixture
def redis_client() -> Iterator[object]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client) -> Iterator[str]:  # type: ignore[no-untyped-def]
    prefix = f"tally-test-{secrets.token_hex(6)}:"
    yield prefix
    for name in redis_client.scan_iter(prefix + "*"):
        redis_client.delete(name)


def test_processes_share_a_token_through_redis(ags: Ags, redis_client, redis_prefix: str) -> None:  # type: ignore[no-untyped-def]
    first = ags.another_client(token_store=RedisTokenStore(redis_client, prefix=redis_prefix))
    second = ags.another_client(token_store=RedisTokenStore(redis_client, prefix=redis_prefix))

    assert post(ags, first) == "accepted"
    assert post(ags, second, student=1) == "accepted"

    assert ags.platform.token_requests == 1
    assert second.token_requests == 0
    assert any(True for _ in redis_client.scan_iter(redis_prefix + "*"))
    with ags.stack.session() as db:
        assert db.scalar(select(func.count()).select_from(ServiceToken)) == 0


def test_redis_single_flight_and_renewal_after_a_401(ags: Ags, redis_client, redis_prefix: str) -> None:  # type: ignore[no-untyped-def]
    clients = [ags.another_client(token_store=RedisTokenStore(redis_client, prefix=redis_prefix)) for _ in range(3)]
    barrier = threading.Barrier(9)

    def send(n: int) -> None:
        barrier.wait()
        post(ags, clients[n % 3], student=n % 8)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ags.platform.token_requests == 1

    ags.platform.tokens.expire_all()
    post(ags, clients[0], student=1)
    post(ags, clients[1], student=2)
    assert ags.platform.token_requests == 2


def test_settings_choose_redis(ags: Ags, redis_client) -> None:  # type: ignore[no-untyped-def]
    settings = ags.stack.settings.model_copy(update={"token_cache": "redis", "redis_url": "redis://127.0.0.1:6379/0"})

    store = make_token_store(settings, ags.client.tokens.store.sessions)  # type: ignore[attr-defined]

    assert isinstance(store, RedisTokenStore)
    store.client.close()
