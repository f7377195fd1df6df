"""The one guarded way Tally fetches a URL that someone else supplied.

Platforms hand Tally URLs: the OpenID configuration and registration endpoint of Dynamic
Registration (from an anonymous browser), the JWKS and token URLs of a registration, the AGS
and NRPS URLs of a launch. Every one of them is fetched through `fetch`, on a session from
`tool.ags.http.make_session`, whose adapter (`GuardedAdapter`, a `MeasuredAdapter`, so the
metrics still count every call) enforces, per connection and per request:

- **where**: the host name is resolved once, every address is checked, and the socket connects
  to a checked address, never to a second resolution (no DNS-rebinding gap). Loopback,
  private, link-local (cloud metadata 169.254.169.254 included), shared, multicast, reserved
  and unspecified addresses are refused unless allow-listed (`outbound_allowed_hosts`: a host,
  a host:port, a network, or "sandbox" for the sandbox LMS's port);
- **how long**: one total deadline for name resolution, connect, headers and body
  (`outbound_deadline_seconds`);
  a server trickling a byte every few seconds beats a per-read timeout, not this;
- **how much**: at most `outbound_max_bytes` from the wire, and as much after decompression;
- **where next**: `fetch` follows a redirect only to the same scheme, host and port.

Failures are `OutboundError`s (requests' exception family, so existing `except
requests.RequestException` keeps working) with a `public` text that names the kind of failure
but never a fetched body, nor the difference between a refused and a reset connection.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import functools
import http.client
import io
import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util import connection as u3connection

from tool.metrics import MeasuredAdapter

Resolver = Callable[[str, int], list[str]]

# What an anonymous caller may learn about a failed fetch: the kind, never the details.
PUBLIC_UNREACHABLE = "could not be fetched (no answer, or not allowed from Tally)"
PUBLIC_TOO_SLOW = "took too long to answer"
PUBLIC_TOO_LARGE = "answered more than Tally reads"
PUBLIC_REDIRECT = "redirected to another host"


class OutboundError(requests.exceptions.RequestException):
    """A guarded fetch failed; `public` is safe to show anyone, the message is for the log."""

    public = PUBLIC_UNREACHABLE


class DestinationRefused(OutboundError, requests.exceptions.InvalidURL):
    """The URL's host resolves to an address Tally does not call (loopback, private, …), or the
    URL is not an http(s) URL. Waiting will not help (AGS treats it as a refusal)."""

    public = PUBLIC_UNREACHABLE  # the same words as "unreachable": no internal-DNS oracle


class Unreachable(OutboundError, requests.exceptions.ConnectionError):
    """No usable answer: refused, reset, DNS, TLS; deliberately one kind."""


class TimedOut(OutboundError, requests.exceptions.Timeout):
    """The server stopped answering for longer than the read timeout."""

    public = PUBLIC_TOO_SLOW


class DeadlineExceeded(TimedOut):
    """The whole exchange took longer than the total deadline."""


class ResponseTooLarge(OutboundError):
    """The answer was bigger than the cap (on the wire or decompressed)."""

    public = PUBLIC_TOO_LARGE


class CrossHostRedirect(OutboundError):
    """A redirect pointed at another scheme, host or port."""

    public = PUBLIC_REDIRECT


# -- the policy ----------------------------------------------------------------------------------


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address on the internet: not loopback, private, link-local (metadata), shared,
    multicast, reserved or unspecified; an IPv4-mapped/6to4/Teredo IPv6 address counts as its IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if inner is None and address in _NAT64:  # 64:ff9b::a.b.c.d reaches a.b.c.d through the gateway
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return is_public_address(inner)
    return bool(address.is_global) and not (address.is_multicast or address.is_reserved or address.is_link_local)


@dataclass(frozen=True)
class Policy:
    """Where guarded fetches may go and how much time and memory they may take."""

    allowed_hosts: frozenset[str] = frozenset()  # "host" (any port) or "host:port", lower case
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    deadline_seconds: float = 30.0
    max_bytes: int = 10_000_000
    resolve: Resolver = field(default=_system_resolver, compare=False)

    @classmethod
    def from_settings(cls, settings: Any, *, resolve: Resolver | None = None) -> "Policy":
        """The policy of `outbound_*` settings; "sandbox" stands for the sandbox LMS's host:port, which
        is also allowed whenever the sandbox is enabled (`make run`)."""
        hosts: set[str] = set()
        networks: list[Any] = []
        entries = list(getattr(settings, "outbound_allowed_hosts", ()) or ())
        if getattr(settings, "sandbox_enabled", False):
            entries.append("sandbox")
        for entry in entries:
            entry = entry.strip().lower()
            if not entry:
                continue
            if entry == "sandbox":
                hosts.add(f"{settings.host.lower()}:{settings.sandbox_port}")
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            hosts.add(_normal_hostport(entry))
        return cls(allowed_hosts=frozenset(hosts), allowed_networks=tuple(networks),
                   deadline_seconds=float(getattr(settings, "outbound_deadline_seconds", 30.0)),
                   max_bytes=int(getattr(settings, "outbound_max_bytes", 10_000_000)),
                   resolve=resolve or _system_resolver)

    def host_allowed(self, host: str, port: int) -> bool:
        """True when the host itself (any port, or this port) is allow-listed."""
        host = host.lower().strip("[]").rstrip(".")
        return host in self.allowed_hosts or f"{_bracket(host)}:{port}" in self.allowed_hosts

    def address_allowed(self, address: str) -> bool:
        """True for a public address or one inside an allow-listed network."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if any(ip in net for net in self.allowed_networks):
            return True
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            if any(ip.ipv4_mapped in net for net in self.allowed_networks):
                return True
        return is_public_address(ip)

    def addresses(self, host: str, port: int, *, timeout: float | None = None) -> list[str]:
        """The addresses Tally may connect to for host:port, resolved once (DestinationRefused if none);
        a resolution that takes longer than `timeout` raises TimeoutError."""
        bare = host.strip("[]").rstrip(".")
        try:
            found = [str(ipaddress.ip_address(bare))]  # a literal: nothing to resolve
        except ValueError:
            try:
                found = self._resolve_within(bare, port, timeout)
            except TimeoutError:
                raise
            except OSError as exc:
                raise _Refusal(f"{host} does not resolve: {exc}", unreachable=True) from None
        if self.host_allowed(bare, port):
            return found
        allowed = [a for a in found if self.address_allowed(a)]
        if not allowed:
            raise _Refusal(f"{host}:{port} resolves to {', '.join(found) or 'nothing'}, which Tally does not call "
                           "(loopback, private, link-local or reserved; allow it with outbound_allowed_hosts)")
        return allowed


    def _resolve_within(self, host: str, port: int, timeout: float | None) -> list[str]:
        # getaddrinfo has no timeout of its own: a slow DNS server must not outlast the deadline.
        if timeout is None:
            return self.resolve(host, port)
        future = _resolver_pool().submit(self.resolve, host, port)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"resolving {host} took longer than the deadline") from None


