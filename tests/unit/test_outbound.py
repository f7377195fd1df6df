"""tool.outbound: the one guarded fetch, against real listeners on loopback (issue 11, findings 1-2).

Loopback stands in for both sides here: listeners on 127.0.0.1 are "internal", and the policy
allow-lists exactly what a test calls "public".
"""

from __future__ import annotations

import gzip
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest
import requests

from tool.ags.http import make_session
from tool.metrics import LMS_REQUESTS, MeasuredAdapter
from tool.outbound import (
    CrossHostRedirect,
    DeadlineExceeded,
    DestinationRefused,
    GuardedAdapter,
    Policy,
    ResponseTooLarge,
    Unreachable,
    describe,
    fetch,
    is_public_address,
    same_host,
)
from tests.conftest import make_settings


class Server:
    """A loopback HTTP server; `handle(h)` answers; records connections and requests."""

    def __init__(self, handle: Callable[[BaseHTTPRequestHandler], None], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.paths: list[str] = []
        self.connections = 0
        self.stop = threading.Event()
        self.sent = 0
        self.finished = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                outer.connections += 1
                super().setup()

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.paths.append(self.path)
                handle(self)

            do_POST = do_GET

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.server.server_address[0]}:{self.port}{path}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def answer(h: BaseHTTPRequestHandler, status: int = 200, body: bytes = b'{"ok": true}', **headers: str) -> None:
    h.send_response(status)
    for k, v in headers.items():
        h.send_header(k.replace("_", "-"), v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    made: list[Server] = []

    def make(handle: Callable[[BaseHTTPRequestHandler], None], host: str = "127.0.0.1", port: int = 0) -> Server:
        made.append(Server(handle, host, port))
        return made[-1]

    yield make
    for s in made:
        s.close()


def session(**settings: Any) -> requests.Session:
    base = {"outbound_allowed_hosts": (), "sandbox_enabled": False}
    base.update(settings)
    return make_session(make_settings("sqlite:///unused.db", "keys", **base))


def test_the_platform_session_is_guarded_and_still_measured() -> None:
    http = session()
    for prefix in ("http://", "https://"):
        adapter = http.get_adapter(prefix + "lms.example/")
        assert isinstance(adapter, GuardedAdapter) and isinstance(adapter, MeasuredAdapter)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "[::1]", "10.1.2.3", "172.16.0.9", "192.168.1.1",
                                  "169.254.169.254", "[fd00:ec2::254]", "100.100.100.200", "0.0.0.0",
                                  "[::ffff:127.0.0.1]", "[::]", "224.0.0.1", "[fe80::1]"])
def test_internal_addresses_are_refused_before_any_connection(host: str) -> None:
    with pytest.raises(DestinationRefused) as caught:
        fetch(session(), "GET", f"http://{host}:9/latest/meta-data/")
    assert describe(caught.value) == describe(Unreachable("x"))  # no oracle of what is internal


def test_a_name_resolving_to_loopback_is_refused_and_never_connected(servers: Any) -> None:
    internal = servers(lambda h: answer(h))
    settings = make_settings("sqlite:///unused.db", "keys", outbound_allowed_hosts=(), sandbox_enabled=False)
    policy = Policy.from_settings(settings, resolve=lambda host, port: ["127.0.0.1"])
    http = requests.Session()
    http.mount("http://", GuardedAdapter(policy))
    with pytest.raises(DestinationRefused):
        fetch(http, "GET", f"http://lms.example.edu:{internal.port}/")
    assert internal.connections == 0


def test_each_connection_goes_to_the_address_it_checked(servers: Any) -> None:
    """DNS rebinding: the name answers an allowed address, then an internal one. The connection
    is made to the address that was checked, so the internal one is never reached."""
    # Each answer closes its connection, so the second fetch opens (and resolves) anew.
    allowed = servers(lambda h: answer(h, body=b'"allowed"', Connection="close"), host="127.0.0.2")
    # The internal service listens on the same port number, on 127.0.0.1.
    internal = servers(lambda h: answer(h, body=b'"internal"'), host="127.0.0.1", port=allowed.port)
    answers = iter([["127.0.0.2"], ["127.0.0.1"]])
    seen: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        seen.append(host)
        return next(answers)

    settings = make_settings("sqlite:///unused.db", "keys", outbound_allowed_hosts=("127.0.0.2/32",),
                             sandbox_enabled=False)
    http = requests.Session()
    http.mount("http://", GuardedAdapter(Policy.from_settings(settings, resolve=resolve)))
    url = f"http://rebind.example:{allowed.port}/"
    assert fetch(http, "GET", url).json() == "allowed"
    with pytest.raises(DestinationRefused):
        fetch(http, "GET", url)
    assert seen == ["rebind.example", "rebind.example"]  # resolved once per connection, not twice
    assert internal.connections == 0 and allowed.connections == 1


