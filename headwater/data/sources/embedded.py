"""A base for use cases' embedded HTTP sources: a JSON server on loopback, in a daemon thread.

A subclass implements :meth:`LoopbackJsonServer.answer` (path and query -> status,
payload, headers). The base binds only to loopback, answers ``GET /health``, enforces
its own rate limit (429 + ``Retry-After`` above it) and, for tests, replays queued
faults: ``timeout``, ``disconnect``, ``badjson`` or an HTTP status with an optional
Retry-After (``"429:0.2"``), one per request. :func:`serve_standalone` is the command-line
entry point every such server shares.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import signal
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from headwater.core.logs import configure_logging, get_logger
from headwater.data.sources.http import TokenBucket

log = get_logger(__name__)

HEALTH_PATH = "/health"
_FAULT_WORDS = ("ok", "timeout", "disconnect", "badjson")
Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Reply:
    """What to send back for one request (or to hang up without answering)."""

    status: int
    body: bytes
    headers: Headers = ()
    disconnect: bool = False


def json_reply(status: int, payload: Any, headers: Headers = ()) -> Reply:
    """A JSON reply (strict JSON: NaN is never written)."""
    body = json.dumps(payload, allow_nan=False, ensure_ascii=False).encode("utf-8")
    return Reply(status, body, headers)


def error_reply(status: int, reason: str, headers: Headers = ()) -> Reply:
    """An error as ``{"error": {"status": ..., "message": ...}}``."""
    return json_reply(status, {"error": {"status": status, "message": reason}}, headers)


def parse_fault(fault: str) -> str:
    """Validate one fault: ok, timeout, disconnect, badjson, or an HTTP status[:Retry-After]."""
    word = fault.strip().lower()
    if word in _FAULT_WORDS:
        return word
    status, _, retry_after = word.partition(":")
    if status.isdigit() and 400 <= int(status) <= 599:
        if retry_after:
            float(retry_after)
        return word
    raise ValueError(
        f"unknown fault {fault!r}: use {', '.join(_FAULT_WORDS)} or an HTTP status such as "
        "'503' or '429:0.2' (status:Retry-After)"
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` resolves to an IPv4 loopback address."""
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer

    def do_GET(self) -> None:
        reply = self.server.app.dispatch(self.path, dict(self.headers.items()))
        if reply.disconnect:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client went away before the reply", client=str(self.client_address))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("request", client=self.address_string(), line=format % args)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: LoopbackJsonServer):
        super().__init__(address, _Handler)
        self.app = app

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("error while answering", client=str(client_address), exc_info=True)


