"""Serve the sandbox over HTTP/1.1 with keep-alive, as Moodle and Canvas do behind their web servers.

werkzeug's development server answers `Connection: close` to every request, so a tool that
pools connections and one that opens a connection per request look the same to it. This
small threaded WSGI server keeps connections open, which lets the AGS tests and the
benchmark count the TCP connections a tool really makes (`Platform.connections`).

Enough of HTTP/1.1 for tools talking to a platform: request bodies with Content-Length,
responses buffered whole and sent with Content-Length in one write, `Connection: close`
honoured, idle connections closed after `idle_timeout` seconds.
"""

from __future__ import annotations

import io
import socket
import struct
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote

WSGIApp = Callable[..., Any]


class _Handler(BaseHTTPRequestHandler):
    """One connection: requests are read and answered until the client closes it or idles."""

    protocol_version = "HTTP/1.1"
    server_version = "SandboxLMS/1.0"
    disable_nagle_algorithm = True  # a response is one write; never wait for a delayed ACK
    server: "KeepAliveServer"

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        """No access log: tests and benchmarks send thousands of requests."""

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key != "CONTENT_LENGTH":
                environ.setdefault("HTTP_" + key, value)
        return environ

    def _serve(self) -> None:
        if self.server.refusing():
            # An outage (Platform.serve_on): a kept-alive connection dies without an answer too.
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.send_error(HTTPStatus.LENGTH_REQUIRED, "Send the body with a Content-Length")
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad Content-Length")
            self.close_connection = True
            return
        body = self.rfile.read(length) if length > 0 else b""
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            answer["status"], answer["headers"] = status, headers
            return lambda data: answer.setdefault("written", []).append(data)

        result = self.server.app(self._environ(body), start_response)
        try:
            chunks = [*answer.get("written", []), *result]
        finally:
            if hasattr(result, "close"):
                result.close()
        content = b"".join(chunks)
        # The reason phrase is the app's own: Moodle puts its error detail there.
        lines = [f"{self.protocol_version} {answer['status']}"]
        lines += [f"{k}: {v}" for k, v in answer["headers"] if k.lower() not in ("content-length", "connection")]
        lines.append(f"Content-Length: {len(content)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + content)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve


class KeepAliveServer(ThreadingHTTPServer):
    """A threaded WSGI server (a thread per connection) with HTTP/1.1 keep-alive."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, app: WSGIApp, *, host: str = "127.0.0.1", port: int = 0, idle_timeout: float = 15.0) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.refusing: Callable[[], bool] = lambda: False  # Platform.serve_on: an outage
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def track(self, conn: socket.socket) -> None:
        """Remember an open connection (closed on `close_connections`)."""
        with self._open_lock:
            self._open.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        """Forget a connection its handler has finished with."""
        with self._open_lock:
            self._open.discard(conn)

    def close_connections(self) -> None:
        """Shut every open keep-alive connection down (their threads then end)."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class SandboxServer:
    """The keep-alive server in a background thread; `port=0` picks a free port. A context manager."""

    def __init__(self, app: WSGIApp, *, host: str = "127.0.0.1", port: int = 0, idle_timeout: float = 15.0) -> None:
        self.server = KeepAliveServer(app, host=host, port=port, idle_timeout=idle_timeout)
        self.host = host
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8001."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> "SandboxServer":
        """Start serving in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close open connections, wait for the thread."""
        self.server.shutdown()
        self.server.close_connections()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