def test_allow_listed_host_and_port(servers: Any) -> None:
    ok = servers(lambda h: answer(h))
    other = servers(lambda h: answer(h))
    http = session(outbound_allowed_hosts=(f"127.0.0.1:{ok.port}",))
    assert fetch(http, "GET", ok.url()).json() == {"ok": True}
    with pytest.raises(DestinationRefused):
        fetch(http, "GET", other.url())
    assert other.connections == 0
    # A whole host, and a network.
    assert fetch(session(outbound_allowed_hosts=("127.0.0.1",)), "GET", other.url()).status_code == 200
    assert fetch(session(outbound_allowed_hosts=("127.0.0.0/8",)), "GET", other.url()).status_code == 200


def test_the_sandbox_entry_and_an_enabled_sandbox_allow_its_port_only(servers: Any) -> None:
    lms = servers(lambda h: answer(h))
    for settings in ({"outbound_allowed_hosts": ("sandbox",)}, {"sandbox_enabled": True}):
        http = session(sandbox_port=lms.port, **settings)
        assert fetch(http, "GET", lms.url()).status_code == 200
        with pytest.raises(DestinationRefused):
            fetch(http, "GET", f"http://127.0.0.1:{lms.port + 1 if lms.port < 65535 else 1}/")


def test_redirects_only_to_the_same_host(servers: Any) -> None:
    internal = servers(lambda h: answer(h, body=b'"internal"'))
    target: dict[str, str] = {}

    def redirecting(h: BaseHTTPRequestHandler) -> None:
        if h.path == "/away":
            answer(h, 302, b"", Location=target["away"])
        elif h.path == "/here":
            answer(h, 301, b"", Location="/final")
        else:
            answer(h, body=b'"final"')

    lms = servers(redirecting, host="127.0.0.2")
    target["away"] = internal.url("/")
    http = session(outbound_allowed_hosts=("127.0.0.0/8",))
    assert fetch(http, "GET", lms.url("/here")).json() == "final"
    with pytest.raises(CrossHostRedirect):
        fetch(http, "GET", lms.url("/away"))
    assert internal.connections == 0


def test_a_trickle_is_cut_off_by_the_total_deadline(servers: Any) -> None:
    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        h.wfile.flush()
        try:
            for _ in range(100):
                if slow.stop.wait(0.1):
                    return
                h.wfile.write(b" ")
                h.wfile.flush()
                slow.sent += 1
            slow.finished.set()
        except OSError:
            pass

    slow = servers(trickle)
    http = session(outbound_allowed_hosts=("127.0.0.1",), http_timeout_seconds=5.0)
    with pytest.raises(DeadlineExceeded) as caught:
        fetch(http, "GET", slow.url(), deadline_seconds=1.0)
    assert not slow.finished.is_set() and slow.sent < 100
    assert "slow" in describe(caught.value) or "long" in describe(caught.value)