class LoopbackJsonServer:
    """A JSON API on loopback with its own rate limit and injectable faults (subclass it)."""

    #: The endpoint's path, for :attr:`url`.
    path = "/"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rate_limit_per_second: float = 0.0,
        faults: Iterable[str] = (),
        timeout_fault_seconds: float = 2.0,
    ):
        if not is_loopback(host):
            raise ValueError(f"{type(self).__name__} only listens on loopback, not {host!r}")
        if rate_limit_per_second < 0:
            raise ValueError("rate_limit_per_second must be >= 0 (0 = unlimited)")
        self._host = host
        self._port = port
        self._rate_limit = rate_limit_per_second
        self._limiter = (
            TokenBucket(rate_limit_per_second, burst=max(1.0, rate_limit_per_second))
            if rate_limit_per_second > 0
            else None
        )
        self._faults: deque[str] = deque(parse_fault(f) for f in faults)
        self._timeout_fault_seconds = timeout_fault_seconds
        self._lock = threading.Lock()
        self._requests = 0
        self._throttled = 0
        self._stopping = threading.Event()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        """Load what the server answers from (called once by :meth:`start`)."""

    def answer(self, path: str, query: Mapping[str, Sequence[str]]) -> Reply:
        """Answer one GET that passed the rate limit (subclasses implement it)."""
        raise NotImplementedError

    def authorize(
        self, headers: Mapping[str, str], query: Mapping[str, Sequence[str]]
    ) -> Reply | None:
        """The refusal of a request without valid credentials, or None to answer it.

        The base asks for none; a server mimicking an API with a token overrides it.
        """
        return None

    def error(self, status: int, reason: str, headers: Headers = ()) -> Reply:
        """An error in this API's shape (override to mimic another API's errors)."""
        return error_reply(status, reason, headers)

    def start(self) -> LoopbackJsonServer:
        """Load the data, bind the socket and serve in a daemon thread; return self."""
        if self._httpd is not None:
            return self
        self.load()
        self._stopping.clear()
        self._httpd = _HttpServer((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info("embedded server listening", server=type(self).__name__, url=self.url)
        return self

    def stop(self) -> None:
        """Stop serving, release injected delays, close the socket and join the threads."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = None
        self._thread = None

    def wait(self) -> None:
        """Block until ``stop`` is called (for standalone entry points)."""
        while not self._stopping.wait(0.5):
            pass

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the OS picks one when constructed with port 0)."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """The endpoint's URL, e.g. ``http://127.0.0.1:PORT/v1/...``."""
        return self.base_url + self.path

    @property
    def request_count(self) -> int:
        """Requests received so far, health checks excluded."""
        with self._lock:
            return self._requests

    @property
    def throttled_count(self) -> int:
        """Requests answered 429 by the rate limit (injected faults excluded)."""
        with self._lock:
            return self._throttled

    def inject_faults(self, faults: Iterable[str]) -> None:
        """Queue more faults, consumed one per (non-health) request."""
        parsed = [parse_fault(f) for f in faults]
        with self._lock:
            self._faults.extend(parsed)

    def dispatch(self, raw_path: str, headers: Mapping[str, str] | None = None) -> Reply:
        """Answer one GET: health, injected fault, rate limit, credentials, then :meth:`answer`."""
        parts = urlsplit(raw_path)
        if parts.path == HEALTH_PATH:
            return json_reply(200, {"status": "ok"})
        with self._lock:
            self._requests += 1
            fault = self._faults.popleft() if self._faults else "ok"
        if fault == "timeout":
            self._stopping.wait(self._timeout_fault_seconds)
        elif fault == "disconnect":
            return Reply(0, b"", disconnect=True)
        elif fault == "badjson":
            return Reply(200, b"{not json")
        elif fault != "ok":
            status, _, retry_after = fault.partition(":")
            headers = (("Retry-After", retry_after),) if retry_after else ()
            return self.error(int(status), f"Injected fault: HTTP {status}", headers)
        if self._limiter is not None:
            wait = self._limiter.try_acquire()
            if wait > 0:
                with self._lock:
                    self._throttled += 1
                return self.error(
                    429,
                    f"Too many requests: the limit is {self._rate_limit:g} per second",
                    (("Retry-After", str(max(1, math.ceil(wait)))),),
                )
        query = parse_qs(parts.query, keep_blank_values=True)
        refused = self.authorize(headers or {}, query)
        if refused is not None:
            return refused
        return self.answer(parts.path, query)


def serve_standalone(
    create_server: Callable[..., LoopbackJsonServer],
    argv: Sequence[str] | None,
    *,
    description: str,
    default_port: int,
    serving: str,
) -> int:
    """Command line of an embedded server: parse --host/--port/--rate-limit, serve until stopped.

    ``create_server(host, port, rate_limit_per_second=...)`` builds the server (usually its
    class); ``serving`` names what it serves in the line printed once it listens.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=default_port, help="port (0 = any free)")
    parser.add_argument(
        "--rate-limit", type=float, default=0.0, help="requests per second, 0 = unlimited"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(level=args.log_level.upper())
    try:
        server = create_server(args.host, args.port, rate_limit_per_second=args.rate_limit)
        server.start()
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    print(f"serving {serving} at {server.url}", flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    """Turn SIGTERM into KeyboardInterrupt so the server stops cleanly."""
    raise KeyboardInterrupt