_pool: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _resolver_pool() -> concurrent.futures.ThreadPoolExecutor:
    """A few threads for name resolution, made again after a fork (gunicorn's workers)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="tally-dns"))
        return _pool[1]


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _normal_hostport(entry: str) -> str:
    if entry.startswith("["):
        inside, _, rest = entry[1:].partition("]")
        return f"[{inside}]{rest}"
    return entry


class _Refusal(Exception):
    """Raised inside urllib3 where an OSError would be retried or reworded; GuardedAdapter turns it
    into DestinationRefused (or Unreachable for a name that does not resolve)."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


# -- per-request limits, carried to the socket ------------------------------------------------------


@dataclass
class Limits:
    """One request's total deadline (monotonic seconds) and byte cap; `tripped` says which ended it."""

    deadline: float
    max_bytes: int
    clock: Callable[[], float] = time.monotonic
    tripped: str = ""

    def remaining(self) -> float:
        """Seconds left; raises TimeoutError (a socket timeout to urllib3) when none are."""
        left = self.deadline - self.clock()
        if left <= 0:
            self.tripped = self.tripped or "deadline"
            raise TimeoutError("the total deadline of the request passed")
        return left


_current: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("tally_outbound_limits", default=None)


@contextlib.contextmanager
def limits(deadline_seconds: float, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> Iterator[Limits]:
    """Every request sent on a guarded session inside the block shares these limits."""
    lim = Limits(deadline=clock() + deadline_seconds, max_bytes=max_bytes, clock=clock)
    token = _current.set(lim)
    try:
        yield lim
    finally:
        _current.reset(token)


class _LimitedSocketReader(io.RawIOBase):
    """The socket's reader under a request's limits: each read waits at most the time left
    (and never longer than the read timeout urllib3 set), and bytes are counted."""

    def __init__(self, raw: Any, sock: socket.socket, lim: Limits) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._lim = lim
        self._read_timeout = sock.gettimeout()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # type: ignore[override]
        left = self._lim.remaining()
        self._sock.settimeout(left if self._read_timeout is None else min(self._read_timeout, left))
        try:
            n = self._raw.readinto(buffer)
        except TimeoutError:
            if self._lim.clock() >= self._lim.deadline:
                self._lim.tripped = self._lim.tripped or "deadline"
            raise
        self.count += n or 0
        if self.count > self._lim.max_bytes + 65536:  # the status line and headers ride along
            self._lim.tripped = self._lim.tripped or "size"
            raise ConnectionAbortedError("the answer is larger than Tally reads")
        return n

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _LimitedResponse(http.client.HTTPResponse):
    """http.client's response reading through `_LimitedSocketReader`."""

    def __init__(self, sock: socket.socket, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        raw = self.fp.detach()  # the socket's SocketIO; nothing is buffered yet
        self.fp = io.BufferedReader(_LimitedSocketReader(raw, sock, limits))


class _GuardedMixin:
    """A urllib3 connection that connects only to checked addresses, under the request's limits."""

    policy: Policy
    _limits: Limits | None = None

    def request(self, *args: Any, **kwargs: Any) -> Any:
        lim = _current.get() or Limits(deadline=time.monotonic() + self.policy.deadline_seconds,
                                       max_bytes=self.policy.max_bytes)
        self._limits = lim
        self.response_class = functools.partial(_LimitedResponse, limits=lim)  # http.client calls it
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def _new_conn(self) -> socket.socket:
        host = self._dns_host  # type: ignore[attr-defined]
        port = int(self.port)  # type: ignore[attr-defined]
        lim = self._limits
        try:
            addresses = self.policy.addresses(host, port, timeout=lim.remaining() if lim is not None else None)
        except TimeoutError:
            if lim is not None:
                lim.tripped = lim.tripped or "deadline"
            raise
        last: Exception | None = None
        for address in addresses:
            timeout = self.timeout  # type: ignore[attr-defined]
            if lim is not None:
                left = lim.remaining()
                timeout = left if not isinstance(timeout, (int, float)) else min(float(timeout), left)
            try:
                sock = u3connection.create_connection(
                    (address, port), timeout, source_address=self.source_address,  # type: ignore[attr-defined]
                    socket_options=self.socket_options,  # type: ignore[attr-defined]
                )
            except socket.timeout as exc:
                last = ConnectTimeoutError(self, f"Connection to {host} timed out.")
                last.__cause__ = exc
                continue
            except OSError as exc:
                last = NewConnectionError(self, f"Failed to establish a new connection: {exc}")  # type: ignore[arg-type]
                continue
            # Belt and braces: the peer is the address that was checked.
            peer = str(sock.getpeername()[0])
            if peer != address and not (self.policy.host_allowed(host, port) or self.policy.address_allowed(peer)):
                sock.close()
                raise _Refusal(f"connected to {peer}, which Tally does not call")
            return sock
        assert last is not None
        raise last


def _connection_classes(policy: Policy) -> tuple[type, type]:
    http_cls = type("GuardedHTTPConnection", (_GuardedMixin, HTTPConnection), {"policy": policy})
    https_cls = type("GuardedHTTPSConnection", (_GuardedMixin, HTTPSConnection), {"policy": policy})
    return http_cls, https_cls


class GuardedAdapter(MeasuredAdapter):
    """MeasuredAdapter (timed and counted) whose connections obey a `Policy`."""

    def __init__(self, policy: Policy, **kwargs: Any) -> None:
        self.policy = policy
        http_conn, https_conn = _connection_classes(policy)
        self._pool_classes = {
            "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._pool_classes)

    def __setstate__(self, state: Any) -> None:  # requests pickles adapters; keep the pools guarded
        super().__setstate__(state)
        self.poolmanager.pool_classes_by_scheme = dict(self._pool_classes)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url or "")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise DestinationRefused(f"not an http(s) URL: {request.url!r}", request=request)
        # Through a proxy (configured by the administrator) the socket goes to the proxy: the
        # target is checked by name here, and the proxy resolves it again (no rebinding check).
        proxies = kwargs.get("proxies") or {}
        if proxies and requests.utils.select_proxy(request.url, proxies):
            try:
                self.policy.addresses(url.hostname, url.port or (443 if url.scheme == "https" else 80))
            except _Refusal as exc:
                raise _public(exc, request) from None
        try:
            return super().send(request, *args, **kwargs)
        except _Refusal as exc:
            raise _public(exc, request) from None
        except requests.RequestException as exc:
            lim = _current.get()
            if lim is not None and lim.tripped == "deadline":
                raise DeadlineExceeded(f"{request.url} took longer than the total deadline", request=request) from exc
            if lim is not None and lim.tripped == "size":
                raise ResponseTooLarge(f"{request.url} answered more than {lim.max_bytes} bytes", request=request) from exc
            raise


def _public(exc: _Refusal, request: requests.PreparedRequest) -> OutboundError:
    if exc.unreachable:
        return Unreachable(str(exc), request=request)
    return DestinationRefused(str(exc), request=request)


# -- the fetch -------------------------------------------------------------------------------------


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)

    def port(p: Any) -> int | None:
        try:
            return p.port or {"http": 80, "https": 443}.get(p.scheme)
        except ValueError:
            return None

    return (pa.scheme, (pa.hostname or "").lower(), port(pa)) == (pb.scheme, (pb.hostname or "").lower(), port(pb))


def fetch(http: requests.Session, method: str, url: str, *, headers: Mapping[str, str] | None = None,
          data: Any = None, timeout: Any = None, deadline_seconds: float | None = None, max_bytes: int | None = None,
          follow_redirects: int = 5, policy: Policy | None = None) -> requests.Response:
    """Send one request through the guarded session and read its answer under one deadline and cap.

    Returns the `requests.Response` with its content read (`.text`, `.json()` as usual). A
    redirect is followed (up to `follow_redirects`) only to the same scheme, host and port,
    as requests would (a 303, or a 301/302 after POST, becomes a GET without a body).
    Raises OutboundError subclasses; their `public` text is all an anonymous caller may see.
    """
    pol = policy or _policy_of(http, url)
    deadline = deadline_seconds if deadline_seconds is not None else pol.deadline_seconds
    cap = max_bytes if max_bytes is not None else pol.max_bytes
    outer = _current.get()
    with limits(deadline, cap) as lim:
        if outer is not None:  # a caller's tighter limits stay in force
            lim.deadline = min(lim.deadline, outer.deadline)
            lim.max_bytes = min(lim.max_bytes, outer.max_bytes)
        current, verb, body = url, method.upper(), data
        for _ in range(follow_redirects + 1):
            resp = _send_once(http, verb, current, headers, body, timeout, lim)
            if not resp.is_redirect:
                return resp
            target = urljoin(current, resp.headers.get("Location", ""))
            resp.close()
            if not _same_origin(current, target):
                raise CrossHostRedirect(f"{current} redirected to {target}, another host")
            if resp.status_code == 303 or (resp.status_code in (301, 302) and verb == "POST"):
                verb, body = "GET", None
            current = target
        raise Unreachable(f"{url} redirected more than {follow_redirects} times")


def _send_once(http: requests.Session, method: str, url: str, headers: Mapping[str, str] | None, data: Any,
               timeout: Any, lim: Limits) -> requests.Response:
    try:
        resp = http.request(method, url, headers=dict(headers or {}), data=data, timeout=timeout,
                            allow_redirects=False, stream=True)
    except OutboundError:
        raise
    except requests.RequestException as exc:
        if lim.tripped == "deadline" or lim.clock() >= lim.deadline:
            raise DeadlineExceeded(f"{url} took longer than the total deadline") from exc
        if lim.tripped == "size":
            raise ResponseTooLarge(f"{url} answered more than {lim.max_bytes} bytes") from exc
        if isinstance(exc, requests.exceptions.ReadTimeout):
            raise TimedOut(f"{url} did not answer in time: {exc}") from exc
        raise Unreachable(f"{url}: {exc}") from exc
    if resp.is_redirect:
        return resp
    length = resp.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > lim.max_bytes:
        resp.close()
        raise ResponseTooLarge(f"{url} announces {length} bytes, more than {lim.max_bytes}")
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in resp.iter_content(65536):  # decompressed: a gzip bomb stops at the cap too
            total += len(chunk)
            if total > lim.max_bytes:
                raise ResponseTooLarge(f"{url} answered more than {lim.max_bytes} bytes")
            chunks.append(chunk)
    except ResponseTooLarge:
        resp.close()
        raise
    except requests.RequestException as exc:
        resp.close()
        if lim.tripped == "deadline" or lim.clock() >= lim.deadline:
            raise DeadlineExceeded(f"{url} took longer than the total deadline") from exc
        if lim.tripped == "size":
            raise ResponseTooLarge(f"{url} answered more than {lim.max_bytes} bytes") from exc
        if any(isinstance(arg, ReadTimeoutError) for arg in exc.args):  # requests wraps it in a ConnectionError
            raise TimedOut(f"{url} did not answer in time: {exc}") from exc
        raise Unreachable(f"{url}: {exc}") from exc
    resp._content = b"".join(chunks)  # what requests' .content would hold
    resp._content_consumed = True  # type: ignore[attr-defined]
    return resp


def _policy_of(http: requests.Session, url: str) -> Policy:
    try:
        adapter = http.get_adapter(url)
    except requests.exceptions.InvalidSchema:
        raise DestinationRefused(f"not an http(s) URL: {url!r}") from None
    pol = getattr(adapter, "policy", None)
    if not isinstance(pol, Policy):
        raise TypeError("fetch needs a session from tool.ags.http.make_session (a GuardedAdapter)")
    return pol


def same_host(url: str, other: str) -> bool:
    """True when both URLs name the same host and port (registration_endpoint vs issuer)."""
    return _host_port(url) == _host_port(other)


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port


def describe(exc: BaseException) -> str:
    """The public words for a failed fetch (anything else: unreachable)."""
    return exc.public if isinstance(exc, OutboundError) else PUBLIC_UNREACHABLE


__all__: Iterable[str] = (
    "CrossHostRedirect", "DeadlineExceeded", "DestinationRefused", "GuardedAdapter", "Limits", "OutboundError",
    "Policy", "ResponseTooLarge", "TimedOut", "Unreachable", "describe", "fetch", "is_public_address", "limits", "same_host",
)