def test_a_trickle_of_headers_is_cut_off_too(servers: Any) -> None:
    def headers_forever(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        try:
            for i in range(100):
                if slow.stop.wait(0.1):
                    return
                h.wfile.write(b"X-%d: a\r\n" % i)
                h.wfile.flush()
                slow.sent += 1
            slow.finished.set()
        except OSError:
            pass

    slow = servers(headers_forever)
    http = session(outbound_allowed_hosts=("127.0.0.1",), http_timeout_seconds=5.0)
    with pytest.raises(DeadlineExceeded):
        fetch(http, "GET", slow.url(), deadline_seconds=1.0)
    assert not slow.finished.is_set()


def test_a_plain_session_call_obeys_the_default_deadline(servers: Any) -> None:
    """Code that calls the session directly (no fetch) still gets the policy's total deadline."""
    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        try:
            for _ in range(100):
                if slow.stop.wait(0.1):
                    return
                h.wfile.write(b" ")
                h.wfile.flush()
            slow.finished.set()
        except OSError:
            pass

    slow = servers(trickle)
    http = session(outbound_allowed_hosts=("127.0.0.1",), outbound_deadline_seconds=1.0, http_timeout_seconds=5.0)
    with pytest.raises(requests.RequestException):
        http.get(slow.url(), timeout=5)
    assert not slow.finished.is_set()


def test_a_huge_answer_is_not_read(servers: Any) -> None:
    chunk = b" " * 65536

    def huge(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.end_headers()  # no length: read until closed
        try:
            while big.sent < 200 * 1024 * 1024 and not big.stop.is_set():
                h.wfile.write(chunk)
                big.sent += len(chunk)
            big.finished.set()
        except OSError:
            pass
        h.close_connection = True

    big = servers(huge)
    http = session(outbound_allowed_hosts=("127.0.0.1",))
    with pytest.raises(ResponseTooLarge):
        fetch(http, "GET", big.url(), max_bytes=1_000_000)
    assert not big.finished.is_set()
    assert big.sent < 32 * 1024 * 1024


def test_an_announced_length_over_the_cap_is_refused_unread(servers: Any) -> None:
    big = servers(lambda h: answer(h, body=b" " * 2_000_001))
    with pytest.raises(ResponseTooLarge):
        fetch(session(outbound_allowed_hosts=("127.0.0.1",)), "GET", big.url(), max_bytes=2_000_000)


def test_a_gzip_bomb_stops_at_the_cap(servers: Any) -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    lms = servers(lambda h: answer(h, body=bomb, Content_Encoding="gzip"))
    assert len(bomb) < 1_000_000
    with pytest.raises(ResponseTooLarge):
        fetch(session(outbound_allowed_hosts=("127.0.0.1",)), "GET", lms.url(), max_bytes=1_000_000)


def test_refused_and_reset_look_alike() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    resetter = socket.socket()
    resetter.bind(("127.0.0.1", 0))
    resetter.listen(1)

    def reset_one() -> None:
        conn, _ = resetter.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    t = threading.Thread(target=reset_one, daemon=True)
    t.start()
    http = session(outbound_allowed_hosts=("127.0.0.1",))
    errors = []
    for sock in (closed, resetter):
        with pytest.raises(Unreachable) as caught:
            fetch(http, "GET", "http://127.0.0.1:%d/" % sock.getsockname()[1])
        errors.append(caught.value)
    t.join()
    closed.close()
    resetter.close()
    assert describe(errors[0]) == describe(errors[1])
    assert type(errors[0]) is type(errors[1])


def test_metrics_count_guarded_calls(servers: Any) -> None:
    lms = servers(lambda h: answer(h))
    before = LMS_REQUESTS.labels("127.0.0.1", "other", "2xx")._value.get()  # type: ignore[attr-defined]
    fetch(session(outbound_allowed_hosts=("127.0.0.1",)), "GET", lms.url("/x"))
    after = LMS_REQUESTS.labels("127.0.0.1", "other", "2xx")._value.get()  # type: ignore[attr-defined]
    assert after == before + 1


def test_keep_alive_connections_are_reused(servers: Any) -> None:
    lms = servers(lambda h: answer(h))
    http = session(outbound_allowed_hosts=("127.0.0.1",))
    for _ in range(3):
        assert fetch(http, "GET", lms.url()).status_code == 200
    assert lms.connections == 1


def test_public_addresses_and_same_host() -> None:
    import ipaddress

    assert is_public_address(ipaddress.ip_address("93.184.216.34"))
    assert not is_public_address(ipaddress.ip_address("::ffff:10.0.0.1"))
    assert not is_public_address(ipaddress.ip_address("2002:7f00:1::1"))  # 6to4 of 127.0.0.1
    assert not is_public_address(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))  # NAT64 of 169.254.169.254
    assert is_public_address(ipaddress.ip_address("64:ff9b::5db8:d822"))
    assert same_host("https://moodle.example.edu/mod/lti/x", "https://moodle.example.edu")
    assert same_host("https://MOODLE.example.edu:443/r", "https://moodle.example.edu")
    assert not same_host("https://moodle.example.edu:8443/r", "https://moodle.example.edu")
    assert not same_host("http://10.0.0.1/r", "https://moodle.example.edu")


def test_other_schemes_are_refused() -> None:
    for url in ("file:///etc/passwd", "gopher://127.0.0.1:6379/_", "ftp://lms.example/"):
        with pytest.raises(requests.RequestException):
            fetch(session(), "GET", url)


def test_https_is_guarded_too(servers: Any, tmp_path: Any) -> None:
    """Over TLS the certificate is checked against the URL's name while the socket goes to the
    checked address, and the total deadline still cuts a trickle."""
    import ssl

    from tests.e2e.test_deploy_tls import self_signed

    cert, key = self_signed(tmp_path)

    def handle(h: BaseHTTPRequestHandler) -> None:
        if h.path == "/slow":
            h.send_response(200)
            h.send_header("Content-Length", "100")
            h.end_headers()
            try:
                for _ in range(100):
                    if lms.stop.wait(0.1):
                        return
                    h.wfile.write(b" ")
                    h.wfile.flush()
                lms.finished.set()
            except OSError:
                pass
        else:
            answer(h)

    lms = servers(handle)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    lms.server.socket = context.wrap_socket(lms.server.socket, server_side=True)
    http = session(outbound_allowed_hosts=("127.0.0.1",), http_timeout_seconds=5.0)
    http.verify = str(cert)
    base = f"https://localhost:{lms.port}"
    assert fetch(http, "GET", base + "/").json() == {"ok": True}
    with pytest.raises(DeadlineExceeded):
        fetch(http, "GET", base + "/slow", deadline_seconds=1.0)
    assert not lms.finished.is_set()
    with pytest.raises(DestinationRefused):
        fetch(session(), "GET", base + "/")


def test_a_slow_name_resolution_counts_against_the_deadline(servers: Any) -> None:
    lms = servers(lambda h: answer(h))
    release = threading.Event()

    def slow_dns(host: str, port: int) -> list[str]:
        release.wait(30)  # a DNS server that does not answer
        return ["127.0.0.1"]

    settings = make_settings("sqlite:///unused.db", "keys", outbound_allowed_hosts=("127.0.0.1",), sandbox_enabled=False)
    http = requests.Session()
    http.mount("http://", GuardedAdapter(Policy.from_settings(settings, resolve=slow_dns)))
    try:
        with pytest.raises(DeadlineExceeded):
            fetch(http, "GET", f"http://slow-dns.example:{lms.port}/", deadline_seconds=0.5)
    finally:
        release.set()
    assert lms.connections == 0
