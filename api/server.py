"""``headwater serve``: the same app Zappa deploys (``api.wsgi:app``), under gunicorn, locally.

Each worker process imports ``api.wsgi`` after the fork, so each builds the app and
loads the model once. gunicorn is a development and self-hosting dependency (the
``api`` extra); the Lambda package does not contain it.

Hardened for a network nobody vouches for:

* gevent workers: a connection is a greenlet, not a thread, so clients that trickle
  their headers hold nothing the next request needs (with gthread workers, 16 such
  connections stalled every other request; see ``tests/api/test_serve.py``). Each
  worker takes at most ``worker_connections`` connections at once.
* What gunicorn answers itself, before Flask sees the request (a request line over
  ``limit_request_line``: 414; headers over ``limit_request_fields`` or
  ``limit_request_field_size``: 431; an unparseable request: 400), is the API's JSON
  error, not gunicorn's HTML page.

Facing the internet, put a buffering reverse proxy in front as well (see
docs/operations.md): it bounds how long a client may take to send a request.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
from dataclasses import dataclass
from typing import Any

import gunicorn.util
from gunicorn.app.base import BaseApplication
from gunicorn.util import import_app, write_nonblock

from headwater.serving.capture import close_all

APP = "api.wsgi:app"


@dataclass(frozen=True)
class ServerOptions:
    """How gunicorn listens and how many workers it runs."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    # Threads per worker, for the gthread worker class only (gevent needs none).
    threads: int = 4
    timeout: int = 30
    # Seconds an idle keep-alive connection is held (gunicorn's default; a stop waits for it).
    keepalive: int = 2
    access_log: bool = False
    # gevent: slow clients cost a greenlet each, not a thread (see the module docstring).
    worker_class: str = "gevent"
    # Simultaneous connections per gevent worker.
    worker_connections: int = 1000

    def gunicorn_settings(self) -> dict[str, Any]:
        """The options as gunicorn settings."""
        settings: dict[str, Any] = {
            "bind": f"{self.host}:{self.port}",
            "workers": self.workers,
            "worker_class": self.worker_class,
            "timeout": self.timeout,
            # A worker told to stop waits for its open connections, idle keep-alive ones too
            # (up to keepalive, checked each second), then writes its capture (worker_exit);
            # the master kills it at graceful_timeout. Both were 5 s: a client that kept its
            # connection open had the worker killed with its capture files left open.
            "graceful_timeout": self.keepalive + 10,
            "keepalive": self.keepalive,
            # gunicorn's own limits (its defaults, written down): beyond them it answers
            # 414/431 itself, as JSON (json_error below).
            "limit_request_line": 4094,
            "limit_request_fields": 100,
            "limit_request_field_size": 8190,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "headwater-api",
            # gunicorn 24+: no control socket in $HOME (two servers would share its path).
            "control_socket_disable": True,
            # A worker that stops (SIGTERM, max requests, reload) writes what it captured.
            "worker_exit": _close_capture,
            # A stop signal that reaches a worker before it installs its own handlers waits.
            "post_fork": _hold_stop_signals,
            "post_worker_init": _release_stop_signals,
        }
        if self.worker_class == "gthread":
            settings["threads"] = self.threads
        else:
            settings["worker_connections"] = self.worker_connections
        if self.access_log:
            settings["accesslog"] = "-"
        return settings


#: The signals that stop a worker (gunicorn's handle_exit, handle_quit).
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})


def _hold_stop_signals(arbiter: Any, worker: Any) -> None:
    """gunicorn's post_fork hook: block the stop signals until the worker handles them.

    A forked worker runs the master's handlers until its own are installed (after gevent's
    monkey-patching, a few hundred milliseconds): a SIGTERM in that window was taken by the
    master's handler, and the worker served on until the master killed it at graceful_timeout
    (measured: every stop sent right after start took 12 s). Blocked, the signal waits.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _release_stop_signals(worker: Any) -> None:
    """gunicorn's post_worker_init hook: the worker's handlers are installed; a held stop
    signal is delivered now (the worker then stops before serving)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _close_capture(arbiter: Any, worker: Any) -> None:
    """gunicorn's worker_exit hook: flush and close the worker's prediction capture."""
    close_all()


def json_error(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP response: the API's JSON error body, closing the connection."""
    code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "error"
    body = json.dumps(
        {"error": {"status": status, "code": code, "message": message or reason.lower()}}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Stands in for ``gunicorn.util.write_error`` (an HTML page) in the server's workers."""

    write_nonblock(sock, json_error(status_int, reason, mesg))


def run_server(options: ServerOptions) -> None:
    """Run gunicorn in the foreground until it is stopped (SIGINT or SIGTERM)."""

    if options.worker_class == "gevent" and importlib.util.find_spec("gevent") is None:
        raise SystemExit("gevent is not installed: pip install 'headwater[serve]'")

    # gunicorn writes its own error answers through this one function (workers/base.py's
    # handle_error); the workers are forked from this process, so they inherit it.
    gunicorn.util.write_error = _write_json_error

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.gunicorn_settings().items():
                if key in self.cfg.settings:  # older gunicorn lacks the newest settings
                    self.cfg.set(key, value)

        def load(self) -> Any:

            return import_app(APP)

    _Server().run()
