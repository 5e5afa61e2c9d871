"""A base for use cases' embedded HTTP sources: a JSON server on loopback, in a daemon thread.

A subclass implements :meth:`LoopbackJsonServer.answer` (path and query -> status,
payload, headers). The base binds only to loopback, answers ``GET /health``, enforces
its own rate limit (429 + ``Retry-After`` above it) and, for tests, replays queued
faults: ``timeout``, ``disconnect``, ``badjson`` or an HTTP status with an optional
Retry-After (``"429:0.2"``), one per request. :func:`serve_standalone` is the command-line
entry point every such server shares.

:func:`serve_stand_in` is how the platform starts a use case's stand-in for a source (the
run's embedded servers, ``headwater serve-source``, the conformance suite): on a free port,
checking the same credential the source's client sends (its ``auth``). A local stage needs no
real secret: an ``env:NAME`` credential whose variable is unset is generated for the
stand-in and handed to the clients in ``NAME`` (:func:`stand_in_credential`).
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import ipaddress
import json
import math
import os
import secrets
import signal
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse, urlsplit

from headwater.core.logs import configure_logging, get_logger
from headwater.data.sources import HttpAuth, HttpSourceOptions
from headwater.data.sources.http import Credential, TokenBucket, resolve_credential

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
    #: The status of a request without the expected credential (NOAA, say, answers 400).
    credential_status = 401

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
        self._credential: Credential | None = None

    def expect_credential(self, credential: Credential | None) -> None:
        """Refuse every request that does not carry ``credential`` (None: ask for none).

        The platform calls it with the credential the source's client sends (its ``auth``),
        so the stand-in checks what the real API would; a refusal is
        :attr:`credential_status` in the API's error shape (:meth:`error`), never retried.
        """
        self._credential = credential

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
        refused = self._check_credential(headers or {}, query)
        if refused is not None:
            return refused
        if self._credential is not None and self._credential.param is not None:
            query.pop(self._credential.param, None)  # the platform's, not the API's parameter
        refused = self.authorize(headers or {}, query)
        if refused is not None:
            return refused
        return self.answer(parts.path, query)

    def _check_credential(
        self, headers: Mapping[str, str], query: Mapping[str, Sequence[str]]
    ) -> Reply | None:
        """The refusal of a request without the expected credential, or None."""
        expected = self._credential
        if expected is None:
            return None
        if expected.header is not None:
            where = f"header {expected.header!r}"
            lowered = expected.header.lower()
            sent = [v for k, v in headers.items() if k.lower() == lowered]
        else:
            where = f"query parameter {expected.param!r}"
            sent = list(query.get(str(expected.param), ()))
        if not sent:
            return self.error(self.credential_status, f"Missing credential: send the {where}.")
        if len(sent) > 1 or not hmac.compare_digest(sent[0].encode(), expected.value.encode()):
            return self.error(self.credential_status, f"Invalid credential in the {where}.")
        return None


@dataclass(frozen=True)
class StandIn:
    """A started stand-in of a source: the server, its URL, the environment its clients need."""

    server: Any
    #: The source's ``base_url`` on the port the stand-in bound.
    url: str
    #: Variables the extractions must see (a generated credential's ``env:`` variable).
    environment: Mapping[str, str] = field(default_factory=dict)


def stand_in_credential(
    auth: HttpAuth | None,
    resolve: Callable[[str], str],
    environ: Mapping[str, str] | None = None,
    *,
    generate: Callable[[], str] = lambda: "local-" + secrets.token_urlsafe(18),
) -> tuple[Credential | None, dict[str, str]]:
    """The credential a stand-in checks, and the variables to export so the client sends it.

    It is the one the source's client will send: ``env:NAME`` read from ``environ`` (default
    the process's), ``ssm:``/``secretsmanager:`` references through ``resolve``. When ``NAME``
    is unset or empty, a local credential is generated and returned as ``{NAME: value}``: a
    local stage runs offline with no real secret.
    """
    if auth is None:
        return None, {}
    environ = os.environ if environ is None else environ
    name = auth.value.removeprefix("env:") if auth.value.startswith("env:") else None
    if name is not None and not environ.get(name):
        value = generate()
        return Credential(value=value, header=auth.header, param=auth.param), {name: value}
    return resolve_credential(auth, resolve, environ), {}


@contextlib.contextmanager
def serve_stand_in(
    usecase: Any,
    source: str,
    options: HttpSourceOptions | Any,
    *,
    port: int = 0,
    rate_limit: float | None = None,
    resolve: Callable[[str], str] = str,
    environ: Mapping[str, str] | None = None,
) -> Iterator[StandIn]:
    """Start ``usecase``'s embedded server for ``source``, checking the source's credential.

    It binds the host of the source's ``base_url`` on ``port`` (0: a free one; two runs never
    collide) with the server-side rate limit ``rate_limit`` (default the source's
    ``embedded_server_rate_limit``), and is stopped when the block ends.

    Raises:
        TypeError: the source sends a credential and the use case's server cannot check one
            (it is not a :class:`LoopbackJsonServer`).
    """
    configured = urlparse(options.base_url)
    host = configured.hostname or "127.0.0.1"
    # getattr: a use case's own kind may offer embedded servers without the HTTP base keys.
    configured_limit = float(getattr(options, "embedded_server_rate_limit", 0.0) or 0.0)
    limit = configured_limit if rate_limit is None else rate_limit
    credential, environment = stand_in_credential(getattr(options, "auth", None), resolve, environ)
    server = usecase.embedded_server(source, host, port, limit)
    if credential is not None:
        expect = getattr(server, "expect_credential", None)
        if expect is None:
            raise TypeError(
                f"source {source!r} of use case {usecase.name!r} sends a credential (auth), "
                f"but its embedded server ({type(server).__name__}) cannot check one: "
                "build it on headwater.data.sources.embedded.LoopbackJsonServer"
            )
        expect(credential)
    with server as running:
        bound = urlparse(running.url).port
        url = configured._replace(netloc=f"{host}:{bound}").geturl()
        yield StandIn(server=running, url=url, environment=environment)


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
